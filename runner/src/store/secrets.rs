//! Sealed secrets per workspace: put (seal), open, list names, delete, and key rotation.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, now_ms};
use crate::vault::{KeyRing, MAX_SECRET_BYTES, Sealed, SecretValue, VaultError};

/// A secret's name: 1-64 characters of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What may be shown about a secret: never its value.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct SecretMeta {
    pub name: String,
    pub key_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(FromRow)]
struct SealedRow {
    id: i64,
    workspace_id: i64,
    name: String,
    key_version: i64,
    nonce: String,
    ciphertext: String,
}

/// What a rotation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotateReport {
    /// The key version every row is now sealed under.
    pub current_version: u32,
    /// Rows re-sealed by this pass.
    pub resealed: u64,
    /// Rows changed by someone else during the pass (they were re-put, so already current).
    pub skipped: u64,
}

fn check_name(name: &str) -> StoreResult<()> {
    if valid_secret_name(name) {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "a secret name is 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'"
                .into(),
        ))
    }
}

impl Store {
    /// Seals `value` under the newest key and stores it as `name` in `workspace_id`, replacing
    /// an existing value of that name.
    pub async fn put_secret(
        &self,
        ring: &KeyRing,
        workspace_id: i64,
        name: &str,
        value: &str,
    ) -> StoreResult<SecretMeta> {
        check_name(name)?;
        if value.is_empty() || value.len() > MAX_SECRET_BYTES || value.contains('\0') {
            return Err(StoreError::Vault(VaultError::BadValue));
        }
        let sealed = ring.seal(workspace_id, name, value.as_bytes())?;
        let (version, nonce, ct) = sealed.to_columns();
        let now = now_ms();
        Ok(sqlx::query_as::<_, SecretMeta>(
            "INSERT INTO secrets (workspace_id, name, key_version, nonce, ciphertext, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (workspace_id, name) DO UPDATE SET key_version = $3, nonce = $4, ciphertext = $5, updated_at = $6 \
             RETURNING name, key_version, created_at, updated_at",
        )
        .bind(workspace_id)
        .bind(name.to_string())
        .bind(version)
        .bind(nonce)
        .bind(ct)
        .bind(now)
        .fetch_one(self.pool())
        .await?)
    }

    /// Opens the secret `name` of `workspace_id`; `None` when there is none. For the runner's
    /// memory only: no API returns a value.
    pub async fn open_secret(
        &self,
        ring: &KeyRing,
        workspace_id: i64,
        name: &str,
    ) -> StoreResult<Option<SecretValue>> {
        check_name(name)?;
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT key_version, nonce, ciphertext FROM secrets WHERE workspace_id = $1 AND name = $2",
        )
        .bind(workspace_id)
        .bind(name.to_string())
        .fetch_optional(self.pool())
        .await?;
        let Some((v, n, c)) = row else {
            return Ok(None);
        };
        let sealed = Sealed::from_columns(v, &n, &c)?;
        Ok(Some(ring.open_text(workspace_id, name, &sealed)?))
    }

    /// Whether `workspace_id` has a secret called `name`.
    pub async fn secret_exists(&self, workspace_id: i64, name: &str) -> StoreResult<bool> {
        let r: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM secrets WHERE workspace_id = $1 AND name = $2")
                .bind(workspace_id)
                .bind(name.to_string())
                .fetch_optional(self.pool())
                .await?;
        Ok(r.is_some())
    }

    /// Names and dates of the secrets of `workspace_id`, by name.
    pub async fn list_secrets(&self, workspace_id: i64) -> StoreResult<Vec<SecretMeta>> {
        Ok(sqlx::query_as::<_, SecretMeta>(
            "SELECT name, key_version, created_at, updated_at FROM secrets WHERE workspace_id = $1 \
             ORDER BY name LIMIT 1000",
        )
        .bind(workspace_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes the secret `name`. `Conflict` while a repository still names it as its credential.
    pub async fn delete_secret(&self, workspace_id: i64, name: &str) -> StoreResult<()> {
        check_name(name)?;
        let users: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM repos WHERE workspace_id = $1 AND credential = $2 ORDER BY name LIMIT 10",
        )
        .bind(workspace_id)
        .bind(name.to_string())
        .fetch_all(self.pool())
        .await?;
        if !users.is_empty() {
            let names: Vec<String> = users.into_iter().map(|u| u.0).collect();
            return Err(StoreError::Conflict(format!(
                "secret {name} is the credential of repository {}; change that first",
                names.join(", ")
            )));
        }
        let r = sqlx::query("DELETE FROM secrets WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(name.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("secret"));
        }
        Ok(())
    }

    /// Re-seals every secret of every workspace that is not under the ring's newest key. Online:
    /// each row is replaced only if it is still the value that was opened (a concurrent `put`
    /// wins), and readers holding both keys open either form meanwhile. Stops at the first row
    /// that does not open (its key missing from the ring, or tampered) and names it.
    pub async fn rotate_secrets(&self, ring: &KeyRing) -> StoreResult<RotateReport> {
        let current = ring.current_version()?;
        let mut report = RotateReport {
            current_version: current,
            ..Default::default()
        };
        let mut after = 0_i64;
        loop {
            let page = sqlx::query_as::<_, SealedRow>(
                "SELECT id, workspace_id, name, key_version, nonce, ciphertext FROM secrets \
                 WHERE key_version <> $1 AND id > $2 ORDER BY id LIMIT 200",
            )
            .bind(i64::from(current))
            .bind(after)
            .fetch_all(self.pool())
            .await?;
            if page.is_empty() {
                return Ok(report);
            }
            for row in page {
                after = row.id;
                let sealed = Sealed::from_columns(row.key_version, &row.nonce, &row.ciphertext)?;
                let value = ring
                    .open(row.workspace_id, &row.name, &sealed)
                    .map_err(|e| {
                        tracing::error!(secret_id = row.id, workspace_id = row.workspace_id, error = %e, "secret does not open during rotation");
                        StoreError::Vault(e)
                    })?;
                let fresh = ring.seal(row.workspace_id, &row.name, &value)?;
                let (v, n, c) = fresh.to_columns();
                let r = sqlx::query(
                    "UPDATE secrets SET key_version = $1, nonce = $2, ciphertext = $3, updated_at = $4 \
                     WHERE id = $5 AND key_version = $6 AND nonce = $7",
                )
                .bind(v)
                .bind(n)
                .bind(c)
                .bind(now_ms())
                .bind(row.id)
                .bind(row.key_version)
                .bind(row.nonce)
                .execute(self.pool())
                .await?;
                if r.rows_affected() == 1 {
                    report.resealed += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
    }

    /// How many secrets are sealed under each key version: `(version, count)`, ascending.
    pub async fn secret_key_versions(&self) -> StoreResult<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT key_version, COUNT(*) FROM secrets GROUP BY key_version ORDER BY key_version",
        )
        .fetch_all(self.pool())
        .await?)
    }
}
