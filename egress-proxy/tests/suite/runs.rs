//! Per-run identity: the control socket, isolation between runs, and budgets.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::runs_support::{RunEnv, intercepted, request};

const REAL: &str = "sk-ant-api03-ISOLATEDSECRET0123456789abcdef";

#[tokio::test]
async fn the_control_socket_refuses_bad_input_without_echoing_secrets() {
    let env = RunEnv::start().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.control), 0o600);
    let secret = "sk-ant-api03-NEVERECHOED0123456789";
    let cases = [
        ("not json at all".to_owned(), "bad_request"),
        (
            r#"{"version":2,"op":{"kind":"list"}}"#.to_owned(),
            "unsupported_version",
        ),
        (
            format!(r#"{{"version":1,"op":{{"kind":"list"}},"{secret}":1}}"#),
            "bad_request",
        ),
        (
            format!(r#"{{"version":1,"op":{{"kind":"revoke","run":["{secret}"]}}}}"#),
            "bad_request",
        ),
        (
            r#"{"version":1,"op":{"kind":"register","run":"../escape","ttl_secs":60}}"#.to_owned(),
            "bad_run_id",
        ),
        (
            r#"{"version":1,"op":{"kind":"register","run":"Upper","ttl_secs":60}}"#.to_owned(),
            "bad_run_id",
        ),
        (
            r#"{"version":1,"op":{"kind":"register","run":"r-ttl","ttl_secs":0}}"#.to_owned(),
            "bad_request",
        ),
        (
            format!(
                r#"{{"version":1,"op":{{"kind":"register","run":"r-cred","ttl_secs":60,"credentials":[{{"name":"K","secret":"{secret}\r\nx-evil: 1","hosts":["api.anthropic.test"],"headers":["x-api-key"]}}]}}}}"#
            ),
            "bad_credential",
        ),
        (
            format!(
                r#"{{"version":1,"op":{{"kind":"register","run":"r-cred2","ttl_secs":60,"credentials":[{{"name":"K","secret":"{secret}","hosts":["api.anthropic.test"],"headers":["host"]}}]}}}}"#
            ),
            "bad_credential",
        ),
        (
            r#"{"version":1,"op":{"kind":"register","run":"r-pol","ttl_secs":60,"policy":{"allow_ranges":["10.0.0.0/33"]}}}"#.to_owned(),
            "bad_policy",
        ),
        (
            r#"{"version":1,"op":{"kind":"register","run":"r-bud","ttl_secs":60,"budget":{"max_tokens":5}}}"#.to_owned(),
            "bad_budget",
        ),
        (
            r#"{"version":1,"op":{"kind":"totals","run":"nope"}}"#.to_owned(),
            "unknown_run",
        ),
    ];
    for (line, code) in &cases {
        let resp = env.control(line).await;
        assert_eq!(resp["status"], "error", "{line} → {resp}");
        assert_eq!(resp["code"], *code, "{line} → {resp}");
        assert!(!resp.to_string().contains("NEVERECHOED"), "{resp}");
    }
    // No directory was left by any refused registration.
    let left: Vec<_> = std::fs::read_dir(&env.runs).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    // An overlong line is refused and the connection closed.
    let mut s = UnixStream::connect(&env.control).await.unwrap();
    let long = vec![b'x'; (1 << 20) + 10];
    let _ = s.write_all(&long).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(String::from_utf8_lossy(&out).contains("line_too_long"));

    // The neighbour: a valid registration works, several requests share one connection, and a
    // second registration of the same id is refused.
    let run = env.register("r-ok", serde_json::json!({})).await;
    assert_eq!(mode(run.socket.parent().unwrap()), 0o755);
    assert_eq!(mode(&run.socket), 0o666);
    let ca = std::fs::read_to_string(run.socket.parent().unwrap().join("ca.pem")).unwrap();
    assert_eq!(ca, run.ca_pem);
    let dup = env
        .control(r#"{"version":1,"op":{"kind":"register","run":"r-ok","ttl_secs":60}}"#)
        .await;
    assert_eq!(dup["code"], "run_exists");
    let mut s = UnixStream::connect(&env.control).await.unwrap();
    s.write_all(
        b"{\"version\":1,\"op\":{\"kind\":\"list\"}}\n{\"version\":1,\"op\":{\"kind\":\"totals\",\"run\":\"r-ok\"}}\n",
    )
    .await
    .unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["runs"], serde_json::json!(["r-ok"]));
    assert_eq!(lines[1]["status"], "totals");
    env.stop().await;
}

#[tokio::test]
async fn one_runs_socket_never_gets_another_runs_policy_or_handles() {
    let env = RunEnv::start().await;
    let a = env
        .register(
            "run-a",
            serde_json::json!({"credentials": [{"name": "K", "secret": REAL,
                "hosts": ["api.anthropic.test"], "headers": ["x-api-key"]}]}),
        )
        .await;
    let mut strict = env.policy();
    strict["approved_write_hosts"] = serde_json::json!([]);
    let b = env
        .register("run-b", serde_json::json!({"policy": strict}))
        .await;
    let handle_a = a.handle("K");
    let port = env.https.port();
    let host = format!("api.anthropic.test:{port}");
    // Through A: the write is approved and A's handle is swapped.
    let mut ca = intercepted(&a.socket, "api.anthropic.test", port, &a.ca_pem)
        .await
        .unwrap();
    let got = request(
        &mut ca,
        "POST",
        &host,
        "/",
        &[("x-api-key", &handle_a)],
        "x",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        env.https.seen().last().unwrap().header("x-api-key"),
        Some(REAL)
    );
    let before = env.https.seen().len();
    // Through B: B's policy (no writes) and no handles: A's handle is unknown there.
    let mut cb = intercepted(&b.socket, "api.anthropic.test", port, &b.ca_pem)
        .await
        .unwrap();
    let got = request(&mut cb, "POST", &host, "/", &[], "x").await;
    assert_eq!(got.rule(), "write_not_approved");
    let mut cb = intercepted(&b.socket, "api.anthropic.test", port, &b.ca_pem)
        .await
        .unwrap();
    let got = request(&mut cb, "GET", &host, "/", &[("x-api-key", &handle_a)], "").await;
    assert_eq!(got.status, 403);
    assert_eq!(got.rule(), "handle_unknown");
    assert_eq!(env.https.seen().len(), before, "B sent nothing upstream");
    // B's socket presents B's CA: a client trusting only A's CA fails there.
    assert!(
        intercepted(&b.socket, "api.anthropic.test", port, &a.ca_pem)
            .await
            .is_err()
    );
    assert_ne!(a.ca_pem, b.ca_pem);
    // Revoking B leaves A serving.
    let r = env
        .control(r#"{"version":1,"op":{"kind":"revoke","run":"run-b"}}"#)
        .await;
    assert_eq!(r["status"], "revoked");
    assert_eq!(r["totals"]["denied"], 2, "{r}");
    let got = request(&mut ca, "GET", &host, "/", &[], "").await;
    assert_eq!(got.status, 200);
    env.stop().await;
}

async fn token_budget_trips(path: &str, stream: bool, expect_in: u64, expect_out: u64) {
    let env = RunEnv::start().await;
    let mut policy = env.policy();
    policy["approved_write_hosts"] = serde_json::json!(["api.anthropic.test", "api.openai.test"]);
    let budget = serde_json::json!({"policy": policy, "budget": {"max_tokens": 100,
        "token_hosts": ["api.anthropic.test", "api.openai.test"]}});
    let run = env.register("r-budget", budget).await;
    let port = env.https.port();
    let llm = if path.contains("chat") {
        "api.openai.test"
    } else {
        "api.anthropic.test"
    };
    let host = format!("{llm}:{port}");
    let target = if stream {
        format!("{path}?stream=1")
    } else {
        path.to_owned()
    };
    let mut c = intercepted(&run.socket, llm, port, &run.ca_pem)
        .await
        .unwrap();
    let got = request(&mut c, "POST", &host, &target, &[], "{}").await;
    assert_eq!(got.status, 200, "{got:?}");
    // The charge is made when the response ends; give the body's end a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = request(&mut c, "POST", &host, &target, &[], "{}").await;
    assert_eq!(got.status, 403, "{got:?}");
    assert_eq!(got.rule(), "budget_tokens");
    // The neighbour: a host that is not metered is still served.
    let mut o = intercepted(&run.socket, "other.test", port, &run.ca_pem)
        .await
        .unwrap();
    let got = request(&mut o, "GET", &format!("other.test:{port}"), "/", &[], "").await;
    assert_eq!(got.status, 200);
    let t = env
        .control(r#"{"version":1,"op":{"kind":"totals","run":"r-budget"}}"#)
        .await;
    let totals = &t["totals"];
    assert_eq!(totals["input_tokens"], expect_in, "{t}");
    assert_eq!(totals["output_tokens"], expect_out, "{t}");
    assert_eq!(totals["budget_exhausted"], "budget_tokens", "{t}");
    env.stop().await;
}

#[tokio::test]
async fn token_budget_trips_on_anthropic_json() {
    token_budget_trips("/v1/messages", false, 100, 50).await;
}

#[tokio::test]
async fn token_budget_trips_on_anthropic_stream() {
    token_budget_trips("/v1/messages", true, 120, 80).await;
}

#[tokio::test]
async fn token_budget_trips_on_openai_json() {
    token_budget_trips("/v1/chat/completions", false, 70, 40).await;
}

#[tokio::test]
async fn token_budget_trips_on_openai_stream() {
    token_budget_trips("/v1/chat/completions", true, 90, 60).await;
}

#[tokio::test]
async fn request_budget_trips_with_a_named_rule() {
    let env = RunEnv::start().await;
    let run = env
        .register("r-req", serde_json::json!({"budget": {"max_requests": 2}}))
        .await;
    let port = env.https.port();
    let host = format!("other.test:{port}");
    let mut c = intercepted(&run.socket, "other.test", port, &run.ca_pem)
        .await
        .unwrap();
    assert_eq!(
        request(&mut c, "GET", &host, "/1", &[], "").await.status,
        200
    );
    assert_eq!(
        request(&mut c, "GET", &host, "/2", &[], "").await.status,
        200
    );
    let got = request(&mut c, "GET", &host, "/3", &[], "").await;
    assert_eq!(got.status, 403);
    assert_eq!(got.rule(), "budget_requests");
    env.stop().await;
}

async fn run_tokens(env: &RunEnv, run: &str) -> u64 {
    // The charge is made when the response ends; give the body's end a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = env
        .control(&format!(
            r#"{{"version":1,"op":{{"kind":"totals","run":"{run}"}}}}"#
        ))
        .await;
    t["totals"]["tokens"].as_u64().unwrap()
}

/// Every response of a token host is metered: a large GET is counted without being buffered and
/// charged by its bytes, while a POST (or a GET overridden into one) answered with a usage is
/// charged exactly that usage.
#[tokio::test]
async fn only_writes_to_token_hosts_are_metered() {
    let env = RunEnv::start().await;
    let budget = serde_json::json!({"budget": {"max_tokens": 1_000_000_000u64,
        "token_hosts": ["api.anthropic.test"]}});
    let run = env.register("r-meter", budget).await;
    let port = env.https.port();
    let host = format!("api.anthropic.test:{port}");
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    // A GET (some APIs deliver earlier work's tokens through one) is counted, never buffered,
    // and charged by the byte estimate: one token per two bytes.
    let got = request(&mut c, "GET", &host, "/big?n=3000000", &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), 3_000_000);
    assert_eq!(
        run_tokens(&env, "r-meter").await,
        1_500_000,
        "a GET by its bytes"
    );
    // The neighbour: a POST whose JSON answer carries a usage is charged exactly that.
    let got = request(&mut c, "POST", &host, "/v1/messages", &[], "{}").await;
    assert_eq!(got.status, 200);
    assert_eq!(run_tokens(&env, "r-meter").await, 1_500_000 + 150);
    // A GET that asks the server to treat it as a POST is read for its usage like one.
    let over = [("x-http-method-override", "POST")];
    let got = request(&mut c, "GET", &host, "/v1/messages", &over, "").await;
    assert_eq!(got.status, 200);
    assert_eq!(run_tokens(&env, "r-meter").await, 1_500_000 + 300);
    // A POST answered with JSON over the 1 MiB cap is charged by its bytes, not read.
    let got = request(&mut c, "POST", &host, "/big?n=2000000", &[], "{}").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        run_tokens(&env, "r-meter").await,
        1_500_000 + 300 + 1_000_001
    );
    env.stop().await;
}

/// A huge prompt answered without any usage is charged by the bytes of the prompt as well as
/// those of the answer; an answer with a usage is charged exactly its usage.
#[tokio::test]
async fn a_prompt_without_usage_in_its_answer_is_charged_by_its_bytes() {
    let env = RunEnv::start().await;
    let budget = serde_json::json!({"budget": {"max_tokens": 1_000_000_000u64,
        "token_hosts": ["api.anthropic.test"]}});
    let run = env.register("r-prompt", budget).await;
    let port = env.https.port();
    let host = format!("api.anthropic.test:{port}");
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let prompt = format!(r#"{{"prompt":"{}"}}"#, "p".repeat(1_000_000));
    let got = request(&mut c, "POST", &host, "/v1/no-usage", &[], &prompt).await;
    assert_eq!(got.status, 200);
    let answer = u64::try_from(got.body.len()).unwrap();
    let sent = u64::try_from(prompt.len()).unwrap();
    let tokens = run_tokens(&env, "r-prompt").await;
    assert_eq!(tokens, (sent + answer).div_ceil(2));
    assert!(tokens >= 500_000, "{tokens}");
    // The neighbour: the same prompt answered with a usage is charged exactly that usage.
    let got = request(&mut c, "POST", &host, "/v1/messages?stream=1", &[], &prompt).await;
    assert_eq!(got.status, 200);
    assert_eq!(run_tokens(&env, "r-prompt").await, tokens + 200);
    env.stop().await;
}

/// A run flooding denials (reconnecting before each connection's share runs out) gets its
/// denial lines rate-limited: every denial is counted, but only a burst of lines is written, so
/// it cannot rotate other runs' lines out of the log. The neighbours: another run's denial line
/// is written, and the flooding run's security event is written whatever its rate.
#[tokio::test]
async fn a_run_flooding_denials_cannot_flood_the_audit_log() {
    let env = RunEnv::start().await;
    let flood = env
        .register(
            "r-flood",
            serde_json::json!({"credentials": [{"name": "K", "secret": REAL,
                "hosts": ["api.anthropic.test"], "headers": ["x-api-key"]}]}),
        )
        .await;
    let quiet = env.register("r-quiet", serde_json::json!({})).await;
    let port = env.https.port();
    let host = format!("other.test:{port}");
    let denials = 150;
    let mut sent = 0;
    while sent < denials {
        let mut c = intercepted(&flood.socket, "other.test", port, &flood.ca_pem)
            .await
            .unwrap();
        for _ in 0..30 {
            if sent == denials {
                break;
            }
            // No body: a refused request with a body closes its connection.
            let got = request(&mut c, "POST", &host, "/w", &[], "").await;
            assert_eq!(got.rule(), "write_not_approved");
            sent += 1;
        }
    }
    // A security event of the flooding run, and a denial of another run.
    let mut c = intercepted(&flood.socket, "other.test", port, &flood.ca_pem)
        .await
        .unwrap();
    let got = request(
        &mut c,
        "GET",
        &host,
        "/",
        &[("x-api-key", &flood.handle("K"))],
        "",
    )
    .await;
    assert_eq!(got.rule(), "handle_wrong_host");
    let mut c = intercepted(&quiet.socket, "other.test", port, &quiet.ca_pem)
        .await
        .unwrap();
    let got = request(&mut c, "POST", &host, "/quiet", &[], "").await;
    assert_eq!(got.rule(), "write_not_approved");

    let totals = env
        .control(r#"{"version":1,"op":{"kind":"totals","run":"r-flood"}}"#)
        .await;
    assert_eq!(totals["totals"]["denied"], denials + 1, "{totals}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit = env.audit_text();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let flood_denials: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["run"] == "r-flood" && l["rule"] == "write_not_approved")
        .collect();
    let written = u64::try_from(flood_denials.len()).unwrap();
    assert!(
        (64..denials).contains(&written),
        "{written} of {denials} denial lines written"
    );
    let suppressed = totals["totals"]["audit_suppressed"].as_u64().unwrap();
    assert_eq!(written + suppressed, denials, "{totals}");
    // A line written after muted ones says how many went before it, when any did.
    let reported: u64 = flood_denials
        .iter()
        .filter_map(|l| l["suppressed"].as_u64())
        .sum();
    assert!(reported <= suppressed, "{reported} > {suppressed}");
    assert!(
        lines
            .iter()
            .any(|l| l["run"] == "r-flood" && l["security_event"] == true),
        "the security event is written"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["run"] == "r-quiet" && l["rule"] == "write_not_approved"),
        "another run's denial is written"
    );
    env.stop().await;
}
