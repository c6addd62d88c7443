use super::*;

const NOW: u64 = 1_800_000_000;
const SECRET: &str = "sk-ant-api03-REALSECRETvalue0123456789";
const GH_SECRET: &str = "ghp_RealGithubToken0123456789abcdefABCD";

fn handle(n: u8) -> String {
    generate_handle(&[n; HANDLE_RANDOM_BYTES])
}

fn set() -> HandleSet {
    HandleSet::new(vec![
        HandleSpec {
            handle: handle(1),
            secret: SecretValue::new(SECRET),
            hosts: vec![HostPattern::parse("api.anthropic.test").unwrap()],
            headers: vec!["x-api-key".into(), "authorization".into()],
            expires_at_unix: NOW + 3600,
        },
        HandleSpec {
            handle: handle(2),
            secret: SecretValue::new(GH_SECRET),
            hosts: vec![HostPattern::parse("*.github.test").unwrap()],
            headers: vec!["authorization".into()],
            expires_at_unix: NOW + 60,
        },
    ])
    .unwrap()
}

fn host(name: &str) -> Host {
    Host::parse(name).unwrap()
}

fn decide(
    set: &HandleSet,
    host_name: &str,
    headers: &[(&str, &[u8])],
    target: &str,
    body: &[u8],
    now: u64,
) -> BrokerDecision {
    let h = host(host_name);
    set.decide(&BrokerRequest {
        host: &h,
        headers,
        path_and_query: target,
        body_prefix: body,
        now_unix: now,
    })
}

fn rewrites(d: BrokerDecision) -> Vec<HeaderRewrite> {
    match d {
        BrokerDecision::Rewrite(r) => r,
        BrokerDecision::Deny(rule) => panic!("denied: {}", rule.name()),
    }
}

#[test]
fn generated_handles_have_the_documented_shape() {
    let h = handle(0xAB);
    assert!(h.starts_with("pdk_h_"));
    assert_eq!(h.len(), 6 + 52);
    assert!(is_handle_shaped(&h));
    assert!(h[6..].bytes().all(|b| BASE32.contains(&b)));
    assert_ne!(handle(1), handle(2));
    // The scrubber recognises the same shape.
    assert_eq!(crate::scrub::scrub(&h), "[REDACTED:paddock_handle]");
    assert!(!is_handle_shaped("pdk_h_short"));
    assert!(!is_handle_shaped(&format!("x{h}")));
    assert!(!is_handle_shaped(&format!("{h} ")));
}

#[test]
fn handle_in_allowed_header_to_in_scope_host_is_swapped() {
    let s = set();
    let bearer = format!("Bearer {}", handle(1));
    let r = rewrites(decide(
        &s,
        "api.anthropic.test",
        &[
            ("Content-Type", b"application/json"),
            ("Authorization", bearer.as_bytes()),
        ],
        "/v1/messages",
        br#"{"model":"m"}"#,
        NOW,
    ));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].index, 1);
    assert_eq!(r[0].name, "authorization");
    assert_eq!(r[0].value(), format!("Bearer {SECRET}").as_bytes());
    // Debug never prints the secret.
    assert!(!format!("{r:?}").contains("REALSECRET"));
    // No handle at all: forwarded unchanged.
    assert!(
        rewrites(decide(
            &s,
            "api.anthropic.test",
            &[("accept", b"*/*")],
            "/",
            b"",
            NOW
        ))
        .is_empty()
    );
}

