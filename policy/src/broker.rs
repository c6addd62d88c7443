//! The credential broker's pure rules: handle format, where a handle may appear, and the header swap.
//!
//! A handle is an opaque string (`pdk_h_` + 52 base32 characters) that stands for one real
//! secret of one run. The proxy asks [`HandleSet::decide`] about every request: a handle in an
//! allowed header of a request to an in-scope host, before its expiry, is swapped for the secret;
//! a handle anywhere else (another host, another header, the URL, the body), an expired one, or a
//! handle-shaped string the run does not own denies the whole request. Responses are scrubbed of
//! the real secrets with [`StreamScrubber`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::host::{Host, HostPattern};
use crate::scrub::{ScrubError, Scrubber, is_word};

/// Every handle starts with this.
pub const HANDLE_PREFIX: &str = "pdk_h_";
/// A string is handle-shaped when [`HANDLE_PREFIX`] (any case) is followed by at least this many
/// letters, digits or `_`.
pub const HANDLE_MIN_BODY: usize = 32;
/// Random bytes consumed by [`generate_handle`] (256 bits).
pub const HANDLE_RANDOM_BYTES: usize = 32;

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A handle from 32 random bytes: `pdk_h_` + 52 lower-case RFC 4648 base32 characters, no
/// padding. The caller supplies the randomness (a CSPRNG); this crate has no entropy source.
pub fn generate_handle(random: &[u8; HANDLE_RANDOM_BYTES]) -> String {
    let mut out = String::with_capacity(HANDLE_PREFIX.len() + 52);
    out.push_str(HANDLE_PREFIX);
    let mut acc: u16 = 0;
    let mut bits = 0u32;
    for &b in random {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[usize::from((acc >> bits) & 0x1f)]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[usize::from((acc << (5 - bits)) & 0x1f)]));
    }
    out
}

/// True when all of `s` is handle-shaped (case-insensitive prefix).
pub fn is_handle_shaped(s: &str) -> bool {
    matches!(find_handle_shapes(s.as_bytes()).as_slice(), [r] if *r == (0..s.len()))
}

/// Every maximal handle-shaped span in `bytes` (prefix in any case, glued to other text or not).
/// Linear: a failed candidate skips the run it scanned.
pub fn find_handle_shapes(bytes: &[u8]) -> Vec<Range<usize>> {
    let prefix = HANDLE_PREFIX.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + prefix.len() <= bytes.len() {
        if !bytes[i..i + prefix.len()].eq_ignore_ascii_case(prefix) {
            i += 1;
            continue;
        }
        let mut e = i;
        while e < bytes.len() && is_word(bytes[e]) {
            e += 1;
        }
        if e - i >= prefix.len() + HANDLE_MIN_BODY {
            out.push(i..e);
        }
        i = e.max(i + 1);
    }
    out
}

/// A real secret. `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> SecretValue {
        SecretValue(secret.into())
    }

    /// The secret itself; only for the bytes that go upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([hidden])")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// One handle of a run: what it stands for and where it may be used.
#[derive(Clone)]
pub struct HandleSpec {
    /// The handle the sandbox holds (handle-shaped; see [`generate_handle`]).
    pub handle: String,
    /// The real secret it stands for.
    pub secret: SecretValue,
    /// Hosts the handle may be sent to.
    pub hosts: Vec<HostPattern>,
    /// Lower-case header names the handle may appear in (e.g. `authorization`, `x-api-key`).
    pub headers: Vec<String>,
    /// The handle is dead from this Unix time on.
    pub expires_at_unix: u64,
}

impl fmt::Debug for HandleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleSpec")
            .field("handle", &format_args!("{HANDLE_PREFIX}…"))
            .field("secret", &self.secret)
            .field("hosts", &self.hosts)
            .field("headers", &self.headers)
            .field("expires_at_unix", &self.expires_at_unix)
            .finish()
    }
}

