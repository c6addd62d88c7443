//! Store tests: schema, life cycle moves, the atomic claim under concurrency, the reaper, erasure, audit.

use std::collections::HashSet;
use std::sync::Arc;

use paddock::lifecycle::{Role, State};
use paddock::store::audit::{AuditEvent, ChainCheck};
use paddock::store::issues::{IssueFilter, NewIssue};
use paddock::store::{Store, StoreError};

use super::support::TestDb;
use crate::both;

pub fn task(title: &str, state: State, priority: i64) -> NewIssue {
    NewIssue {
        kind: "task",
        title: title.into(),
        body: "b".into(),
        tags: vec![],
        priority,
        state,
        created_by: None,
        repo_id: None,
    }
}

/// Inserts `n` todo issues quickly (one transaction).
pub async fn seed_todo(store: &Store, ws: i64, n: usize) {
    let mut tx = store.pool().begin().await.unwrap();
    for i in 0..n {
        sqlx::query(
            "INSERT INTO issues (workspace_id, kind, title, body, tags, state, priority, attempts, created_at, updated_at) \
             VALUES ($1, 'task', $2, '', '[]', 'todo', 0, 0, $3, $3)",
        )
        .bind(ws)
        .bind(format!("i{i}"))
        .bind(i64::try_from(i).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn claim_order_is_priority_then_age(db: TestDb) {
    let s = &db.store;
    let ws = s.ensure_workspace("w").await.unwrap().id;
    let old_low = s
        .create_issue(ws, &task("old low", State::Todo, 0))
        .await
        .unwrap();
    let high = s
        .create_issue(ws, &task("high", State::Todo, 5))
        .await
        .unwrap();
    let backlog = s
        .create_issue(ws, &task("backlog high", State::Backlog, 9))
        .await
        .unwrap();
    let new_low = s
        .create_issue(ws, &task("new low", State::Todo, 0))
        .await
        .unwrap();
    // another workspace's todo is never claimed by this workspace's runner
    let other = s.ensure_workspace("other").await.unwrap().id;
    s.create_issue(other, &task("foreign", State::Todo, 100))
        .await
        .unwrap();

    let c1 = s.claim(ws, "r1", 60_000).await.unwrap().unwrap();
    assert_eq!(c1.issue.id, high.id);
    assert_eq!(c1.issue.state, "in_progress");
    assert_eq!(c1.issue.claimed_by.as_deref(), Some("r1"));
    assert_eq!(c1.issue.attempts, 1);
    assert!(c1.issue.lease_expires_at.unwrap() > paddock::store::now_ms());
    assert_eq!(
        s.claim(ws, "r1", 60_000).await.unwrap().unwrap().issue.id,
        old_low.id
    );
    assert_eq!(
        s.claim(ws, "r1", 60_000).await.unwrap().unwrap().issue.id,
        new_low.id
    );
    assert!(s.claim(ws, "r1", 60_000).await.unwrap().is_none());
    assert_eq!(s.get_issue(ws, backlog.id).await.unwrap().state, "backlog");
}
both!(claim_order, claim_order_is_priority_then_age);

async fn heartbeat_release_submit(db: TestDb) {
    let s = &db.store;
    let ws = s.ensure_workspace("w").await.unwrap().id;
    let i = s
        .create_issue(ws, &task("a", State::Todo, 0))
        .await
        .unwrap();
    let c = s.claim(ws, "r1", 60_000).await.unwrap().unwrap();
    // a different runner can neither heartbeat nor submit it
    assert!(matches!(
        s.heartbeat_lease(ws, i.id, "r2", 60_000).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.finish_claim(ws, i.id, "r2", State::InReview, "", None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // wrong workspace: not found, not conflict
    let other = s.ensure_workspace("o").await.unwrap().id;
    assert!(matches!(
        s.heartbeat_lease(other, i.id, "r1", 60_000).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.heartbeat_lease(ws, i.id, "r1", 120_000).await.is_ok());
    let rel = s
        .finish_claim(ws, i.id, "r1", State::Todo, "gave up", None)
        .await
        .unwrap();
    assert_eq!(rel.state, "todo");
    assert!(rel.claimed_by.is_none());
    let run = s.get_run(ws, c.run_id).await.unwrap();
    assert_eq!(run.run.state, "released");
    assert_eq!(run.log, "gave up");
    // claim again, submit, then reject with feedback: the next run carries it
    s.claim(ws, "r1", 60_000).await.unwrap().unwrap();
    let sub = s
        .finish_claim(ws, i.id, "r1", State::InReview, "done", Some("paddock/1-2"))
        .await
        .unwrap();
    assert_eq!(sub.state, "in_review");
    s.set_state(
        ws,
        i.id,
        State::InReview,
        State::Todo,
        None,
        Some("add a test"),
    )
    .await
    .unwrap();
    let again = s.claim(ws, "r1", 60_000).await.unwrap().unwrap();
    assert_eq!(again.issue.attempts, 3);
    assert_eq!(
        s.get_run(ws, again.run_id)
            .await
            .unwrap()
            .run
            .feedback
            .as_deref(),
        Some("add a test")
    );
    // stale move: expecting in_review while it is in_progress is a conflict
    assert!(matches!(
        s.set_state(ws, i.id, State::InReview, State::Done, None, None)
            .await,
        Err(StoreError::Conflict(_))
    ));
}
both!(lease_ops, heartbeat_release_submit);

async fn reaper_returns_then_blocks(db: TestDb) {
    let s = &db.store;
    let ws = s.ensure_workspace("w").await.unwrap().id;
    let i = s
        .create_issue(ws, &task("a", State::Todo, 0))
        .await
        .unwrap();
    let live = s
        .create_issue(ws, &task("live", State::Todo, -1))
        .await
        .unwrap();
    // attempt 1 expires at once → back to todo
    s.claim(ws, "dead", -1).await.unwrap().unwrap();
    let other = s.claim(ws, "alive", 600_000).await.unwrap().unwrap();
    assert_eq!(other.issue.id, live.id);
    let r = s.reap_expired(2).await.unwrap();
    assert_eq!(r.returned_to_todo, vec![i.id]);
    assert!(r.blocked.is_empty());
    assert_eq!(
        s.get_issue(ws, live.id).await.unwrap().state,
        "in_progress",
        "a live lease is not reaped"
    );
    // an expired lease cannot be revived by a late heartbeat
    s.claim(ws, "dead", -1).await.unwrap().unwrap();
    assert!(s.heartbeat_lease(ws, i.id, "dead", 60_000).await.is_err());
    // attempt 2 of 2 expires → blocked with a comment
    let r = s.reap_expired(2).await.unwrap();
    assert_eq!(r.blocked, vec![i.id]);
    let got = s.get_issue(ws, i.id).await.unwrap();
    assert_eq!(got.state, "blocked");
    let comments = s.list_comments(ws, i.id).await.unwrap();
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("attempt 2 of 2"));
    let runs = s.list_runs(ws, Some(i.id), None, 10).await.unwrap();
    assert!(runs.iter().all(|r| r.state == "expired"));
}
both!(reaper, reaper_returns_then_blocks);

async fn eight_claimers_exactly_once(db: TestDb) {
    let s = Arc::new(db.store.clone());
    let ws = s.ensure_workspace("w").await.unwrap().id;
    seed_todo(&s, ws, 2000).await;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(cl) = s.claim(ws, &format!("r{c}"), 600_000).await.unwrap() {
                got.push(cl.issue.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    let mut per = Vec::new();
    for t in tasks {
        let v = t.await.unwrap();
        per.push(v.len());
        all.extend(v);
    }
    let set: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 2000, "claims per claimer: {per:?}");
    assert_eq!(set.len(), 2000, "an issue was claimed twice");
    let left = s
        .list_issues(
            ws,
            &IssueFilter {
                state: Some(State::Todo),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(left.is_empty());
    let (runs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM runs")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(runs, 2000);
}
both!(claim_concurrency_tasks, eight_claimers_exactly_once);

async fn erasure_cascades(db: TestDb) {
    let s = &db.store;
    let solo = s.ensure_workspace("solo").await.unwrap().id;
    let shared = s.ensure_workspace("shared").await.unwrap().id;
    let alice = s.create_user("alice@example.test", "x").await.unwrap();
    let bob = s.create_user("bob@example.test", "x").await.unwrap();
    s.set_membership(solo, alice.id, Role::Admin).await.unwrap();
    s.set_membership(shared, alice.id, Role::Maintainer)
        .await
        .unwrap();
    s.set_membership(shared, bob.id, Role::Admin).await.unwrap();
    let mut n = task("by alice", State::Backlog, 0);
    n.created_by = Some(alice.id);
    let in_shared = s.create_issue(shared, &n).await.unwrap();
    let in_solo = s.create_issue(solo, &n).await.unwrap();
    s.add_comment(shared, in_shared.id, Some(alice.id), "user", "hi")
        .await
        .unwrap();
    s.insert_api_key(alice.id, shared, "user", "k", "hash-a", "p", None)
        .await
        .unwrap();
    s.insert_session(alice.id, "sess-a", i64::MAX)
        .await
        .unwrap();

    let gone = s.erase_user(alice.id).await.unwrap();
    assert_eq!(gone, vec![solo]);
    assert!(s.workspace_by_name("solo").await.unwrap().is_none());
    assert!(matches!(
        s.get_issue(solo, in_solo.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        s.workspace_by_name("shared").await.unwrap().is_some(),
        "a shared workspace stays"
    );
    let kept = s.get_issue(shared, in_shared.id).await.unwrap();
    assert_eq!(kept.created_by, None);
    assert_eq!(
        s.list_comments(shared, in_shared.id).await.unwrap()[0].author_user_id,
        None
    );
    assert!(s.api_key_by_hash("hash-a").await.unwrap().is_none());
    assert!(s.session_by_hash("sess-a").await.unwrap().is_none());
    assert!(
        s.user_by_email("alice@example.test")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.user_by_email("bob@example.test").await.unwrap().is_some());
    assert_eq!(s.memberships(bob.id).await.unwrap().len(), 1);
}
both!(erasure, erasure_cascades);

async fn audit_chain_detects_tampering(db: TestDb) {
    let s = Arc::new(db.store.clone());
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                s.append_audit(&AuditEvent {
                    actor: format!("user:{t}"),
                    workspace_id: Some(1),
                    action: "issue.create".into(),
                    resource: format!("issue:{i}"),
                    outcome: "ok".into(),
                    request_id: "r".into(),
                    body: "{}".into(),
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.verify_audit_chain().await.unwrap(),
        ChainCheck::Intact { events: 40 }
    );
    sqlx::query("UPDATE audit_events SET outcome = 'denied' WHERE id = (SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 5)")
        .execute(s.pool())
        .await
        .unwrap();
    assert!(matches!(
        s.verify_audit_chain().await.unwrap(),
        ChainCheck::Broken { .. }
    ));
}
both!(audit_chain, audit_chain_detects_tampering);

async fn eight_claimer_processes_exactly_once(db: TestDb) {
    let s = &db.store;
    let ws = s.ensure_workspace("w").await.unwrap().id;
    seed_todo(s, ws, 2000).await;
    let mut children = Vec::new();
    for c in 0..8 {
        children.push(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
                .args([
                    "bench",
                    "claim-worker",
                    "--database-url",
                    &db.url,
                    "--workspace-id",
                    &ws.to_string(),
                ])
                .args(["--runner", &format!("proc{c}")])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let mut all = Vec::new();
    for ch in children {
        let out = ch.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        all.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| l.parse::<i64>().unwrap()),
        );
    }
    let set: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 2000);
    assert_eq!(
        set.len(),
        2000,
        "an issue was claimed twice across processes"
    );
}
both!(
    claim_concurrency_processes,
    eight_claimer_processes_exactly_once
);

async fn sigkilled_claimer_lease_returns(db: TestDb) {
    use tokio::io::AsyncBufReadExt;
    let s = &db.store;
    let ws = s.ensure_workspace("w").await.unwrap().id;
    let issue = s
        .create_issue(ws, &task("victim", State::Todo, 0))
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args([
            "bench",
            "claim-worker",
            "--database-url",
            &db.url,
            "--workspace-id",
            &ws.to_string(),
        ])
        .args([
            "--runner",
            "doomed",
            "--lease-ms",
            "2000",
            "--hold-ms",
            "600000",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let claimed: i64 = lines.next_line().await.unwrap().unwrap().parse().unwrap();
    assert_eq!(claimed, issue.id);
    child.kill().await.unwrap(); // SIGKILL: no cleanup runs in the claimer
    let held = s.get_issue(ws, issue.id).await.unwrap();
    assert_eq!(held.state, "in_progress");
    assert_eq!(held.claimed_by.as_deref(), Some("doomed"));
    // Before expiry the reaper leaves it alone and nobody else can claim it.
    assert!(s.reap_expired(3).await.unwrap().returned_to_todo.is_empty());
    assert!(s.claim(ws, "other", 60_000).await.unwrap().is_none());
    let wait = held.lease_expires_at.unwrap() - paddock::store::now_ms() + 100;
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(wait.max(0)).unwrap(),
    ))
    .await;
    assert_eq!(
        s.reap_expired(3).await.unwrap().returned_to_todo,
        vec![issue.id]
    );
    let back = s.claim(ws, "other", 60_000).await.unwrap().unwrap();
    assert_eq!(back.issue.id, issue.id);
    assert_eq!(back.issue.attempts, 2);
}
both!(sigkill_lease_returns, sigkilled_claimer_lease_returns);

/// Both migration folders must produce the same tables and columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_match() {
    let Some(pg) = super::support::fresh(super::support::Kind::Postgres).await else {
        return;
    };
    let lite = super::support::fresh(super::support::Kind::Sqlite)
        .await
        .unwrap();
    let mut pg_cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pg.store.pool())
    .await
    .unwrap();
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'")
            .fetch_all(lite.store.pool())
            .await
            .unwrap();
    let mut lite_cols = Vec::new();
    for (t,) in tables {
        let cols: Vec<(String,)> =
            sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{t}')"))
                .fetch_all(lite.store.pool())
                .await
                .unwrap();
        lite_cols.extend(cols.into_iter().map(|(c,)| (t.clone(), c)));
    }
    pg_cols.sort();
    lite_cols.sort();
    assert!(pg_cols.len() > 60, "{pg_cols:?}");
    assert_eq!(pg_cols, lite_cols);
    for t in [
        "workspaces",
        "users",
        "memberships",
        "sessions",
        "api_keys",
        "repos",
        "issues",
        "comments",
        "runs",
        "runners",
        "audit_events",
        "security_events",
        "secrets",
    ] {
        assert!(pg_cols.iter().any(|(tt, _)| tt == t), "missing table {t}");
    }
}