#[test]
fn wrong_host_is_denied_next_to_the_right_one() {
    let s = set();
    let v = handle(1);
    let headers: &[(&str, &[u8])] = &[("x-api-key", v.as_bytes())];
    assert!(
        matches!(decide(&s, "api.anthropic.test", headers, "/", b"", NOW), BrokerDecision::Rewrite(r) if r.len() == 1)
    );
    for other in [
        "evil.test",
        "anthropic.test",
        "api.anthropic.test.evil.test",
        "127.0.0.1",
    ] {
        assert_eq!(
            decide(&s, other, headers, "/", b"", NOW),
            BrokerDecision::Deny(BrokerRule::HandleWrongHost),
            "{other}"
        );
    }
    // Wildcard scope: sub-domains yes, apex no.
    let gh = format!("token {}", handle(2));
    let gh_headers: &[(&str, &[u8])] = &[("authorization", gh.as_bytes())];
    assert!(matches!(
        decide(&s, "api.github.test", gh_headers, "/", b"", NOW),
        BrokerDecision::Rewrite(_)
    ));
    assert_eq!(
        decide(&s, "github.test", gh_headers, "/", b"", NOW),
        BrokerDecision::Deny(BrokerRule::HandleWrongHost)
    );
}

#[test]
fn wrong_header_is_denied() {
    let s = set();
    let v = handle(2); // allowed only in authorization
    for name in ["x-api-key", "cookie", "x-forwarded-for", "user-agent"] {
        assert_eq!(
            decide(
                &s,
                "api.github.test",
                &[(name, v.as_bytes())],
                "/",
                b"",
                NOW
            ),
            BrokerDecision::Deny(BrokerRule::HandleWrongHeader),
            "{name}"
        );
    }
    // A header *name* carrying the handle.
    let name = format!("x-{v}");
    assert_eq!(
        decide(
            &s,
            "api.github.test",
            &[(name.as_str(), b"1")],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleWrongHeader)
    );
    // Percent- or JSON-encoded inside an allowed header: cannot be swapped in place.
    let enc = format!("Bearer {}", v.replace('_', "%5F"));
    assert_eq!(
        decide(
            &s,
            "api.github.test",
            &[("authorization", enc.as_bytes())],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleWrongHeader)
    );
    let esc = format!("Bearer {}", v.replace('_', "\\u005f"));
    assert_eq!(
        decide(
            &s,
            "api.github.test",
            &[("authorization", esc.as_bytes())],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleWrongHeader)
    );
    // Header names are compared case-insensitively: "AUTHORIZATION" is allowed.
    assert!(matches!(
        decide(&s, "api.github.test", &[("AUTHORIZATION", v.as_bytes())], "/", b"", NOW),
        BrokerDecision::Rewrite(r) if r.len() == 1
    ));
}

#[test]
fn handle_in_url_is_denied_in_any_encoding() {
    let s = set();
    let v = handle(1);
    let targets = [
        format!("/v1/messages?key={v}"),
        format!("/{v}/x"),
        format!("/q?k={}", v.replace('_', "%5f")),
        format!("/q?k={}", v.replace('_', "%255F")),
        format!("/q?k=%70%64%6B%5F%68%5F{}", &v[6..]),
    ];
    for t in &targets {
        assert_eq!(
            decide(&s, "api.anthropic.test", &[], t, b"", NOW),
            BrokerDecision::Deny(BrokerRule::HandleInUrl),
            "{t}"
        );
    }
    // Neighbour: the prefix alone or a too-short body is not a handle.
    assert!(matches!(
        decide(&s, "api.anthropic.test", &[], "/docs/pdk_h_/abc", b"", NOW),
        BrokerDecision::Rewrite(_)
    ));
}

#[test]
fn handle_in_body_is_denied_in_any_encoding() {
    let s = set();
    let v = handle(1);
    let bodies = [
        format!("{{\"key\":\"{v}\"}}"),
        format!("key={}", v.replace('_', "%5F")),
        format!("{{\"key\":\"{}\"}}", v.replace('_', "\\u005F")),
        format!("glued{v}glued"),
        v.to_uppercase(),
    ];
    for b in &bodies {
        assert_eq!(
            decide(&s, "api.anthropic.test", &[], "/", b.as_bytes(), NOW),
            BrokerDecision::Deny(BrokerRule::HandleInBody),
            "{b}"
        );
    }
    assert!(matches!(
        decide(
            &s,
            "api.anthropic.test",
            &[],
            "/",
            b"{\"text\":\"pdk_h_ is our prefix\"}",
            NOW
        ),
        BrokerDecision::Rewrite(_)
    ));
}

