//! `paddock bench runner`: Paddock's own overhead per issue, from claim to branch pushed minus
//! the agent's own time, over N issues run one after another with the `script` agent in the
//! real sandbox, against a local OpenSSH git server (the demo's stage).

use std::io::Write;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::demo::{DemoError, Stage};
use crate::lifecycle::State;

/// Figures of one bench.
#[derive(Debug, Clone)]
pub struct RunnerBench {
    /// Runs measured.
    pub runs: usize,
    /// Overhead per run (claim → pushed, minus the agent's container time), sorted.
    pub overhead: Vec<Duration>,
    /// The agent's container time per run, same order as claimed.
    pub agent: Vec<Duration>,
    /// Wall time of the whole bench.
    pub wall: Duration,
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i]
}

impl RunnerBench {
    /// Prints the figures.
    pub fn print(&self, out: &mut dyn Write) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut agent = self.agent.clone();
        agent.sort();
        let _ = writeln!(
            out,
            "runs {}  overhead per issue (claim → branch pushed, minus agent time): \
             median {:.0} ms  p90 {:.0} ms  min {:.0} ms  max {:.0} ms  (target ≤ 2000 ms)",
            self.runs,
            ms(pct(&self.overhead, 50)),
            ms(pct(&self.overhead, 90)),
            ms(self.overhead.first().copied().unwrap_or_default()),
            ms(self.overhead.last().copied().unwrap_or_default()),
        );
        let _ = writeln!(
            out,
            "agent container time: median {:.0} ms; wall {:.1} s",
            ms(pct(&agent, 50)),
            self.wall.as_secs_f64()
        );
    }
}

/// Runs the bench in `dir` with `runs` issues.
pub async fn run(
    dir: &std::path::Path,
    runs: usize,
    image: &str,
) -> Result<RunnerBench, DemoError> {
    let stage = Stage::new(dir, "bench").await?;
    let mut ids = Vec::with_capacity(runs);
    for n in 0..runs {
        ids.push(
            stage
                .file_issue(&format!("bench issue {n}"), "append a line")
                .await?
                .id,
        );
    }
    let worker = stage
        .worker("bench", image, "cd /workspace && date +%s%N >> README.md")
        .await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(worker.run(stop.clone()));
    let deadline = Instant::now()
        + Duration::from_secs(60 + 30 * u64::try_from(runs).unwrap_or(u64::MAX / 60));
    let err = |e: crate::store::StoreError| DemoError::Step(e.to_string());
    loop {
        let mut left = 0;
        for id in &ids {
            let i = stage.store.get_issue(stage.ws, *id).await.map_err(err)?;
            match i.state() {
                Some(State::InReview) => {}
                Some(State::Todo | State::InProgress) => left += 1,
                _ => {
                    stop.cancel();
                    let _ = task.await;
                    return Err(DemoError::Step(format!("issue {id} ended {}", i.state)));
                }
            }
        }
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            stop.cancel();
            let _ = task.await;
            return Err(DemoError::Step(format!(
                "{left} issues still open at the deadline"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed();
    stop.cancel();
    let _ = task.await;
    let mut overhead = Vec::new();
    let mut agent = Vec::new();
    for id in &ids {
        let runs = stage
            .store
            .list_runs(stage.ws, Some(*id), None, 1)
            .await
            .map_err(err)?;
        let r = runs
            .first()
            .ok_or_else(|| DemoError::Step(format!("issue {id} has no run")))?;
        let rec = stage.store.get_run(stage.ws, r.id).await.map_err(err)?;
        let (Some(total), Some(a)) = (rec.run.total_ms, rec.run.agent_ms) else {
            return Err(DemoError::Step(format!("run {} has no timings", r.id)));
        };
        let to = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        overhead.push(to(total).saturating_sub(to(a)));
        agent.push(to(a));
    }
    overhead.sort();
    Ok(RunnerBench {
        runs,
        overhead,
        agent,
        wall,
    })
}