/// Why a run's handles were refused at registration. Never echoes a handle or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The handle is not `pdk_h_` + at least 32 letters, digits or `_`.
    #[error(
        "handle #{index} is not of the form {HANDLE_PREFIX} followed by at least {HANDLE_MIN_BODY} letters, digits or '_'"
    )]
    HandleMalformed {
        /// Position in the list.
        index: usize,
    },
    /// Two entries share a handle.
    #[error("handle #{index} repeats an earlier handle")]
    DuplicateHandle {
        /// Position in the list.
        index: usize,
    },
    /// The handle lists no host, so it could never be used.
    #[error("handle #{index} names no host")]
    NoHosts {
        /// Position in the list.
        index: usize,
    },
    /// The handle lists no header, so it could never be used.
    #[error("handle #{index} names no header")]
    NoHeaders {
        /// Position in the list.
        index: usize,
    },
    /// A header name that is not a lower-case HTTP token, or one that frames the message.
    #[error("handle #{index}: header {name:?} {problem}")]
    Header {
        /// Position in the list.
        index: usize,
        /// The header name (truncated to 64 bytes).
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The secret cannot be put in a header value safely.
    #[error("handle #{index}: the secret {problem}")]
    Secret {
        /// Position in the list.
        index: usize,
        /// What is wrong with it (never the secret).
        problem: &'static str,
    },
    /// The response scrubber refused a secret (e.g. too short).
    #[error(transparent)]
    Scrub(#[from] ScrubError),
}

/// Headers that frame or route the message: a secret there is nonsense or an injection.
const FORBIDDEN_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "expect",
];

/// The broker rules. Names are stable snake_case, like the egress [`crate::Rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BrokerRule {
    /// A handle of the run sent to a host outside its scope.
    #[error("a credential handle was sent to a host it is not valid for")]
    HandleWrongHost,
    /// A handle in the request target (path or query, raw or percent-encoded).
    #[error("a credential handle appeared in the URL")]
    HandleInUrl,
    /// A handle in the request body (raw, percent-encoded or JSON-escaped).
    #[error("a credential handle appeared in the request body")]
    HandleInBody,
    /// A handle in a header it may not be used in, or encoded inside a header value.
    #[error("a credential handle appeared in a header it may not be used in")]
    HandleWrongHeader,
    /// A handle of the run past its expiry.
    #[error("a credential handle has expired")]
    HandleExpired,
    /// A handle-shaped string this run does not own (another run's handle, or a forgery).
    #[error("an unknown credential handle was sent")]
    HandleUnknown,
    /// One of the run's real secrets appeared in the request (the sandbox must never hold it).
    #[error("a real credential appeared in the request")]
    SecretInRequest,
}

impl BrokerRule {
    /// Stable snake_case name for 403 bodies and audit lines.
    pub fn name(&self) -> &'static str {
        match self {
            BrokerRule::HandleWrongHost => "handle_wrong_host",
            BrokerRule::HandleInUrl => "handle_in_url",
            BrokerRule::HandleInBody => "handle_in_body",
            BrokerRule::HandleWrongHeader => "handle_wrong_header",
            BrokerRule::HandleExpired => "handle_expired",
            BrokerRule::HandleUnknown => "handle_unknown",
            BrokerRule::SecretInRequest => "secret_in_request",
        }
    }
}

/// What the broker needs to know about one outgoing request. `Debug` shows header names and
/// sizes, not values.
#[derive(Clone, Copy)]
pub struct BrokerRequest<'a> {
    /// The request's destination (as judged by the egress policy).
    pub host: &'a Host,
    /// Every header, in order, name as received, raw value bytes.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The request target's path and query (origin-form), as received.
    pub path_and_query: &'a str,
    /// The start of the body (as much as the proxy has; feed the rest through a [`BodyGuard`]).
    pub body_prefix: &'a [u8],
    /// Current Unix time in seconds.
    pub now_unix: u64,
}

impl fmt::Debug for BrokerRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("BrokerRequest")
            .field("host", &format_args!("{}", self.host))
            .field("headers", &names)
            .field("target_len", &self.path_and_query.len())
            .field("body_prefix_len", &self.body_prefix.len())
            .field("now_unix", &self.now_unix)
            .finish()
    }
}

/// The new value for one header. `Debug` never prints the value (it holds the secret).
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderRewrite {
    /// Index of the header in [`BrokerRequest::headers`].
    pub index: usize,
    /// Its lower-case name.
    pub name: String,
    value: Vec<u8>,
}

impl HeaderRewrite {
    /// The value to send upstream instead (contains the real secret).
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

impl fmt::Debug for HeaderRewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderRewrite")
            .field("index", &self.index)
            .field("name", &self.name)
            .field("value", &"[hidden]")
            .finish()
    }
}

/// The broker's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerDecision {
    /// Forward, after replacing these header values (empty: forward unchanged).
    Rewrite(Vec<HeaderRewrite>),
    /// Do not forward; log a security event naming the rule.
    Deny(BrokerRule),
}

