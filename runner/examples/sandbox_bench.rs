//! Sandbox start-latency benchmark: hardened launch vs. plain `docker run --rm` of the same image.
//!
//! Start latency is measured from the launch call to the agent's first instruction: the agent is
//! a tiny static program that prints `CLOCK_MONOTONIC` in nanoseconds, a clock the host and every
//! container share. Three ways are measured in the same process, interleaved run by run:
//! * `hardened`: `Launcher::run` with the full profile (gate, tmpfs workspace, limits, …);
//! * `plain-api`: create/attach/start/wait/remove through the same Docker API client with Docker's
//!   defaults (what `docker run --rm IMAGE CMD` does, without the CLI's own start-up);
//! * `plain-none`: the same with `--network none` (libnetwork still builds a network sandbox);
//! * `plain-nonet`: `--network none` + `NetworkDisabled`, the launcher's network set-up with
//!   nothing else hardened: the ratio against it is the cost of the rest of the hardening;
//! * `plain-cli`: `docker run --rm IMAGE CMD` as a process (includes the CLI's start-up).
//!
//! `sandbox_bench [--runs N] [--no-cli]` (default 100 runs). Needs Docker, `paddock/test:latest`
//! and a C compiler with a static libc (the clock program is built into `paddock/bench-clock`).
//! After the runs it checks that no container, volume or mount was left behind.

use std::collections::HashMap;
use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use futures_util::StreamExt;
use paddock::sandbox::{DockerEngine, Engine, Launcher, OutputStream, RunSpec, RunStatus};
use paddock_policy::sandbox::SandboxProfile;

type Res<T> = Result<T, Box<dyn Error>>;

const BASE_IMAGE: &str = "paddock/test:latest";
const CLOCK_IMAGE: &str = "paddock/bench-clock:latest";
const CLOCK_PATH: &str = "/usr/local/bin/monoclock";
const CLOCK_C: &str = r#"#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%lld\n", (long long)t.tv_sec * 1000000000LL + (long long)t.tv_nsec);
    return 0;
}
"#;

/// `CLOCK_MONOTONIC` now, in nanoseconds. std's `Instant` is `CLOCK_MONOTONIC` on Linux and its
/// `Debug` form carries the raw timespec; the parse is checked against `elapsed` at start.
fn mono_ns() -> Res<i128> {
    let text = format!("{:?}", Instant::now());
    let num = |key: &str| -> Res<i128> {
        let at = text.find(key).ok_or("unexpected Instant format")? + key.len();
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Ok(digits.parse::<i128>()?)
    };
    Ok(num("tv_sec: ")? * 1_000_000_000 + num("tv_nsec: ")?)
}

fn check_clock() -> Res<()> {
    let a = mono_ns()?;
    std::thread::sleep(Duration::from_millis(20));
    let d = mono_ns()? - a;
    if !(15_000_000..1_000_000_000).contains(&d) {
        return Err(format!("monotonic clock parse looks wrong ({d} ns for a 20 ms sleep)").into());
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Res<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds `paddock/bench-clock` = the test image + the static clock program (no registry).
fn build_clock_image() -> Res<()> {
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("monoclock.c"), CLOCK_C)?;
    run(Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("monoclock"))
        .arg(dir.join("monoclock.c")))?;
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nCOPY monoclock {CLOCK_PATH}\nLABEL org.paddock.bench=true\n"),
    )?;
    run(Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", CLOCK_IMAGE])
        .arg(&dir))?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> Res<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("paddock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn first_ns(stdout: &[u8]) -> Res<i128> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or("agent printed no timestamp")?;
    Ok(line.trim().parse::<i128>()?)
}

struct Sample {
    start_ms: f64,
    teardown_ms: f64,
    total_ms: f64,
}

