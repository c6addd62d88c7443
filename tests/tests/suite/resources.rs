//! Resource exhaustion by the agent: fork bomb, memory bomb, output flood, tmpfs fill. Each is
//! contained in its own sandbox and the next run (and this test process) carries on.

use std::time::Duration;

use paddock::sandbox::{DockerEngine, RunStatus};
use paddock_policy::sandbox::SandboxProfile;

use super::support::{SERIAL, docker, exited, launcher, run_dir, sandboxed, show, spec, text};

/// After an attack: this process can still fork and a fresh sandbox still runs.
async fn host_unaffected(engine: DockerEngine) {
    let st = std::process::Command::new("true").status().unwrap();
    assert!(st.success(), "the test process cannot spawn");
    let o = sandboxed(engine, "after", &["paddock-redteam", "exit", "0"]).await;
    assert_eq!(o.status, RunStatus::Exited(0), "{}", show(&o));
}

#[tokio::test]
async fn a_fork_bomb_stops_at_the_pids_limit() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let profile = SandboxProfile::agent_default();
    let limit = profile.container.pids_limit;
    let l = launcher(engine.clone(), profile);
    let dir = run_dir();
    // The bomb forks forever; the counting uses only shell builtins (no fork needed).
    let mut s = spec(
        "forkbomb",
        &dir,
        &[
            "sh",
            "-c",
            "(while :; do sleep 1000 & done) 2>/dev/null & i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; \
             set -- /proc/[0-9]*; echo procs=$#; exit 0",
        ],
    );
    s.timeout = Duration::from_secs(90);
    let o = l.run(s).await.unwrap();
    assert!(o.container_removed);
    let out = text(&o.stdout);
    let procs: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count: {}", show(&o)));
    assert!(procs <= limit, "{procs} processes above the limit {limit}");
    assert!(
        procs >= limit / 2,
        "the bomb did not run: {procs} processes"
    );
    host_unaffected(engine).await;
}

#[tokio::test]
async fn a_memory_bomb_is_oom_killed_inside_the_sandbox_only() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let mut profile = SandboxProfile::agent_default();
    profile.container.memory_bytes = 128 << 20;
    profile.container.memory_swap_bytes = 128 << 20;
    for t in &mut profile.container.tmpfs {
        t.size_bytes = 16 << 20;
    }
    profile.container.workspace_size_bytes = 16 << 20;
    let l = launcher(engine.clone(), profile);
    let dir = run_dir();
    // The neighbour: 16 MB in the shell's memory fits.
    let o = l
        .run(spec(
            "mem-ok",
            &dir,
            &[
                "sh",
                "-c",
                "x=$(head -c 16000000 /dev/zero | tr '\\0' a); echo len=${#x}",
            ],
        ))
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Exited(0), "{}", show(&o));
    assert!(text(&o.stdout).contains("len=16000000"), "{}", show(&o));
    // The bomb: 400 MB in the shell's memory under a 128 MiB limit.
    let mut s = spec(
        "mem-bomb",
        &dir,
        &[
            "sh",
            "-c",
            "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
        ],
    );
    s.timeout = Duration::from_secs(90);
    let o = l.run(s).await.unwrap();
    assert!(o.container_removed);
    assert!(!text(&o.stdout).contains("survived"), "{}", show(&o));
    assert!(
        o.oom_killed || exited(&o) == Some(137),
        "not OOM-killed: {}",
        show(&o)
    );
    host_unaffected(engine).await;
}

#[tokio::test]
async fn an_output_flood_is_capped() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine.clone(), SandboxProfile::agent_default());
    let dir = run_dir();
    let mut s = spec(
        "flood",
        &dir,
        &[
            "sh",
            "-c",
            "yes paddock-flood | head -c 20000000; echo; echo done",
        ],
    );
    s.output_cap_bytes = 64 * 1024;
    s.timeout = Duration::from_secs(120);
    let o = l.run(s).await.unwrap();
    assert_eq!(o.status, RunStatus::Exited(0), "{:?}", o.status);
    assert!(o.output_truncated);
    assert!(
        o.output_total_bytes >= 20_000_000,
        "{}",
        o.output_total_bytes
    );
    assert!(o.stdout.len() + o.stderr.len() <= 64 * 1024 + 64);
    // The neighbour: output under the cap comes back whole and unmarked.
    let o = sandboxed(engine, "small", &["sh", "-c", "yes ok | head -c 1000"]).await;
    assert!(!o.output_truncated);
    assert_eq!(o.stdout.len(), 1000);
}

/// A stdout flood followed by a stderr flood (and both at once): neither stream may stall the
/// other, the run ends on its own well inside the timeout, and both are capped.
#[tokio::test]
async fn a_stdout_then_stderr_flood_does_not_stall_the_run() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    for (id, script) in [
        (
            "flood-seq",
            "yes paddock-out | head -c 20000000; yes paddock-err | head -c 2000000 >&2; echo done",
        ),
        (
            "flood-both",
            "yes paddock-err | head -c 20000000 >&2 & yes paddock-out | head -c 20000000; wait; echo done",
        ),
    ] {
        let dir = run_dir();
        let mut s = spec(id, &dir, &["sh", "-c", script]);
        s.output_cap_bytes = 64 * 1024;
        s.timeout = Duration::from_secs(120);
        let started = std::time::Instant::now();
        let o = l.run(s).await.unwrap();
        assert_eq!(
            o.status,
            RunStatus::Exited(0),
            "{id}: {:?} after {:?}",
            o.status,
            started.elapsed()
        );
        assert!(o.agent_reported, "{id}");
        assert!(o.output_truncated, "{id}");
        assert!(
            o.output_total_bytes >= 22_000_000,
            "{id}: {}",
            o.output_total_bytes
        );
        assert!(o.stdout.len() + o.stderr.len() <= 64 * 1024 + 64, "{id}");
        assert!(o.container_removed, "{id}");
    }
}

#[tokio::test]
async fn filling_the_scratch_tmpfs_stops_at_its_cap() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let profile = SandboxProfile::agent_default();
    let l = launcher(engine, profile.clone());
    let dir = run_dir();
    for t in &profile.container.tmpfs {
        let mib = t.size_bytes >> 20;
        let script = format!(
            "dd if=/dev/zero of={p}/fill bs=1M count={n} 2>&1 | grep -o 'No space left on device'; \
             stat -c size=%s {p}/fill; rm -f {p}/fill; \
             dd if=/dev/zero of={p}/small bs=1M count=1 2>/dev/null && echo small-ok",
            p = t.path,
            n = mib + 16
        );
        let o = l
            .run(spec("tmpfs", &dir, &["sh", "-c", &script]))
            .await
            .unwrap();
        let out = text(&o.stdout);
        assert!(
            out.contains("No space left on device"),
            "{}: {}",
            t.path,
            show(&o)
        );
        let size: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("size="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no size: {}", show(&o)));
        assert!(
            size <= t.size_bytes,
            "{}: {size} > {}",
            t.path,
            t.size_bytes
        );
        assert!(size >= t.size_bytes / 2, "{}: the fill did not run", t.path);
        assert!(out.contains("small-ok"), "{}: {}", t.path, show(&o));
    }
}
