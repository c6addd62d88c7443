use super::*;

fn jwt() -> String {
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c".into()
}

/// (kind, a realistic-looking key of that kind).
fn samples() -> Vec<(SecretKind, String)> {
    vec![
        (
            SecretKind::Anthropic,
            format!("sk-ant-api03-{}-{}AA", "a1B2c3D4".repeat(11), "Zz9_"),
        ),
        (SecretKind::OpenAi, format!("sk-{}", "T3BlbkFJ".repeat(6))),
        (SecretKind::OpenAi, format!("sk-proj-{}", "Ab3_xY-9".repeat(20))),
        (SecretKind::OpenAi, format!("sk-svcacct-{}", "q1W2e3R4".repeat(8))),
        (SecretKind::GitHub, format!("ghp_{}", "A1b2C3d4E5f6".repeat(3))),
        (SecretKind::GitHub, format!("gho_{}", "A1b2C3d4E5f6".repeat(3))),
        (SecretKind::GitHub, format!("ghu_{}", "A1b2C3d4E5f6".repeat(3))),
        (SecretKind::GitHub, format!("ghs_{}", "A1b2C3d4E5f6".repeat(3))),
        (SecretKind::GitHub, format!("ghr_{}", "A1b2C3d4E5f6".repeat(3))),
        (
            SecretKind::GitHub,
            format!("github_pat_11ABCDEFG0{}_{}", "a".repeat(12), "Zb9".repeat(20)),
        ),
        (SecretKind::GitLab, "glpat-xYz12AbC34dEf56GhI7".into()),
        (SecretKind::GitLab, "glrt-0123456789abcdefABCDEF".into()),
        (SecretKind::GitLab, "gldt-0123456789abcdefABCDEF".into()),
        (
            SecretKind::Slack,
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx".into(),
        ),
        (SecretKind::Slack, "xoxp-1234567890-abcdefABCDEF".into()),
        (SecretKind::Slack, "xapp-1-A0123BCDE-1234567890-abcdef0123".into()),
        (SecretKind::AwsAccessKeyId, "AKIAIOSFODNN7EXAMPLE".into()),
        (SecretKind::AwsAccessKeyId, "ASIAY34FZKBOKMUTVV7A".into()),
        (SecretKind::Jwt, jwt()),
        (
            SecretKind::PrivateKey,
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c3x\nZm9vYmFy==\n-----END RSA PRIVATE KEY-----".into(),
        ),
        (
            SecretKind::PrivateKey,
            "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n-----END OPENSSH PRIVATE KEY-----".into(),
        ),
        (
            SecretKind::PaddockHandle,
            crate::broker::generate_handle(&[7; 32]),
        ),
    ]
}

#[test]
fn every_sample_is_masked_whole_and_the_rest_is_kept() {
    for (kind, key) in samples() {
        let text = format!("before {key} after");
        let out = scrub(&text);
        assert_eq!(
            out,
            format!("before {} after", kind.mask()),
            "{kind} sample not masked exactly"
        );
        // Inside JSON, after '=' and at the very edges.
        let json = format!("{{\"k\":\"{key}\"}}");
        assert_eq!(scrub(&json), format!("{{\"k\":\"{}\"}}", kind.mask()));
        assert_eq!(scrub(&format!("X={key}")), format!("X={}", kind.mask()));
        assert_eq!(scrub(&key), kind.mask());
    }
}

#[test]
fn neighbours_that_are_not_keys_pass_unchanged() {
    let keep = [
        "sk-short",
        "task-runner-configuration-value-with-many-words",
        "risk-assessment-for-the-quarterly-report-2024",
        "ghp_tooShort123",
        "github_pat_short",
        "glpat-short",
        "global-configuration-settings-file-name",
        "xoxb-123",
        "AKIAIOSFODNN7EXAMPL",    // 15 after the prefix
        "xAKIAIOSFODNN7EXAMPLE",  // glued to a word
        "eyJhbGciOiJIUzI1NiJ9",   // one segment
        "eyJhbGciOiJIUzI1NiJ9.x", // two segments, second too short
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "pdk_h_abcdefghijklmnopqrstuvwxyz23456", // 31 body chars
        "aws_secret_access_key is documented here",
        "aws_secret_access_key=short",
        "Authorization:",
        "Authorization: Bearer",
        "the authorization header",
        "max_tokens: 1024, passwords are hashed, password_hash: x",
        "the password is not logged",
        "[REDACTED:openai] and [REDACTED:authorization]",
    ];
    for text in keep {
        assert_eq!(scrub(text), text, "{text:?} was changed");
    }
}

