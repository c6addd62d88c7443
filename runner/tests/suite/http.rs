//! A real Paddock server on loopback per test, and a raw HTTP/1.1 client that can send anything.

use std::collections::HashMap;
use std::net::SocketAddr;

use paddock::auth::secrets;
use paddock::config::Config;
use paddock::lifecycle::Role;
use paddock::store::Store;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::TestDb;

pub const SECRET: &str = "k3J9xQ2vL8mN4pR7sT1wY6zA0bC5dE8f-test";

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub db: TestDb,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

/// Starts a server on 127.0.0.1 over `db`, with config overrides from `env`.
pub async fn start(db: TestDb, env: &[(&str, &str)]) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("PADDOCK_PUBLIC_URL".into(), format!("http://{addr}"));
    map.insert("PADDOCK_DATABASE_URL".into(), db.url.clone());
    map.insert("PADDOCK_SESSION_SECRET".into(), SECRET.into());
    map.insert("PADDOCK_LISTEN".into(), "127.0.0.1:0".into());
    for (k, v) in env {
        map.insert((*k).into(), (*v).into());
    }
    let text = "[feedback]\nworkspace = \"public\"\n";
    let config = Config::from_toml(text, &map).unwrap();
    let state = paddock::server::prepare(config).await.unwrap();
    let task = tokio::spawn(async move {
        paddock::server::serve_on(listener, state, std::future::pending())
            .await
            .unwrap();
    });
    Server { addr, db, task }
}

impl Server {
    pub fn store(&self) -> &Store {
        &self.db.store
    }

    /// A user with `role` in workspace `ws` and a personal API key; returns (user id, key).
    pub async fn user(&self, email: &str, ws: &str, role: Role) -> (i64, String) {
        let s = self.store();
        let w = s.ensure_workspace(ws).await.unwrap();
        let u = match s.user_by_email(email).await.unwrap() {
            Some(u) => u,
            None => s
                .create_user(
                    email,
                    &secrets::hash_password("correct horse battery").unwrap(),
                )
                .await
                .unwrap(),
        };
        s.set_membership(w.id, u.id, role).await.unwrap();
        let (key, hash, prefix) = secrets::new_api_key();
        s.insert_api_key(u.id, w.id, "user", "test", &hash, &prefix, None)
            .await
            .unwrap();
        (u.id, key)
    }

    /// A runner key named `name` in `ws` (owned by an admin).
    pub async fn runner_key(&self, ws: &str, name: &str) -> String {
        let (uid, _) = self
            .user(&format!("admin-{name}@example.test"), ws, Role::Admin)
            .await;
        let w = self.store().workspace_by_name(ws).await.unwrap().unwrap();
        let (key, hash, prefix) = secrets::new_api_key();
        self.store()
            .insert_api_key(uid, w.id, "runner", name, &hash, &prefix, None)
            .await
            .unwrap();
        key
    }

    /// Sends raw bytes and reads the whole response (the request should say `Connection: close`).
    pub async fn raw(&self, bytes: &[u8]) -> Resp {
        raw_from(None, self.addr, bytes).await
    }

    /// A request with optional API key and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut h: Vec<(&str, String)> = Vec::new();
        if let Some(k) = key {
            h.push(("X-API-Key", k.to_string()));
        }
        let b = body.map(|b| b.to_string());
        if b.is_some() {
            h.push(("Content-Type", "application/json".into()));
        }
        self.send(method, path, &h, b.as_deref().map(str::as_bytes))
            .await
    }

    /// A request with arbitrary headers and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Resp {
        self.send_from(None, method, path, headers, body).await
    }

    /// Like `send`, from a chosen loopback source address.
    pub async fn send_from(
        &self,
        src: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or(b"");
        if !body.is_empty() || method != "GET" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        raw_from(src, self.addr, &bytes).await
    }
}

async fn raw_from(src: Option<&str>, addr: SocketAddr, bytes: &[u8]) -> Resp {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(s) = src {
        sock.bind(format!("{s}:0").parse().unwrap()).unwrap();
    }
    let mut stream = sock.connect(addr).await.unwrap();
    // The server may answer (413) and close before reading everything we send.
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    parse(&out)
}

fn parse(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// Declares one API test per backend: `api_both!(name, async_fn)` where `async_fn(Server)`; the
/// server gets `env` overrides.
#[macro_export]
macro_rules! api_both {
    ($name:ident, $body:path) => {
        $crate::api_both!($name, $body, &[]);
    };
    ($name:ident, $body:path, $env:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = $crate::suite::support::fresh($crate::suite::support::Kind::Sqlite)
                    .await
                    .unwrap();
                $body($crate::suite::http::start(db, $env).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) =
                    $crate::suite::support::fresh($crate::suite::support::Kind::Postgres).await
                {
                    $body($crate::suite::http::start(db, $env).await).await;
                }
            }
        }
    };
}
