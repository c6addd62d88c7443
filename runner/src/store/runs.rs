//! The run record: how a claimed run ended (outcome, exit status, commit, diff stat, egress
//! summary, durations), written with the issue's move in one transaction.

use super::issues::{ISSUE_COLS, Issue};
use super::{Store, StoreError, StoreResult, now_ms};
use crate::lifecycle::State;

/// Largest run log kept, bytes (the caller caps and scrubs first; this is the last guard).
pub const MAX_RUN_LOG: usize = 1024 * 1024;
/// Largest egress summary, bytes.
pub const MAX_EGRESS_JSON: usize = 256 * 1024;

/// Facts of a finished run that do not move the issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunResult {
    /// `pushed`, `blocked`, `no_change`, `failed`, `timeout`, `stopped`, … (1-32 of `[a-z_]`).
    pub outcome: String,
    /// The agent's exit status, when it exited.
    pub exit_status: Option<i64>,
    /// The commit pushed.
    pub commit_id: Option<String>,
    /// `N files changed, +A -D`.
    pub diff_stat: Option<String>,
    /// The proxy's summary of the run (JSON text: hosts, denials, tokens).
    pub egress: Option<String>,
    /// Time the agent ran, ms.
    pub agent_ms: Option<i64>,
    /// Claim to end, ms.
    pub total_ms: Option<i64>,
}

/// How a run ended: where the issue goes, the log, the branch, and the facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The issue's next state: `InReview` (pushed), `Blocked`, or `Todo` (released or failed).
    pub state: State,
    /// The run's output, already scrubbed and capped by the caller.
    pub log: String,
    /// The branch pushed.
    pub branch: Option<String>,
    /// Everything else.
    pub result: RunResult,
}

/// Outcomes that mark the attempt as failed rather than released or blocked.
const FAILED_OUTCOMES: &[&str] = &["failed", "timeout", "crashed", "error"];

/// The `runs.state` of a run that ends with the issue going to `to` with `outcome`.
pub fn run_state(to: State, outcome: &str) -> &'static str {
    if to == State::InReview {
        "succeeded"
    } else if FAILED_OUTCOMES.contains(&outcome) {
        "failed"
    } else if to == State::Blocked {
        "blocked"
    } else {
        "released"
    }
}

fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[log truncated]", &s[..end])
}

fn check_facts(f: &RunResult) -> StoreResult<()> {
    let ok = !f.outcome.is_empty()
        && f.outcome.len() <= 32
        && f.outcome
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_');
    if !ok {
        return Err(StoreError::Invalid(
            "outcome must be 1-32 characters of [a-z_]".into(),
        ));
    }
    if let Some(c) = &f.commit_id
        && (c.len() < 4 || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(StoreError::Invalid(
            "commit_id must be a hex object id".into(),
        ));
    }
    if let Some(e) = &f.egress
        && (e.len() > MAX_EGRESS_JSON || serde_json::from_str::<serde_json::Value>(e).is_err())
    {
        return Err(StoreError::Invalid(
            "egress must be JSON of at most 256 KiB".into(),
        ));
    }
    if f.diff_stat.as_ref().is_some_and(|d| d.len() > 4096) {
        return Err(StoreError::Invalid(
            "diff_stat is longer than 4096 bytes".into(),
        ));
    }
    Ok(())
}

/// Which `running` run of an issue a finish closes.
enum Which {
    Id(i64),
    Current,
}

impl Store {
    /// Ends run `run_id` held by `runner`: moves its issue from in_progress to `rec.state` (only
    /// while `runner` still holds the lease) and records log, branch and facts, in one
    /// transaction. `Conflict` when the lease was lost meanwhile; nothing is written then.
    pub async fn finish_run(
        &self,
        workspace_id: i64,
        run_id: i64,
        runner: &str,
        rec: &RunRecord,
    ) -> StoreResult<Issue> {
        let issue: Option<(i64,)> = sqlx::query_as(
            "SELECT issue_id FROM runs WHERE id = $1 AND workspace_id = $2 AND runner_name = $3",
        )
        .bind(run_id)
        .bind(workspace_id)
        .bind(runner.to_string())
        .fetch_optional(self.pool())
        .await?;
        let (issue_id,) = issue.ok_or(StoreError::NotFound("run"))?;
        self.finish_inner(workspace_id, issue_id, Which::Id(run_id), runner, rec)
            .await
    }

    /// `finish_run` for the current run of issue `id` (the run the claim started).
    pub(crate) async fn finish_current_run(
        &self,
        workspace_id: i64,
        id: i64,
        runner: &str,
        rec: &RunRecord,
    ) -> StoreResult<Issue> {
        self.finish_inner(workspace_id, id, Which::Current, runner, rec)
            .await
    }

