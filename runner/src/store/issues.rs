//! Issues, comments and runs: rows, queries and the conditional state update.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, now_ms};
use crate::lifecycle::State;

/// Columns of `issues` in the order `Issue` reads them.
pub const ISSUE_COLS: &str = "id, workspace_id, repo_id, kind, title, body, tags, state, priority, created_by, \
     claimed_by, lease_expires_at, attempts, review_feedback, created_at, updated_at";

/// One issue as stored.
#[derive(Debug, Clone, FromRow)]
pub struct Issue {
    pub id: i64,
    pub workspace_id: i64,
    pub repo_id: Option<i64>,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub tags: String,
    pub state: String,
    pub priority: i64,
    pub created_by: Option<i64>,
    pub claimed_by: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub attempts: i64,
    pub review_feedback: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The wire form of an issue.
#[derive(Debug, Serialize)]
pub struct IssueView {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub state: String,
    pub priority: i64,
    pub repo_id: Option<i64>,
    pub created_by: Option<i64>,
    pub claimed_by: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub attempts: i64,
    pub review_feedback: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Issue {
    /// The issue's state, parsed.
    pub fn state(&self) -> Option<State> {
        State::parse(&self.state)
    }

    /// The wire form (tags decoded).
    pub fn view(&self) -> IssueView {
        IssueView {
            id: self.id,
            kind: self.kind.clone(),
            title: self.title.clone(),
            body: self.body.clone(),
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            state: self.state.clone(),
            priority: self.priority,
            repo_id: self.repo_id,
            created_by: self.created_by,
            claimed_by: self.claimed_by.clone(),
            lease_expires_at: self.lease_expires_at,
            attempts: self.attempts,
            review_feedback: self.review_feedback.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// What a new issue holds.
#[derive(Debug, Clone)]
pub struct NewIssue {
    pub kind: &'static str,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub priority: i64,
    pub state: State,
    pub created_by: Option<i64>,
    pub repo_id: Option<i64>,
}

/// Filters for listing issues.
#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    pub state: Option<State>,
    pub kind: Option<String>,
    /// Only issues with an id below this (cursor pagination, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// A comment.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Comment {
    pub id: i64,
    pub issue_id: i64,
    pub author_user_id: Option<i64>,
    pub author_kind: String,
    pub body: String,
    pub created_at: i64,
}

/// A run (one claim of an issue), without its log.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Run {
    pub id: i64,
    pub issue_id: i64,
    pub runner_name: String,
    pub attempt: i64,
    pub state: String,
    pub feedback: Option<String>,
    pub branch: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub exit_status: Option<i64>,
    pub commit_id: Option<String>,
    pub diff_stat: Option<String>,
    /// The proxy's summary (JSON text).
    pub egress: Option<String>,
    pub agent_ms: Option<i64>,
    pub total_ms: Option<i64>,
}

const RUN_COLS: &str = "id, issue_id, runner_name, attempt, state, feedback, branch, started_at, finished_at, \
     outcome, exit_status, commit_id, diff_stat, egress, agent_ms, total_ms";

/// A run with its log.
#[derive(Debug, Clone, Serialize)]
pub struct RunWithLog {
    #[serde(flatten)]
    pub run: Run,
    pub log: String,
}

impl std::ops::Deref for RunWithLog {
    type Target = Run;
    fn deref(&self) -> &Run {
        &self.run
    }
}

/// Optional field changes for an issue (title, body, priority, tags).
#[derive(Debug, Clone, Default)]
pub struct IssuePatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub priority: Option<i64>,
    pub tags: Option<Vec<String>>,
}

impl Store {
    /// Inserts an issue into `workspace_id`.
    pub async fn create_issue(&self, workspace_id: i64, new: &NewIssue) -> StoreResult<Issue> {
        let now = now_ms();
        let tags = serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into());
        let sql = format!(
            "INSERT INTO issues (workspace_id, repo_id, kind, title, body, tags, state, priority, created_by, \
             attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10) RETURNING {ISSUE_COLS}"
        );
        let issue = sqlx::query_as::<_, Issue>(&sql)
            .bind(workspace_id)
            .bind(new.repo_id)
            .bind(new.kind)
            .bind(&new.title)
            .bind(&new.body)
            .bind(tags)
            .bind(new.state.as_str())
            .bind(new.priority)
            .bind(new.created_by)
            .bind(now)
            .fetch_one(self.pool())
            .await?;
        Ok(issue)
    }

    /// One issue of `workspace_id`.
    pub async fn get_issue(&self, workspace_id: i64, id: i64) -> StoreResult<Issue> {
        let sql = format!("SELECT {ISSUE_COLS} FROM issues WHERE id = $1 AND workspace_id = $2");
        sqlx::query_as::<_, Issue>(&sql)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("issue"))
    }

