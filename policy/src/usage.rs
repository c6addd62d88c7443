//! LLM token accounting and per-run budgets: provider `usage` parsing (JSON and SSE) and the budget rules.
//!
//! Formats read: Anthropic Messages (`usage.input_tokens`, `output_tokens`, cache tokens;
//! streaming `message_start` → `message.usage`, `message_delta` → `usage`, cumulative),
//! OpenAI Chat Completions (`usage.prompt_tokens`, `completion_tokens`, `total_tokens`; streaming
//! with `stream_options.include_usage`, the last chunk carries `usage`) and OpenAI Responses
//! (`usage.input_tokens`, `output_tokens`, `total_tokens`; streaming `response.completed` →
//! `response.usage`). Only these top-level places are read, never a `usage` nested in content
//! the model produced.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::{Host, HostPattern};

/// Tokens of one response (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    /// Prompt tokens (`input_tokens` / `prompt_tokens`).
    pub input_tokens: u64,
    /// Generated tokens (`output_tokens` / `completion_tokens`).
    pub output_tokens: u64,
    /// Anthropic `cache_creation_input_tokens` (not included in its `input_tokens`).
    pub cache_creation_input_tokens: u64,
    /// Anthropic `cache_read_input_tokens` (not included in its `input_tokens`).
    pub cache_read_input_tokens: u64,
    /// The provider's own `total_tokens`, when it sends one.
    pub total_tokens: u64,
}

impl TokenUsage {
    /// Tokens charged to the budget: the larger of the provider's total and the sum of the parts.
    pub fn total(&self) -> u64 {
        let sum = self
            .input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens);
        sum.max(self.total_tokens)
    }

    /// Field-wise saturating sum (totals over many responses).
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .saturating_add(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .saturating_add(other.cache_read_input_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
    }

    /// Field-wise maximum: streaming counters are cumulative, so a later event never lowers one.
    fn merge_max(&mut self, other: &TokenUsage) {
        self.input_tokens = self.input_tokens.max(other.input_tokens);
        self.output_tokens = self.output_tokens.max(other.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .max(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .max(other.cache_read_input_tokens);
        self.total_tokens = self.total_tokens.max(other.total_tokens);
    }
}

/// Reads a provider `usage` object. `None` if it has none of the known counters.
fn usage_object(v: &Value) -> Option<TokenUsage> {
    let obj = v.as_object()?;
    let field =
        |names: &[&str]| -> Option<u64> { names.iter().find_map(|n| obj.get(*n)?.as_u64()) };
    let input = field(&["input_tokens", "prompt_tokens"]);
    let output = field(&["output_tokens", "completion_tokens"]);
    let cache_creation = field(&["cache_creation_input_tokens"]);
    let cache_read = field(&["cache_read_input_tokens"]);
    let total = field(&["total_tokens"]);
    if input.is_none()
        && output.is_none()
        && cache_creation.is_none()
        && cache_read.is_none()
        && total.is_none()
    {
        return None;
    }
    Some(TokenUsage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cache_creation_input_tokens: cache_creation.unwrap_or(0),
        cache_read_input_tokens: cache_read.unwrap_or(0),
        total_tokens: total.unwrap_or(0),
    })
}

/// The usage of one non-streaming response body (all three formats): the top-level `usage`.
pub fn parse_usage_json(body: &[u8]) -> Option<TokenUsage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    usage_object(v.get("usage")?)
}

/// The usage carried by one SSE event's `data` (already joined), if it is an event that carries
/// one: Anthropic `message_start` / `message_delta`, OpenAI Responses `response.completed`
/// (and `.incomplete` / `.failed`), OpenAI Chat chunks (`chat.completion.chunk` with `usage`).
pub fn parse_usage_event(data: &[u8]) -> Option<TokenUsage> {
    event_usage(data).map(|(u, _)| u)
}

/// The usage of one event, and whether it is the final count of the response (Anthropic
/// `message_delta`, the Chat chunk that carries `usage`, a Responses terminal event) rather than
/// a first estimate (`message_start`, whose output count is 1).
fn event_usage(data: &[u8]) -> Option<(TokenUsage, bool)> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let kind = v.get("type").and_then(Value::as_str);
    match kind {
        Some("message_start") => Some((usage_object(v.get("message")?.get("usage")?)?, false)),
        Some("message_delta") => Some((usage_object(v.get("usage")?)?, true)),
        Some("response.completed" | "response.incomplete" | "response.failed") => {
            Some((usage_object(v.get("response")?.get("usage")?)?, true))
        }
        Some(_) => None,
        None => {
            let chunk = v.get("object").and_then(Value::as_str) == Some("chat.completion.chunk");
            if chunk {
                Some((usage_object(v.get("usage")?)?, true))
            } else {
                None
            }
        }
    }
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON document.
    Json,
    /// `text/event-stream`.
    EventStream,
    /// Anything else: never buffered or parsed, only counted, and charged by the byte estimate.
    Opaque,
}

