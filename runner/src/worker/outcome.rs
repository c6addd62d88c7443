//! What a finished agent run means for its issue: pure classification of the sandbox's result.
//!
//! The agent's output is untrusted: only its last non-empty stdout line is read, only for the
//! `BLOCKED:` marker, and the question is kept as plain text (cut, control characters removed).

/// Longest question kept from a `BLOCKED:` line, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// How the sandbox run ended, as far as the outcome is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The agent exited with this status.
    Exited(i64),
    /// The wall-clock limit stopped it.
    TimedOut,
    /// The sandbox failed (the agent's status is unknown or was never reported).
    Crashed,
}

/// What the runner does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Commit the work tree; push if it changed, else block with [`NO_CHANGE`].
    Commit,
    /// The agent asked a question: block the issue with it as a comment; push nothing.
    Blocked(String),
    /// The attempt failed; the issue goes back by the lease rules.
    Failed(String),
}

/// The comment left when an agent finished without changing anything.
pub const NO_CHANGE: &str = "The agent finished without changing any file, so nothing was pushed.";

/// The question of a `BLOCKED:` last line, if the output ends with one.
pub fn blocked_question(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let rest = last.trim().strip_prefix("BLOCKED:")?;
    let q: String = rest
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUESTION_CHARS)
        .collect();
    let q = q.trim().to_owned();
    Some(if q.is_empty() {
        "The agent is blocked but asked no question.".to_owned()
    } else {
        q
    })
}

/// Classifies a finished run.
pub fn classify(ended: Ended, stdout: &[u8]) -> Verdict {
    match ended {
        Ended::TimedOut => Verdict::Failed("the agent ran out of time".into()),
        Ended::Crashed => Verdict::Failed("the sandbox failed before the agent finished".into()),
        Ended::Exited(status) => {
            if let Some(q) = blocked_question(stdout) {
                Verdict::Blocked(q)
            } else if status == 0 {
                Verdict::Commit
            } else {
                Verdict::Failed(format!("the agent exited with status {status}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_non_empty_line_can_block() {
        assert_eq!(
            blocked_question(b"working\nBLOCKED: which port?\n\n  \n"),
            Some("which port?".into())
        );
        assert_eq!(blocked_question(b"BLOCKED: early\nthen more work\n"), None);
        assert_eq!(blocked_question(b"not BLOCKED: x"), None);
        assert_eq!(blocked_question(b""), None);
        assert_eq!(
            blocked_question(b"BLOCKED:"),
            Some("The agent is blocked but asked no question.".into())
        );
        let q = blocked_question(b"BLOCKED: a\x1b[2Jb\x07c").unwrap();
        assert_eq!(q, "a [2Jb c");
        let long = format!("BLOCKED: {}", "x".repeat(MAX_QUESTION_CHARS * 2));
        assert_eq!(
            blocked_question(long.as_bytes()).unwrap().chars().count(),
            MAX_QUESTION_CHARS
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(classify(Ended::Exited(0), b"done\n"), Verdict::Commit);
        assert_eq!(
            classify(Ended::Exited(1), b"BLOCKED: need a key\n"),
            Verdict::Blocked("need a key".into())
        );
        assert!(matches!(classify(Ended::Exited(3), b""), Verdict::Failed(m) if m.contains('3')));
        assert!(matches!(
            classify(Ended::TimedOut, b"BLOCKED: x"),
            Verdict::Failed(_)
        ));
        assert!(matches!(classify(Ended::Crashed, b""), Verdict::Failed(_)));
    }
}
