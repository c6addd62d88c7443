//! The atomic claim, lease heartbeat and release, the lease reaper, and the runners table.

use serde::Serialize;
use sqlx::FromRow;

use super::issues::{ISSUE_COLS, Issue};
use super::runs::{RunRecord, RunResult};
use super::{Backend, Store, StoreError, StoreResult, now_ms};
use crate::lifecycle::State;

/// A successful claim: the issue (now in_progress) and the run it started.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub issue: Issue,
    pub run_id: i64,
}

#[derive(Debug, FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    issue: Issue,
    run_id: i64,
}

/// What one reaper pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    pub returned_to_todo: Vec<i64>,
    pub blocked: Vec<i64>,
}

/// A registered runner.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RunnerRow {
    pub id: i64,
    pub name: String,
    pub registered_at: i64,
    pub last_heartbeat_at: i64,
}

/// The claim: one conditional UPDATE that takes the best todo issue (priority, then age) of the
/// workspace. The outer `state = 'todo'` re-check makes a lost race update zero rows instead of
/// claiming twice; on PostgreSQL `SKIP LOCKED` sends concurrent claimers to different rows. A
/// workspace whose kill switch is set (`runs_paused`) yields nothing, inside the same statement.
/// True while the kill switch of workspace `$4` is off.
const NOT_PAUSED: &str =
    "NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = $4 AND w.runs_paused <> 0)";

fn claim_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    format!(
        "UPDATE issues SET state = 'in_progress', claimed_by = $1, lease_expires_at = $2, \
         attempts = attempts + 1, updated_at = $3 \
         WHERE id = (SELECT id FROM issues WHERE workspace_id = $4 AND state = 'todo' \
                     AND {NOT_PAUSED} \
                     ORDER BY priority DESC, created_at, id LIMIT 1{lock}) \
           AND state = 'todo' RETURNING {ISSUE_COLS}"
    )
}

impl Store {
    /// Claims the best todo issue of `workspace_id` for `runner`, with a lease of `lease_ms`, and
    /// starts a run carrying the last review feedback. `None` when nothing is claimable.
    pub async fn claim(
        &self,
        workspace_id: i64,
        runner: &str,
        lease_ms: i64,
    ) -> StoreResult<Option<Claimed>> {
        for _ in 0..64 {
            let got = match self.backend() {
                Backend::Postgres => self.claim_postgres(workspace_id, runner, lease_ms).await?,
                Backend::Sqlite => self.claim_sqlite(workspace_id, runner, lease_ms).await?,
            };
            if got.is_some() {
                return Ok(got);
            }
            // Under READ COMMITTED the sub-select may have picked a row another claimer took in
            // the same instant; try again only while todo issues remain visible.
            if self.backend() == Backend::Sqlite || !self.has_todo(workspace_id).await? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// PostgreSQL: claim and run insert in one statement (one round trip, one implicit transaction).
    async fn claim_postgres(
        &self,
        workspace_id: i64,
        runner: &str,
        lease_ms: i64,
    ) -> StoreResult<Option<Claimed>> {
        let sql = format!(
            "WITH c AS ({}), r AS (INSERT INTO runs (issue_id, workspace_id, runner_name, attempt, state, feedback, log, started_at) \
             SELECT id, workspace_id, $1, attempts, 'running', review_feedback, '', $3 FROM c RETURNING id AS run_id) \
             SELECT c.*, r.run_id FROM c, r",
            claim_sql(Backend::Postgres)
        );
        let now = now_ms();
        let row = sqlx::query_as::<_, ClaimRow>(&sql)
            .bind(runner.to_string())
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| Claimed {
            issue: r.issue,
            run_id: r.run_id,
        }))
    }

