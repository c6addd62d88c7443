//! The audit ledger (append-only, hash-chained) and security events.

use sha2::{Digest, Sha256};
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, now_ms};

/// The predecessor of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit event to append.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: String,
    pub workspace_id: Option<i64>,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub request_id: String,
    /// The request body with secrets already redacted.
    pub body: String,
}

/// A stored audit event.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub prev_hash: String,
    pub hash: String,
    pub at: i64,
    pub actor: String,
    pub workspace_id: Option<i64>,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub request_id: String,
    pub body: String,
}

fn field(h: &mut Sha256, s: &str) {
    // Length-prefixed so no two different events hash alike by moving text between fields.
    h.update(u64::try_from(s.len()).unwrap_or(u64::MAX).to_be_bytes());
    h.update(s.as_bytes());
}

/// The hash of an event given its predecessor's hash.
pub fn event_hash(prev: &str, at: i64, e: &AuditRow) -> String {
    let mut h = Sha256::new();
    field(&mut h, prev);
    field(&mut h, &at.to_string());
    field(&mut h, &e.actor);
    field(
        &mut h,
        &e.workspace_id.map(|w| w.to_string()).unwrap_or_default(),
    );
    field(&mut h, &e.action);
    field(&mut h, &e.resource);
    field(&mut h, &e.outcome);
    field(&mut h, &e.request_id);
    field(&mut h, &e.body);
    hex::encode(h.finalize())
}

/// Result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    Intact { events: u64 },
    Broken { at_id: i64 },
}

impl Store {
    /// Appends `e` after the current head. Racing writers collide on UNIQUE(prev_hash) and retry,
    /// so the chain stays one line even with many servers on one database.
    pub async fn append_audit(&self, e: &AuditEvent) -> StoreResult<i64> {
        let _serial = self.audit_lock().lock().await;
        for _ in 0..100 {
            let head: Option<(String,)> =
                sqlx::query_as("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
                    .fetch_optional(self.pool())
                    .await?;
            let prev = head.map(|h| h.0).unwrap_or_else(|| GENESIS.to_string());
            let at = now_ms();
            let row = AuditRow {
                id: 0,
                prev_hash: prev.clone(),
                hash: String::new(),
                at,
                actor: e.actor.clone(),
                workspace_id: e.workspace_id,
                action: e.action.clone(),
                resource: e.resource.clone(),
                outcome: e.outcome.clone(),
                request_id: e.request_id.clone(),
                body: e.body.clone(),
            };
            let hash = event_hash(&prev, at, &row);
            let r: Result<(i64,), sqlx::Error> = sqlx::query_as(
                "INSERT INTO audit_events (prev_hash, hash, at, actor, workspace_id, action, resource, outcome, request_id, body) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(prev)
            .bind(hash)
            .bind(at)
            .bind(row.actor)
            .bind(row.workspace_id)
            .bind(row.action)
            .bind(row.resource)
            .bind(row.outcome)
            .bind(row.request_id)
            .bind(row.body)
            .fetch_one(self.pool())
            .await;
            match r {
                Ok(id) => return Ok(id.0),
                Err(err) => {
                    let err = StoreError::from(err);
                    if !err.is_unique_violation() {
                        return Err(err);
                    }
                }
            }
        }
        Err(StoreError::Conflict("audit chain is too contended".into()))
    }

    /// Audit events, oldest first, after `after_id`.
    pub async fn audit_events(&self, after_id: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT id, prev_hash, hash, at, actor, workspace_id, action, resource, outcome, request_id, body \
             FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Walks the whole chain and recomputes every hash.
    pub async fn verify_audit_chain(&self) -> StoreResult<ChainCheck> {
        let mut prev = GENESIS.to_string();
        let mut after = 0;
        let mut n: u64 = 0;
        loop {
            let page = self.audit_events(after, 1000).await?;
            if page.is_empty() {
                return Ok(ChainCheck::Intact { events: n });
            }
            for e in page {
                if e.prev_hash != prev || event_hash(&prev, e.at, &e) != e.hash {
                    return Ok(ChainCheck::Broken { at_id: e.id });
                }
                prev = e.hash.clone();
                after = e.id;
                n += 1;
            }
        }
    }

    /// Records an authentication outcome.
    pub async fn security_event(
        &self,
        kind: &str,
        outcome: &str,
        principal: &str,
        client_addr: &str,
        request_id: &str,
        detail: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO security_events (at, kind, outcome, principal, client_addr, request_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now_ms())
        .bind(kind.to_string())
        .bind(outcome.to_string())
        .bind(principal.to_string())
        .bind(client_addr.to_string())
        .bind(request_id.to_string())
        .bind(detail.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Count of security events of `kind` with `outcome` (for tests and operators).
    pub async fn count_security_events(&self, kind: &str, outcome: &str) -> StoreResult<i64> {
        let r: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM security_events WHERE kind = $1 AND outcome = $2")
                .bind(kind.to_string())
                .bind(outcome.to_string())
                .fetch_one(self.pool())
                .await?;
        Ok(r.0)
    }
}