/// A run's handles, compiled.
#[derive(Clone, Default)]
pub struct HandleSet {
    specs: Vec<HandleSpec>,
    by_handle: HashMap<String, usize>,
    scrubber: Scrubber,
}

impl fmt::Debug for HandleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleSet")
            .field("handles", &self.specs.len())
            .finish()
    }
}

impl HandleSet {
    /// Validates and compiles a run's handles. Fails closed on anything odd.
    pub fn new(specs: Vec<HandleSpec>) -> Result<HandleSet, BrokerError> {
        let mut by_handle = HashMap::new();
        for (index, spec) in specs.iter().enumerate() {
            if !is_handle_shaped(&spec.handle) {
                return Err(BrokerError::HandleMalformed { index });
            }
            if by_handle.insert(spec.handle.clone(), index).is_some() {
                return Err(BrokerError::DuplicateHandle { index });
            }
            if spec.hosts.is_empty() {
                return Err(BrokerError::NoHosts { index });
            }
            if spec.headers.is_empty() {
                return Err(BrokerError::NoHeaders { index });
            }
            for name in &spec.headers {
                check_header_name(index, name)?;
            }
            let secret = spec.secret.expose().as_bytes();
            if secret.iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Err(BrokerError::Secret {
                    index,
                    problem: "contains a control character (CR, LF, NUL, …), which would let it break out of a header",
                });
            }
            if !find_handle_shapes(secret).is_empty() {
                return Err(BrokerError::Secret {
                    index,
                    problem: "is itself handle-shaped",
                });
            }
        }
        let scrubber = Scrubber::new(specs.iter().map(|s| s.secret.expose().as_bytes()))?;
        Ok(HandleSet {
            specs,
            by_handle,
            scrubber,
        })
    }

    /// Number of handles.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True without handles.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Key shapes plus this run's real secrets: for audit lines, run logs and errors.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// Masks this run's real secrets (any spelling) in one response header value.
    pub fn scrub_response_header<'a>(&self, value: &'a [u8]) -> Cow<'a, [u8]> {
        self.scrubber.scrub_literals(value)
    }

    /// A scrubber for one response body.
    pub fn stream_scrubber(&self) -> StreamScrubber {
        StreamScrubber::new(self.scrubber.clone())
    }

    /// A guard for one request body, fed chunk by chunk before each is forwarded.
    pub fn body_guard(&self) -> BodyGuard {
        BodyGuard {
            scrubber: self.scrubber.clone(),
            carry: Vec::new(),
            held: 0,
            tripped: None,
        }
    }

    /// The decision for one request. Order: URL, body, then each header in order; the first
    /// problem found denies the request. Without any problem, every handle occurrence in an
    /// allowed header is replaced by its secret.
    pub fn decide(&self, req: &BrokerRequest<'_>) -> BrokerDecision {
        match self.judge(req) {
            Ok(rewrites) => BrokerDecision::Rewrite(rewrites),
            Err(rule) => BrokerDecision::Deny(rule),
        }
    }

    fn judge(&self, req: &BrokerRequest<'_>) -> Result<Vec<HeaderRewrite>, BrokerRule> {
        // URL: raw and up to four rounds of percent-decoding (double encoding included).
        let target = req.path_and_query.as_bytes();
        if !self.scrubber.find_literals(target).is_empty() {
            return Err(BrokerRule::SecretInRequest);
        }
        let mut view: Cow<'_, [u8]> = Cow::Borrowed(target);
        for _ in 0..5 {
            if !find_handle_shapes(&view).is_empty() {
                return Err(BrokerRule::HandleInUrl);
            }
            match percent_decode(&view) {
                Cow::Owned(next) => view = Cow::Owned(next),
                Cow::Borrowed(_) => break,
            }
        }
        if let Host::Name(name) = req.host
            && !find_handle_shapes(name.as_str().as_bytes()).is_empty()
        {
            return Err(BrokerRule::HandleInUrl);
        }

        check_body(&self.scrubber, req.body_prefix)?;

        let mut rewrites = Vec::new();
        for (index, (raw_name, value)) in req.headers.iter().enumerate() {
            let name = raw_name.to_ascii_lowercase();
            if !self.scrubber.find_literals(value).is_empty()
                || !self.scrubber.find_literals(name.as_bytes()).is_empty()
            {
                return Err(BrokerRule::SecretInRequest);
            }
            if !find_handle_shapes(name.as_bytes()).is_empty() {
                return Err(BrokerRule::HandleWrongHeader);
            }
            let spans = find_handle_shapes(value);
            if value.contains(&b'%') || value.contains(&b'\\') {
                // A handle that only appears once decoded cannot be swapped in place: refuse it.
                let raw_tokens: Vec<&[u8]> = spans.iter().map(|r| &value[r.clone()]).collect();
                for decoded in [percent_decode(value), json_unescape(value)] {
                    let tokens: Vec<&[u8]> = find_handle_shapes(&decoded)
                        .into_iter()
                        .map(|r| &decoded[r])
                        .collect();
                    if tokens != raw_tokens {
                        return Err(BrokerRule::HandleWrongHeader);
                    }
                }
            }
            if spans.is_empty() {
                continue;
            }
            let mut new_value = Vec::with_capacity(value.len() + 64);
            let mut pos = 0;
            for span in spans {
                let token = std::str::from_utf8(&value[span.clone()]).unwrap_or_default();
                let spec = self
                    .by_handle
                    .get(token)
                    .and_then(|&k| self.specs.get(k))
                    .ok_or(BrokerRule::HandleUnknown)?;
                if req.now_unix >= spec.expires_at_unix {
                    return Err(BrokerRule::HandleExpired);
                }
                if !spec.hosts.iter().any(|p| p.matches_host(req.host)) {
                    return Err(BrokerRule::HandleWrongHost);
                }
                if !spec.headers.contains(&name) {
                    return Err(BrokerRule::HandleWrongHeader);
                }
                new_value.extend_from_slice(&value[pos..span.start]);
                new_value.extend_from_slice(spec.secret.expose().as_bytes());
                pos = span.end;
            }
            new_value.extend_from_slice(&value[pos..]);
            rewrites.push(HeaderRewrite {
                index,
                name,
                value: new_value,
            });
        }
        Ok(rewrites)
    }
}