    /// SQLite: the UPDATE takes the database write lock at once, so the transaction cannot
    /// deadlock on a lock upgrade; the run insert commits with it.
    async fn claim_sqlite(
        &self,
        workspace_id: i64,
        runner: &str,
        lease_ms: i64,
    ) -> StoreResult<Option<Claimed>> {
        let sql = claim_sql(Backend::Sqlite);
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let issue = sqlx::query_as::<_, Issue>(&sql)
            .bind(runner.to_string())
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(workspace_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(issue) = issue else {
            tx.commit().await?;
            return Ok(None);
        };
        let run: (i64,) = sqlx::query_as(
            "INSERT INTO runs (issue_id, workspace_id, runner_name, attempt, state, feedback, log, started_at) \
             VALUES ($1, $2, $3, $4, 'running', $5, '', $6) RETURNING id",
        )
        .bind(issue.id)
        .bind(workspace_id)
        .bind(runner.to_string())
        .bind(issue.attempts)
        .bind(issue.review_feedback.clone())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Claimed {
            issue,
            run_id: run.0,
        }))
    }

    async fn has_todo(&self, workspace_id: i64) -> StoreResult<bool> {
        let r: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM issues WHERE workspace_id = $1 AND state = 'todo' AND NOT EXISTS \
             (SELECT 1 FROM workspaces w WHERE w.id = $1 AND w.runs_paused <> 0) LIMIT 1",
        )
        .bind(workspace_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.is_some())
    }

    /// Extends the lease of `runner` on issue `id`. `Conflict` when the runner no longer holds it
    /// (released, reaped, or never claimed): the runner must stop work on it.
    pub async fn heartbeat_lease(
        &self,
        workspace_id: i64,
        id: i64,
        runner: &str,
        lease_ms: i64,
    ) -> StoreResult<i64> {
        let now = now_ms();
        let until = now.saturating_add(lease_ms);
        let r = sqlx::query(
            "UPDATE issues SET lease_expires_at = $1, updated_at = $2 WHERE id = $3 AND workspace_id = $4 \
             AND state = 'in_progress' AND claimed_by = $5 AND lease_expires_at >= $2",
        )
        .bind(until)
        .bind(now)
        .bind(id)
        .bind(workspace_id)
        .bind(runner.to_string())
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 1 {
            Ok(until)
        } else {
            self.get_issue(workspace_id, id).await?;
            Err(StoreError::Conflict(format!(
                "runner does not hold a live lease on issue {id}"
            )))
        }
    }

    /// Ends the current run of issue `id` held by `runner` and moves the issue to `to`
    /// (todo = release, in_review = submit, blocked = agent asked a question). The run's outcome
    /// is `pushed`, `blocked` or `released`; `finish_run` records the full facts instead.
    pub async fn finish_claim(
        &self,
        workspace_id: i64,
        id: i64,
        runner: &str,
        to: State,
        log: &str,
        branch: Option<&str>,
    ) -> StoreResult<Issue> {
        let outcome = match to {
            State::InReview => "pushed",
            State::Blocked => "blocked",
            _ => "released",
        };
        let rec = RunRecord {
            state: to,
            log: log.to_string(),
            branch: branch.map(str::to_string),
            result: RunResult {
                outcome: outcome.into(),
                ..Default::default()
            },
        };
        self.finish_current_run(workspace_id, id, runner, &rec)
            .await
    }

    /// One reaper pass over every workspace: expired leases go back to todo, or to blocked with a
    /// comment once `max_attempts` claims have been spent.
    pub async fn reap_expired(&self, max_attempts: i64) -> StoreResult<Reaped> {
        let now = now_ms();
        let blocked: Vec<(i64, i64, i64)> = sqlx::query_as(
            "UPDATE issues SET state = 'blocked', claimed_by = NULL, lease_expires_at = NULL, updated_at = $1 \
             WHERE state = 'in_progress' AND lease_expires_at < $1 AND attempts >= $2 \
             RETURNING id, workspace_id, attempts",
        )
        .bind(now)
        .bind(max_attempts)
        .fetch_all(self.pool())
        .await?;
        let returned: Vec<(i64, i64, i64)> = sqlx::query_as(
            "UPDATE issues SET state = 'todo', claimed_by = NULL, lease_expires_at = NULL, updated_at = $1 \
             WHERE state = 'in_progress' AND lease_expires_at < $1 AND attempts < $2 \
             RETURNING id, workspace_id, attempts",
        )
        .bind(now)
        .bind(max_attempts)
        .fetch_all(self.pool())
        .await?;
        for (id, ws, attempts) in &blocked {
            self.add_comment(
                *ws,
                *id,
                None,
                "system",
                &format!("Blocked: the lease expired on attempt {attempts} of {max_attempts}; a person must look at this issue."),
            )
            .await?;
        }
        for (id, ws, _) in blocked.iter().chain(returned.iter()) {
            sqlx::query("UPDATE runs SET state = 'expired', finished_at = $1 WHERE issue_id = $2 AND workspace_id = $3 AND state = 'running'")
                .bind(now)
                .bind(*id)
                .bind(*ws)
                .execute(self.pool())
                .await?;
        }
        Ok(Reaped {
            returned_to_todo: returned.into_iter().map(|r| r.0).collect(),
            blocked: blocked.into_iter().map(|r| r.0).collect(),
        })
    }

    /// Registers `name` in `workspace_id`, or records a heartbeat when it exists.
    pub async fn runner_heartbeat(&self, workspace_id: i64, name: &str) -> StoreResult<RunnerRow> {
        let now = now_ms();
        Ok(sqlx::query_as::<_, RunnerRow>(
            "INSERT INTO runners (workspace_id, name, registered_at, last_heartbeat_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (workspace_id, name) DO UPDATE SET last_heartbeat_at = $3 \
             RETURNING id, name, registered_at, last_heartbeat_at",
        )
        .bind(workspace_id)
        .bind(name.to_string())
        .bind(now)
        .fetch_one(self.pool())
        .await?)
    }

    /// Runners of `workspace_id`.
    pub async fn list_runners(&self, workspace_id: i64) -> StoreResult<Vec<RunnerRow>> {
        Ok(sqlx::query_as::<_, RunnerRow>(
            "SELECT id, name, registered_at, last_heartbeat_at FROM runners WHERE workspace_id = $1 ORDER BY name LIMIT 1000",
        )
        .bind(workspace_id)
        .fetch_all(self.pool())
        .await?)
    }
}