#[test]
fn expired_handle_is_denied_at_the_expiry_second() {
    let s = set();
    let v = handle(2);
    let headers: &[(&str, &[u8])] = &[("authorization", v.as_bytes())];
    assert!(matches!(
        decide(&s, "api.github.test", headers, "/", b"", NOW + 59),
        BrokerDecision::Rewrite(_)
    ));
    assert_eq!(
        decide(&s, "api.github.test", headers, "/", b"", NOW + 60),
        BrokerDecision::Deny(BrokerRule::HandleExpired)
    );
}

#[test]
fn unknown_or_case_changed_handles_are_denied() {
    let s = set();
    let foreign = handle(9); // another run's handle
    assert_eq!(
        decide(
            &s,
            "api.anthropic.test",
            &[("authorization", foreign.as_bytes())],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleUnknown)
    );
    let upper = handle(1).to_uppercase();
    assert_eq!(
        decide(
            &s,
            "api.anthropic.test",
            &[("authorization", upper.as_bytes())],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleUnknown)
    );
    // A real handle with extra characters glued on is not that handle.
    let glued = format!("{}x", handle(1));
    assert_eq!(
        decide(
            &s,
            "api.anthropic.test",
            &[("authorization", glued.as_bytes())],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleUnknown)
    );
    // An empty set still refuses handle-shaped strings.
    let empty = HandleSet::default();
    assert_eq!(
        decide(
            &empty,
            "api.anthropic.test",
            &[("authorization", foreign.as_bytes())],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleUnknown)
    );
}

#[test]
fn one_bad_use_denies_the_whole_request() {
    let s = set();
    let good = format!("Bearer {}", handle(1));
    let bad = handle(1);
    assert_eq!(
        decide(
            &s,
            "api.anthropic.test",
            &[
                ("authorization", good.as_bytes()),
                ("cookie", bad.as_bytes())
            ],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::HandleWrongHeader)
    );
}

#[test]
fn real_secret_in_the_request_is_denied() {
    let s = set();
    assert_eq!(
        decide(
            &s,
            "api.anthropic.test",
            &[("x-api-key", SECRET.as_bytes())],
            "/",
            b"",
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::SecretInRequest)
    );
    assert_eq!(
        decide(
            &s,
            "evil.test",
            &[],
            "/",
            format!("leak={GH_SECRET}").as_bytes(),
            NOW
        ),
        BrokerDecision::Deny(BrokerRule::SecretInRequest)
    );
    assert_eq!(
        decide(&s, "evil.test", &[], &format!("/?q={GH_SECRET}"), b"", NOW),
        BrokerDecision::Deny(BrokerRule::SecretInRequest)
    );
}

#[test]
fn multiple_occurrences_in_one_header_are_all_swapped() {
    let s = set();
    let v = format!("{0},{0}", handle(1));
    let r = rewrites(decide(
        &s,
        "api.anthropic.test",
        &[("x-api-key", v.as_bytes())],
        "/",
        b"",
        NOW,
    ));
    assert_eq!(r[0].value(), format!("{SECRET},{SECRET}").as_bytes());
}