impl BodyFormat {
    /// From the response `Content-Type` (any case, any parameters): `text/event-stream` is a
    /// stream, `application/json` (or any `+json` type) is JSON, everything else (including an
    /// empty value) is opaque.
    pub fn from_content_type(content_type: &str) -> BodyFormat {
        let media = content_type.split(';').next().unwrap_or("").trim();
        let json_suffix = media.len() > 5
            && media
                .get(media.len() - 5..)
                .is_some_and(|s| s.eq_ignore_ascii_case("+json"));
        if media.eq_ignore_ascii_case("text/event-stream") {
            BodyFormat::EventStream
        } else if media.eq_ignore_ascii_case("application/json") || json_suffix {
            BodyFormat::Json
        } else {
            BodyFormat::Opaque
        }
    }
}

/// Default cap on one SSE line and on one event's data (1 MiB).
pub const DEFAULT_MAX_LINE: usize = 1 << 20;
/// Default cap on a JSON body kept for parsing (1 MiB). Provider responses that carry a usage
/// are far smaller; a bigger body is charged by the byte estimate instead of being held.
pub const DEFAULT_MAX_JSON: usize = 1 << 20;

/// The end result of metering one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageReport {
    /// The usage read, if any event or body carried one.
    pub usage: Option<TokenUsage>,
    /// Something was too long to read (an SSE line or event over the cap, a JSON body over its
    /// cap): the usage may be incomplete.
    pub truncated: bool,
    /// The final count was seen (a JSON body's `usage`, or a stream's closing usage event). A
    /// stream cut short after `message_start` has a usage but is not complete.
    pub complete: bool,
    /// Body bytes seen.
    pub body_bytes: u64,
    /// Request body bytes sent for this response (the prompt), counted by the byte estimate.
    pub request_bytes: u64,
}

impl UsageReport {
    /// Tokens to charge. When the usage is missing, not final, or may be incomplete, charge at
    /// least one token per two bytes of request and response body together (an over-estimate
    /// for every provider's tokenizer), so that neither an unreadable response, a stream the
    /// client hangs up on early, nor a huge prompt whose answer carries no usage runs free.
    pub fn charge(&self) -> u64 {
        let read = self.usage.map_or(0, |u| u.total());
        if self.usage.is_some() && self.complete && !self.truncated {
            read
        } else {
            read.max(self.estimate())
        }
    }

    /// The byte estimate: one token per two bytes of request and response body.
    pub fn estimate(&self) -> u64 {
        self.body_bytes
            .saturating_add(self.request_bytes)
            .div_ceil(2)
    }
}

/// Incremental usage reader for one response body, fed chunks as they stream (any split,
/// including mid-line and between CR and LF). Memory is bounded by the caps: an overlong SSE
/// line or event is dropped (and reported as truncation), not buffered.
#[derive(Clone)]
pub struct UsageMeter {
    format: BodyFormat,
    max_line: usize,
    max_json: usize,
    line: Vec<u8>,
    line_overflow: bool,
    after_cr: bool,
    data: Vec<u8>,
    data_lines: usize,
    event_overflow: bool,
    usage: Option<TokenUsage>,
    complete: bool,
    truncated: bool,
    body_bytes: u64,
}