    /// Issues of `workspace_id`, newest first.
    pub async fn list_issues(&self, workspace_id: i64, f: &IssueFilter) -> StoreResult<Vec<Issue>> {
        let mut sql = format!("SELECT {ISSUE_COLS} FROM issues WHERE workspace_id = $1");
        let mut n = 1;
        if f.state.is_some() {
            n += 1;
            sql.push_str(&format!(" AND state = ${n}"));
        }
        if f.kind.is_some() {
            n += 1;
            sql.push_str(&format!(" AND kind = ${n}"));
        }
        if f.before_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND id < ${n}"));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${n}"));
        let mut q = sqlx::query_as::<_, Issue>(&sql).bind(workspace_id);
        if let Some(s) = f.state {
            q = q.bind(s.as_str());
        }
        if let Some(k) = &f.kind {
            q = q.bind(k.clone());
        }
        if let Some(b) = f.before_id {
            q = q.bind(b);
        }
        Ok(q.bind(f.limit).fetch_all(self.pool()).await?)
    }

    /// Changes fields of an issue (not its state).
    pub async fn update_issue(
        &self,
        workspace_id: i64,
        id: i64,
        p: &IssuePatch,
    ) -> StoreResult<Issue> {
        let mut sets = vec!["updated_at = $3".to_string()];
        let mut n = 3;
        for (present, col) in [
            (p.title.is_some(), "title"),
            (p.body.is_some(), "body"),
            (p.priority.is_some(), "priority"),
            (p.tags.is_some(), "tags"),
        ] {
            if present {
                n += 1;
                sets.push(format!("{col} = ${n}"));
            }
        }
        let sql = format!(
            "UPDATE issues SET {} WHERE id = $1 AND workspace_id = $2 RETURNING {ISSUE_COLS}",
            sets.join(", ")
        );
        let mut q = sqlx::query_as::<_, Issue>(&sql)
            .bind(id)
            .bind(workspace_id)
            .bind(now_ms());
        if let Some(t) = &p.title {
            q = q.bind(t.clone());
        }
        if let Some(b) = &p.body {
            q = q.bind(b.clone());
        }
        if let Some(pr) = p.priority {
            q = q.bind(pr);
        }
        if let Some(t) = &p.tags {
            q = q.bind(serde_json::to_string(t).unwrap_or_else(|_| "[]".into()));
        }
        q.fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("issue"))
    }

    /// Moves an issue from `from` to `to` if it is still in `from` (and, when `holder` is given, still
    /// leased to that runner). Clears the lease. `feedback`, when given, is stored for later runs.
    /// Returns `Conflict` when the issue moved meanwhile.
    pub async fn set_state(
        &self,
        workspace_id: i64,
        id: i64,
        from: State,
        to: State,
        holder: Option<&str>,
        feedback: Option<&str>,
    ) -> StoreResult<Issue> {
        let sql = format!(
            "UPDATE issues SET state = $1, updated_at = $2, claimed_by = NULL, lease_expires_at = NULL, \
             review_feedback = COALESCE($6, review_feedback) \
             WHERE id = $3 AND workspace_id = $4 AND state = $5 AND ($7 IS NULL OR claimed_by = $7) \
             RETURNING {ISSUE_COLS}"
        );
        let q = sqlx::query_as::<_, Issue>(&sql)
            .bind(to.as_str())
            .bind(now_ms())
            .bind(id)
            .bind(workspace_id)
            .bind(from.as_str())
            .bind(feedback.map(str::to_string))
            .bind(holder.map(str::to_string));
        match q.fetch_optional(self.pool()).await? {
            Some(i) => Ok(i),
            None => {
                // Distinguish "gone" from "moved meanwhile" without revealing other workspaces.
                let cur = self.get_issue(workspace_id, id).await?;
                Err(StoreError::Conflict(format!(
                    "issue {} is in state {} (expected {}{})",
                    cur.id,
                    cur.state,
                    from.as_str(),
                    if holder.is_some() {
                        " and leased to this runner"
                    } else {
                        ""
                    }
                )))
            }
        }
    }

    /// Adds a comment to an issue of `workspace_id`.
    pub async fn add_comment(
        &self,
        workspace_id: i64,
        issue_id: i64,
        author_user_id: Option<i64>,
        author_kind: &str,
        body: &str,
    ) -> StoreResult<Comment> {
        // The issue must belong to the workspace; never attach across tenants.
        self.get_issue(workspace_id, issue_id).await?;
        let c = sqlx::query_as::<_, Comment>(
            "INSERT INTO comments (issue_id, workspace_id, author_user_id, author_kind, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, issue_id, author_user_id, author_kind, body, created_at",
        )
        .bind(issue_id)
        .bind(workspace_id)
        .bind(author_user_id)
        .bind(author_kind.to_string())
        .bind(body.to_string())
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(c)
    }

    /// Comments of an issue, oldest first.
    pub async fn list_comments(
        &self,
        workspace_id: i64,
        issue_id: i64,
    ) -> StoreResult<Vec<Comment>> {
        self.get_issue(workspace_id, issue_id).await?;
        Ok(sqlx::query_as::<_, Comment>(
            "SELECT id, issue_id, author_user_id, author_kind, body, created_at FROM comments \
             WHERE issue_id = $1 AND workspace_id = $2 ORDER BY id LIMIT 1000",
        )
        .bind(issue_id)
        .bind(workspace_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Runs of `workspace_id`, newest first, optionally of one issue.
    pub async fn list_runs(
        &self,
        workspace_id: i64,
        issue_id: Option<i64>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Run>> {
        let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE workspace_id = $1");
        let mut n = 1;
        if issue_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND issue_id = ${n}"));
        }
        if before_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND id < ${n}"));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${n}"));
        let mut q = sqlx::query_as::<_, Run>(&sql).bind(workspace_id);
        if let Some(i) = issue_id {
            q = q.bind(i);
        }
        if let Some(b) = before_id {
            q = q.bind(b);
        }
        Ok(q.bind(limit).fetch_all(self.pool()).await?)
    }

    /// One run with its log.
    pub async fn get_run(&self, workspace_id: i64, id: i64) -> StoreResult<RunWithLog> {
        let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1 AND workspace_id = $2");
        let run = sqlx::query_as::<_, Run>(&sql)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("run"))?;
        let log: (String,) = sqlx::query_as("SELECT log FROM runs WHERE id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        Ok(RunWithLog { run, log: log.0 })
    }
}
