//! The workspace kill switch (`runs_paused`): while set, no issue of the workspace is claimed
//! and runners stop the runs they hold.

use super::{Store, StoreError, StoreResult};

impl Store {
    /// Sets or clears the kill switch of `workspace_id`; returns the new state.
    pub async fn set_runs_paused(&self, workspace_id: i64, paused: bool) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE workspaces SET runs_paused = $1 WHERE id = $2")
            .bind(i64::from(paused))
            .bind(workspace_id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("workspace"));
        }
        Ok(paused)
    }

    /// Whether the kill switch of `workspace_id` is set.
    pub async fn runs_paused(&self, workspace_id: i64) -> StoreResult<bool> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT runs_paused FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?;
        match r {
            Some((v,)) => Ok(v != 0),
            None => Err(StoreError::NotFound("workspace")),
        }
    }
}