impl fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Buffers hold unscrubbed response bytes: sizes only.
        f.debug_struct("UsageMeter")
            .field("format", &self.format)
            .field("buffered", &(self.line.len() + self.data.len()))
            .field("usage", &self.usage)
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl UsageMeter {
    /// A meter with the default caps.
    pub fn new(format: BodyFormat) -> UsageMeter {
        UsageMeter::with_limits(format, DEFAULT_MAX_LINE, DEFAULT_MAX_JSON)
    }

    /// A meter with explicit caps (bytes).
    pub fn with_limits(format: BodyFormat, max_line: usize, max_json: usize) -> UsageMeter {
        UsageMeter {
            format,
            max_line,
            max_json,
            line: Vec::new(),
            line_overflow: false,
            after_cr: false,
            data: Vec::new(),
            data_lines: 0,
            event_overflow: false,
            usage: None,
            complete: false,
            truncated: false,
            body_bytes: 0,
        }
    }

    /// Feeds the next body chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.body_bytes = self
            .body_bytes
            .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        match self.format {
            BodyFormat::Json => {
                if self.line_overflow {
                    return;
                }
                if self.line.len() + chunk.len() > self.max_json {
                    self.line_overflow = true;
                    self.truncated = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            BodyFormat::EventStream => {
                for &b in chunk {
                    self.sse_byte(b);
                }
            }
            BodyFormat::Opaque => {}
        }
    }

    /// The usage so far (for a stream still running).
    pub fn current(&self) -> Option<TokenUsage> {
        self.usage
    }

    /// End of the body.
    pub fn finish(self) -> UsageReport {
        self.finish_with_request(0)
    }

    /// End of the body; `request_bytes` is the size of the request body (the prompt) that
    /// produced it, counted in the byte estimate when the usage cannot be read.
    pub fn finish_with_request(mut self, request_bytes: u64) -> UsageReport {
        match self.format {
            BodyFormat::Json => {
                if !self.line_overflow {
                    self.usage = parse_usage_json(&self.line);
                    self.complete = self.usage.is_some();
                }
            }
            BodyFormat::Opaque => {}
            BodyFormat::EventStream => {
                // A last line without its terminator, then a last event without its blank line.
                if !self.line.is_empty() || self.line_overflow {
                    self.end_line();
                }
                self.dispatch();
            }
        }
        UsageReport {
            usage: self.usage,
            complete: self.complete,
            truncated: self.truncated,
            body_bytes: self.body_bytes,
            request_bytes,
        }
    }

    fn sse_byte(&mut self, b: u8) {
        if self.after_cr {
            self.after_cr = false;
            if b == b'\n' {
                return; // the LF of a CRLF
            }
        }
        match b {
            b'\n' => self.end_line(),
            b'\r' => {
                self.end_line();
                self.after_cr = true;
            }
            _ => {
                if self.line.len() < self.max_line {
                    self.line.push(b);
                } else {
                    self.line_overflow = true;
                }
            }
        }
    }

    fn end_line(&mut self) {
        if self.line_overflow {
            // Overlong line: drop it and the event it belongs to.
            self.line_overflow = false;
            self.line.clear();
            self.event_overflow = true;
            self.truncated = true;
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(0) => return, // comment
            Some(k) => {
                let v = &line[k + 1..];
                (&line[..k], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            if self.event_overflow {
                return;
            }
            if self.data.len() + value.len() + 1 > self.max_line {
                self.event_overflow = true;
                self.truncated = true;
                self.data.clear();
                return;
            }
            if self.data_lines > 0 {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.data_lines += 1;
        }
        // Keep the line's allocation for the next one.
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self) {
        if !self.event_overflow
            && self.data_lines > 0
            && let Some((u, last)) = event_usage(&self.data)
        {
            self.usage
                .get_or_insert_with(TokenUsage::default)
                .merge_max(&u);
            self.complete |= last;
        }
        self.data.clear();
        self.data_lines = 0;
        self.event_overflow = false;
    }
}

/// A run's budget. `None` means unlimited.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// Requests admitted (any host).
    pub max_requests: Option<u64>,
    /// Bytes up and down (any host).
    pub max_bytes: Option<u64>,
    /// Tokens charged (only requests to `token_hosts` are judged by it).
    pub max_tokens: Option<u64>,
    /// The LLM hosts whose responses are metered for tokens.
    pub token_hosts: Vec<HostPattern>,
}

/// The budget as configured (control channel or TOML), before its host patterns are parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Requests admitted (any host); absent: unlimited.
    pub max_requests: Option<u64>,
    /// Bytes up and down (any host); absent: unlimited.
    pub max_bytes: Option<u64>,
    /// Tokens charged on `token_hosts`; absent: unlimited.
    pub max_tokens: Option<u64>,
    /// Host patterns of the LLM hosts (`api.anthropic.test`, `*.openai.test`).
    pub token_hosts: Vec<String>,
}

/// A budget entry that does not parse. Names the key and index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget.token_hosts[{index}]: {problem}")]
pub struct BudgetConfigError {
    /// Index in `token_hosts`.
    pub index: usize,
    /// Why it was refused.
    pub problem: String,
}

impl BudgetConfig {
    /// Parses the host patterns. A token budget without any token host is refused: it would
    /// silently meter nothing.
    pub fn compile(&self) -> Result<Budget, BudgetConfigError> {
        let token_hosts = self
            .token_hosts
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                HostPattern::parse(raw).map_err(|e| BudgetConfigError {
                    index,
                    problem: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.max_tokens.is_some() && token_hosts.is_empty() {
            return Err(BudgetConfigError {
                index: 0,
                problem: "max_tokens is set but no token host is listed".into(),
            });
        }
        Ok(Budget {
            max_requests: self.max_requests,
            max_bytes: self.max_bytes,
            max_tokens: self.max_tokens,
            token_hosts,
        })
    }
}

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRule {
    /// The run's request budget is used up.
    #[error("the run's request budget is used up")]
    Requests,
    /// The run's byte budget is used up.
    #[error("the run's byte budget is used up")]
    Bytes,
    /// The run's token budget is used up (requests to LLM hosts only).
    #[error("the run's token budget is used up")]
    Tokens,
}

impl BudgetRule {
    /// Stable snake_case name for 403 bodies and audit lines.
    pub fn name(&self) -> &'static str {
        match self {
            BudgetRule::Requests => "budget_requests",
            BudgetRule::Bytes => "budget_bytes",
            BudgetRule::Tokens => "budget_tokens",
        }
    }
}

/// A run's totals, for its run record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BudgetTotals {
    /// Requests admitted.
    pub requests: u64,
    /// Bytes up and down.
    pub bytes: u64,
    /// Tokens charged.
    pub tokens: u64,
    /// The usage read from providers, summed.
    pub usage: TokenUsage,
}

/// A run's budget and what it has used. Pure: the proxy holds it behind its own lock.
#[derive(Debug, Clone, Default)]
pub struct BudgetState {
    budget: Budget,
    totals: BudgetTotals,
}

impl fmt::Display for BudgetTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} bytes, {} tokens",
            self.requests, self.bytes, self.tokens
        )
    }
}