#[test]
fn credential_header_values_are_masked() {
    let cases = [
        (
            "Authorization: Bearer abc.def-123",
            "Authorization: Bearer [REDACTED:authorization]",
        ),
        (
            "authorization:Basic dXNlcjpwYXNz\r\nHost: x",
            "authorization:Basic [REDACTED:authorization]\r\nHost: x",
        ),
        (
            "Proxy-Authorization: Bearer zzz end",
            "Proxy-Authorization: Bearer [REDACTED:authorization] end",
        ),
        (
            "x-api-key: whatever-1",
            "x-api-key: [REDACTED:authorization]",
        ),
        (
            "PRIVATE-TOKEN: abc",
            "PRIVATE-TOKEN: [REDACTED:authorization]",
        ),
        (
            r#"{"authorization":"Bearer tok1","x":1}"#,
            r#"{"authorization":"Bearer [REDACTED:authorization]","x":1}"#,
        ),
        (
            "Authorization: token ghx",
            "Authorization: token [REDACTED:authorization]",
        ),
        (
            r#"{"Authorization": "Bearer a b"}"#,
            r#"{"Authorization": "Bearer [REDACTED:authorization]"}"#,
        ),
        (
            "password=hunter2 user=bob",
            "password=[REDACTED:credential] user=bob",
        ),
        (
            "GET /x?api-key=abc123&page=2",
            "GET /x?api-key=[REDACTED:authorization]&page=2",
        ),
        (
            r#"{"password": "correct horse battery", "user": "bob"}"#,
            r#"{"password": "[REDACTED:credential]", "user": "bob"}"#,
        ),
        (
            "CLIENT_SECRET='s3cr3t value'",
            "CLIENT_SECRET='[REDACTED:credential]'",
        ),
        (
            "aws_session_token=FwoGZXIvYXdzE",
            "aws_session_token=[REDACTED:credential]",
        ),
        (
            "refresh_token: rt-123",
            "refresh_token: [REDACTED:credential]",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(scrub(input), want, "{input:?}");
        assert_eq!(scrub(want), want, "not idempotent on {want:?}");
    }
}

#[test]
fn aws_secret_in_context_is_masked() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    for (input, want) in [
        (
            format!("aws_secret_access_key = {secret}\n"),
            "aws_secret_access_key = [REDACTED:aws_secret_access_key]\n".to_string(),
        ),
        (
            format!("AWS_SECRET_ACCESS_KEY={secret}"),
            "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_access_key]".into(),
        ),
        (
            format!("{{\"SecretAccessKey\": \"{secret}\"}}"),
            "{\"SecretAccessKey\": \"[REDACTED:aws_secret_access_key]\"}".into(),
        ),
    ] {
        assert_eq!(scrub(&input), want);
    }
    // The same 40 characters without the name stay (they are indistinguishable from base64 data).
    assert_eq!(scrub(secret), secret);
}

#[test]
fn unterminated_private_key_masks_its_body_but_not_the_rest() {
    let text =
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nMore\n. next log line";
    assert_eq!(scrub(text), "[REDACTED:private_key]. next log line");
}

#[test]
fn run_secrets_are_masked_in_every_spelling() {
    let secret = "p4ss/w+rd:\"quoted\"&more";
    let s = Scrubber::new([secret]).unwrap();
    assert_eq!(s.secret_count(), 1);
    let raw = format!("x {secret} y");
    assert_eq!(s.scrub(&raw), "x [REDACTED:secret] y");
    let json = serde_json::to_string(&serde_json::json!({ "v": secret })).unwrap();
    assert_eq!(s.scrub(&json), "{\"v\":\"[REDACTED:secret]\"}");
    let pct = "q=p4ss%2Fw%2Brd%3A%22quoted%22%26more&z=1";
    assert_eq!(s.scrub(pct), "q=[REDACTED:secret]&z=1");
    let pct_lower = "q=p4ss%2fw%2brd%3a%22quoted%22%26more";
    assert_eq!(s.scrub(pct_lower), "q=[REDACTED:secret]");
    // Base64 of "user:" + secret, as in a Basic credential copied into some JSON.
    let b64 = base64_std(format!("user:{secret}").as_bytes());
    let out = s.scrub(&format!("{{\"blob\":\"{b64}\"}}")).into_owned();
    assert!(out.contains("[REDACTED:secret]"), "{out}");
    // The neighbour: a different value of the same length is untouched.
    let other = "p4ss/w+rd:\"quoted\"&m0re!";
    assert_eq!(s.scrub(other), other);
}

