//! Validation and cleaning of text from clients: control characters, lengths, names.

/// Longest issue title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest issue body, in characters.
pub const MAX_BODY: usize = 10_000;
/// Most tags on an issue.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG: usize = 50;
/// Longest comment or review feedback, in characters.
pub const MAX_COMMENT: usize = 10_000;

/// Characters removed from all stored text: C0/C1 controls (NUL included) and the bidirectional
/// overrides used to make text read differently than it is stored ("Trojan Source").
fn is_stripped(c: char, keep_newline_tab: bool) -> bool {
    if keep_newline_tab && (c == '\n' || c == '\t') {
        return false;
    }
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// Removes control characters (newline and tab kept when `multiline`).
pub fn strip(s: &str, multiline: bool) -> String {
    s.chars().filter(|c| !is_stripped(*c, multiline)).collect()
}

fn bounded(
    field: &str,
    s: &str,
    max: usize,
    multiline: bool,
    allow_empty: bool,
) -> Result<String, String> {
    let cleaned = strip(s, multiline);
    if !allow_empty && cleaned.trim().is_empty() {
        return Err(format!("{field} must not be empty or whitespace only"));
    }
    let n = cleaned.chars().count();
    if n > max {
        return Err(format!("{field} is {n} characters; the limit is {max}"));
    }
    Ok(cleaned)
}

/// An issue title: cleaned, non-empty, ≤ 200 characters.
pub fn title(s: &str) -> Result<String, String> {
    bounded("title", s, MAX_TITLE, true, false).map(|t| t.trim().to_string())
}

/// An issue body: cleaned, ≤ 10,000 characters; empty only when `allow_empty`.
pub fn body(s: &str, allow_empty: bool) -> Result<String, String> {
    bounded("body", s, MAX_BODY, true, allow_empty)
}

/// A comment or review feedback: cleaned, non-empty, ≤ 10,000 characters.
pub fn comment(s: &str) -> Result<String, String> {
    bounded("body", s, MAX_COMMENT, true, false)
}

/// Tags: at most 20, each cleaned (no line breaks), non-empty, ≤ 50 characters; duplicates dropped.
pub fn tags(raw: &[String]) -> Result<Vec<String>, String> {
    if raw.len() > MAX_TAGS {
        return Err(format!("{} tags; the limit is {MAX_TAGS}", raw.len()));
    }
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = bounded("tag", t, MAX_TAG, false, false)?.trim().to_string();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// An e-mail address: trimmed, lower-cased, one '@', printable ASCII, ≤ 254 bytes.
pub fn email(s: &str) -> Result<String, String> {
    let e = s.trim().to_ascii_lowercase();
    let ok = e.len() <= 254
        && e.bytes().all(|b| b.is_ascii_graphic())
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty());
    if ok {
        Ok(e)
    } else {
        Err("not a valid e-mail address".into())
    }
}

/// A workspace name: 1–64 of `[a-z0-9_-]`.
pub fn workspace_name(s: &str) -> Result<String, String> {
    let n = s.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(n.to_string())
    } else {
        Err("workspace names are 1-64 of a-z, 0-9, '-' and '_'".into())
    }
}

/// A key or runner name: cleaned single line, 1–100 characters.
pub fn name(s: &str) -> Result<String, String> {
    bounded("name", s, 100, false, false).map(|n| n.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_controls_keeps_newline_and_tab() {
        assert_eq!(
            strip("a\u{0}b\u{7}c\nd\te\r\u{1b}[31m\u{85}\u{202E}f", true),
            "abc\nd\te[31mf"
        );
        assert_eq!(strip("a\nb\tc", false), "abc");
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(title(&"é".repeat(200)).is_ok());
        assert!(title(&"é".repeat(201)).is_err());
        assert!(
            title(&format!("{}\u{0}", "a".repeat(200))).is_ok(),
            "stripped before counting"
        );
        assert!(body(&"x".repeat(10_000), false).is_ok());
        assert!(body(&"x".repeat(10_001), false).is_err());
    }

    #[test]
    fn empty_and_whitespace_rejected() {
        assert!(title("   \n\t ").is_err());
        assert!(title("\u{0}\u{1}").is_err());
        assert!(title("ok").is_ok());
    }

    #[test]
    fn tag_rules() {
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(tags(&many).is_err());
        assert_eq!(tags(&many[..20]).unwrap().len(), 20);
        assert!(tags(&["x".repeat(51)]).is_err());
        assert!(tags(&["x".repeat(50)]).is_ok());
        assert!(tags(&[" ".into()]).is_err());
        assert_eq!(
            tags(&["a\nb".into(), "ab".into()]).unwrap(),
            vec!["ab".to_string()]
        );
    }

    const BIDI_OVERRIDE: char = '\u{202e}';
    const NUL: char = '\u{0}';

    proptest::proptest! {
        #[test]
        fn cleaned_text_has_no_controls(s in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}a-z\\u{202e}]*") {
            let out = strip(&s, true);
            proptest::prop_assert!(out.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()));
            proptest::prop_assert!(!out.contains(BIDI_OVERRIDE));
            let single = strip(&s, false);
            proptest::prop_assert!(single.chars().all(|c| !c.is_control()));
        }

        #[test]
        fn accepted_titles_respect_limits(s in ".{0,300}") {
            if let Ok(t) = title(&s) {
                proptest::prop_assert!(t.chars().count() <= MAX_TITLE);
                proptest::prop_assert!(!t.trim().is_empty());
                proptest::prop_assert!(!t.contains(NUL));
            }
        }

        #[test]
        fn accepted_tags_respect_limits(v in proptest::collection::vec(".{0,60}", 0..25)) {
            if let Ok(tags) = tags(&v) {
                proptest::prop_assert!(tags.len() <= MAX_TAGS);
                proptest::prop_assert!(tags.iter().all(|t| !t.is_empty() && t.chars().count() <= MAX_TAG && !t.chars().any(char::is_control)));
            }
        }
    }

    #[test]
    fn names() {
        assert!(workspace_name("default").is_ok());
        assert!(workspace_name("Default").is_err());
        assert!(workspace_name("a/b").is_err());
        assert_eq!(email(" A@B.example ").unwrap(), "a@b.example");
        assert!(email("a@b@c").is_err());
        assert!(email("a b@c").is_err());
    }
}
