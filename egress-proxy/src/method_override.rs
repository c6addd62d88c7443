//! Method-override detection: headers and `_method` query parameters that make a server treat
//! a read as a write, however the parameter's name is percent-encoded.

use http::Request;
use hyper::body::Incoming;

/// `X-HTTP-Method-Override` and kin, or a `_method=` query parameter.
pub fn has_method_override(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    if h.contains_key("x-http-method-override")
        || h.contains_key("x-http-method")
        || h.contains_key("x-method-override")
    {
        return true;
    }
    req.uri().query().is_some_and(|q| {
        q.split(['&', ';']).any(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            is_method_key(&query_decode(key))
        })
    })
}

/// True for a decoded query key a server could read as `_method`, in any case. PHP (and so
/// Laravel and Symfony) also drops leading spaces, reads `.` and space as `_`, and reads
/// `_method[...]` as an array named `_method`: those spellings count too.
fn is_method_key(decoded: &[u8]) -> bool {
    // PHP ends a key at a NUL byte.
    let decoded = decoded.split(|b| *b == 0).next().unwrap_or_default();
    let start = decoded
        .iter()
        .position(|b| *b != b' ')
        .unwrap_or(decoded.len());
    let rest = decoded.get(start..).unwrap_or_default();
    let name = rest.split(|b| *b == b'[').next().unwrap_or_default();
    name.len() == 7
        && name.iter().zip(b"_method").all(|(a, m)| {
            let a = if matches!(a, b' ' | b'.') { b'_' } else { *a };
            a.eq_ignore_ascii_case(m)
        })
}

/// Rounds of percent-decoding applied to a query key: a key encoded twice (`%255f`) is read as
/// a server that decodes twice would read it.
const QUERY_DECODE_ROUNDS: usize = 3;

/// Percent-decodes `raw` (and `+` as a space) until it no longer changes, at most
/// [`QUERY_DECODE_ROUNDS`] times. Invalid escapes stay as they are.
fn query_decode(raw: &str) -> Vec<u8> {
    let mut cur: Vec<u8> = raw.as_bytes().to_vec();
    for _ in 0..QUERY_DECODE_ROUNDS {
        let next = percent_decode_once(&cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

fn percent_decode_once(raw: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let escaped = (b == b'%')
            .then(|| Some((hex(*raw.get(i + 1)?)?, hex(*raw.get(i + 2)?)?)))
            .flatten();
        match (b, escaped) {
            (_, Some((hi, lo))) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_decoded_before_comparison() {
        for k in [
            "_method",
            "_m%65thod",
            "%5F%6d%65thod",
            "%255fmethod",
            "_METHOD",
            ".method",
            "%20_method",
            "_method[]",
            "_method%5B0%5D",
            "_method%00x",
        ] {
            assert!(is_method_key(&query_decode(k)), "{k}");
        }
        for k in [
            "method",
            "_method_",
            "_m%6thod",
            "%",
            "%zz",
            "_m%65thodx",
            "x_method",
            "",
            "[_method",
        ] {
            assert!(!is_method_key(&query_decode(k)), "{k}");
        }
        assert_eq!(query_decode("a+b%2"), b"a b%2");
    }
}
