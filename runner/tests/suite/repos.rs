//! Repositories, the kill switch and the run record in the store, on both backends.

use paddock::lifecycle::State;
use paddock::store::StoreError;
use paddock::store::repos::{NewRepo, RepoPatch};
use paddock::store::runs::{RunRecord, RunResult};
use paddock::vault::KeyRing;

use super::store::task;
use super::support::TestDb;
use crate::both;

pub const PIN: &str = "git.example.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

pub fn ssh_repo(name: &str) -> NewRepo {
    let mut r = NewRepo::new(name, "git@git.example.test:team/app.git");
    r.ssh_known_hosts = Some(PIN.into());
    r
}

async fn repo_crud_and_tenancy(db: TestDb) {
    let s = &db.store;
    let ring = KeyRing::generate(1);
    let a = s.ensure_workspace("a").await.unwrap().id;
    let b = s.ensure_workspace("b").await.unwrap().id;
    // the credential must be a secret of the same workspace
    let mut r = ssh_repo("app");
    r.credential = Some("deploy".into());
    assert!(matches!(
        s.create_repo(a, &r).await,
        Err(StoreError::Invalid(_))
    ));
    s.put_secret(&ring, b, "deploy", "key-of-b-123456")
        .await
        .unwrap();
    assert!(matches!(
        s.create_repo(a, &r).await,
        Err(StoreError::Invalid(_))
    ));
    s.put_secret(&ring, a, "deploy", "key-of-a-123456")
        .await
        .unwrap();
    let created = s.create_repo(a, &r).await.unwrap();
    assert_eq!(created.default_branch, "main");
    assert_eq!(created.branch_prefix, "paddock/");
    assert_eq!(created.git_prefix(), "paddock");
    assert_eq!(created.credential.as_deref(), Some("deploy"));
    // a prefix given without its slash is the same prefix
    let mut r2 = NewRepo::new("web", "https://git.example.test/team/web.git");
    r2.branch_prefix = "bots/paddock".into();
    assert_eq!(
        s.create_repo(a, &r2).await.unwrap().branch_prefix,
        "bots/paddock/"
    );
    // duplicate name: conflict; same name in another workspace: fine
    assert!(matches!(
        s.create_repo(a, &ssh_repo("app")).await,
        Err(StoreError::Conflict(_))
    ));
    s.create_repo(b, &ssh_repo("app")).await.unwrap();
    // reads are per workspace
    assert_eq!(s.get_repo(a, created.id).await.unwrap(), created);
    assert!(matches!(
        s.get_repo(b, created.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.repo_by_name(a, "app").await.unwrap().id, created.id);
    let names: Vec<String> = s
        .list_repos(a)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["app", "web"]);
    // local paths only when allowed
    let local = NewRepo::new("local", "/srv/git/app.git");
    assert!(matches!(
        s.create_repo(a, &local).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(s.create_repo_allowing_local(a, &local, true).await.is_ok());
    // update validates the whole result
    let bad = RepoPatch {
        default_branch: Some("paddock/7-1".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.update_repo(a, created.id, &bad, false).await,
        Err(StoreError::Invalid(_))
    ));
    let to_https = RepoPatch {
        url: Some("https://git.example.test/team/app.git".into()),
        ..Default::default()
    };
    // ssh pins on an https URL are refused, so switching needs them cleared in the same change
    assert!(
        s.update_repo(a, created.id, &to_https, false)
            .await
            .is_err()
    );
    let ok = RepoPatch {
        ssh_known_hosts: Some(None),
        default_branch: Some("develop".into()),
        ..to_https
    };
    let up = s.update_repo(a, created.id, &ok, false).await.unwrap();
    assert_eq!(
        (up.url.as_str(), up.default_branch.as_str()),
        ("https://git.example.test/team/app.git", "develop")
    );
    assert!(up.ssh_known_hosts.is_none());
    assert!(matches!(
        s.update_repo(b, created.id, &RepoPatch::default(), false)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // the issue's repository: its own, or the workspace's only one
    let c = s.ensure_workspace("c").await.unwrap().id;
    let issue = s.create_issue(c, &task("t", State::Todo, 0)).await.unwrap();
    assert!(matches!(
        s.repo_for_issue(&issue).await,
        Err(StoreError::NotFound(_))
    ));
    let only = s.create_repo(c, &ssh_repo("only")).await.unwrap();
    assert_eq!(s.repo_for_issue(&issue).await.unwrap().id, only.id);
    s.create_repo(c, &ssh_repo("second")).await.unwrap();
    assert!(s.repo_for_issue(&issue).await.is_err());
    // delete
    assert!(matches!(
        s.delete_repo(b, created.id).await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_repo(a, created.id).await.unwrap();
    assert!(matches!(
        s.get_repo(a, created.id).await,
        Err(StoreError::NotFound(_))
    ));
}
both!(repo_crud, repo_crud_and_tenancy);

async fn kill_switch_blocks_claims(db: TestDb) {
    let s = &db.store;
    let ws = s.ensure_workspace("w").await.unwrap().id;
    let other = s.ensure_workspace("o").await.unwrap().id;
    super::store::seed_todo(s, ws, 3).await;
    super::store::seed_todo(s, other, 1).await;
    assert!(!s.runs_paused(ws).await.unwrap());
    assert!(s.set_runs_paused(ws, true).await.unwrap());
    assert!(s.runs_paused(ws).await.unwrap());
    let t = std::time::Instant::now();
    assert!(s.claim(ws, "r1", 60_000).await.unwrap().is_none());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "no retry storm"
    );
    // the neighbour workspace still works
    assert!(s.claim(other, "r1", 60_000).await.unwrap().is_some());
    // nothing was touched in the paused workspace
    let todo: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM issues WHERE workspace_id = $1 AND state = 'todo'")
            .bind(ws)
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(todo.0, 3);
    assert!(!s.set_runs_paused(ws, false).await.unwrap());
    assert!(s.claim(ws, "r1", 60_000).await.unwrap().is_some());
    assert!(matches!(
        s.set_runs_paused(987_654, true).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.runs_paused(987_654).await,
        Err(StoreError::NotFound(_))
    ));
}
both!(kill_switch, kill_switch_blocks_claims);

async fn run_record_is_written_with_the_move(db: TestDb) {
    let s = &db.store;
    let ws = s.ensure_workspace("w").await.unwrap().id;
    let issue = s
        .create_issue(ws, &task("a", State::Todo, 0))
        .await
        .unwrap();
    let c = s.claim(ws, "r1", 60_000).await.unwrap().unwrap();
    let rec = RunRecord {
        state: State::InReview,
        log: "agent said hi".into(),
        branch: Some("paddock/1-1".into()),
        result: RunResult {
            outcome: "pushed".into(),
            exit_status: Some(0),
            commit_id: Some("0123456789abcdef0123456789abcdef01234567".into()),
            diff_stat: Some("1 file changed, +3 -1".into()),
            egress: Some(r#"{"hosts":["api.example.test"],"denied":0}"#.into()),
            agent_ms: Some(1200),
            total_ms: Some(2500),
        },
    };
    // another runner cannot finish it, and writes nothing
    assert!(matches!(
        s.finish_run(ws, c.run_id, "r2", &rec).await,
        Err(StoreError::NotFound(_))
    ));
    // bad facts are refused before anything moves
    let mut bad = rec.clone();
    bad.result.egress = Some("{not json".into());
    assert!(matches!(
        s.finish_run(ws, c.run_id, "r1", &bad).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.get_issue(ws, issue.id).await.unwrap().state,
        "in_progress"
    );
    let done = s.finish_run(ws, c.run_id, "r1", &rec).await.unwrap();
    assert_eq!(done.state, "in_review");
    let run = s.get_run(ws, c.run_id).await.unwrap();
    assert_eq!(run.state, "succeeded");
    assert_eq!(run.log, "agent said hi");
    assert_eq!(run.branch.as_deref(), Some("paddock/1-1"));
    assert_eq!(run.outcome.as_deref(), Some("pushed"));
    assert_eq!(
        (run.exit_status, run.agent_ms, run.total_ms),
        (Some(0), Some(1200), Some(2500))
    );
    assert_eq!(run.commit_id.as_deref(), rec.result.commit_id.as_deref());
    assert!(run.egress.as_deref().unwrap().contains("api.example.test"));
    assert!(run.finished_at.is_some());
    // finishing twice: the lease is gone
    assert!(matches!(
        s.finish_run(ws, c.run_id, "r1", &rec).await,
        Err(StoreError::Conflict(_))
    ));
    // a failed attempt: run 'failed', issue back to todo; facts recorded afterwards
    s.set_state(
        ws,
        issue.id,
        State::InReview,
        State::Todo,
        None,
        Some("again"),
    )
    .await
    .unwrap();
    let c2 = s.claim(ws, "r1", 60_000).await.unwrap().unwrap();
    s.finish_claim(ws, issue.id, "r1", State::Todo, "timed out", None)
        .await
        .unwrap();
    s.record_run_result(
        ws,
        c2.run_id,
        &RunResult {
            outcome: "timeout".into(),
            exit_status: None,
            agent_ms: Some(5),
            total_ms: Some(9),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r2 = s.get_run(ws, c2.run_id).await.unwrap();
    assert_eq!(
        (r2.state.as_str(), r2.outcome.as_deref(), r2.total_ms),
        ("released", Some("timeout"), Some(9))
    );
    let other = s.ensure_workspace("o").await.unwrap().id;
    assert!(matches!(
        s.record_run_result(
            other,
            c2.run_id,
            &RunResult {
                outcome: "x".into(),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    // a failure outcome given to finish_run marks the run failed
    let c3 = s.claim(ws, "r1", 60_000).await.unwrap().unwrap();
    let fail = RunRecord {
        state: State::Todo,
        log: String::new(),
        branch: None,
        result: RunResult {
            outcome: "failed".into(),
            exit_status: Some(2),
            ..Default::default()
        },
    };
    s.finish_run(ws, c3.run_id, "r1", &fail).await.unwrap();
    assert_eq!(s.get_run(ws, c3.run_id).await.unwrap().state, "failed");
}
both!(run_record, run_record_is_written_with_the_move);
