//! The printed tables, ratios and target verdicts.

use crate::idle::{Idle, IdleResult};
use crate::load::{LoadResult, count_f64};
use crate::subjects::{Kind, ProcStat};

/// Everything measured for one subject.
#[derive(Debug)]
pub struct Row {
    pub kind: Kind,
    pub failure: Option<String>,
    pub seq: Option<LoadResult>,
    pub conc: Option<LoadResult>,
    /// MiB/s of each 256 MiB transfer.
    pub transfers_mibps: Vec<f64>,
    pub after_load: Option<ProcStat>,
    /// The subject's CPU seconds during the load phase (all its threads).
    pub conc_cpu_secs: Option<f64>,
    /// The subject's CPU seconds during the 256 MiB transfers.
    pub transfer_cpu_secs: Option<f64>,
    /// Audit lines the subject wrote in all (probe, warm-up, phases), if it keeps an audit file.
    pub audit_lines: Option<u64>,
    pub idle_baseline: Option<ProcStat>,
    pub idle: Vec<(Idle, IdleResult)>,
}

impl Row {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            failure: None,
            seq: None,
            conc: None,
            transfers_mibps: Vec::new(),
            after_load: None,
            conc_cpu_secs: None,
            transfer_cpu_secs: None,
            audit_lines: None,
            idle_baseline: None,
            idle: Vec::new(),
        }
    }

    /// Median of the transfers.
    pub fn throughput(&self) -> Option<f64> {
        let mut v = self.transfers_mibps.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

fn mib(kib: u64) -> f64 {
    count_f64(kib) / 1024.0
}

fn opt(v: Option<f64>, width: usize, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:>width$.prec$}"),
        _ => format!("{:>width$}", "-"),
    }
}