async fn hardened(l: &Launcher<DockerEngine>, run_dir: &std::path::Path, n: usize) -> Res<Sample> {
    let mut spec = RunSpec::new(
        format!("bench-{}-{n}", std::process::id()),
        CLOCK_IMAGE,
        vec![CLOCK_PATH.to_owned()],
        run_dir.to_path_buf(),
    );
    spec.timeout = Duration::from_secs(60);
    let wall = Instant::now();
    let t0 = mono_ns()?;
    let o = l.run(spec).await?;
    let total = wall.elapsed();
    if o.status != RunStatus::Exited(0) || !o.container_removed {
        return Err(format!(
            "hardened run failed: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(Sample {
        start_ms: ms_ns(first_ns(&o.stdout)? - t0),
        teardown_ms: o.teardown.as_secs_f64() * 1e3,
        total_ms: total.as_secs_f64() * 1e3,
    })
}

/// Network settings of a plain run.
#[derive(Clone, Copy, Debug)]
enum Net {
    /// Docker's default bridge.
    Default,
    /// `--network none` (libnetwork still builds a sandbox).
    None,
    /// `--network none` plus `NetworkDisabled` (runc's fresh netns, as the launcher does).
    Disabled,
}

/// What `docker run --rm IMAGE CMD` does, through the API, with Docker's default settings
/// except the network (`Net`), to tell the network set-up from the rest of the hardening.
async fn plain_api(engine: &DockerEngine, n: usize, net: Net) -> Res<Sample> {
    let body = ContainerCreateBody {
        host_config: (!matches!(net, Net::Default)).then(|| bollard::models::HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        network_disabled: Some(matches!(net, Net::Disabled)),
        image: Some(CLOCK_IMAGE.into()),
        cmd: Some(vec![CLOCK_PATH.into()]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(HashMap::from([(
            "org.paddock.bench".to_owned(),
            "plain".to_owned(),
        )])),
        ..Default::default()
    };
    let wall = Instant::now();
    let t0 = mono_ns()?;
    let id = engine
        .create_container(
            &format!("paddock-bench-plain-{}-{n}-{net:?}", std::process::id()),
            body,
        )
        .await?;
    let attached = engine.attach(&id).await;
    let mut out = Vec::new();
    let result: Res<()> = async {
        let mut attached = attached?;
        engine.start(&id).await?;
        while let Some(chunk) = attached.output.next().await {
            let chunk = chunk?;
            if chunk.stream == OutputStream::Stdout {
                out.extend_from_slice(&chunk.bytes);
            }
        }
        engine.wait(&id).await?;
        Ok(())
    }
    .await;
    let td = Instant::now();
    engine.remove_container(&id).await?;
    let teardown = td.elapsed();
    let total = wall.elapsed();
    result?;
    Ok(Sample {
        start_ms: ms_ns(first_ns(&out)? - t0),
        teardown_ms: teardown.as_secs_f64() * 1e3,
        total_ms: total.as_secs_f64() * 1e3,
    })
}

fn plain_cli() -> Res<Sample> {
    let wall = Instant::now();
    let t0 = mono_ns()?;
    let out = run(Command::new("docker").args([
        "run",
        "--rm",
        "--label",
        "org.paddock.bench=cli",
        CLOCK_IMAGE,
        CLOCK_PATH,
    ]))?;
    let total = wall.elapsed();
    let start = ms_ns(first_ns(out.as_bytes())? - t0);
    Ok(Sample {
        start_ms: start,
        teardown_ms: f64::NAN,
        total_ms: total.as_secs_f64() * 1e3,
    })
}

#[allow(clippy::cast_precision_loss)]
fn ms_ns(ns: i128) -> f64 {
    ns as f64 / 1e6
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn summary(name: &str, s: &[Sample]) -> (f64, f64) {
    let mut start: Vec<f64> = s.iter().map(|x| x.start_ms).collect();
    let mut td: Vec<f64> = s
        .iter()
        .map(|x| x.teardown_ms)
        .filter(|x| !x.is_nan())
        .collect();
    let mut total: Vec<f64> = s.iter().map(|x| x.total_ms).collect();
    let (m, p) = (pct(&mut start, 0.5), pct(&mut start, 0.9));
    println!(
        "{name:<10} start median {m:7.1} ms  p90 {p:7.1} ms | teardown median {:6.1} ms p90 {:6.1} ms | total median {:7.1} ms",
        pct(&mut td, 0.5),
        pct(&mut td, 0.9),
        pct(&mut total, 0.5),
    );
    (m, p)
}

fn docker_mounts() -> Res<usize> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter(|l| l.contains("/var/lib/docker") || l.contains("/run/docker"))
        .count())
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut runs = 100usize;
    let mut cli = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().ok_or("--runs N")?.parse()?,
            "--no-cli" => cli = false,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: sandbox_bench [--runs N] [--no-cli]"
                )
                .into());
            }
        }
    }
    check_clock()?;
    let engine = DockerEngine::connect_local()?;
    engine.ping().await?;
    build_clock_image()?;
    let owner = format!("bench-{}", std::process::id());
    let launcher =
        Launcher::new(engine.clone(), SandboxProfile::agent_default())?.with_owner(&owner)?;
    launcher.cleanup_leftovers().await?;
    let run_dir = tempfile_dir()?;
    std::fs::write(run_dir.join("task.md"), "benchmark\n")?;
    std::fs::set_permissions(
        &run_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;

    let mounts_before = docker_mounts()?;
    // One warm-up of each, not counted (page cache, image layers).
    hardened(&launcher, &run_dir, usize::MAX).await?;
    for net in [Net::Default, Net::None, Net::Disabled] {
        plain_api(&engine, usize::MAX, net).await?;
    }

    let (mut h, mut p, mut q, mut r, mut c) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in 0..runs {
        // Rotate the order so drift on a shared machine hits all alike.
        for k in 0..4 {
            match (n + k) % 4 {
                0 => h.push(hardened(&launcher, &run_dir, n).await?),
                1 => p.push(plain_api(&engine, n, Net::Default).await?),
                2 => q.push(plain_api(&engine, n, Net::None).await?),
                _ => r.push(plain_api(&engine, n, Net::Disabled).await?),
            }
        }
        if cli {
            c.push(plain_cli()?);
        }
    }
    println!(
        "sandbox start latency, {runs} runs each (launch call → agent's first instruction, CLOCK_MONOTONIC)"
    );
    let (hm, hp) = summary("hardened", &h);
    let (pm, pp) = summary("plain-api", &p);
    println!(
        "ratio hardened/plain-api: median {:.2}x  p90 {:.2}x  (target <= 1.10x)",
        hm / pm,
        hp / pp
    );
    let (qm, qp) = summary("plain-none", &q);
    println!(
        "ratio hardened/plain-none: median {:.2}x  p90 {:.2}x",
        hm / qm,
        hp / qp
    );
    let (rm, rp) = summary("plain-nonet", &r);
    println!(
        "ratio hardened/plain-nonet (same network set-up; the cost of the rest): median {:.2}x  p90 {:.2}x",
        hm / rm,
        hp / rp
    );
    if cli {
        let (cm, cp) = summary("plain-cli", &c);
        println!(
            "ratio hardened/plain-cli: median {:.2}x  p90 {:.2}x",
            hm / cm,
            hp / cp
        );
    }

    let left = engine.list_containers(&launcher.managed_filters()).await?;
    let left_plain = engine
        .list_containers(&["org.paddock.bench".to_owned()])
        .await?;
    let vols = engine.list_volumes(&launcher.managed_filters()).await?;
    let mounts_after = docker_mounts()?;
    std::fs::remove_dir_all(&run_dir)?;
    println!(
        "leaks after {} launches: containers {} (+{} plain), workspace volumes {}, docker mounts {} -> {}",
        runs * if cli { 5 } else { 4 } + 4,
        left.len(),
        left_plain.len(),
        vols.len(),
        mounts_before,
        mounts_after
    );
    if !left.is_empty()
        || !left_plain.is_empty()
        || !vols.is_empty()
        || mounts_after > mounts_before
    {
        return Err("leaked containers, volumes or mounts".into());
    }
    println!("no leaks");
    Ok(())
}
