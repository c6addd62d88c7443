//! Agent output: the gate's status marker, the byte cap and the secret scrubber.

use paddock_policy::Scrubber;

use super::engine::OutputStream;

/// Receives scrubbed output while the run goes on (e.g. `paddock sandbox run` prints it).
pub trait OutputSink: Send {
    /// One scrubbed piece of output.
    fn output(&mut self, stream: OutputStream, bytes: &[u8]);
}

/// A sink that drops everything (the outcome still holds the capped, scrubbed output).
#[derive(Debug, Default)]
pub struct NoSink;

impl OutputSink for NoSink {
    fn output(&mut self, _: OutputStream, _: &[u8]) {}
}

/// Longest status text after the nonce (`-2147483648`).
const MAX_STATUS_LEN: usize = 12;

/// Finds the gate's `\n<nonce> <status>\n` line in stdout and removes it from the agent's output.
#[derive(Debug)]
pub struct MarkerScanner {
    prefix: Vec<u8>,
    pending: Vec<u8>,
    found: Option<i64>,
}

impl MarkerScanner {
    /// A scanner for `nonce`.
    #[must_use]
    pub fn new(nonce: &str) -> Self {
        let mut prefix = Vec::with_capacity(nonce.len().saturating_add(2));
        prefix.push(b'\n');
        prefix.extend_from_slice(nonce.as_bytes());
        prefix.push(b' ');
        Self {
            prefix,
            pending: Vec::new(),
            found: None,
        }
    }

    /// The status, once the marker was seen.
    #[must_use]
    pub fn status(&self) -> Option<i64> {
        self.found
    }

    /// Feeds stdout bytes; returns the bytes that are agent output.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.found.is_some() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            match find(&self.pending, &self.prefix) {
                Some(at) => {
                    let after = at.saturating_add(self.prefix.len());
                    let tail = &self.pending[after..];
                    match tail.iter().position(|&b| b == b'\n') {
                        Some(nl) => {
                            let status = std::str::from_utf8(&tail[..nl])
                                .ok()
                                .and_then(|s| s.parse::<i64>().ok());
                            if let Some(status) = status {
                                out.extend_from_slice(&self.pending[..at]);
                                out.extend_from_slice(&tail[nl.saturating_add(1)..]);
                                self.pending.clear();
                                self.found = Some(status);
                                return out;
                            }
                            // Not a marker after all: pass through up to the prefix's end.
                            out.extend_from_slice(&self.pending[..after]);
                            self.pending.drain(..after);
                        }
                        None if tail.len() <= MAX_STATUS_LEN => {
                            out.extend_from_slice(&self.pending[..at]);
                            self.pending.drain(..at);
                            return out;
                        }
                        None => {
                            out.extend_from_slice(&self.pending[..after]);
                            self.pending.drain(..after);
                        }
                    }
                }
                None => {
                    let keep = self.prefix.len().saturating_sub(1).min(self.pending.len());
                    let emit = self.pending.len().saturating_sub(keep);
                    out.extend(self.pending.drain(..emit));
                    return out;
                }
            }
        }
    }

    /// End of stream: whatever was held back is agent output.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Longest line held back before it is scrubbed and released anyway.
pub const LIVE_HOLD_MAX: usize = 64 * 1024;

/// Scrubs a live stream line by line; holds a PEM private-key block until its END line so the
/// block is masked whole.
#[derive(Debug, Default)]
pub struct LiveScrubber {
    buf: Vec<u8>,
}

impl LiveScrubber {
    /// Feeds bytes; returns scrubbed bytes ready to show.
    pub fn push(&mut self, scrubber: &Scrubber, bytes: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(bytes);
        let Some(last_nl) = self.buf.iter().rposition(|&b| b == b'\n') else {
            if self.buf.len() >= LIVE_HOLD_MAX {
                return self.flush(scrubber);
            }
            return Vec::new();
        };
        let complete = &self.buf[..=last_nl];
        if open_pem_block(complete) && self.buf.len() < LIVE_HOLD_MAX {
            return Vec::new();
        }
        let cut = if self.buf.len() >= LIVE_HOLD_MAX {
            self.buf.len()
        } else {
            last_nl.saturating_add(1)
        };
        let ready: Vec<u8> = self.buf.drain(..cut).collect();
        scrubber.scrub_bytes(&ready).into_owned()
    }

    /// End of stream: the rest, scrubbed.
    pub fn flush(&mut self, scrubber: &Scrubber) -> Vec<u8> {
        let rest = std::mem::take(&mut self.buf);
        scrubber.scrub_bytes(&rest).into_owned()
    }
}

