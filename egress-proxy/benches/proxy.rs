//! Egress proxy benchmark: paddock-egress against direct, Squid and tinyproxy, all on loopback.
//!
//! Run with `scripts/bench-egress` (installs Squid and tinyproxy, raises the
//! descriptor limit) or `cargo bench -p paddock-egress --bench proxy`. Knobs, all
//! optional environment variables: `PADDOCK_BENCH_SECS` (load phase, default 5),
//! `PADDOCK_BENCH_SEQ_SECS` (sequential phase, 3), `PADDOCK_BENCH_CONNS` (32),
//! `PADDOCK_BENCH_ROUNDS` (rounds, 3: each round measures every subject in turn,
//! a share of each phase and one 256 MiB transfer, so that load from other work
//! on the machine falls on all subjects alike),
//! `PADDOCK_BENCH_IDLE` (idle connections, 10000; 0 skips),
//! `PADDOCK_BENCH_IDLE_CHECKS` (seconds after opening at which still-open
//! connections are counted, "3,15"), `PADDOCK_BENCH_SUBJECTS` (comma list of
//! direct,paddock,squid,tinyproxy), `PADDOCK_EGRESS_BIN` (another paddock-egress binary).
//! It prints figures and PASS/MISS against the targets; it never fails on a miss.

#[path = "proxy/idle.rs"]
mod idle;
#[path = "proxy/load.rs"]
mod load;
#[path = "proxy/report.rs"]
mod report;
#[path = "proxy/subjects.rs"]
mod subjects;
#[path = "proxy/upstream.rs"]
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use idle::Idle;
use load::Target;
use report::Row;
use subjects::{Kind, Subject};

/// Most requests one phase may send, whatever its duration.
const MAX_REQUESTS: u64 = 5_000_000;

struct Settings {
    secs: u64,
    seq_secs: u64,
    conns: usize,
    /// Rounds; each measures every subject once and makes one 256 MiB transfer.
    rounds: usize,
    idle: usize,
    /// Seconds after opening at which the idle connections are counted.
    idle_checks: Vec<u64>,
    subjects: Vec<Kind>,
    paddock_bin: PathBuf,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let all = [Kind::Direct, Kind::Paddock, Kind::Squid, Kind::Tinyproxy];
        let subjects = match std::env::var("PADDOCK_BENCH_SUBJECTS") {
            Ok(list) => {
                let mut picked = Vec::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let kind = all
                        .into_iter()
                        .find(|k| k.name() == name || k.name().starts_with(name))
                        .with_context(|| {
                            format!("PADDOCK_BENCH_SUBJECTS: unknown subject {name:?}")
                        })?;
                    picked.push(kind);
                }
                // Direct is the baseline every ratio needs.
                if !picked.contains(&Kind::Direct) {
                    picked.insert(0, Kind::Direct);
                }
                picked
            }
            Err(_) => all.to_vec(),
        };
        let paddock_bin = std::env::var_os("PADDOCK_EGRESS_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_paddock-egress")),
            PathBuf::from,
        );
        Ok(Self {
            secs: env_num("PADDOCK_BENCH_SECS", 5),
            seq_secs: env_num("PADDOCK_BENCH_SEQ_SECS", 3),
            conns: env_num("PADDOCK_BENCH_CONNS", 32).max(1),
            rounds: env_num("PADDOCK_BENCH_ROUNDS", 3).clamp(1, 100),
            idle: env_num("PADDOCK_BENCH_IDLE", 10_000),
            idle_checks: std::env::var("PADDOCK_BENCH_IDLE_CHECKS")
                .ok()
                .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![3, 15]),
            subjects,
            paddock_bin,
        })
    }
}

