//! Workspaces, users, memberships, API keys and sessions as stored (hashes only, never secrets).

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, now_ms};
use crate::lifecycle::Role;

/// A workspace.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Workspace {
    pub id: i64,
    pub name: String,
}

/// A user (the password hash stays in the store layer).
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: Option<String>,
}

/// What an API key resolves to, before expiry/revocation checks.
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: i64,
    pub user_id: i64,
    pub workspace_id: i64,
    pub kind: String,
    pub name: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub role: Option<String>,
}

/// An API key's public metadata.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct KeyInfo {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a session resolves to.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A membership.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Membership {
    pub workspace_id: i64,
    pub workspace: String,
    pub role: String,
}

impl Store {
    /// The workspace called `name`, created when missing.
    pub async fn ensure_workspace(&self, name: &str) -> StoreResult<Workspace> {
        sqlx::query("INSERT INTO workspaces (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name.to_string())
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        self.workspace_by_name(name)
            .await?
            .ok_or(StoreError::NotFound("workspace"))
    }

    /// The workspace called `name`.
    pub async fn workspace_by_name(&self, name: &str) -> StoreResult<Option<Workspace>> {
        Ok(
            sqlx::query_as::<_, Workspace>("SELECT id, name FROM workspaces WHERE name = $1")
                .bind(name.to_string())
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Creates a user; `Conflict` when the e-mail is taken.
    pub async fn create_user(&self, email: &str, password_hash: &str) -> StoreResult<UserRow> {
        let r = sqlx::query_as::<_, UserRow>(
            "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id, email, password_hash",
        )
        .bind(email.to_string())
        .bind(password_hash.to_string())
        .bind(now_ms())
        .fetch_one(self.pool())
        .await;
        match r {
            Ok(u) => Ok(u),
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_unique_violation() {
                    Err(StoreError::Conflict(
                        "a user with this e-mail exists".into(),
                    ))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The user with `email`.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
        Ok(sqlx::query_as::<_, UserRow>(
            "SELECT id, email, password_hash FROM users WHERE email = $1",
        )
        .bind(email.to_string())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Sets (or changes) `user_id`'s role in `workspace_id`.
    pub async fn set_membership(
        &self,
        workspace_id: i64,
        user_id: i64,
        role: Role,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = $3",
        )
        .bind(workspace_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The workspaces `user_id` belongs to, oldest first.
    pub async fn memberships(&self, user_id: i64) -> StoreResult<Vec<Membership>> {
        Ok(sqlx::query_as::<_, Membership>(
            "SELECT m.workspace_id, w.name AS workspace, m.role FROM memberships m \
             JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1 ORDER BY m.workspace_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores a new API key by its SHA-256 hex.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_api_key(
        &self,
        user_id: i64,
        workspace_id: i64,
        kind: &str,
        name: &str,
        key_hash: &str,
        prefix: &str,
        expires_at: Option<i64>,
    ) -> StoreResult<KeyInfo> {
        Ok(sqlx::query_as::<_, KeyInfo>(
            "INSERT INTO api_keys (user_id, workspace_id, kind, name, key_hash, prefix, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING id, kind, name, prefix, created_at, expires_at, last_used_at, revoked_at",
        )
        .bind(user_id)
        .bind(workspace_id)
        .bind(kind.to_string())
        .bind(name.to_string())
        .bind(key_hash.to_string())
        .bind(prefix.to_string())
        .bind(now_ms())
        .bind(expires_at)
        .fetch_one(self.pool())
        .await?)
    }

    /// The key with this SHA-256 hex, with the owner's current role in the key's workspace.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<KeyRow>> {
        Ok(sqlx::query_as::<_, KeyRow>(
            "SELECT k.id, k.user_id, k.workspace_id, k.kind, k.name, k.expires_at, k.revoked_at, m.role \
             FROM api_keys k LEFT JOIN memberships m ON m.workspace_id = k.workspace_id AND m.user_id = k.user_id \
             WHERE k.key_hash = $1",
        )
        .bind(key_hash.to_string())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records a use of key `id`.
    pub async fn touch_api_key(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The keys of `user_id`.
    pub async fn list_api_keys(&self, user_id: i64) -> StoreResult<Vec<KeyInfo>> {
        Ok(sqlx::query_as::<_, KeyInfo>(
            "SELECT id, kind, name, prefix, created_at, expires_at, last_used_at, revoked_at FROM api_keys \
             WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes key `id` of `user_id`; `NotFound` when it is not theirs.
    pub async fn revoke_api_key(&self, user_id: i64, id: i64) -> StoreResult<()> {
        let r = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound("api key"))
        }
    }

    /// Stores a session by its keyed hash.
    pub async fn insert_session(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<i64> {
        let r: (i64,) = sqlx::query_as(
            "INSERT INTO sessions (user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user_id)
        .bind(token_hash.to_string())
        .bind(now_ms())
        .bind(expires_at)
        .fetch_one(self.pool())
        .await?;
        Ok(r.0)
    }

    /// The session with this keyed hash.
    pub async fn session_by_hash(&self, token_hash: &str) -> StoreResult<Option<SessionRow>> {
        Ok(sqlx::query_as::<_, SessionRow>(
            "SELECT id, user_id, expires_at, revoked_at FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash.to_string())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Revokes session `id`.
    pub async fn revoke_session(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// GDPR erasure of `user_id`: workspaces where they are the only member are deleted with all
    /// their data; elsewhere their memberships, sessions and keys go, and issues and comments they
    /// wrote stay for the team with the author removed. Returns the deleted workspace ids.
    pub async fn erase_user(&self, user_id: i64) -> StoreResult<Vec<i64>> {
        let mut tx = self.pool().begin().await?;
        let sole: Vec<(i64,)> = sqlx::query_as(
            "SELECT m.workspace_id FROM memberships m WHERE m.user_id = $1 AND \
             (SELECT COUNT(*) FROM memberships o WHERE o.workspace_id = m.workspace_id) = 1",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        for (ws,) in &sole {
            sqlx::query("DELETE FROM workspaces WHERE id = $1")
                .bind(*ws)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound("user"));
        }
        tx.commit().await?;
        Ok(sole.into_iter().map(|w| w.0).collect())
    }
}
