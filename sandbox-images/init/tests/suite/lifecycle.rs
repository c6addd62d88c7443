//! The agent's life under paddock-init: exit status, signals, reaping, environment, refusal to
//! start on a weakened profile or a kernel without landlock.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::support::{REDTEAM, REFUSED_TO_START, Sandbox, landlock_or_skip, path_str};

#[test]
fn exit_status_is_the_agents() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    assert_eq!(sb.attempt("exit", Some("0")).code, 0);
    assert_eq!(sb.attempt("exit", Some("7")).code, 7);
}

fn wait_ready(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    let stdout = child.stdout.as_mut().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "{line:?}");
    line
}

fn wait_exit(child: &mut std::process::Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "init did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_are_forwarded_to_the_agent() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    // The agent handles SIGTERM itself and exits 42.
    let mut child = sb.spawn(&[REDTEAM, "wait-term"]);
    wait_ready(&mut child);
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_exit(&mut child), 42);
    let mut rest = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert!(rest.contains("got SIGTERM"), "{rest:?}");

    // An agent that does not handle signals dies of them: 128 + signal.
    for (sig, code) in [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
    ] {
        let mut child = sb.spawn(&[REDTEAM, "sleep", "30"]);
        wait_ready(&mut child);
        kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).unwrap();
        assert_eq!(wait_exit(&mut child), code, "{sig}");
    }
}

#[test]
fn orphans_are_adopted_and_reaped() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let child = sb
        .command(&[REDTEAM, "zombie"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let init_pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("adopted_by={init_pid} reaped")),
        "{stdout}"
    );
}

#[test]
fn proxy_variables_point_at_the_relay() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let out = sb.run(&["/usr/bin/env"]);
    let url = format!("http://{}", sb.profile.relay.listen);
    for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        assert!(
            out.stdout.contains(&format!("{key}={url}\n")),
            "{key}: {}",
            out.stdout
        );
    }
}

#[test]
fn missing_landlock_abi_refuses_to_start_unless_optional() {
    if !landlock_or_skip() {
        return;
    }
    let mut sb = Sandbox::new();
    let marker = sb.path("workspace/ran");
    sb.profile.filesystem.landlock.min_abi = 99;
    let out = sb.attempt("write", Some(path_str(&marker)));
    assert_eq!(out.code, REFUSED_TO_START, "{out:?}");
    assert!(out.stderr.contains("landlock ABI"), "{}", out.stderr);
    assert!(!marker.exists(), "the agent must not have run");

    sb.profile.filesystem.landlock.optional = true;
    let out = sb.attempt("write", Some(path_str(&marker)));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(marker.exists());
}

#[test]
fn weakened_profile_refuses_to_start() {
    let mut sb = Sandbox::new();
    let marker = sb.path("workspace/ran");
    sb.profile.seccomp.rules.retain(|r| r.syscall != "ptrace");
    let out = sb.attempt("write", Some(path_str(&marker)));
    assert_eq!(out.code, REFUSED_TO_START, "{out:?}");
    assert!(out.stderr.contains("ptrace"), "{}", out.stderr);
    assert!(!marker.exists());
}

#[test]
fn missing_agent_program_refuses_to_start() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let out = sb.run(&["/nonexistent/agent"]);
    assert_eq!(out.code, REFUSED_TO_START, "{out:?}");
    assert!(out.stderr.contains("exec"), "{}", out.stderr);
}

/// `--gate`: nothing runs before the nonce line; the agent gets `/dev/null`, not the nonce; the
/// marker follows the agent's output; init stays up until stdin closes.
#[test]
fn the_gate_holds_the_agent_and_reports_its_status() {
    use std::io::Write;
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let gated = || {
        let mut cmd = std::process::Command::new(super::support::INIT);
        cmd.arg("--profile")
            .arg(sb.write_profile())
            .args(["--gate", "--", REDTEAM, "read-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        cmd.spawn().unwrap()
    };
    let nonce = "00112233445566778899aabbccddeeff";
    let mut child = gated();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{nonce}").unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(&format!("\n{nonce} 1\n")) {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no marker: {seen:?}"
        );
        seen.push_str(&line);
    }
    assert!(seen.contains("read-stdin: refused"), "{seen:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "init must wait for stdin to close"
    );
    drop(stdin);
    assert_eq!(wait_exit(&mut child), 1);

    // Without a nonce the agent never starts.
    let mut child = gated();
    drop(child.stdin.take());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(wait_exit(&mut child), REFUSED_TO_START);
    assert!(!out.contains("read-stdin"), "{out:?}");
}

/// As PID 1 of its PID namespace (as in every sandbox container), paddock-init kills what the
/// agent left behind before it reports the agent's status, even a process that left the
/// agent's session and group with `setsid`: while the gate holds (the runner reading the work
/// tree back), nothing of the agent runs. A child that finished before the agent exited has
/// done its work.
#[test]
fn a_setsid_straggler_is_killed_before_the_status_is_reported() {
    use std::io::Write;
    if !landlock_or_skip() {
        return;
    }
    if !super::support::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but a PID namespace needs root"
        );
        eprintln!("skipping: a PID namespace needs root");
        return;
    }
    let sb = Sandbox::new();
    let ws = sb.path("workspace");
    let ws = path_str(&ws);
    let script = format!(
        "setsid sh -c 'sleep 1; touch {ws}/late' & \
         (sleep 0.2; touch {ws}/early) & wait $!; exit 0"
    );
    let started = Instant::now();
    let mut child = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--"])
        .arg(super::support::INIT)
        .arg("--profile")
        .arg(sb.write_profile())
        .args(["--gate", "--", "/bin/sh", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let nonce = "00112233445566778899aabbccddeeff";
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{nonce}").unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(&format!("{nonce} 0\n")) {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no marker: {seen:?}"
        );
        seen.push_str(&line);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the status came promptly"
    );
    // Hold the gate past the straggler's sleep, as the runner does while reading back.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        sb.path("workspace/early").exists(),
        "a child that finished first did its work"
    );
    assert!(
        !sb.path("workspace/late").exists(),
        "the setsid straggler wrote into the workspace after the agent's end"
    );
    drop(stdin);
    assert_eq!(wait_exit(&mut child), 0);
}