fn open_pem_block(text: &[u8]) -> bool {
    match rfind(text, b"-----BEGIN") {
        Some(at) => find(&text[at..], b"-----END").is_none(),
        None => false,
    }
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Keeps at most `cap` bytes of output (stdout and stderr share the budget) and counts the rest.
#[derive(Debug)]
pub struct OutputCapture {
    cap: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    total: u64,
}

impl OutputCapture {
    /// A capture of at most `cap` bytes.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            stdout: Vec::new(),
            stderr: Vec::new(),
            total: 0,
        }
    }

    /// Records bytes; returns the part that fit under the cap.
    pub fn push<'a>(&mut self, stream: OutputStream, bytes: &'a [u8]) -> &'a [u8] {
        self.total = self
            .total
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        let used = self.stdout.len().saturating_add(self.stderr.len());
        let room = self.cap.saturating_sub(used);
        let kept = &bytes[..bytes.len().min(room)];
        match stream {
            OutputStream::Stdout => self.stdout.extend_from_slice(kept),
            OutputStream::Stderr => self.stderr.extend_from_slice(kept),
        }
        kept
    }

    /// Whether output was dropped.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.total
            > u64::try_from(self.stdout.len().saturating_add(self.stderr.len())).unwrap_or(u64::MAX)
    }

    /// Bytes the agent wrote in all.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept output, each stream scrubbed as a whole.
    #[must_use]
    pub fn into_scrubbed(self, scrubber: &Scrubber) -> (Vec<u8>, Vec<u8>) {
        (
            scrubber.scrub_bytes(&self.stdout).into_owned(),
            scrubber.scrub_bytes(&self.stderr).into_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(nonce: &str, chunks: &[&[u8]]) -> (Vec<u8>, Option<i64>) {
        let mut s = MarkerScanner::new(nonce);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
        }
        out.extend(s.finish());
        (out, s.status())
    }

    #[test]
    fn marker_is_found_and_removed_across_chunk_boundaries() {
        let nonce = "abcdef0123456789";
        let stream = b"hello\nworld\nabcdef0123456789 7\nlate\n";
        let (out, status) = scan_all(nonce, &[stream]);
        assert_eq!(status, Some(7));
        assert_eq!(out, b"hello\nworldlate\n");
        for split in 1..stream.len() {
            let (out2, status2) = scan_all(nonce, &[&stream[..split], &stream[split..]]);
            assert_eq!(
                (out2.as_slice(), status2),
                (out.as_slice(), Some(7)),
                "split {split}"
            );
        }
    }

    #[test]
    fn a_wrong_nonce_or_a_non_numeric_status_is_plain_output() {
        let (out, status) = scan_all("n0nce-real", &[b"x\nn0nce-fake 0\n\nn0nce-real zero\n"]);
        assert_eq!(status, None);
        assert_eq!(out, b"x\nn0nce-fake 0\n\nn0nce-real zero\n");
        let (_, status) = scan_all("n0nce-real", &[b"\nn0nce-real -1\n"]);
        assert_eq!(status, Some(-1));
    }

    #[test]
    fn output_cap_counts_everything_and_keeps_the_budget() {
        let mut c = OutputCapture::new(10);
        assert_eq!(c.push(OutputStream::Stdout, b"123456"), b"123456");
        assert_eq!(c.push(OutputStream::Stderr, b"abcdefgh"), b"abcd");
        assert_eq!(c.push(OutputStream::Stdout, b"zz"), b"");
        assert!(c.truncated());
        assert_eq!(c.total(), 16);
        let (o, e) = c.into_scrubbed(&Scrubber::default());
        assert_eq!((o.as_slice(), e.as_slice()), (&b"123456"[..], &b"abcd"[..]));
        let mut d = OutputCapture::new(10);
        d.push(OutputStream::Stdout, b"0123456789");
        assert!(!d.truncated(), "exactly the cap is not truncated");
    }

    #[test]
    fn live_scrubber_masks_keys_split_across_chunks_and_whole_pem_blocks() {
        let scrubber = Scrubber::default();
        let key = "ghp_0123456789abcdefABCDEF0123456789abcd";
        let mut live = LiveScrubber::default();
        let mut out = Vec::new();
        let text = format!("token {key} here\nok\n");
        for b in text.as_bytes().chunks(5) {
            out.extend(live.push(&scrubber, b));
        }
        out.extend(live.flush(&scrubber));
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains(key), "{out}");
        assert!(
            out.contains("[REDACTED:github]") && out.ends_with("ok\n"),
            "{out}"
        );

        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAAAA\n-----END PRIVATE KEY-----\n";
        let mut live = LiveScrubber::default();
        let mut shown = Vec::new();
        for line in pem.split_inclusive('\n') {
            let got = live.push(&scrubber, line.as_bytes());
            if !line.starts_with("-----END") {
                assert!(got.is_empty(), "held back inside the block");
            }
            shown.extend(got);
        }
        let shown = String::from_utf8(shown).unwrap();
        assert!(
            !shown.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            "{shown}"
        );
        // The neighbour: ordinary lines pass straight through.
        let mut live = LiveScrubber::default();
        assert_eq!(live.push(&scrubber, b"plain line\n"), b"plain line\n");
    }
}