pub fn print(rows: &[Row], conns: usize) {
    println!();
    println!("== keep-alive GET /small, 256 MiB transfer ==");
    println!(
        "{:<15} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>12} {:>9} {:>9} {:>9} {:>7}",
        "subject",
        format!("req/s c{conns}"),
        "p50 µs",
        "p99 µs",
        "seq p50",
        "seq p99",
        "errors",
        "conns",
        "retries",
        "256MiB MiB/s",
        "RSS MiB",
        "peak MiB",
        "CPU µs/req",
        "CPU %"
    );
    for row in rows {
        if let Some(failure) = &row.failure {
            println!("{:<15} not measured: {failure}", row.kind.name());
            continue;
        }
        let conc = row.conc.as_ref();
        let seq = row.seq.as_ref();
        let errors = conc.map_or(0, |c| c.errors) + seq.map_or(0, |s| s.errors);
        println!(
            "{:<15} {} {} {} {} {} {:>7} {:>7} {:>7} {} {} {} {} {}",
            row.kind.name(),
            opt(conc.map(LoadResult::rps), 10, 0),
            opt(conc.map(|c| c.percentile_us(50)), 9, 1),
            opt(conc.map(|c| c.percentile_us(99)), 9, 1),
            opt(seq.map(|s| s.percentile_us(50)), 9, 1),
            opt(seq.map(|s| s.percentile_us(99)), 9, 1),
            errors,
            conc.map_or(0, |c| c.connects),
            conc.map_or(0, |c| c.retries) + seq.map_or(0, |s| s.retries),
            opt(row.throughput(), 12, 0),
            opt(row.after_load.map(|p| mib(p.rss_kib)), 9, 1),
            opt(row.after_load.map(|p| mib(p.hwm_kib)), 9, 1),
            opt(
                row.conc_cpu_secs
                    .zip(conc)
                    .map(|(cpu, c)| cpu * 1e6 / count_f64(c.ok.max(1))),
                10,
                1
            ),
            opt(
                row.conc_cpu_secs
                    .zip(conc)
                    .map(|(cpu, c)| cpu * 100.0 / c.elapsed.as_secs_f64().max(1e-9)),
                7,
                0
            ),
        );
        if let Some(cpu) = row.transfer_cpu_secs {
            let gib = count_f64(u64::try_from(row.transfers_mibps.len()).unwrap_or(0)) / 4.0;
            println!(
                "{:<15}   CPU per GiB transferred: {:.2} s",
                "",
                cpu / gib.max(1e-9)
            );
        }
        if let Some(lines) = row.audit_lines {
            let measured = conc.map_or(0, |c| c.ok) + seq.map_or(0, |s| s.ok);
            println!(
                "{:<15}   audit lines written: {lines} (measured requests: {measured}, plus warm-up)",
                ""
            );
        }
        for (what, r) in [("c", conc), ("seq", seq)] {
            if let Some(err) = r.and_then(|r| r.first_error.as_ref()) {
                println!("{:<15}   first {what} error: {err}", "");
            }
        }
    }
    println!(
        "(p50/p99 under load at {conns} connections; seq = one connection, one request at a time;"
    );
    println!(" conns = TCP connections the load phase opened; retries = requests re-sent after
 a reused connection turned out closed (the retry's time is in the latency); RSS/peak = proxy after the load;
 CPU = the proxy process's user+system time during the load phase, all threads)");
    print_idle(rows);
    print_targets(rows);
}

fn print_idle(rows: &[Row]) {
    if rows.iter().all(|r| r.idle.is_empty()) {
        return;
    }
    println!();
    println!("== idle client connections (proxy process, /proc/PID/status) ==");
    println!(
        "{:<15} {:<13} {:>8} {:>7} {:>7} {:>9} {:>8} {:>8} {:>8}  still open",
        "subject",
        "idle kind",
        "opened",
        "failed",
        "open s",
        "overflows",
        "RSS MiB",
        "fds",
        "threads",
    );
    for row in rows {
        if let Some(base) = row.idle_baseline {
            println!(
                "{:<15} {:<13} {:>8} {:>7} {:>7} {:>9} {:>8.1} {:>8} {:>8}",
                row.kind.name(),
                "at start",
                "-",
                "-",
                "-",
                "-",
                mib(base.rss_kib),
                base.fds,
                base.threads,
            );
        }
        for (mode, r) in &row.idle {
            let alive: Vec<String> = r
                .alive
                .iter()
                .map(|(at, n)| format!("{n} at {at}s"))
                .collect();
            println!(
                "{:<15} {:<13} {:>8} {:>7} {:>7.1} {:>9} {:>8.1} {:>8} {:>8}  {}",
                row.kind.name(),
                mode.name(),
                r.connected,
                r.connect_failed,
                r.open_secs,
                r.listen_overflows,
                mib(r.loaded.rss_kib),
                r.loaded.fds,
                r.loaded.threads,
                alive.join(", ")
            );
        }
    }
    println!(
        "(a fresh process per round; connections opened in batches of 100, each waiting for the"
    );
    println!(" proxy to accept it; RSS/fds/threads = the proxy once its descriptor count settled;");
    println!(" still open = connections it had not closed, seconds after the last one opened;");
    println!(" overflows = kernel listen-queue drops while opening, machine-wide)");
}

fn find(rows: &[Row], kind: Kind) -> Option<&Row> {
    rows.iter().find(|r| r.kind == kind && r.failure.is_none())
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "MISS",
        None => "MISS (not measured)",
    }
}

fn print_targets(rows: &[Row]) {
    let direct = find(rows, Kind::Direct);
    let paddock = find(rows, Kind::Paddock);
    println!();
    println!("== paddock-egress against its targets ==");

    let ratio = paddock
        .and_then(Row::throughput)
        .zip(direct.and_then(Row::throughput))
        .map(|(p, d)| p / d);
    println!(
        "{:<52} {:>10}  target >= 0.80      {}",
        "throughput proxy/direct (256 MiB, median)",
        opt(ratio, 10, 3),
        verdict(ratio.map(|r| r >= 0.8))
    );

    let seq_p50 = |row: Option<&Row>| {
        row.and_then(|r| r.seq.as_ref())
            .map(|s| s.percentile_us(50))
    };
    let added = seq_p50(paddock).zip(seq_p50(direct)).map(|(p, d)| p - d);
    println!(
        "{:<52} {:>10}  target <= 150 µs    {}",
        "added p50 latency, sequential (µs)",
        opt(added, 10, 1),
        verdict(added.map(|a| a <= 150.0))
    );
    let conc_p50 = |row: Option<&Row>| {
        row.and_then(|r| r.conc.as_ref())
            .map(|c| c.percentile_us(50))
    };
    let added_c = conc_p50(paddock).zip(conc_p50(direct)).map(|(p, d)| p - d);
    println!(
        "{:<52} {:>10}  (information)",
        "added p50 latency under load (µs)",
        opt(added_c, 10, 1)
    );
    let rps = |row: Option<&Row>| row.and_then(|r| r.conc.as_ref()).map(LoadResult::rps);
    let rps_ratio = rps(paddock).zip(rps(direct)).map(|(p, d)| p / d);
    println!(
        "{:<52} {:>10}  (information)",
        "req/s proxy/direct",
        opt(rps_ratio, 10, 3)
    );

    for other in [Kind::Squid, Kind::Tinyproxy] {
        let rival = find(rows, other);
        let name = other.name();
        let r = rps(paddock).zip(rps(rival)).map(|(p, o)| p / o);
        println!(
            "{:<52} {:>10}  target > 1          {}",
            format!("req/s paddock/{name}"),
            opt(r, 10, 3),
            verdict(r.map(|x| x > 1.0))
        );
        type Pick = fn(&Row) -> Option<f64>;
        let picks: [(&str, Pick); 4] = [
            ("seq p50", |r| r.seq.as_ref().map(|s| s.percentile_us(50))),
            ("seq p99", |r| r.seq.as_ref().map(|s| s.percentile_us(99))),
            ("p50 under load", |r| {
                r.conc.as_ref().map(|s| s.percentile_us(50))
            }),
            ("p99 under load", |r| {
                r.conc.as_ref().map(|s| s.percentile_us(99))
            }),
        ];
        for (label, pick) in picks {
            let l = paddock
                .and_then(pick)
                .zip(rival.and_then(pick))
                .map(|(p, o)| p / o);
            println!(
                "{:<52} {:>10}  target < 1          {}",
                format!("{label} latency paddock/{name}"),
                opt(l, 10, 3),
                verdict(l.map(|x| x < 1.0))
            );
        }
    }

    if let Some(row) = paddock {
        if let Some(base) = row.idle_baseline {
            println!(
                "{:<52} {:>10.1}  (information)",
                "RSS at start, MiB",
                mib(base.rss_kib)
            );
        }
        if row.idle.is_empty() {
            println!(
                "{:<52} {:>10}  target <= 200 MiB   {}",
                "RSS with idle connections",
                "-",
                verdict(None)
            );
        }
        for (mode, r) in &row.idle {
            let held = r.connected == r.wanted;
            let rss = mib(r.loaded.rss_kib);
            let label = format!("RSS with {} {} connections, MiB", r.connected, mode.name());
            let note = if held {
                ""
            } else {
                "  (not all connections opened)"
            };
            println!(
                "{:<52} {:>10.1}  target <= 200 MiB   {}{note}",
                label,
                rss,
                verdict(Some(held && rss <= 200.0))
            );
        }
    } else {
        println!("paddock-egress was not measured; every target above is a MISS.");
    }
}