impl BudgetState {
    /// A fresh state.
    pub fn new(budget: Budget) -> BudgetState {
        BudgetState {
            budget,
            totals: BudgetTotals::default(),
        }
    }

    /// The budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// True when `host`'s responses are metered for tokens.
    pub fn is_token_host(&self, host: &Host) -> bool {
        self.budget.token_hosts.iter().any(|p| p.matches_host(host))
    }

    /// May one more request to `host` start? A budget runs out when it is used up (total ≥
    /// maximum); the request after that is denied. Checked in order: requests, bytes, tokens
    /// (tokens only for token hosts).
    pub fn check(&self, host: &Host) -> Result<(), BudgetRule> {
        let over = |max: Option<u64>, used: u64| max.is_some_and(|m| used >= m);
        if over(self.budget.max_requests, self.totals.requests) {
            return Err(BudgetRule::Requests);
        }
        if over(self.budget.max_bytes, self.totals.bytes) {
            return Err(BudgetRule::Bytes);
        }
        if self.is_token_host(host) && over(self.budget.max_tokens, self.totals.tokens) {
            return Err(BudgetRule::Tokens);
        }
        Ok(())
    }

    /// [`BudgetState::check`], and on success counts the request (call once per admitted request).
    pub fn admit(&mut self, host: &Host) -> Result<(), BudgetRule> {
        self.check(host)?;
        self.totals.requests = self.totals.requests.saturating_add(1);
        Ok(())
    }

    /// Counts bytes sent or received (call as they flow).
    pub fn record_bytes(&mut self, bytes: u64) {
        self.totals.bytes = self.totals.bytes.saturating_add(bytes);
    }

    /// Charges one metered response of a token host (see [`UsageReport::charge`]).
    pub fn record_usage(&mut self, report: &UsageReport) {
        self.totals.tokens = self.totals.tokens.saturating_add(report.charge());
        if let Some(u) = &report.usage {
            self.totals.usage.add(u);
        }
    }

    /// Records one finished exchange: its bytes, and for a metered token-host response its usage.
    pub fn record(&mut self, bytes: u64, usage: Option<&UsageReport>) {
        self.record_bytes(bytes);
        if let Some(report) = usage {
            self.record_usage(report);
        }
    }

    /// What the run has used.
    pub fn totals(&self) -> BudgetTotals {
        self.totals
    }
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