#[test]
fn registration_fails_closed() {
    let base = || HandleSpec {
        handle: handle(1),
        secret: SecretValue::new(SECRET),
        hosts: vec![HostPattern::parse("api.anthropic.test").unwrap()],
        headers: vec!["authorization".into()],
        expires_at_unix: NOW,
    };
    assert!(HandleSet::new(vec![base()]).is_ok());
    let mut bad = base();
    bad.handle = "pdk_h_tooshort".into();
    assert_eq!(
        HandleSet::new(vec![bad]).unwrap_err(),
        BrokerError::HandleMalformed { index: 0 }
    );
    assert_eq!(
        HandleSet::new(vec![base(), base()]).unwrap_err(),
        BrokerError::DuplicateHandle { index: 1 }
    );
    let mut bad = base();
    bad.hosts.clear();
    assert_eq!(
        HandleSet::new(vec![bad]).unwrap_err(),
        BrokerError::NoHosts { index: 0 }
    );
    let mut bad = base();
    bad.headers.clear();
    assert_eq!(
        HandleSet::new(vec![bad]).unwrap_err(),
        BrokerError::NoHeaders { index: 0 }
    );
    for name in ["Authorization", "host", "content-length", "bad header", ""] {
        let mut bad = base();
        bad.headers = vec![name.into()];
        assert!(
            matches!(HandleSet::new(vec![bad]), Err(BrokerError::Header { .. })),
            "{name:?}"
        );
    }
    for secret in ["abc\r\nX-Evil: 1 and more", "has\0nul-inside-it"] {
        let mut bad = base();
        bad.secret = SecretValue::new(secret);
        let err = HandleSet::new(vec![bad]).unwrap_err();
        assert!(matches!(err, BrokerError::Secret { .. }));
        assert!(!err.to_string().contains("Evil"));
    }
    let mut bad = base();
    bad.secret = SecretValue::new("short");
    assert!(matches!(
        HandleSet::new(vec![bad]),
        Err(BrokerError::Scrub(_))
    ));
    // Debug of a spec never shows the secret or the handle body.
    let dbg = format!("{:?}", base());
    assert!(
        !dbg.contains("REALSECRET") && !dbg.contains(&handle(1)[6..]),
        "{dbg}"
    );
}

#[test]
fn body_guard_sees_a_handle_split_across_chunks() {
    let s = set();
    let body = format!("{{\"a\":\"{}\"}}", handle(1));
    for split in 1..body.len() {
        let mut g = s.body_guard();
        let first = g.push(&body.as_bytes()[..split]);
        let second = g.push(&body.as_bytes()[split..]);
        assert_eq!(
            first.and(second),
            Err(BrokerRule::HandleInBody),
            "split {split}"
        );
        // Stays tripped.
        assert_eq!(g.push(b"x"), Err(BrokerRule::HandleInBody));
    }
    let enc = format!("k={}", handle(1).replace('_', "%5F"));
    let mut g = s.body_guard();
    let (a, b) = enc.as_bytes().split_at(20);
    assert_eq!(g.push(a).and(g.push(b)), Err(BrokerRule::HandleInBody));
    // Neighbour: an ordinary large body passes every chunk.
    let mut g = s.body_guard();
    for _ in 0..100 {
        assert_eq!(g.push(&[b'z'; 1000]), Ok(()));
    }
    // A real secret split across chunks.
    let mut g = s.body_guard();
    let (a, b) = GH_SECRET.as_bytes().split_at(10);
    assert_eq!(g.push(a).and(g.push(b)), Err(BrokerRule::SecretInRequest));
}

#[test]
fn body_guard_releases_no_byte_of_a_split_handle() {
    let s = set();
    let h = handle(1);
    let body = format!("{{\"pad\":\"{}\",\"a\":\"{h}\"}}", "p".repeat(300));
    let at = body.find(&h).unwrap();
    for split in 1..body.len() {
        let mut g = s.body_guard();
        let first = g.release(&body.as_bytes()[..split]);
        let second = g.release(&body.as_bytes()[split..]);
        assert_eq!(second, Err(BrokerRule::HandleInBody), "split {split}");
        // Whatever was released before the guard tripped stops short of the handle.
        if let Ok(out) = first {
            assert!(
                out.len() <= at,
                "split {split}: released {} bytes",
                out.len()
            );
        }
        assert_eq!(g.finish(), Err(BrokerRule::HandleInBody));
    }
    // Neighbour: an ordinary body comes out whole, in order, split anywhere; ordinary text is
    // released as it comes, apart from a bounded tail.
    let body = format!("{{\"msg\":\"{}\"}}", "ordinary text ".repeat(100));
    for split in [1, 17, 500, body.len() - 1] {
        let mut g = s.body_guard();
        let mut out = g.release(&body.as_bytes()[..split]).unwrap();
        out.extend(g.release(&body.as_bytes()[split..]).unwrap());
        assert!(g.held() < BODY_CARRY.max(300), "held {}", g.held());
        out.extend(g.finish().unwrap());
        assert_eq!(out, body.as_bytes(), "split {split}");
        assert_eq!(g.held(), 0);
    }
}

