//! The claim benchmark: N claimers race over M todo issues; measures claims/s and checks exactly-once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreResult};

/// What a benchmark run measured.
#[derive(Debug, Clone)]
pub struct ClaimReport {
    pub backend: &'static str,
    pub claimers: usize,
    pub issues: usize,
    pub claimed: usize,
    pub distinct: usize,
    pub left_todo: i64,
    pub elapsed: Duration,
}

impl ClaimReport {
    /// Claims per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            f64::from(u32::try_from(self.claimed).unwrap_or(u32::MAX)) / s
        } else {
            0.0
        }
    }

    /// Every issue claimed, none twice, none left.
    pub fn exactly_once(&self) -> bool {
        self.claimed == self.issues && self.distinct == self.issues && self.left_todo == 0
    }
}

/// A fresh workspace with `issues` todo issues; returns its id.
pub async fn seed(store: &Store, issues: usize) -> StoreResult<i64> {
    let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let ws = store.ensure_workspace(&name).await?.id;
    let now = crate::store::now_ms();
    for chunk in (0..issues).collect::<Vec<_>>().chunks(500) {
        let mut tx = store.pool().begin().await?;
        for i in chunk {
            sqlx::query(
                "INSERT INTO issues (workspace_id, kind, title, body, tags, state, priority, attempts, created_at, updated_at) \
                 VALUES ($1, 'task', $2, '', '[]', 'todo', 0, 0, $3, $3)",
            )
            .bind(ws)
            .bind(format!("bench issue {i}"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(ws)
}

/// Opens `n` pool connections before the clock starts, so connection setup is not measured.
pub async fn warm_up(store: &Store, n: usize) -> StoreResult<()> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(store.pool().acquire().await?);
    }
    drop(held);
    Ok(())
}

/// Issues still in todo in `ws`.
pub async fn count_todo(store: &Store, ws: i64) -> StoreResult<i64> {
    let r: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM issues WHERE workspace_id = $1 AND state = 'todo'")
            .bind(ws)
            .fetch_one(store.pool())
            .await?;
    Ok(r.0)
}

/// Claims until nothing is left; returns the claimed issue ids.
pub async fn claim_all(
    store: &Store,
    ws: i64,
    runner: &str,
    lease_ms: i64,
) -> StoreResult<Vec<i64>> {
    let mut got = Vec::new();
    while let Some(c) = store.claim(ws, runner, lease_ms).await? {
        got.push(c.issue.id);
    }
    Ok(got)
}

/// Runs `claimers` tasks in this process over a fresh workspace of `issues` issues.
pub async fn run_in_process(
    store: &Store,
    claimers: usize,
    issues: usize,
) -> StoreResult<ClaimReport> {
    let ws = seed(store, issues).await?;
    warm_up(store, claimers).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..claimers {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            claim_all(&s, ws, &format!("bench-{c}"), 600_000).await
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => all.extend(r?),
            Err(_) => {
                return Err(crate::store::StoreError::Conflict(
                    "a claimer task died".into(),
                ));
            }
        }
    }
    let elapsed = start.elapsed();
    report(store, ws, claimers, issues, all, elapsed).await
}

/// Builds the report from the ids every claimer returned.
pub async fn report(
    store: &Store,
    ws: i64,
    claimers: usize,
    issues: usize,
    all: Vec<i64>,
    elapsed: Duration,
) -> StoreResult<ClaimReport> {
    let distinct: HashSet<i64> = all.iter().copied().collect();
    Ok(ClaimReport {
        backend: match store.backend() {
            crate::store::Backend::Sqlite => "sqlite",
            crate::store::Backend::Postgres => "postgres",
        },
        claimers,
        issues,
        claimed: all.len(),
        distinct: distinct.len(),
        left_todo: count_todo(store, ws).await?,
        elapsed,
    })
}