#[test]
fn non_ascii_and_form_spellings_are_masked() {
    let secret = "pässwörd 🦀 long";
    let s = Scrubber::new([secret]).unwrap();
    // Python json.dumps (ensure_ascii) spelling, lower-case hex, with a surrogate pair.
    let py = r#"{"v": "p\u00e4ssw\u00f6rd \ud83e\udd80 long"}"#;
    assert_eq!(s.scrub(py), r#"{"v": "[REDACTED:secret]"}"#);
    let form = "v=p%C3%A4ssw%C3%B6rd+%F0%9F%A6%80+long&x=1";
    assert_eq!(s.scrub(form), "v=[REDACTED:secret]&x=1");
    assert_eq!(s.scrub(&format!("raw {secret}.")), "raw [REDACTED:secret].");
    // Matching is ASCII-case-insensitive by design: a case variant is masked too.
    let t = Scrubber::new(["CaseSecret-1"]).unwrap();
    assert_eq!(t.scrub("casesecret-1"), "[REDACTED:secret]");
}

fn base64_std(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(char::from(BASE64_STD[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn short_or_mask_like_secrets_are_refused() {
    assert_eq!(
        Scrubber::new(["1234567"]).unwrap_err(),
        ScrubError::TooShort { index: 0, len: 7 }
    );
    assert_eq!(
        Scrubber::new(["long-enough-secret", ""]).unwrap_err(),
        ScrubError::TooShort { index: 1, len: 0 }
    );
    assert_eq!(
        Scrubber::new(["REDACTED"]).unwrap_err(),
        ScrubError::InsideMask { index: 0 }
    );
    // The neighbour: eight bytes is enough.
    assert!(Scrubber::new(["12345678"]).is_ok());
    // Errors never echo the secret.
    let msg = Scrubber::new(["abc"]).unwrap_err().to_string();
    assert!(!msg.contains("abc"), "{msg}");
}

#[test]
fn debug_never_prints_secrets() {
    let s = Scrubber::new(["super-secret-value"]).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("super"), "{dbg}");
}

#[test]
fn scrubbing_is_idempotent_on_mixed_text() {
    let s = Scrubber::new(["correct-horse-battery"]).unwrap();
    let mut text = String::from("log: ");
    for (_, key) in samples() {
        text.push_str(&key);
        text.push_str(" | Authorization: Bearer correct-horse-battery\n");
    }
    let once = s.scrub(&text).into_owned();
    assert_eq!(s.scrub(&once), once);
    assert!(!once.contains("correct-horse"));
}

#[test]
fn literal_only_scrub_leaves_key_shapes() {
    let s = Scrubber::new(["the-real-secret-1"]).unwrap();
    let body = format!("example {} and the-real-secret-1", samples()[1].1);
    let out = s.scrub_literals(body.as_bytes());
    assert_eq!(
        out.as_ref(),
        format!("example {} and [REDACTED:secret]", samples()[1].1).as_bytes()
    );
}

#[test]
fn pending_suffix_finds_partial_secret_at_the_end() {
    let s = Scrubber::new(["abcdefghij"]).unwrap();
    assert_eq!(s.pending_suffix_start(b"xxxxabc"), 4);
    assert_eq!(s.pending_suffix_start(b"xxxxABCDEFGHI"), 4);
    assert_eq!(s.pending_suffix_start(b"xxxxabx"), 7);
    assert_eq!(Scrubber::default().pending_suffix_start(b"abc"), 3);
}

/// Hostile inputs of 1 MiB: the shape scanner's work stays a small multiple of the length.
#[test]
fn adversarial_inputs_cost_linear_work() {
    const N: usize = 1 << 20;
    let units: &[&str] = &[
        "sk-",
        "sk-ant-",
        "eyJ",
        "eyJa.",
        "eyJaaaaaaaaaaa.b",
        "-----BEGIN",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "authorization:",
        "authorization",
        "aws_secret_access_key=",
        "secret_access_key",
        "pdk_h_",
        "AKIA",
        "ghp_",
        "glpat-",
        "xoxb-",
        "a",
        "-",
    ];
    for unit in units {
        let text = unit.repeat(N / unit.len() + 1);
        let steps = pattern_scan_steps(text.as_bytes());
        let bound = 40 * u64::try_from(text.len()).unwrap();
        assert!(
            steps <= bound,
            "{unit:?}: {steps} steps for {} bytes",
            text.len()
        );
        // And it produces a sane result (the output is not larger than masks allow).
        let _ = scrub(&text);
    }
}