    async fn finish_inner(
        &self,
        workspace_id: i64,
        issue_id: i64,
        which: Which,
        runner: &str,
        rec: &RunRecord,
    ) -> StoreResult<Issue> {
        if !matches!(rec.state, State::InReview | State::Blocked | State::Todo) {
            return Err(StoreError::Invalid(
                "a run ends with its issue in in_review, blocked or todo".into(),
            ));
        }
        check_facts(&rec.result)?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let sql = format!(
            "UPDATE issues SET state = $1, updated_at = $2, claimed_by = NULL, lease_expires_at = NULL \
             WHERE id = $3 AND workspace_id = $4 AND state = 'in_progress' AND claimed_by = $5 \
             RETURNING {ISSUE_COLS}"
        );
        let moved = sqlx::query_as::<_, Issue>(&sql)
            .bind(rec.state.as_str())
            .bind(now)
            .bind(issue_id)
            .bind(workspace_id)
            .bind(runner.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(issue) = moved else {
            tx.rollback().await?;
            let cur = self.get_issue(workspace_id, issue_id).await?;
            return Err(StoreError::Conflict(format!(
                "issue {} is in state {} (expected in_progress and leased to this runner)",
                cur.id, cur.state
            )));
        };
        let (filter, run_id) = match which {
            Which::Id(r) => ("id = $12", r),
            Which::Current => ("$12 = $12", 0),
        };
        let sql = format!(
            "UPDATE runs SET state = $1, log = $2, branch = $3, finished_at = $4, outcome = $5, \
             exit_status = $6, commit_id = $7, diff_stat = $8, egress = $9, agent_ms = $10, total_ms = $11 \
             WHERE {filter} AND issue_id = $13 AND workspace_id = $14 AND runner_name = $15 AND state = 'running'"
        );
        let f = &rec.result;
        sqlx::query(&sql)
            .bind(run_state(rec.state, &f.outcome))
            .bind(cap(&rec.log, MAX_RUN_LOG))
            .bind(rec.branch.clone())
            .bind(now)
            .bind(f.outcome.clone())
            .bind(f.exit_status)
            .bind(f.commit_id.clone())
            .bind(f.diff_stat.clone())
            .bind(f.egress.clone())
            .bind(f.agent_ms)
            .bind(f.total_ms)
            .bind(run_id)
            .bind(issue_id)
            .bind(workspace_id)
            .bind(runner.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(issue)
    }

    /// Records (or corrects) the facts of run `run_id` of `workspace_id`, whatever its state:
    /// for a runner that moved the issue with `finish_claim` first.
    pub async fn record_run_result(
        &self,
        workspace_id: i64,
        run_id: i64,
        facts: &RunResult,
    ) -> StoreResult<()> {
        check_facts(facts)?;
        let r = sqlx::query(
            "UPDATE runs SET outcome = $1, exit_status = $2, commit_id = $3, diff_stat = $4, egress = $5, \
             agent_ms = $6, total_ms = $7 WHERE id = $8 AND workspace_id = $9",
        )
        .bind(facts.outcome.clone())
        .bind(facts.exit_status)
        .bind(facts.commit_id.clone())
        .bind(facts.diff_stat.clone())
        .bind(facts.egress.clone())
        .bind(facts.agent_ms)
        .bind(facts.total_ms)
        .bind(run_id)
        .bind(workspace_id)
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("run"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_states() {
        assert_eq!(run_state(State::InReview, "pushed"), "succeeded");
        assert_eq!(run_state(State::Blocked, "blocked"), "blocked");
        assert_eq!(run_state(State::Blocked, "failed"), "failed");
        assert_eq!(run_state(State::Todo, "timeout"), "failed");
        assert_eq!(run_state(State::Todo, "stopped"), "released");
    }

    #[test]
    fn log_cap_keeps_char_boundaries() {
        let s = "é".repeat(10);
        let c = cap(&s, 5);
        assert!(c.starts_with("éé") && c.ends_with("[log truncated]"));
    }

    #[test]
    fn facts_are_checked() {
        let good = RunResult {
            outcome: "pushed".into(),
            commit_id: Some("a".repeat(40)),
            egress: Some("{\"hosts\":[]}".into()),
            ..Default::default()
        };
        assert!(check_facts(&good).is_ok());
        for bad in [
            RunResult {
                outcome: "Pushed; drop".into(),
                ..good.clone()
            },
            RunResult {
                commit_id: Some("zz".into()),
                ..good.clone()
            },
            RunResult {
                egress: Some("{not json".into()),
                ..good.clone()
            },
        ] {
            assert!(check_facts(&bad).is_err());
        }
    }
}
