//! Property tests for the secret scrubber, the credential broker and the usage meter: every key
//! of every kind is masked wherever it sits, the rest of the text is untouched, scrubbing is
//! idempotent and its work is linear; chunk boundaries never change a result.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly by design

use std::sync::{LazyLock, mpsc};
use std::time::Duration;

use paddock_policy::{
    BodyFormat, BrokerDecision, BrokerRequest, BrokerRule, HandleSet, HandleSpec, Host,
    HostPattern, Scrubber, SecretKind, SecretValue, UsageMeter, generate_handle,
    pattern_scan_steps, scrub, scrub_bytes,
};
use proptest::prelude::*;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    }
}

fn chars(set: &'static str, min: usize, max: usize) -> impl Strategy<Value = String> {
    let set: Vec<char> = set.chars().collect();
    proptest::collection::vec(proptest::sample::select(set), min..=max)
        .prop_map(|v| v.into_iter().collect())
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UPPER_ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Text that can neither form a key nor extend one: lower-case letters, digits excluded,
/// spaces, punctuation without `-`, `_`, `:`, `=`; plus some non-ASCII.
fn filler() -> impl Strategy<Value = String> {
    chars("abcdefghijklmnopqrstuvwxyz ,.;!?()\n\té漢🦀", 0, 80)
}

fn key() -> impl Strategy<Value = (SecretKind, String)> {
    prop_oneof![
        chars(TOKEN, 80, 100).prop_map(|b| (SecretKind::Anthropic, format!("sk-ant-api03-{b}"))),
        (
            proptest::sample::select(vec!["sk-", "sk-proj-", "sk-svcacct-", "sk-admin-"]),
            chars(ALNUM, 20, 64)
        )
            .prop_map(|(p, b)| (SecretKind::OpenAi, format!("{p}{b}"))),
        (
            proptest::sample::select(vec!["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
            chars(ALNUM, 36, 36)
        )
            .prop_map(|(p, b)| (SecretKind::GitHub, format!("{p}{b}"))),
        (chars(ALNUM, 22, 22), chars(ALNUM, 59, 59))
            .prop_map(|(a, b)| (SecretKind::GitHub, format!("github_pat_{a}_{b}"))),
        (
            proptest::sample::select(vec!["glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-"]),
            chars(TOKEN, 20, 40)
        )
            .prop_map(|(p, b)| (SecretKind::GitLab, format!("{p}{b}"))),
        (
            proptest::sample::select(vec!["xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "xapp-"]),
            chars("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-", 10, 60)
        )
            .prop_map(|(p, b)| (SecretKind::Slack, format!("{p}{b}"))),
        (
            proptest::sample::select(vec!["AKIA", "ASIA"]),
            chars(UPPER_ALNUM, 16, 16)
        )
            .prop_map(|(p, b)| (SecretKind::AwsAccessKeyId, format!("{p}{b}"))),
        (
            chars(TOKEN, 10, 40),
            chars(TOKEN, 5, 80),
            chars(TOKEN, 0, 60)
        )
            .prop_map(|(a, b, c)| (SecretKind::Jwt, format!("eyJ{a}.eyJ{b}.{c}"))),
        (
            proptest::sample::select(vec!["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "]),
            proptest::collection::vec(chars(B64, 1, 64), 1..6),
            any::<bool>()
        )
            .prop_map(|(label, lines, escaped)| {
                let nl = if escaped { "\\n" } else { "\n" };
                (
                    SecretKind::PrivateKey,
                    format!(
                        "-----BEGIN {label}PRIVATE KEY-----{nl}{}{nl}-----END {label}PRIVATE KEY-----",
                        lines.join(nl)
                    ),
                )
            }),
        any::<[u8; 32]>().prop_map(|r| (SecretKind::PaddockHandle, generate_handle(&r))),
    ]
}

/// Fewer cases for the properties that compile a matcher per case or scan long inputs.
fn heavy_cases() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn every_key_is_masked_and_the_rest_is_unchanged(
        (kind, key) in key(), before in filler(), after in filler()
    ) {
        let text = format!("{before} {key} {after}");
        let want = format!("{before} {} {after}", kind.mask());
        prop_assert_eq!(scrub(&text).into_owned(), want);
    }

    #[test]
    fn keys_in_json_and_assignments_are_masked((kind, key) in key()) {
        let json = serde_json::to_string(&serde_json::json!({ "token": key })).unwrap();
        let out = scrub(&json).into_owned();
        prop_assert!(out.contains(kind.mask()), "{} -> {}", json, out);
        prop_assert!(!out.contains(&key));
        let env = format!("export TOKEN={key}\n");
        prop_assert_eq!(scrub(&env).into_owned(), format!("export TOKEN={}\n", kind.mask()));
    }

}

proptest! {
    #![proptest_config(heavy_cases())]

    #[test]
    fn run_secrets_are_masked_and_the_rest_is_unchanged(
        secret in "[ -~]{8,40}", before in filler(), after in filler()
    ) {
        // The secret must not itself be (part of) a key shape or a mask for the exact-output check.
        prop_assume!(scrub(&secret) == secret.as_str());
        let s = match Scrubber::new([secret.as_str()]) {
            Ok(s) => s,
            Err(_) => return Ok(()), // e.g. a substring of a mask: refused at construction
        };
        let text = format!("{before}\u{1}{secret}\u{1}{after}");
        let out = s.scrub(&text).into_owned();
        prop_assert!(!out.contains(&secret));
        prop_assert!(out.starts_with(&before) || before.is_empty());
        prop_assert!(out.contains("[REDACTED:secret]"));
        // JSON-escaped and percent-encoded spellings too.
        let json = serde_json::to_string(&secret).unwrap();
        prop_assert!(s.scrub(&json).contains("[REDACTED:secret]"), "{}", json);
        let pct: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
        prop_assert!(s.scrub(&pct).contains("[REDACTED:secret]"), "{}", pct);
    }

    #[test]
    fn scrubbing_is_idempotent(text in any::<String>(), (_, key) in key(), secret in "[a-z0-9]{8,20}") {
        let s = match Scrubber::new([secret.as_str()]) {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        for t in [text.clone(), format!("{text}{key}{text}"), format!("Authorization: Bearer {secret} {key}")] {
            let once = s.scrub(&t).into_owned();
            prop_assert_eq!(s.scrub(&once).into_owned(), once.clone());
            let plain = scrub(&t).into_owned();
            prop_assert_eq!(scrub(&plain).into_owned(), plain);
        }
    }

    #[test]
    fn scanner_work_is_linear_on_hostile_mixes(parts in proptest::collection::vec(
        proptest::sample::select(vec![
            "sk-", "sk-ant-", "eyJ", ".", "eyJa", "-----BEGIN ", "PRIVATE KEY-----", "-----END",
            "authorization", ":", "=", " ", "Bearer ", "aws_secret_access_key", "pdk_h_", "AKIA",
            "ghp_", "github_pat_", "glpat-", "xoxb-", "a", "A", "0", "_", "-", "\\n", "\n", "[REDACTED:",
            "password", "client_secret", "\"", "'", "]", "&", "x-api-key", "Basic ", "\\",
        ]), 0..4000)
    ) {
        let text: String = parts.concat();
        let steps = pattern_scan_steps(text.as_bytes());
        prop_assert!(steps <= 40 * u64::try_from(text.len()).unwrap() + 1, "{} steps for {} bytes", steps, text.len());
        let once = scrub(&text).into_owned();
        prop_assert_eq!(scrub(&once).into_owned(), once);
    }

}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = scrub_bytes(&bytes);
        let _ = HANDLE_SET.scrubber().scrub_bytes(&bytes);
    }

    #[test]
    fn stream_scrubber_matches_one_shot_for_every_chunking(
        pieces in proptest::collection::vec(prop_oneof![
            Just("sk-live-REAL-secret-1".to_string()),
            Just("sk-live-REAL-s".to_string()),
            Just("other-secret/with+slash".to_string()),
            Just("other-secret%2Fwith%2Bslash".to_string()),
            "[a-z \\n]{0,20}",
        ], 0..20),
        cuts in proptest::collection::vec(0usize..400, 0..12)
    ) {
        let set = &*HANDLE_SET;
        let body: Vec<u8> = pieces.concat().into_bytes();
        let want = set.scrubber().scrub_literals(&body).into_owned();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
        cuts.sort_unstable();
        let mut st = set.stream_scrubber();
        let mut out = Vec::new();
        let mut pos = 0;
        for c in cuts {
            out.extend(st.push(&body[pos..c]));
            pos = c;
            prop_assert!(st.held() < "other-secret%2Fwith%2Bslash".len());
        }
        out.extend(st.push(&body[pos..]));
        out.extend(st.finish());
        prop_assert_eq!(out, want);
    }

    #[test]
    fn a_handle_outside_its_allowed_headers_is_never_forwarded(
        name in "[a-z][a-z0-9-]{0,20}", prefix in "[ -~]{0,10}", suffix in "[ -~]{0,10}",
        host in proptest::sample::select(vec!["api.anthropic.test", "evil.test", "api.github.test"]),
    ) {
        let set = &*HANDLE_SET;
        let value = format!("{prefix}{}{suffix}", handle());
        let h = Host::parse(host).unwrap();
        let headers = [(name.as_str(), value.as_bytes())];
        let d = set.decide(&BrokerRequest {
            host: &h,
            headers: &headers,
            path_and_query: "/",
            body_prefix: b"",
            now_unix: 10,
        });
        let allowed = (name == "authorization" || name == "x-api-key") && host == "api.anthropic.test";
        match d {
            BrokerDecision::Rewrite(r) => {
                prop_assert!(allowed, "forwarded {} to {}", name, host);
                prop_assert_eq!(r.len(), 1);
                let v = String::from_utf8_lossy(r[0].value()).into_owned();
                prop_assert!(v.contains("sk-live-REAL-secret-1"));
                prop_assert!(!v.contains("pdk_h_"));
                prop_assert!(paddock_policy::find_handle_shapes(r[0].value()).is_empty());
            }
            BrokerDecision::Deny(rule) => {
                // Only a glued-on suffix/prefix (another shape) may turn an allowed use into a denial.
                prop_assert!(!allowed || matches!(rule, BrokerRule::HandleUnknown | BrokerRule::HandleWrongHeader), "{:?}", rule);
            }
        }
    }

    #[test]
    fn broker_and_meter_never_panic_on_arbitrary_input(
        name in "[ -~]{0,12}",
        value in proptest::collection::vec(any::<u8>(), 0..300),
        target in "[ -~]{0,200}",
        body in proptest::collection::vec(any::<u8>(), 0..600),
        now in any::<u64>(),
    ) {
        let set = &*HANDLE_SET;
        let h = Host::parse("api.anthropic.test").unwrap();
        let headers = [(name.as_str(), value.as_slice())];
        let _ = set.decide(&BrokerRequest { host: &h, headers: &headers, path_and_query: &target, body_prefix: &body, now_unix: now });
        let mut g = set.body_guard();
        let _ = g.push(&body);
        for format in [BodyFormat::Json, BodyFormat::EventStream] {
            let mut m = UsageMeter::with_limits(format, 64, 256);
            m.push(&body);
            m.push(&value);
            let _ = m.finish().charge();
        }
    }

    #[test]
    fn usage_meter_is_independent_of_chunking(cuts in proptest::collection::vec(0usize..2000, 0..20)) {
        let body = concat!(
            "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\r\n\r\n",
            "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"x\"}}\r\n\r\n",
            "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\r\n\r\n",
        ).as_bytes();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
        cuts.sort_unstable();
        let mut m = UsageMeter::new(BodyFormat::EventStream);
        let mut pos = 0;
        for c in cuts {
            m.push(&body[pos..c]);
            pos = c;
        }
        m.push(&body[pos..]);
        let u = m.finish().usage.unwrap();
        prop_assert_eq!((u.input_tokens, u.output_tokens), (25, 15));
    }
}

fn handle() -> String {
    generate_handle(&[42; 32])
}

/// Built once: compiling the matchers per proptest case would dominate the run time.
static HANDLE_SET: LazyLock<HandleSet> = LazyLock::new(handle_set);

fn handle_set() -> HandleSet {
    HandleSet::new(vec![
        HandleSpec {
            handle: handle(),
            secret: SecretValue::new("sk-live-REAL-secret-1"),
            hosts: vec![HostPattern::parse("api.anthropic.test").unwrap()],
            headers: vec!["authorization".into(), "x-api-key".into()],
            expires_at_unix: 1_000,
        },
        HandleSpec {
            handle: generate_handle(&[43; 32]),
            secret: SecretValue::new("other-secret/with+slash"),
            hosts: vec![HostPattern::parse("api.github.test").unwrap()],
            headers: vec!["authorization".into()],
            expires_at_unix: 1_000,
        },
    ])
    .unwrap()
}

/// 1 MiB of hostile input through the full scrubber (shapes and run secrets), with a generous
/// timeout as a smoke check; the bound that matters is the step count above.
#[test]
fn one_mebibyte_of_hostile_input_finishes() {
    let units = [
        "sk-",
        "eyJ",
        "-----BEGIN",
        "-----BEGIN RSA PRIVATE KEY-----",
        "authorization:",
        "pdk_h_",
        "aaaaaaa",
        "sk-live-REAL-secre",
    ];
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let set = &*HANDLE_SET;
        for unit in units {
            let text = unit.repeat((1 << 20) / unit.len() + 1);
            let started = std::time::Instant::now();
            let out = set.scrubber().scrub(&text);
            let elapsed = started.elapsed();
            let steps = pattern_scan_steps(text.as_bytes());
            // A figure for the reader, not an assertion on time.
            eprintln!(
                "scrub {unit:?} x {}: {} bytes in {elapsed:?}, {:.2} scanner steps/byte",
                text.len() / unit.len(),
                text.len(),
                steps as f64 / text.len() as f64
            );
            tx.send((unit, out.len(), steps, text.len())).unwrap();
        }
    });
    for _ in units {
        let (unit, _, steps, len) = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a 1 MiB hostile input took over two minutes");
        assert!(
            steps <= 40 * u64::try_from(len).unwrap(),
            "{unit:?}: {steps} steps"
        );
    }
}