fn target_for(subject: &Subject, upstream: SocketAddr) -> Target {
    match subject.proxy {
        Some(proxy) => Target {
            connect: proxy,
            upstream,
            absolute: true,
        },
        None => Target {
            connect: upstream,
            upstream,
            absolute: false,
        },
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries without `--bench`: the
    // benchmark is a program that prints figures, never part of the test run.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("paddock egress bench: run it with `cargo bench` (scripts/bench-egress)");
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let upstream = upstream::start()?;
    // The load generator gets one thread, the upstream another; the proxy under
    // test shares the machine's cores with both, as every subject does.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build the load runtime")?;

    println!(
        "paddock egress bench: upstream {} | {} s at {} connections, {} s sequential, in {} rounds (one 256 MiB transfer each), {} idle connections | {} CPUs",
        upstream.addr,
        settings.secs,
        settings.conns,
        settings.seq_secs,
        settings.rounds,
        settings.idle,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );

    let load_start = subjects::loadavg();
    let mut rows: Vec<Row> = settings.subjects.iter().map(|&k| Row::new(k)).collect();
    let mut live: Vec<Option<Subject>> = Vec::new();
    for row in &mut rows {
        match start_checked(&settings, &rt, upstream.addr, row.kind) {
            Ok(subject) => live.push(Some(subject)),
            Err(err) => {
                fail(row, &err);
                live.push(None);
            }
        }
    }
    // Every subject is measured in each round, one after the other, so that the
    // machine's other work (the cores are shared) weighs on all of them alike.
    let rounds = u32::try_from(settings.rounds).unwrap_or(1);
    for round in 0..rounds {
        eprintln!("-- round {} of {rounds}", round + 1);
        for (row, subject) in rows.iter_mut().zip(&live) {
            if let Some(subject) = subject {
                measure_round(
                    &settings,
                    &rt,
                    upstream.addr,
                    subject,
                    row,
                    round == 0,
                    rounds,
                );
            }
        }
    }
    for (row, subject) in rows.iter_mut().zip(live.drain(..)) {
        if let Some(subject) = subject {
            row.after_load = subject.pid().and_then(|pid| subjects::proc_stat(pid).ok());
            row.audit_lines = subjects::audit_lines(&subject);
        }
        for r in [&mut row.seq, &mut row.conc].into_iter().flatten() {
            r.latencies_ns.sort_unstable();
        }
    }
    if settings.idle > 0 {
        for row in &mut rows {
            if row.kind == Kind::Direct || row.failure.is_some() {
                continue;
            }
            if let Err(err) = idle_rounds(&settings, &rt, upstream.addr, row) {
                eprintln!("{}: idle connections: {err:#}", row.kind.name());
            }
        }
    }
    report::print(&rows, settings.conns);
    println!(
        "load average at start {load_start}, at end {}",
        subjects::loadavg()
    );
    Ok(())
}

fn fail(row: &mut Row, err: &anyhow::Error) {
    eprintln!("{}: {err:#}", row.kind.name());
    row.failure = Some(
        format!("{err:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    );
}

/// Starts a subject and checks that one request through it is answered in full.
fn start_checked(
    settings: &Settings,
    rt: &tokio::runtime::Runtime,
    upstream: SocketAddr,
    kind: Kind,
) -> anyhow::Result<Subject> {
    let subject = subjects::start(kind, &settings.paddock_bin, upstream.port())?;
    let target = target_for(&subject, upstream);
    rt.block_on(load::probe(
        &target,
        "/small",
        u64::try_from(upstream::SMALL_BODY.len())?,
    ))
    .with_context(|| format!("probe request failed\n{}", subject.log_tail()))?;
    Ok(subject)
}

/// One round for one subject: sequential latency, load, one 256 MiB transfer.
fn measure_round(
    settings: &Settings,
    rt: &tokio::runtime::Runtime,
    upstream: SocketAddr,
    subject: &Subject,
    row: &mut Row,
    first: bool,
    rounds: u32,
) {
    eprintln!("   {}", row.kind.name());
    let target = target_for(subject, upstream);
    if first {
        rt.block_on(load::run(
            &target,
            "/small",
            settings.conns,
            Duration::from_millis(500),
            MAX_REQUESTS,
        ));
    }
    let seq = rt.block_on(load::run(
        &target,
        "/small",
        1,
        Duration::from_secs(settings.seq_secs) / rounds,
        MAX_REQUESTS,
    ));
    row.seq.get_or_insert_with(Default::default).absorb(seq);

    let cpu_before = subject.pid().and_then(subjects::cpu_secs);
    let conc = rt.block_on(load::run(
        &target,
        "/small",
        settings.conns,
        Duration::from_secs(settings.secs) / rounds,
        MAX_REQUESTS,
    ));
    let cpu_after = subject.pid().and_then(subjects::cpu_secs);
    add(&mut row.conc_cpu_secs, cpu_before, cpu_after);
    row.conc.get_or_insert_with(Default::default).absorb(conc);

    let cpu_before = subject.pid().and_then(subjects::cpu_secs);
    match rt.block_on(load::transfer(&target, "/big")) {
        Ok((took, len)) if len == upstream::BIG_LEN => {
            let mib = load::count_f64(len) / (1024.0 * 1024.0);
            row.transfers_mibps.push(mib / took.as_secs_f64().max(1e-9));
        }
        Ok((_, len)) => eprintln!("   transfer: {len} bytes, expected {}", upstream::BIG_LEN),
        Err(err) => eprintln!("   transfer: {err:#}"),
    }
    let cpu_after = subject.pid().and_then(subjects::cpu_secs);
    add(&mut row.transfer_cpu_secs, cpu_before, cpu_after);
}

fn add(total: &mut Option<f64>, before: Option<f64>, after: Option<f64>) {
    if let Some((b, a)) = before.zip(after) {
        *total = Some(total.unwrap_or(0.0) + (a - b));
    }
}

/// Memory with idle client connections, on a fresh process per round so that no
/// figure carries memory the allocator kept from the load or the round before.
fn idle_rounds(
    settings: &Settings,
    rt: &tokio::runtime::Runtime,
    upstream: SocketAddr,
    row: &mut Row,
) -> anyhow::Result<()> {
    for mode in [Idle::Silent, Idle::Partial] {
        let subject = start_checked(settings, rt, upstream, row.kind)?;
        let (Some(proxy), Some(pid)) = (subject.proxy, subject.pid()) else {
            return Ok(());
        };
        std::thread::sleep(Duration::from_millis(500));
        if row.idle_baseline.is_none() {
            row.idle_baseline = subjects::proc_stat(pid).ok();
        }
        eprintln!(
            "   {}: {} idle connections, {}",
            row.kind.name(),
            settings.idle,
            mode.name()
        );
        let result = idle::round(
            proxy,
            upstream,
            pid,
            settings.idle,
            mode,
            &settings.idle_checks,
        );
        row.idle.push((mode, result));
    }
    Ok(())
}