#[test]
fn stream_scrubber_masks_secrets_across_every_split() {
    let s = set();
    let body = format!("data: {{\"echo\":\"{SECRET}\"}}\n\ndata: {{\"x\":\"{GH_SECRET}\"}}\n\n");
    let want = "data: {\"echo\":\"[REDACTED:secret]\"}\n\ndata: {\"x\":\"[REDACTED:secret]\"}\n\n";
    for a in 0..body.len() {
        for b in [a, (a + 7).min(body.len()), body.len()] {
            let mut st = s.stream_scrubber();
            let mut out = st.push(&body.as_bytes()[..a]);
            out.extend(st.push(&body.as_bytes()[a..b]));
            out.extend(st.push(&body.as_bytes()[b..]));
            out.extend(st.finish());
            assert_eq!(String::from_utf8(out).unwrap(), want, "split {a}/{b}");
        }
    }
}

#[test]
fn debug_of_stream_state_never_shows_held_bytes() {
    let s = set();
    let mut st = s.stream_scrubber();
    let _ = st.push(&SECRET.as_bytes()[..SECRET.len() - 1]);
    assert!(st.held() > 0);
    assert!(!format!("{st:?}").contains("REALSECRET"));
    let mut g = s.body_guard();
    let _ = g.push(b"ordinary REALSECRETvalue0123 text");
    assert!(!format!("{g:?}").contains("REALSECRET"));
    let mut m = crate::usage::UsageMeter::new(crate::usage::BodyFormat::Json);
    m.push(SECRET.as_bytes());
    assert!(!format!("{m:?}").contains("REALSECRET"));
}

#[test]
fn stream_scrubber_does_not_hold_back_ordinary_text() {
    let s = set();
    let mut st = s.stream_scrubber();
    let chunk = b"event: content_block_delta\ndata: {\"text\":\"hello\"}\n\n";
    assert_eq!(st.push(chunk), chunk.to_vec());
    assert_eq!(st.held(), 0);
    // A tail that could start a secret is held, and released when it turns out not to be one.
    assert_eq!(st.push(b"abc sk-ant-api"), b"abc ".to_vec());
    assert_eq!(st.held(), 10);
    assert_eq!(st.push(b"03-other"), b"sk-ant-api03-other".to_vec());
    assert!(st.finish().is_empty());
    // Without run secrets everything passes straight through.
    let mut none = HandleSet::default().stream_scrubber();
    assert_eq!(none.push(b"sk-ant-api"), b"sk-ant-api".to_vec());
}

#[test]
fn response_header_values_are_scrubbed() {
    let s = set();
    let v = format!("echo {SECRET}");
    assert_eq!(
        s.scrub_response_header(v.as_bytes()).as_ref(),
        b"echo [REDACTED:secret]"
    );
    assert_eq!(s.scrub_response_header(b"fine").as_ref(), b"fine");
}

#[test]
fn rule_names_are_stable() {
    let names: Vec<&str> = [
        BrokerRule::HandleWrongHost,
        BrokerRule::HandleInUrl,
        BrokerRule::HandleInBody,
        BrokerRule::HandleWrongHeader,
        BrokerRule::HandleExpired,
        BrokerRule::HandleUnknown,
        BrokerRule::SecretInRequest,
    ]
    .iter()
    .map(BrokerRule::name)
    .collect();
    assert_eq!(
        names,
        [
            "handle_wrong_host",
            "handle_in_url",
            "handle_in_body",
            "handle_wrong_header",
            "handle_expired",
            "handle_unknown",
            "secret_in_request"
        ]
    );
}