fn check_header_name(index: usize, name: &str) -> Result<(), BrokerError> {
    let bad = |problem| BrokerError::Header {
        index,
        name: name.chars().take(64).collect(),
        problem,
    };
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(bad("is not an HTTP header name"));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("must be written in lower case"));
    }
    if FORBIDDEN_HEADERS.contains(&name) {
        return Err(bad(
            "frames or routes the message and cannot carry a credential",
        ));
    }
    Ok(())
}

/// A body window: any handle shape (raw, percent-decoded, JSON-unescaped) or real secret denies.
fn check_body(scrubber: &Scrubber, window: &[u8]) -> Result<(), BrokerRule> {
    if !scrubber.find_literals(window).is_empty() {
        return Err(BrokerRule::SecretInRequest);
    }
    let found = !find_handle_shapes(window).is_empty()
        || !find_handle_shapes(&percent_decode(window)).is_empty()
        || !find_handle_shapes(&json_unescape(window)).is_empty();
    if found {
        return Err(BrokerRule::HandleInBody);
    }
    Ok(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of `%XX` decoding; malformed escapes stay as they are.
fn percent_decode(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            changed = true;
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(bytes)
    }
}

/// JSON string escapes that a server would decode into ASCII: `\uXXXX` below 0x80 and `\/`.
fn json_unescape(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&b'\\') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            if bytes[i + 1] == b'/' {
                out.push(b'/');
                i += 2;
                continue;
            }
            if bytes[i + 1] == b'\\' {
                out.extend_from_slice(b"\\\\");
                i += 2;
                continue;
            }
            if (bytes[i + 1] == b'u' || bytes[i + 1] == b'U') && i + 6 <= bytes.len() {
                let digits = bytes[i + 2..i + 6].iter().map(|&d| hex_val(d));
                let mut v: u32 = 0;
                let mut ok = true;
                for d in digits {
                    match d {
                        Some(d) => v = v << 4 | u32::from(d),
                        None => ok = false,
                    }
                }
                if let (true, Ok(byte)) = (ok, u8::try_from(v))
                    && byte < 0x80
                {
                    out.push(byte);
                    i += 6;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Bytes a body guard keeps from one chunk to the next: enough for a handle shape in its longest
/// spelling (`\u00XX` per byte).
const BODY_CARRY: usize = (HANDLE_PREFIX.len() + HANDLE_MIN_BODY) * 6;

/// Checks a request body chunk by chunk, so a handle or secret split across chunks is still
/// seen, and holds back the tail that could still start one: [`BodyGuard::release`] answers
/// only the bytes no later chunk can turn into a handle or secret, [`BodyGuard::finish`] the
/// rest at the end of the body. Not even the first half of a split handle goes upstream. Once
/// it trips it stays tripped.
#[derive(Clone)]
pub struct BodyGuard {
    scrubber: Scrubber,
    /// The last bytes seen: the held ones, and before them enough context for a match.
    carry: Vec<u8>,
    /// How many bytes at the end of `carry` are not released yet.
    held: usize,
    tripped: Option<BrokerRule>,
}

impl fmt::Debug for BodyGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The carried bytes may hold part of a secret: sizes only.
        f.debug_struct("BodyGuard")
            .field("carried", &self.carry.len())
            .field("held", &self.held)
            .field("tripped", &self.tripped)
            .finish()
    }
}

impl BodyGuard {
    /// The longest spelling of anything the guard looks for: a match is at most this long.
    fn window(&self) -> usize {
        BODY_CARRY.max(self.scrubber.max_literal_len())
    }

    /// Checks the next chunk (together with the tail of the previous ones), releasing nothing
    /// the caller needs: for callers that forward whole chunks themselves.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BrokerRule> {
        self.release(chunk).map(|_| ())
    }

    /// Checks the next chunk and answers the bytes now safe to forward: everything up to the
    /// last `window - 1` bytes, which a later chunk could still complete into a handle or a
    /// secret (those are held until then, or until [`BodyGuard::finish`]).
    pub fn release(&mut self, chunk: &[u8]) -> Result<Vec<u8>, BrokerRule> {
        if let Some(rule) = self.tripped {
            return Err(rule);
        }
        self.carry.extend_from_slice(chunk);
        self.held += chunk.len();
        if let Err(rule) = check_body(&self.scrubber, &self.carry) {
            self.tripped = Some(rule);
            self.carry.clear();
            self.held = 0;
            return Err(rule);
        }
        let undecided = self.window().saturating_sub(1).min(self.held);
        let start = self.carry.len() - self.held;
        let out = self.carry[start..self.carry.len() - undecided].to_vec();
        self.held = undecided;
        let keep = self.window().max(self.held);
        if self.carry.len() > keep {
            self.carry.drain(..self.carry.len() - keep);
        }
        Ok(out)
    }

    /// Bytes held back so far.
    pub fn held(&self) -> usize {
        self.held
    }

    /// End of the body: the held bytes (already checked), or the rule if the guard tripped.
    pub fn finish(&mut self) -> Result<Vec<u8>, BrokerRule> {
        if let Some(rule) = self.tripped {
            return Err(rule);
        }
        let out = self.carry[self.carry.len() - self.held..].to_vec();
        self.held = 0;
        self.carry.clear();
        Ok(out)
    }
}

