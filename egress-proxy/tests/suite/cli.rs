//! The binary: `--check` exit codes and SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_paddock-egress");

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"listen = "127.0.0.1:0"
[resolver]
nameservers = ["127.0.0.1:5353"]
[policy]
approved_write_hosts = ["api.github.test", "*.anthropic.test"]
tunnel_hosts = ["registry.npmjs.test"]
tunnel_ports = [443]
allowed_ports = [80, 443, 8080]
allow_ranges = ["127.0.0.2/32"]
[audit]
path = "-"
"#;

fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(path)
        .arg("--check")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_contract_example() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, err) = check(&write(&dir, "good.toml", GOOD));
    assert!(ok, "{err}");
}

#[test]
fn check_rejects_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown key",
            GOOD.replace("[audit]", "[audit]\nsurprise = 1"),
            "surprise",
        ),
        (
            "bad cidr",
            GOOD.replace("127.0.0.2/32", "10.0.0.0/33"),
            "allow_ranges",
        ),
        (
            "bad pattern",
            GOOD.replace("\"api.github.test\"", "\"api..test\""),
            "approved_write_hosts",
        ),
        (
            "metadata range",
            GOOD.replace("127.0.0.2/32", "169.254.0.0/16"),
            "allow_ranges",
        ),
        (
            "no nameserver",
            GOOD.replace("\"127.0.0.1:5353\"", ""),
            "nameservers",
        ),
        (
            "nameserver without port",
            GOOD.replace("127.0.0.1:5353", "127.0.0.1"),
            "nameservers",
        ),
        (
            "bad limit",
            format!("{GOOD}[limits]\nmax_header_bytes = 10\n"),
            "max_header_bytes",
        ),
        ("not toml", "listen = ".to_owned(), ""),
    ];
    for (what, text, needle) in cases {
        let (ok, err) = check(&write(&dir, "bad.toml", &text));
        assert!(!ok, "{what} accepted");
        assert!(err.contains(needle), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    let (ok, err) = check(&dir.path().join("missing.toml"));
    assert!(!ok);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn sigterm_exits_cleanly() {
    sigterm_case("");
    sigterm_case("worker_threads = 2\n");
}

fn sigterm_case(extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("egress.sock");
    let text = GOOD.replace(
        "listen = \"127.0.0.1:0\"",
        &format!(
            "{extra}listen = \"127.0.0.1:0\"\nlisten_unix = {:?}",
            sock.display().to_string()
        ),
    );
    let cfg = write(&dir, "run.toml", &text);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "proxy did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!sock.exists(), "socket removed on exit");
}
