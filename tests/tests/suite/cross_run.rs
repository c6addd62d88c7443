//! Another run's sandbox: two sandboxes at once, and the attacker reaches none of the victim's
//! loopback listener, processes, workspace or proxy socket. The victim reaches all four of its
//! own from inside (the same checks), so the attack's verdict can fail.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use paddock::sandbox::{OutputSink, OutputStream};
use paddock_policy::sandbox::SandboxProfile;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::support::{SERIAL, docker, exited, launcher, run_dir, show, spec, text};

/// Port of the victim's loopback listener (inside its own network namespace).
const PORT: u16 = 39_077;

/// Tells the test when the victim is ready.
struct Ready(mpsc::UnboundedSender<String>);

impl OutputSink for Ready {
    fn output(&mut self, _: OutputStream, bytes: &[u8]) {
        let _ = self.0.send(text(bytes));
    }
}

/// A stand-in for the run's proxy socket: answers every connection with "pong".
fn proxy_stand_in(dir: &std::path::Path) -> tokio::task::JoinHandle<()> {
    let path = dir.join("proxy.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(b"pong").await;
        }
    })
}

#[tokio::test]
async fn a_run_cannot_reach_another_runs_sandbox() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());

    let victim_dir = run_dir();
    let victim_socket = victim_dir.0.path().join("proxy.sock");
    let stand_in = proxy_stand_in(victim_dir.0.path());
    let victim_arg = format!("{PORT},/paddock/proxy.sock,25");
    let mut victim = spec(
        "victim",
        &victim_dir,
        &["paddock-redteam", "victim", &victim_arg],
    );
    victim.slot = 1;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let lv = l.clone();
    let victim_run = tokio::spawn(async move { lv.run_with(victim, &mut Ready(tx)).await });

    // The attacker starts once the victim is up and has reached its own four targets.
    let mut seen = String::new();
    while !seen.contains("victim ready") {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(chunk)) => seen.push_str(&chunk),
            _ => panic!("victim never got ready: {seen:?}"),
        }
    }
    assert!(seen.contains("kinds=4"), "the victim's self-check: {seen}");

    let attacker_dir = run_dir();
    // Both the victim's socket path on the host and the attacker's own `/paddock/proxy.sock`
    // (which has no listener: the attacker's run dir has no socket).
    for (id, socket) in [
        (
            "attacker-host-path",
            victim_socket.to_str().unwrap().to_owned(),
        ),
        ("attacker-own-path", "/paddock/proxy.sock".to_owned()),
    ] {
        let arg = format!("{PORT},{socket}");
        let mut attack = spec(id, &attacker_dir, &["paddock-redteam", "cross-run", &arg]);
        attack.slot = 2;
        let o = l.run(attack).await.unwrap();
        assert_eq!(exited(&o), Some(1), "{id} reached the victim: {}", show(&o));
        assert!(
            text(&o.stdout).contains("paddock-redteam cross-run: refused"),
            "{}",
            show(&o)
        );
    }

    let v = victim_run.await.unwrap().unwrap();
    stand_in.abort();
    assert_eq!(exited(&v), Some(0), "the victim's own check: {}", show(&v));
    assert!(v.container_removed);
}