/// Masks a run's real secrets in a response body that arrives in chunks.
///
/// A secret can straddle two chunks, so the end of each chunk that could be the start of a
/// secret spelling (at most the longest spelling minus one byte) is held back until the next
/// chunk decides it; everything before it is released at once, so streams (server-sent events)
/// are not delayed unless their tail really looks like the start of a secret.
#[derive(Clone)]
pub struct StreamScrubber {
    scrubber: Scrubber,
    held: Vec<u8>,
}

impl fmt::Debug for StreamScrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The held bytes are by definition the start of a secret: sizes only.
        f.debug_struct("StreamScrubber")
            .field("held", &self.held.len())
            .finish()
    }
}

impl StreamScrubber {
    /// A stream scrubber for the run secrets of `scrubber` (key shapes are not masked in bodies).
    pub fn new(scrubber: Scrubber) -> StreamScrubber {
        StreamScrubber {
            scrubber,
            held: Vec::new(),
        }
    }

    /// Takes the next chunk; returns the bytes that are safe to forward now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.scrubber.secret_count() == 0 {
            return chunk.to_vec();
        }
        self.held.extend_from_slice(chunk);
        let mut cut = self.scrubber.pending_suffix_start(&self.held);
        let mut out = Vec::with_capacity(self.held.len());
        let mut pos = 0;
        for f in self.scrubber.find_literals(&self.held) {
            if f.start >= cut {
                break;
            }
            out.extend_from_slice(&self.held[pos..f.start]);
            out.extend_from_slice(f.kind.mask().as_bytes());
            pos = f.end;
            cut = cut.max(f.end);
        }
        out.extend_from_slice(&self.held[pos..cut]);
        self.held.drain(..cut);
        out
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// End of the body: the rest, masked.
    pub fn finish(self) -> Vec<u8> {
        self.scrubber.scrub_literals(&self.held).into_owned()
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
