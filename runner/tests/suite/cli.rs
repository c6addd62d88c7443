//! The command line: migrate, user add, apikey create, issue create/list, serve with the contract config.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::TestDb;
use crate::both;

fn paddock(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PADDOCK_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn get(addr: &str, path: &str, key: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((status, out))
}

async fn cli_end_to_end(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("paddock.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ndatabase_url = \"{}\"\nsession_secret = \"k3J9xQ2vL8mN4pR7sT1wY6zA0bC5dE8f\"\n[feedback]\nworkspace = \"default\"\n",
            db.url
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (ok, out, err) = paddock(&["migrate", "--config", c], None, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));
    // user add: password from stdin, workspace created on the fly
    let (ok, out, err) = paddock(
        &[
            "user",
            "add",
            "--config",
            c,
            "--email",
            "Ada@Example.test",
            "--workspace",
            "team",
            "--role",
            "admin",
        ],
        Some("correct horse battery\n"),
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains("workspace team as admin"));
    let (ok, _, err) = paddock(
        &[
            "user",
            "add",
            "--config",
            c,
            "--email",
            "b@example.test",
            "--workspace",
            "team",
            "--role",
            "root",
        ],
        Some("correct horse battery\n"),
        &[],
    );
    assert!(!ok && err.contains("--role"));
    let (ok, _, err) = paddock(
        &[
            "user",
            "add",
            "--config",
            c,
            "--email",
            "c@example.test",
            "--workspace",
            "team",
            "--role",
            "admin",
        ],
        Some("short\n"),
        &[],
    );
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, key, err) = paddock(
        &[
            "apikey",
            "create",
            "--config",
            c,
            "--user",
            "ada@example.test",
            "--name",
            "cli",
        ],
        None,
        &[],
    );
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("pdk_"));
    let (ok, id, err) = paddock(
        &[
            "issue",
            "create",
            "--config",
            c,
            "--workspace",
            "team",
            "--title",
            "from cli",
            "--state",
            "todo",
        ],
        None,
        &[],
    );
    assert!(ok, "{err}");
    let id: i64 = id.trim().parse().unwrap();
    let (ok, list, _) = paddock(
        &["issue", "list", "--config", c, "--workspace", "team"],
        None,
        &[],
    );
    assert!(ok);
    let first: serde_json::Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], id);
    assert_eq!(first["state"], "todo");
    // serve with the contract file
    let mut server = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["serve", "--config", c])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut got = None;
    for _ in 0..100 {
        if let Some(r) = get(&addr, &format!("/api/v1/issues/{id}"), &key).await {
            got = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGTERM: a graceful stop, exit status 0
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(st) = server.try_wait().unwrap() {
            status = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| {
        server.kill().unwrap();
        panic!("server did not stop on SIGTERM")
    });
    assert!(status.success(), "{status}");
    let (status, body) = got.expect("server did not come up");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("from cli"));
    let (ok, out, _) = paddock(&["audit", "verify", "--config", c], None, &[]);
    assert!(ok && out.contains("intact"));
}
both!(cli, cli_end_to_end);

#[test]
fn bad_config_fails_closed_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    std::fs::write(
        &cfg,
        format!("database_url = \"{url}\"\nsession_secret = \"short\"\n"),
    )
    .unwrap();
    let (ok, _, err) = paddock(&["serve", "--config", cfg.to_str().unwrap()], None, &[]);
    assert!(!ok);
    assert!(err.contains("session_secret"), "{err}");
    assert!(
        !err.contains("short\""),
        "the secret itself is not echoed: {err}"
    );
    std::fs::write(&cfg, format!("database_url = \"{url}\"\nsession_secret = \"change-me-change-me-change-me-change-me\"\n")).unwrap();
    let (ok, _, err) = paddock(
        &["serve", "--config", cfg.to_str().unwrap()],
        None,
        &[
            ("PADDOCK_ENV", "production"),
            ("PADDOCK_PUBLIC_URL", "https://p.example"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("session_secret"), "{err}");
    let (ok, _, err) = paddock(
        &["serve", "--config", cfg.to_str().unwrap()],
        None,
        &[
            ("PADDOCK_SESSION_SECRET", "k3J9xQ2vL8mN4pR7sT1wY6zA0bC5dE8f"),
            ("PADDOCK_HTTP_CORS_ORIGINS", "*"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("http.cors_origins"), "{err}");
}
