//! `paddock demo` end to end: the binary's main job on embedded defaults, as a user runs it.

use std::process::Command;

use crate::support::docker_ready;

#[test]
fn paddock_demo_ends_with_a_pushed_branch_in_review_and_prints_the_diff() {
    if !docker_ready() {
        return;
    }
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        crate::support::missing("OpenSSH's sshd (apt-get install openssh-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["demo", "--dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("issue #1: in_review"), "{stdout}");
    assert!(stdout.contains("branch paddock/1-1"), "{stdout}");
    assert!(
        stdout.contains("+    return f\"Hello, {name}!\""),
        "{stdout}"
    );
    assert!(stdout.contains("-    return \"Hello, world\""), "{stdout}");
    assert!(
        stdout.contains("(1 file changed, 1 insertion(+), 1 deletion(-))"),
        "only greet.py changes: {stdout}"
    );
    // The sample project's own test passed inside the sandbox (the agent ran it).
    let db = dir.path().join("paddock.db");
    assert!(db.exists());
}
