use super::*;

const ANTHROPIC_JSON: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi \"usage\": {\"input_tokens\": 999999}"}],"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":7}}"#;
const CHAT_JSON: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"x"}}],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25,"prompt_tokens_details":{"cached_tokens":10}}}"#;
const RESPONSES_JSON: &str = r#"{"id":"resp_1","object":"response","output":[],"usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":0},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":38}}"#;

fn anthropic_sse(crlf: bool) -> String {
    let s = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"{\\\"usage\\\":{\\\"output_tokens\\\":99999}}\"}}\n\
\n\
: a comment line\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\
\n";
    if crlf {
        s.replace('\n', "\r\n")
    } else {
        s.to_string()
    }
}

const CHAT_SSE: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":2,\"total_tokens\":42}}\n\n\
data: [DONE]\n\n";

const RESPONSES_SSE: &str = "event: response.created\n\
data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n\
event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":60,\"output_tokens\":9,\"total_tokens\":69}}}\n\n";

fn meter_all(format: BodyFormat, body: &[u8], chunk: usize) -> UsageReport {
    let mut m = UsageMeter::new(format);
    for c in body.chunks(chunk.max(1)) {
        m.push(c);
    }
    m.finish()
}

#[test]
fn non_streaming_formats() {
    let a = parse_usage_json(ANTHROPIC_JSON.as_bytes()).unwrap();
    assert_eq!((a.input_tokens, a.output_tokens), (12, 7));
    assert_eq!(
        (a.cache_creation_input_tokens, a.cache_read_input_tokens),
        (100, 50)
    );
    assert_eq!(a.total(), 169);
    let c = parse_usage_json(CHAT_JSON.as_bytes()).unwrap();
    assert_eq!((c.input_tokens, c.output_tokens, c.total()), (20, 5, 25));
    let r = parse_usage_json(RESPONSES_JSON.as_bytes()).unwrap();
    assert_eq!((r.input_tokens, r.output_tokens, r.total()), (30, 8, 38));
    // Neighbours: no usage, usage nested in content, not JSON.
    assert_eq!(
        parse_usage_json(br#"{"type":"error","error":{"type":"overloaded_error"}}"#),
        None
    );
    assert_eq!(
        parse_usage_json(br#"{"content":{"usage":{"input_tokens":5}}}"#),
        None
    );
    assert_eq!(parse_usage_json(b"<html>"), None);
    assert_eq!(parse_usage_json(br#"{"usage":{"input_tokens":-5}}"#), None);
}

#[test]
fn streaming_formats_in_every_chunking() {
    for crlf in [false, true] {
        let body = anthropic_sse(crlf);
        for chunk in [1, 2, 3, 7, 64, body.len()] {
            let r = meter_all(BodyFormat::EventStream, body.as_bytes(), chunk);
            let u = r.usage.unwrap();
            assert_eq!(
                (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
                (25, 15, 3),
                "chunk {chunk}"
            );
            assert_eq!(r.charge(), 43);
            assert!(!r.truncated);
        }
    }
    for chunk in [1, 5, 4096] {
        let r = meter_all(BodyFormat::EventStream, CHAT_SSE.as_bytes(), chunk);
        assert_eq!(r.usage.unwrap().total(), 42);
        let r = meter_all(BodyFormat::EventStream, RESPONSES_SSE.as_bytes(), chunk);
        assert_eq!(r.usage.unwrap().total(), 69);
    }
    // Bare CR line endings, and a last event without its blank line.
    let cr = anthropic_sse(false).replace('\n', "\r");
    assert_eq!(
        meter_all(BodyFormat::EventStream, cr.as_bytes(), 3)
            .usage
            .unwrap()
            .output_tokens,
        15
    );
    let cut = RESPONSES_SSE.trim_end();
    assert_eq!(
        meter_all(BodyFormat::EventStream, cut.as_bytes(), 9)
            .usage
            .unwrap()
            .total(),
        69
    );
}

#[test]
fn a_stream_cut_after_message_start_is_charged_by_its_bytes() {
    // The client hangs up after reading part of the output: no message_delta, so the output
    // count is unknown; the byte estimate applies.
    let body = anthropic_sse(false);
    let cut = &body[..body.find("event: message_delta").unwrap()];
    let r = meter_all(BodyFormat::EventStream, cut.as_bytes(), 16);
    assert_eq!(r.usage.unwrap().output_tokens, 1);
    assert!(!r.complete);
    assert_eq!(r.charge(), u64::try_from(cut.len()).unwrap().div_ceil(2));
    // The whole stream is complete and charged exactly.
    let r = meter_all(BodyFormat::EventStream, body.as_bytes(), 16);
    assert!(r.complete);
    assert_eq!(r.charge(), 43);
}

#[test]
fn json_body_in_chunks() {
    for chunk in [1, 13, 10_000] {
        let r = meter_all(BodyFormat::Json, ANTHROPIC_JSON.as_bytes(), chunk);
        assert_eq!(r.usage.unwrap().total(), 169);
        assert_eq!(r.charge(), 169);
    }
}

#[test]
fn stream_without_usage_chat_needs_include_usage() {
    // Without stream_options.include_usage, no chunk carries usage: charged from the bytes.
    let body = "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"abcd\"}}]}\n\ndata: [DONE]\n\n";
    let r = meter_all(BodyFormat::EventStream, body.as_bytes(), 4);
    assert_eq!(r.usage, None);
    assert_eq!(r.charge(), u64::try_from(body.len()).unwrap().div_ceil(2));
}

#[test]
fn overlong_lines_are_dropped_not_buffered() {
    let mut m = UsageMeter::with_limits(BodyFormat::EventStream, 256, 1024);
    let big = format!(
        "data: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":5}},\"pad\":\"{}\"}}\n\n",
        "x".repeat(10_000)
    );
    m.push(big.as_bytes());
    assert!(
        m.line.capacity() <= 1024,
        "line buffer grew to {}",
        m.line.capacity()
    );
    m.push(b"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n");
    let r = m.finish();
    assert!(r.truncated);
    assert_eq!(r.usage.unwrap().output_tokens, 9);
    // Truncated: charged at least the byte estimate.
    assert!(r.charge() >= u64::try_from(big.len()).unwrap() / 2);
    // A JSON body over its cap.
    let mut m = UsageMeter::with_limits(BodyFormat::Json, 256, 64);
    m.push(CHAT_JSON.as_bytes());
    let r = m.finish();
    assert!(r.truncated && r.usage.is_none());
    assert!(r.charge() > 0);
}

#[test]
fn multi_line_data_is_joined() {
    let body = "data: {\"type\":\"message_delta\",\ndata: \"usage\":{\"output_tokens\":4}}\n\n";
    assert_eq!(
        meter_all(BodyFormat::EventStream, body.as_bytes(), 5)
            .usage
            .unwrap()
            .output_tokens,
        4
    );
}

#[test]
fn content_type_selects_the_format() {
    assert_eq!(
        BodyFormat::from_content_type("text/event-stream; charset=utf-8"),
        BodyFormat::EventStream
    );
    assert_eq!(
        BodyFormat::from_content_type("Text/Event-Stream"),
        BodyFormat::EventStream
    );
    assert_eq!(
        BodyFormat::from_content_type("application/json"),
        BodyFormat::Json
    );
    assert_eq!(
        BodyFormat::from_content_type("Application/JSON; charset=utf-8"),
        BodyFormat::Json
    );
    assert_eq!(
        BodyFormat::from_content_type("application/problem+json"),
        BodyFormat::Json
    );
    // Anything else is never buffered as JSON.
    for other in [
        "",
        "text/html",
        "application/octet-stream",
        "+json",
        "text/plain",
    ] {
        assert_eq!(
            BodyFormat::from_content_type(other),
            BodyFormat::Opaque,
            "{other:?}"
        );
    }
}

#[test]
fn an_opaque_body_is_counted_not_buffered() {
    let mut m = UsageMeter::new(BodyFormat::Opaque);
    let chunk = vec![b'{'; 64 << 10];
    for _ in 0..64 {
        m.push(&chunk);
    }
    assert!(format!("{m:?}").contains("buffered: 0"), "{m:?}");
    let r = m.finish();
    assert_eq!(r.usage, None);
    assert_eq!(r.charge(), (64 << 10) * 64 / 2);
}

#[test]
fn json_over_one_mib_is_dropped_and_charged_by_the_estimate() {
    assert_eq!(DEFAULT_MAX_JSON, 1 << 20);
    // A usage at the very end of a body just over the cap is not read: the body was dropped
    // at the cap, and the bytes are charged instead.
    let pad = "x".repeat(DEFAULT_MAX_JSON);
    let body = format!(r#"{{"pad":"{pad}","usage":{{"input_tokens":1,"output_tokens":1}}}}"#);
    let mut m = UsageMeter::new(BodyFormat::Json);
    for c in body.as_bytes().chunks(64 << 10) {
        m.push(c);
    }
    assert!(format!("{m:?}").contains("buffered: 0"), "{m:?}");
    let r = m.finish();
    assert!(r.truncated);
    assert_eq!(r.charge(), u64::try_from(body.len()).unwrap().div_ceil(2));
    // The neighbour: a body under the cap is read exactly.
    let r = meter_all(BodyFormat::Json, ANTHROPIC_JSON.as_bytes(), 7);
    assert_eq!(r.charge(), 169);
}

#[test]
fn the_estimate_counts_the_prompt_when_the_usage_is_missing() {
    // A 1 MB prompt answered by a stream without any usage event.
    let prompt = 1_000_000u64;
    let answer = b"data: {\"type\":\"content_block_delta\"}\n\n";
    let mut m = UsageMeter::new(BodyFormat::EventStream);
    m.push(answer);
    let r = m.finish_with_request(prompt);
    let answer_len = u64::try_from(answer.len()).unwrap();
    assert_eq!(r.charge(), (prompt + answer_len).div_ceil(2));
    assert!(r.charge() >= prompt / 2);
    // The neighbour: a complete usage is charged exactly, whatever the prompt's size.
    let mut m = UsageMeter::new(BodyFormat::Json);
    m.push(ANTHROPIC_JSON.as_bytes());
    assert_eq!(m.finish_with_request(prompt).charge(), 169);
    let mut m = UsageMeter::new(BodyFormat::EventStream);
    m.push(anthropic_sse(false).as_bytes());
    assert_eq!(m.finish_with_request(prompt).charge(), 43);
}

fn llm() -> Host {
    Host::parse("api.anthropic.test").unwrap()
}
fn other() -> Host {
    Host::parse("pypi.test").unwrap()
}

fn budget(requests: Option<u64>, bytes: Option<u64>, tokens: Option<u64>) -> BudgetState {
    BudgetState::new(Budget {
        max_requests: requests,
        max_bytes: bytes,
        max_tokens: tokens,
        token_hosts: vec![HostPattern::parse("api.anthropic.test").unwrap()],
    })
}

#[test]
fn request_budget_trips_after_the_last_allowed_request() {
    let mut b = budget(Some(2), None, None);
    assert_eq!(b.admit(&other()), Ok(()));
    assert_eq!(b.admit(&llm()), Ok(()));
    assert_eq!(b.check(&other()), Err(BudgetRule::Requests));
    assert_eq!(b.admit(&llm()), Err(BudgetRule::Requests));
    assert_eq!(b.totals().requests, 2);
    assert_eq!(BudgetRule::Requests.name(), "budget_requests");
}

#[test]
fn byte_budget_trips_when_used_up() {
    let mut b = budget(None, Some(1000), None);
    b.record_bytes(999);
    assert_eq!(b.check(&other()), Ok(()));
    b.record_bytes(1);
    assert_eq!(b.check(&other()), Err(BudgetRule::Bytes));
    assert_eq!(BudgetRule::Bytes.name(), "budget_bytes");
}

#[test]
fn token_budget_applies_to_token_hosts_only() {
    let mut b = budget(None, None, Some(100));
    let r = meter_all(BodyFormat::Json, ANTHROPIC_JSON.as_bytes(), 50); // 169 tokens
    assert_eq!(b.check(&llm()), Ok(()));
    b.record_usage(&r);
    assert_eq!(b.check(&llm()), Err(BudgetRule::Tokens));
    assert_eq!(
        b.check(&other()),
        Ok(()),
        "a non-LLM host is not judged by tokens"
    );
    assert_eq!(b.totals().tokens, 169);
    assert_eq!(b.totals().usage.cache_creation_input_tokens, 100);
    assert_eq!(BudgetRule::Tokens.name(), "budget_tokens");
    // Both provider formats trip it, streaming too.
    for body in [CHAT_SSE, RESPONSES_SSE] {
        let mut b = budget(None, None, Some(40));
        b.record_usage(&meter_all(BodyFormat::EventStream, body.as_bytes(), 7));
        assert_eq!(b.check(&llm()), Err(BudgetRule::Tokens));
    }
    let mut b = budget(None, None, Some(43));
    b.record_usage(&meter_all(
        BodyFormat::EventStream,
        anthropic_sse(true).as_bytes(),
        7,
    ));
    assert_eq!(b.check(&llm()), Err(BudgetRule::Tokens));
    let mut b = budget(None, None, Some(44));
    b.record_usage(&meter_all(
        BodyFormat::EventStream,
        anthropic_sse(true).as_bytes(),
        7,
    ));
    assert_eq!(b.check(&llm()), Ok(()));
}

#[test]
fn unlimited_and_zero_budgets() {
    let b = budget(None, None, None);
    assert_eq!(b.check(&llm()), Ok(()));
    let b = budget(Some(0), None, None);
    assert_eq!(b.check(&other()), Err(BudgetRule::Requests));
    let mut b = budget(Some(5), Some(100), Some(10));
    let report = meter_all(BodyFormat::Json, CHAT_JSON.as_bytes(), 8); // 25 tokens
    b.record(60, Some(&report));
    assert_eq!((b.totals().bytes, b.totals().tokens), (60, 25));
    b.record(40, None);
    assert_eq!(b.check(&other()), Err(BudgetRule::Bytes));
    let mut b = budget(None, Some(u64::MAX), None);
    b.record_bytes(u64::MAX);
    b.record_bytes(5);
    assert_eq!(b.totals().bytes, u64::MAX);
}

#[test]
fn budget_config_compiles_or_names_the_entry() {
    let c: BudgetConfig = serde_json::from_str(
        r#"{"max_requests":10,"max_tokens":1000,"token_hosts":["api.anthropic.test","*.openai.test"]}"#,
    )
    .unwrap();
    let b = c.compile().unwrap();
    assert_eq!(b.max_requests, Some(10));
    assert_eq!(b.max_bytes, None);
    let st = BudgetState::new(b);
    assert!(st.is_token_host(&Host::parse("api.openai.test").unwrap()));
    assert!(!st.is_token_host(&Host::parse("openai.test").unwrap()));
    let bad = BudgetConfig {
        token_hosts: vec!["ok.test".into(), "bad host".into()],
        ..BudgetConfig::default()
    };
    assert_eq!(bad.compile().unwrap_err().index, 1);
    assert!(
        bad.compile()
            .unwrap_err()
            .to_string()
            .starts_with("budget.token_hosts[1]: ")
    );
    let no_hosts = BudgetConfig {
        max_tokens: Some(5),
        ..BudgetConfig::default()
    };
    assert!(no_hosts.compile().is_err());
    assert!(serde_json::from_str::<BudgetConfig>(r#"{"max_token":5}"#).is_err());
}
