//! The gate (`--gate`): the launcher's proof that the agent's exit status came from paddock-init.
//!
//! The agent starts only after the launcher has filled `/workspace` and written the run's nonce
//! on stdin. paddock-init reads that line, keeps stdin on a close-on-exec descriptor and gives
//! the agent `/dev/null` instead, so the agent never sees the nonce. When the agent exits,
//! paddock-init prints `\n<nonce> <status>\n` and waits for stdin to close, which lets the
//! launcher read the workspace back while its tmpfs is still mounted.
//!
//! The nonce lives only in paddock-init's memory, and paddock-init is non-dumpable (set before
//! the nonce is read), so the agent (same uid) can open neither `/proc/1/mem`, `/proc/1/environ`
//! nor `/proc/1/fd/0`: it cannot forge the marker.

use std::io::{self, Read, Write};

use crate::InitError;

/// Shortest nonce accepted (hex digits).
pub const MIN_NONCE_LEN: usize = 32;
/// Longest nonce accepted (hex digits).
pub const MAX_NONCE_LEN: usize = 128;

/// A nonce read from the launcher.
#[derive(Clone, PartialEq, Eq)]
pub struct Nonce(String);

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonce(..)")
    }
}

fn refused(reason: &str) -> InitError {
    InitError::Gate(reason.to_owned())
}

/// Reads the nonce line byte by byte (nothing after the newline is consumed).
///
/// # Errors
/// [`InitError::Gate`] when stdin closes first, the line is too long, or it is not hex.
pub fn read_nonce(input: &mut impl Read) -> Result<Nonce, InitError> {
    let mut line = Vec::with_capacity(MAX_NONCE_LEN);
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(0) => return Err(refused("stdin closed before the nonce")),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                if line.len() >= MAX_NONCE_LEN {
                    return Err(refused("nonce line too long"));
                }
                line.push(byte[0]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(InitError::Gate(format!("read nonce: {e}"))),
        }
    }
    if line.len() < MIN_NONCE_LEN || !line.iter().all(u8::is_ascii_hexdigit) {
        return Err(refused("the nonce must be 32-128 hex digits"));
    }
    String::from_utf8(line)
        .map(Nonce)
        .map_err(|_| refused("nonce is not UTF-8"))
}

/// Prints `\n<nonce> <code>\n` and flushes.
///
/// # Errors
/// The write's error.
pub fn report(out: &mut impl Write, nonce: &Nonce, code: u8) -> io::Result<()> {
    out.write_all(format!("\n{} {code}\n", nonce.0).as_bytes())?;
    out.flush()
}

/// Reads and drops stdin until it closes (or fails).
pub fn wait_for_close(input: &mut impl Read) {
    let mut sink = [0u8; 512];
    loop {
        match input.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn reads_exactly_one_line() {
        let mut input = io::Cursor::new(format!("{N}\nrest"));
        let nonce = read_nonce(&mut input).unwrap();
        assert_eq!(nonce.0, N);
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "rest");
        assert_eq!(format!("{nonce:?}"), "Nonce(..)");
    }

    #[test]
    fn refuses_short_long_non_hex_and_missing_nonces() {
        for bad in [
            String::new(),
            "abc\n".to_owned(),
            N.to_owned(),
            format!("{N}zz\n"),
            format!("{}\n", "a".repeat(MAX_NONCE_LEN + 1)),
            format!("{N} 0\n"),
        ] {
            assert!(
                matches!(
                    read_nonce(&mut io::Cursor::new(bad.clone())),
                    Err(InitError::Gate(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn report_is_the_marker_line() {
        let nonce = read_nonce(&mut io::Cursor::new(format!("{N}\n"))).unwrap();
        let mut out = Vec::new();
        report(&mut out, &nonce, 159).unwrap();
        assert_eq!(out, format!("\n{N} 159\n").into_bytes());
        wait_for_close(&mut io::Cursor::new(b"anything".to_vec()));
    }
}
