//! The secret scrubber: finds provider keys, Paddock handles and a run's real secrets in text and masks them.
//!
//! Two detectors feed one mask pass:
//! * a hand-written single-pass scanner for key *shapes* (provider prefixes, JWTs, PEM private
//!   keys, `Authorization:`-style header values, AWS secrets next to their name). It has no
//!   backtracking: every byte is examined a bounded number of times per pattern family, which
//!   [`pattern_scan_steps`] counts so tests can check the bound on hostile input;
//! * an Aho-Corasick automaton (linear in the input) for the run's real secrets by value, in
//!   their raw, JSON-escaped, percent-encoded and base64-embedded spellings.
//!
//! Masks read `[REDACTED:<kind>]`; scrubbing is idempotent.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::broker::{HANDLE_MIN_BODY, HANDLE_PREFIX};

/// Shortest real secret accepted by [`Scrubber::new`]: shorter values would mask ordinary text.
pub const MIN_SECRET_LEN: usize = 8;

/// What a masked span was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `sk-ant-…`
    Anthropic,
    /// `sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…`
    OpenAi,
    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`
    GitHub,
    /// `glpat-` and the other GitLab token prefixes
    GitLab,
    /// `xoxa-`, `xoxb-`, `xoxe-`, `xoxp-`, `xoxr-`, `xoxs-`, `xapp-`
    Slack,
    /// `AKIA…`, `ASIA…`, `ABIA…`, `ACCA…`, `A3T?…` followed by 16 or more upper-case alphanumerics
    AwsAccessKeyId,
    /// The value after `aws_secret_access_key`, `SecretAccessKey`, … and `=` or `:`
    AwsSecretKey,
    /// `eyJ….….…` (three base64url segments)
    Jwt,
    /// A PEM `-----BEGIN … PRIVATE KEY-----` block
    PrivateKey,
    /// A Paddock credential handle (`pdk_h_…`)
    PaddockHandle,
    /// The credential in an `Authorization:`, `X-Api-Key:`, `Private-Token:`, … value
    Authorization,
    /// The value of a `password`, `client_secret`, `access_token`, … field
    Credential,
    /// One of the run's real secrets, matched by value
    RunSecret,
}

impl SecretKind {
    /// Stable snake_case name, as written inside the mask.
    pub fn name(self) -> &'static str {
        match self {
            SecretKind::Anthropic => "anthropic",
            SecretKind::OpenAi => "openai",
            SecretKind::GitHub => "github",
            SecretKind::GitLab => "gitlab",
            SecretKind::Slack => "slack",
            SecretKind::AwsAccessKeyId => "aws_access_key_id",
            SecretKind::AwsSecretKey => "aws_secret_access_key",
            SecretKind::Jwt => "jwt",
            SecretKind::PrivateKey => "private_key",
            SecretKind::PaddockHandle => "paddock_handle",
            SecretKind::Authorization => "authorization",
            SecretKind::Credential => "credential",
            SecretKind::RunSecret => "secret",
        }
    }

    /// The replacement text, `[REDACTED:<name>]`.
    pub fn mask(self) -> &'static str {
        match self {
            SecretKind::Anthropic => "[REDACTED:anthropic]",
            SecretKind::OpenAi => "[REDACTED:openai]",
            SecretKind::GitHub => "[REDACTED:github]",
            SecretKind::GitLab => "[REDACTED:gitlab]",
            SecretKind::Slack => "[REDACTED:slack]",
            SecretKind::AwsAccessKeyId => "[REDACTED:aws_access_key_id]",
            SecretKind::AwsSecretKey => "[REDACTED:aws_secret_access_key]",
            SecretKind::Jwt => "[REDACTED:jwt]",
            SecretKind::PrivateKey => "[REDACTED:private_key]",
            SecretKind::PaddockHandle => "[REDACTED:paddock_handle]",
            SecretKind::Authorization => "[REDACTED:authorization]",
            SecretKind::Credential => "[REDACTED:credential]",
            SecretKind::RunSecret => "[REDACTED:secret]",
        }
    }

    /// Every kind, for tests and documentation.
    pub const ALL: [SecretKind; 13] = [
        SecretKind::Anthropic,
        SecretKind::OpenAi,
        SecretKind::GitHub,
        SecretKind::GitLab,
        SecretKind::Slack,
        SecretKind::AwsAccessKeyId,
        SecretKind::AwsSecretKey,
        SecretKind::Jwt,
        SecretKind::PrivateKey,
        SecretKind::PaddockHandle,
        SecretKind::Authorization,
        SecretKind::Credential,
        SecretKind::RunSecret,
    ];

    fn index(self) -> usize {
        match self {
            SecretKind::Anthropic => 0,
            SecretKind::OpenAi => 1,
            SecretKind::GitHub => 2,
            SecretKind::GitLab => 3,
            SecretKind::Slack => 4,
            SecretKind::AwsAccessKeyId => 5,
            SecretKind::AwsSecretKey => 6,
            SecretKind::Jwt => 7,
            SecretKind::PrivateKey => 8,
            SecretKind::PaddockHandle => 9,
            SecretKind::Authorization => 10,
            SecretKind::Credential => 11,
            SecretKind::RunSecret => 12,
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One span to mask: bytes `start..end` of the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// First byte of the span.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it was.
    pub kind: SecretKind,
}

/// Why a [`Scrubber`] could not be built. Never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrubError {
    /// A secret shorter than [`MIN_SECRET_LEN`].
    #[error(
        "run secret #{index} is {len} bytes long; secrets shorter than {MIN_SECRET_LEN} bytes would mask ordinary text and are refused"
    )]
    TooShort {
        /// Position in the list given to [`Scrubber::new`].
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// A secret that occurs inside the scrubber's own mask text (masking would not be idempotent).
    #[error("run secret #{index} occurs inside Paddock's own mask text and cannot be scrubbed")]
    InsideMask {
        /// Position in the list given to [`Scrubber::new`].
        index: usize,
    },
    /// The matcher could not be built (too many or too long secrets).
    #[error("the secret matcher could not be built: {0}")]
    Matcher(String),
}

/// Masks key shapes in `text` (no run secrets). Same as `Scrubber::default().scrub(text)`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    apply_str(text, find_patterns(text.as_bytes()).0)
}

/// Masks key shapes in raw bytes (no run secrets).
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    apply(bytes, &find_patterns(bytes).0)
}

/// Work done by the shape scanner on `bytes`: one step per position plus one per byte examined
/// by a sub-scan. It is at most a small constant times `bytes.len()` on any input; the tests
/// hold it to that on adversarial input.
pub fn pattern_scan_steps(bytes: &[u8]) -> u64 {
    find_patterns(bytes).1
}

/// A compiled scrubber: the key-shape scanner plus the run's real secrets by value.
#[derive(Clone, Default)]
pub struct Scrubber {
    literals: Option<Arc<Literals>>,
}

#[derive(Clone)]
struct Literals {
    matcher: AhoCorasick,
    /// Length of the longest pattern (any spelling).
    max_len: usize,
    /// Hashes of every proper prefix of every pattern (ASCII lower-cased), for stream hold-back.
    prefix_hashes: HashSet<u64>,
    count: usize,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secrets or their spellings.
        f.debug_struct("Scrubber")
            .field(
                "run_secrets",
                &self.literals.as_ref().map_or(0, |l| l.count),
            )
            .finish()
    }
}

impl Scrubber {
    /// Builds a scrubber that also masks each of `secrets` by value. A secret shorter than
    /// [`MIN_SECRET_LEN`] bytes is refused (fail closed at start rather than mask everything or
    /// nothing).
    pub fn new<I, S>(secrets: I) -> Result<Scrubber, ScrubError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut count = 0;
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_LEN {
                return Err(ScrubError::TooShort {
                    index,
                    len: secret.len(),
                });
            }
            if inside_mask(secret) {
                return Err(ScrubError::InsideMask { index });
            }
            count += 1;
            for spelling in spellings(secret) {
                if spelling.len() >= MIN_SECRET_LEN
                    && !inside_mask(&spelling)
                    && !patterns.contains(&spelling)
                {
                    patterns.push(spelling);
                }
            }
        }
        if patterns.is_empty() {
            return Ok(Scrubber { literals: None });
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(&patterns)
            .map_err(|e| ScrubError::Matcher(e.to_string()))?;
        let max_len = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let mut prefix_hashes = HashSet::new();
        for p in &patterns {
            let mut h = 0u64;
            for &b in &p[..p.len() - 1] {
                h = h
                    .wrapping_mul(HASH_BASE)
                    .wrapping_add(u64::from(b.to_ascii_lowercase()));
                prefix_hashes.insert(h);
            }
        }
        Ok(Scrubber {
            literals: Some(Arc::new(Literals {
                matcher,
                max_len,
                prefix_hashes,
                count,
            })),
        })
    }

    /// Number of run secrets (not spellings) this scrubber masks by value.
    pub fn secret_count(&self) -> usize {
        self.literals.as_ref().map_or(0, |l| l.count)
    }

    /// Only the run secrets (any spelling), sorted and non-overlapping.
    pub fn find_literals(&self, bytes: &[u8]) -> Vec<Finding> {
        let Some(lit) = &self.literals else {
            return Vec::new();
        };
        lit.matcher
            .find_iter(bytes)
            .map(|m| Finding {
                start: m.start(),
                end: m.end(),
                kind: SecretKind::RunSecret,
            })
            .collect()
    }

    /// Masks shapes and run secrets in text.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.scrub_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(v) => Cow::Owned(owned_utf8(v)),
        }
    }

    /// Masks shapes and run secrets in raw bytes.
    ///
    /// Two stages: run secrets first, then shapes on the result, so that a mask never leaves a
    /// new word boundary for the second stage to find on a later pass (idempotence).
    pub fn scrub_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match self.scrub_literals(bytes) {
            Cow::Borrowed(b) => apply(b, &find_patterns(b).0),
            Cow::Owned(v) => Cow::Owned(apply(&v, &find_patterns(&v).0).into_owned()),
        }
    }

    /// Masks only the run secrets (used on response bodies, where key-shaped text the upstream
    /// legitimately sends must pass unchanged).
    pub fn scrub_literals<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        apply(bytes, &self.find_literals(bytes))
    }

    /// Length of the longest run-secret spelling (0 without run secrets).
    pub fn max_literal_len(&self) -> usize {
        self.literals.as_ref().map_or(0, |l| l.max_len)
    }

    /// The earliest position `p` such that `bytes[p..]` is a proper prefix of a run-secret
    /// spelling (it might complete in the next chunk), or `bytes.len()` if there is none.
    /// Hash-based: a collision only makes a stream hold back more, never less.
    pub fn pending_suffix_start(&self, bytes: &[u8]) -> usize {
        let Some(lit) = &self.literals else {
            return bytes.len();
        };
        let window = lit.max_len.saturating_sub(1).min(bytes.len());
        let mut earliest = bytes.len();
        let mut hash = 0u64;
        let mut power = 1u64;
        for p in (bytes.len() - window..bytes.len()).rev() {
            hash = hash.wrapping_add(u64::from(bytes[p].to_ascii_lowercase()).wrapping_mul(power));
            power = power.wrapping_mul(HASH_BASE);
            if lit.prefix_hashes.contains(&hash) {
                earliest = p;
            }
        }
        earliest
    }
}

const HASH_BASE: u64 = 0x0100_0000_01b3;

fn inside_mask(needle: &[u8]) -> bool {
    SecretKind::ALL.iter().any(|k| {
        let hay = k.mask().as_bytes();
        hay.len() >= needle.len()
            && hay
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// The spellings of one secret that the matcher looks for: raw, JSON-escaped (with and without
/// `\/`, and with `\uXXXX` for non-ASCII), percent-encoded (also form-style `+` for space) (strict RFC 3986, keeping sub-delimiters, and every byte; hex case is
/// covered by the case-insensitive matcher), and the base64 / base64url characters that depend only on the
/// secret at each of the three byte alignments (so it is found inside a longer base64 blob such
/// as a Basic authorization value).
fn spellings(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![secret.to_vec()];
    out.push(json_escape(secret, false));
    out.push(json_escape(secret, true));
    if let Some(ascii) = json_escape_ascii(secret) {
        out.push(ascii);
    }
    out.push(percent_encode(secret, b""));
    out.push(
        percent_encode(secret, b" ")
            .into_iter()
            .map(|b| if b == b' ' { b'+' } else { b })
            .collect(),
    );
    out.push(percent_encode(secret, b"!$&'()*+,;=:@/"));
    out.push(
        secret
            .iter()
            .flat_map(|&b| [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
            .collect(),
    );
    for alphabet in [BASE64_STD, BASE64_URL] {
        for offset in 0..3 {
            out.push(base64_core(secret, offset, alphabet));
        }
    }
    out
}

fn json_escape(s: &[u8], slash: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' if slash => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out
}

/// `\uXXXX` for every non-ASCII character (Python's `json.dumps` default), when the secret is
/// UTF-8 with non-ASCII characters.
fn json_escape_ascii(s: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 2);
    for c in text.chars() {
        if c.is_ascii() {
            let mut buf = [0u8; 1];
            out.extend_from_slice(&json_escape(c.encode_utf8(&mut buf).as_bytes(), false));
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(b"\\u");
                for shift in [12u16, 8, 4, 0] {
                    out.push(HEX[usize::from((*unit >> shift) & 0xf)]);
                }
            }
        }
    }
    Some(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn percent_encode(s: &[u8], keep: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3);
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
    out
}

const BASE64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters of `secret` preceded by `offset` unknown bytes that do not depend on
/// any byte around it.
fn base64_core(secret: &[u8], offset: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let start_bit = offset * 8;
    let end_bit = start_bit + secret.len() * 8;
    let bit = |n: usize| -> u8 {
        if n < start_bit || n >= end_bit {
            return 0;
        }
        let i = n - start_bit;
        (secret[i / 8] >> (7 - i % 8)) & 1
    };
    let first = start_bit.div_ceil(6);
    let last = end_bit / 6; // exclusive: chars k with 6k + 6 <= end_bit
    let mut out = Vec::new();
    for k in first..last {
        let mut v = 0u8;
        for j in 0..6 {
            v = (v << 1) | bit(6 * k + j);
        }
        out.push(alphabet[usize::from(v)]);
    }
    out
}

fn apply<'a>(bytes: &'a [u8], findings: &[Finding]) -> Cow<'a, [u8]> {
    if findings.is_empty() {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    for f in findings {
        out.extend_from_slice(&bytes[pos..f.start]);
        out.extend_from_slice(f.kind.mask().as_bytes());
        pos = f.end;
    }
    out.extend_from_slice(&bytes[pos..]);
    Cow::Owned(out)
}

fn apply_str(text: &str, findings: Vec<Finding>) -> Cow<'_, str> {
    match apply(text.as_bytes(), &findings) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(v) => Cow::Owned(owned_utf8(v)),
    }
}

/// Spans are found on ASCII bytes or on whole UTF-8 sequences of a secret, so masked text stays
/// UTF-8; the lossy path only guards against a secret spelled as a partial sequence.
fn owned_utf8(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

// ---------------------------------------------------------------------------------------------
// The shape scanner.
//
// Linear time by construction: the main loop visits each position once; a token candidate scans
// the maximal run of its character class (which contains every byte of its prefix), and when it
// fails, every later candidate of the same kind starting inside that run would fail the same way
// (same run end, shorter body, same bytes after), so `skip` moves past the run. Context matchers
// (header values, AWS secrets, PEM headers) look at a bounded window, or consume what they scan.
// The search for a PEM END line is cached so that searches never overlap.

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn is_gitlab(b: u8) -> bool {
    is_token(b) || b == b'.'
}
fn is_slack(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}
fn is_upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}
fn is_aws_secret(b: u8) -> bool {
    // `\` so that a JSON-escaped `\/` does not cut the value short.
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+' || b == b'=' || b == b'\\'
}
fn is_pem_body(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/=\r\n\\".contains(&b)
}

const GITLAB_PREFIXES: [&[u8]; 14] = [
    b"glpat-",
    b"gldt-",
    b"glrt-",
    b"glrtr-",
    b"glcbt-",
    b"glptt-",
    b"glft-",
    b"glimt-",
    b"glagent-",
    b"glsoat-",
    b"glffct-",
    b"gloas-",
    b"glcst-",
    b"glwt-",
];
const GITHUB_PREFIXES: [&[u8]; 5] = [b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"];
const SLACK_PREFIXES: [&[u8]; 7] = [
    b"xoxa-", b"xoxb-", b"xoxe-", b"xoxp-", b"xoxr-", b"xoxs-", b"xapp-",
];
const AWS_ID_PREFIXES: [&[u8]; 4] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"];
/// Header names whose value is a credential (matched case-insensitively, `-` or `_`).
const CREDENTIAL_HEADERS: [&[u8]; 7] = [
    b"authorization",
    b"x-api-key",
    b"api-key",
    b"private-token",
    b"x-auth-token",
    b"x-goog-api-key",
    b"x-amz-security-token",
];
/// Field names (any case, `-` or `_`) whose value is a credential in logs, env dumps and JSON.
const CREDENTIAL_FIELDS: [&[u8]; 9] = [
    b"password",
    b"passwd",
    b"apikey",
    b"client-secret",
    b"access-token",
    b"refresh-token",
    b"session-token",
    b"auth-token",
    b"secret-key",
];
/// Authorization schemes: the credential is the word after them.
const AUTH_SCHEMES: [&[u8]; 8] = [
    b"bearer",
    b"basic",
    b"token",
    b"dpop",
    b"pdk",
    b"apikey",
    b"negotiate",
    b"ntlm",
];
const AWS_SECRET_NAMES: [&[u8]; 3] = [
    b"secret_access_key",
    b"secret-access-key",
    b"secretaccesskey",
];

struct Scan<'a> {
    b: &'a [u8],
    steps: u64,
    /// Per kind: no candidate of that kind can match before this position.
    skip: [usize; 13],
    /// Cached search for `-----END`: (searched from, found at).
    pem_end: Option<(usize, Option<usize>)>,
    /// End of the last finding: a mask ends in `]`, so it counts as a word boundary already.
    last_end: usize,
}

fn find_patterns(b: &[u8]) -> (Vec<Finding>, u64) {
    let mut s = Scan {
        b,
        steps: 0,
        skip: [0; 13],
        pem_end: None,
        last_end: 0,
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        s.steps += 1;
        match s.at(i) {
            Some(f) => {
                i = f.end.max(i + 1);
                s.last_end = f.end;
                out.push(f);
            }
            None => i += 1,
        }
    }
    (out, s.steps)
}

fn starts_ci(b: &[u8], i: usize, lit: &[u8]) -> bool {
    b.len() - i >= lit.len() && b[i..i + lit.len()].eq_ignore_ascii_case(lit)
}

fn starts(b: &[u8], i: usize, lit: &[u8]) -> bool {
    b[i..].starts_with(lit)
}

impl Scan<'_> {
    fn boundary_before(&self, i: usize) -> bool {
        i == 0 || i == self.last_end || !self.b[i - 1].is_ascii_alphanumeric()
    }

    fn run_end(&mut self, from: usize, class: fn(u8) -> bool) -> usize {
        let mut e = from;
        while e < self.b.len() && class(self.b[e]) {
            e += 1;
        }
        self.steps += u64::try_from(e - from).unwrap_or(u64::MAX);
        e
    }

    fn at(&mut self, i: usize) -> Option<Finding> {
        let b = self.b;
        match b[i] {
            b's' => {
                if starts(b, i, b"sk-ant-")
                    && let Some(f) = self.token(SecretKind::Anthropic, i, 7, is_token, 10, true)
                {
                    return Some(f);
                }
                if starts(b, i, b"sk-")
                    && let Some(f) = self.token(SecretKind::OpenAi, i, 3, is_token, 16, true)
                {
                    return Some(f);
                }
                self.aws_secret(i).or_else(|| self.credential_header(i))
            }
            b'S' => self.aws_secret(i).or_else(|| self.credential_header(i)),
            b'c' | b'C' | b'r' | b'R' => self.credential_header(i),
            b'g' => {
                if GITHUB_PREFIXES.iter().any(|p| starts(b, i, p)) {
                    return self.token(SecretKind::GitHub, i, 4, is_word, 20, true);
                }
                if starts(b, i, b"github_pat_") {
                    return self.token(SecretKind::GitHub, i, 11, is_word, 20, true);
                }
                let p = GITLAB_PREFIXES.iter().find(|p| starts(b, i, p))?;
                self.token(SecretKind::GitLab, i, p.len(), is_gitlab, 16, true)
            }
            b'x' | b'X' => {
                if b[i] == b'x'
                    && SLACK_PREFIXES.iter().any(|p| starts(b, i, p))
                    && let Some(f) = self.token(SecretKind::Slack, i, 5, is_slack, 10, true)
                {
                    return Some(f);
                }
                self.credential_header(i)
            }
            b'A' => self.aws_key_id(i).or_else(|| self.credential_header(i)),
            b'a' | b'p' | b'P' => {
                // No boundary: a handle glued to other text is still a handle.
                if starts_ci(b, i, HANDLE_PREFIX.as_bytes())
                    && let Some(f) = self.token(
                        SecretKind::PaddockHandle,
                        i,
                        HANDLE_PREFIX.len(),
                        is_word,
                        HANDLE_MIN_BODY,
                        false,
                    )
                {
                    return Some(f);
                }
                self.credential_header(i)
            }
            b'e' if starts(b, i, b"eyJ") => self.jwt(i),
            b'-' if starts(b, i, b"-----BEGIN ") => self.pem(i),
            _ => None,
        }
    }

    /// `prefix` (already checked, `plen` bytes, all in `class`) followed by at least `min` bytes
    /// of `class`; the whole run is the finding.
    fn token(
        &mut self,
        kind: SecretKind,
        i: usize,
        plen: usize,
        class: fn(u8) -> bool,
        min: usize,
        boundary: bool,
    ) -> Option<Finding> {
        let k = kind.index();
        if self.skip[k] > i || (boundary && !self.boundary_before(i)) {
            return None;
        }
        let mut e = self.run_end(i, class);
        if kind == SecretKind::GitLab {
            while e > i && self.b[e - 1] == b'.' {
                e -= 1;
            }
        }
        if e >= i + plen + min {
            Some(Finding {
                start: i,
                end: e,
                kind,
            })
        } else {
            self.skip[k] = e.max(i + 1);
            None
        }
    }

    fn aws_key_id(&mut self, i: usize) -> Option<Finding> {
        let b = self.b;
        let prefixed = AWS_ID_PREFIXES.iter().any(|p| starts(b, i, p))
            || (starts(b, i, b"A3T") && b.get(i + 3).is_some_and(|&c| is_upper_alnum(c)));
        if !prefixed {
            return None;
        }
        // The whole upper-case run: a key glued to more capitals is masked with them (no right
        // boundary, which a later mask could otherwise create and break idempotence).
        self.token(SecretKind::AwsAccessKeyId, i, 4, is_upper_alnum, 16, true)
    }

    /// `secret_access_key` (any case, `_`/`-`/none), up to 12 bytes of quotes, spaces, `\` and
    /// one `=` or `:`, then at least 20 bytes of `[A-Za-z0-9/+=]`: the value is masked.
    fn aws_secret(&mut self, i: usize) -> Option<Finding> {
        let b = self.b;
        let name = AWS_SECRET_NAMES.iter().find(|n| starts_ci(b, i, n))?;
        let mut j = i + name.len();
        let mut assigned = false;
        let limit = (j + 12).min(b.len());
        while j < limit && b" \t\"'=:\\".contains(&b[j]) {
            assigned |= b[j] == b'=' || b[j] == b':';
            j += 1;
        }
        self.steps += 12;
        if !assigned {
            return None;
        }
        let e = self.run_end(j, is_aws_secret);
        (e - j >= 20).then_some(Finding {
            start: j,
            end: e,
            kind: SecretKind::AwsSecretKey,
        })
    }

    /// A credential header or field name (any case, `-` or `_`), optional quote, `:` or `=`,
    /// then the value: after a known scheme word the next word, otherwise the first word; a
    /// quoted value runs to its closing quote. A value that is already a mask is left alone
    /// (idempotence).
    fn credential_header(&mut self, i: usize) -> Option<Finding> {
        let b = self.b;
        if !self.boundary_before(i) {
            return None;
        }
        let name_at = |n: &&&[u8]| {
            b.len() - i >= n.len()
                && b[i..i + n.len()]
                    .iter()
                    .zip(n.iter())
                    .all(|(&c, &m)| c.eq_ignore_ascii_case(&m) || (m == b'-' && c == b'_'))
        };
        let (name, kind) = match CREDENTIAL_HEADERS.iter().find(name_at) {
            Some(n) => (n, SecretKind::Authorization),
            None => (
                CREDENTIAL_FIELDS.iter().find(name_at)?,
                SecretKind::Credential,
            ),
        };
        let mut j = i + name.len();
        if b.get(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        let limit = (j + 16).min(b.len());
        let mut assigned = false;
        while j < limit && b" \t\"'=:\\[".contains(&b[j]) {
            assigned |= b[j] == b'=' || b[j] == b':';
            j += 1;
        }
        self.steps += 16;
        if !assigned {
            return None;
        }
        let value_class: fn(u8) -> bool = match b[j - 1] {
            b'"' => |c| !matches!(c, b'"' | b'\\' | b'\r' | b'\n' | 0),
            b'\'' => |c| !matches!(c, b'\'' | b'\\' | b'\r' | b'\n' | 0),
            _ => is_credential_byte,
        };
        let word_end = self.run_end(j, is_credential_byte);
        let word = &b[j..word_end];
        let masked =
            word.starts_with(b"[REDACTED:") || (b[j - 1] == b'[' && word.starts_with(b"REDACTED:"));
        if word.is_empty() || masked {
            return None;
        }
        let mut v = j;
        if AUTH_SCHEMES.iter().any(|s| word.eq_ignore_ascii_case(s)) {
            v = word_end;
            let limit = (v + 16).min(b.len());
            while v < limit && (b[v] == b' ' || b[v] == b'\t') {
                v += 1;
            }
            self.steps += 16;
            if b[v..].starts_with(b"[REDACTED:") {
                return None;
            }
        }
        let e = self.run_end(v, value_class);
        (e > v).then_some(Finding {
            start: v,
            end: e,
            kind,
        })
    }

    fn jwt(&mut self, i: usize) -> Option<Finding> {
        let k = SecretKind::Jwt.index();
        if self.skip[k] > i {
            return None;
        }
        let b = self.b;
        let e1 = self.run_end(i, is_token);
        let found = (|| {
            if e1 - i < 10 || b.get(e1) != Some(&b'.') {
                return None;
            }
            let e2 = self.run_end(e1 + 1, is_token);
            if e2 - (e1 + 1) < 2 || b.get(e2) != Some(&b'.') {
                return None;
            }
            Some(self.run_end(e2 + 1, is_token))
        })();
        match found {
            Some(end) => Some(Finding {
                start: i,
                end,
                kind: SecretKind::Jwt,
            }),
            None => {
                self.skip[k] = e1.max(i + 1);
                None
            }
        }
    }

    /// `-----BEGIN <label>-----` where the label (≤ 64 bytes of `[A-Z0-9 ]`) contains
    /// `PRIVATE KEY`, through the matching `-----END …-----`; unterminated, through the base64
    /// body that follows (never further, so a fake header cannot blank the rest of a log).
    fn pem(&mut self, i: usize) -> Option<Finding> {
        let b = self.b;
        let label_start = i + 11;
        let limit = (label_start + 64).min(b.len());
        let mut j = label_start;
        while j < limit && (b[j].is_ascii_uppercase() || b[j].is_ascii_digit() || b[j] == b' ') {
            j += 1;
        }
        self.steps += 64;
        let label = &b[label_start..j];
        if !starts(b, j, b"-----") || !label.windows(11).any(|w| w == b"PRIVATE KEY") {
            return None;
        }
        let body = j + 5;
        let end = match self.find_pem_end(body) {
            Some(q) => {
                let after = q + 8;
                let limit = (after + 80).min(b.len());
                let mut e = after;
                while e < limit && !starts(b, e, b"-----") {
                    e += 1;
                }
                self.steps += 80;
                if e < limit { e + 5 } else { after }
            }
            None => self.run_end(body, is_pem_body),
        };
        Some(Finding {
            start: i,
            end,
            kind: SecretKind::PrivateKey,
        })
    }

    fn find_pem_end(&mut self, from: usize) -> Option<usize> {
        if let Some((searched, found)) = self.pem_end {
            match found {
                Some(q) if q >= from && searched <= from => return Some(q),
                None if searched <= from => return None,
                _ => {}
            }
        }
        let b = self.b;
        let mut q = from;
        let mut found = None;
        while q + 8 <= b.len() {
            if b[q] == b'-' && &b[q..q + 8] == b"-----END" {
                found = Some(q);
                break;
            }
            q += 1;
        }
        self.steps += u64::try_from(q.min(b.len()) - from.min(b.len())).unwrap_or(u64::MAX);
        self.pem_end = Some((from, found));
        found
    }
}

fn is_credential_byte(b: u8) -> bool {
    !matches!(
        b,
        b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'\\' | b',' | b']' | b'&' | 0
    )
}

#[cfg(test)]
#[path = "scrub_tests.rs"]
mod tests;
