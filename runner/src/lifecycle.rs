//! The issue life cycle: states, roles, and the transition table that says who may make which move.

use serde::{Deserialize, Serialize};

/// Where an issue is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Backlog,
    Todo,
    InProgress,
    InReview,
    Blocked,
    Done,
}

impl State {
    /// Every state, in life-cycle order.
    pub const ALL: [State; 6] = [
        State::Backlog,
        State::Todo,
        State::InProgress,
        State::InReview,
        State::Blocked,
        State::Done,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Backlog => "backlog",
            State::Todo => "todo",
            State::InProgress => "in_progress",
            State::InReview => "in_review",
            State::Blocked => "blocked",
            State::Done => "done",
        }
    }

    /// Parses the stored and wire name (exact).
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A person's role in one workspace, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Maintainer,
    Reviewer,
    Reporter,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Maintainer => "maintainer",
            Role::Reviewer => "reviewer",
            Role::Reporter => "reporter",
        }
    }

    /// Parses the stored and wire name (exact).
    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Admin,
            Role::Maintainer,
            Role::Reviewer,
            Role::Reporter,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Who is making a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A person, with their role in the workspace.
    Human(Role),
    /// A runner (machine key) that holds the lease.
    Runner,
    /// Paddock itself (the lease reaper).
    System,
}

/// Who may use one row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Humans whose role is one of these.
    Humans(&'static [Role]),
    /// The runner holding the lease.
    LeaseHolder,
    /// Only Paddock's reaper.
    SystemOnly,
}

/// One legal move.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable name used in API errors and audit events.
    pub name: &'static str,
    pub from: State,
    pub to: State,
    pub who: Allowed,
    /// The move needs non-empty feedback text (given to later runs).
    pub needs_feedback: bool,
}

const TRIAGERS: &[Role] = &[Role::Admin, Role::Maintainer];
const REVIEWERS: &[Role] = &[Role::Admin, Role::Maintainer, Role::Reviewer];

/// The whole life cycle. A move not in this table is illegal for everyone.
pub const TRANSITIONS: &[Rule] = &[
    // People triage the backlog; feedback lands there and waits for a maintainer.
    Rule {
        name: "triage",
        from: State::Backlog,
        to: State::Todo,
        who: Allowed::Humans(TRIAGERS),
        needs_feedback: false,
    },
    Rule {
        name: "deprioritise",
        from: State::Todo,
        to: State::Backlog,
        who: Allowed::Humans(TRIAGERS),
        needs_feedback: false,
    },
    Rule {
        name: "close",
        from: State::Backlog,
        to: State::Done,
        who: Allowed::Humans(TRIAGERS),
        needs_feedback: false,
    },
    // Work starts only through the atomic claim, never by editing the state.
    Rule {
        name: "claim",
        from: State::Todo,
        to: State::InProgress,
        who: Allowed::LeaseHolder,
        needs_feedback: false,
    },
    Rule {
        name: "submit",
        from: State::InProgress,
        to: State::InReview,
        who: Allowed::LeaseHolder,
        needs_feedback: false,
    },
    Rule {
        name: "agent_blocked",
        from: State::InProgress,
        to: State::Blocked,
        who: Allowed::LeaseHolder,
        needs_feedback: false,
    },
    Rule {
        name: "release",
        from: State::InProgress,
        to: State::Todo,
        who: Allowed::LeaseHolder,
        needs_feedback: false,
    },
    // The reaper: an expired lease goes back to todo, or to blocked after max_attempts.
    Rule {
        name: "lease_expired",
        from: State::InProgress,
        to: State::Todo,
        who: Allowed::SystemOnly,
        needs_feedback: false,
    },
    Rule {
        name: "attempts_exhausted",
        from: State::InProgress,
        to: State::Blocked,
        who: Allowed::SystemOnly,
        needs_feedback: false,
    },
    // Review: only a human finishes work; rejection sends it back with feedback for the next run.
    Rule {
        name: "approve",
        from: State::InReview,
        to: State::Done,
        who: Allowed::Humans(REVIEWERS),
        needs_feedback: false,
    },
    Rule {
        name: "reject",
        from: State::InReview,
        to: State::Todo,
        who: Allowed::Humans(REVIEWERS),
        needs_feedback: true,
    },
    // A blocked issue is answered by a person and queued again.
    Rule {
        name: "unblock",
        from: State::Blocked,
        to: State::Todo,
        who: Allowed::Humans(TRIAGERS),
        needs_feedback: false,
    },
    Rule {
        name: "reopen",
        from: State::Done,
        to: State::Backlog,
        who: Allowed::Humans(TRIAGERS),
        needs_feedback: false,
    },
];

/// Why a move was refused. Each names the rule (or the missing rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("no rule moves an issue from {} to {}", from.as_str(), to.as_str())]
    NoRule { from: State, to: State },
    #[error("rule `{rule}` ({} -> {}) is not allowed for {actor}", from.as_str(), to.as_str())]
    NotAllowed {
        rule: &'static str,
        from: State,
        to: State,
        actor: &'static str,
    },
    #[error("rule `{rule}` needs non-empty feedback text")]
    NeedsFeedback { rule: &'static str },
}

fn actor_name(a: Actor) -> &'static str {
    match a {
        Actor::Human(r) => r.as_str(),
        Actor::Runner => "runner",
        Actor::System => "system",
    }
}

fn allows(who: Allowed, actor: Actor) -> bool {
    match (who, actor) {
        (Allowed::Humans(roles), Actor::Human(role)) => roles.contains(&role),
        (Allowed::LeaseHolder, Actor::Runner) | (Allowed::SystemOnly, Actor::System) => true,
        _ => false,
    }
}

/// The rule for `from -> to`, if `actor` may use it.
pub fn check(
    from: State,
    to: State,
    actor: Actor,
    feedback: Option<&str>,
) -> Result<&'static Rule, TransitionError> {
    let mut rules = TRANSITIONS
        .iter()
        .filter(|r| r.from == from && r.to == to)
        .peekable();
    let first = *rules.peek().ok_or(TransitionError::NoRule { from, to })?;
    let rule = rules
        .find(|r| allows(r.who, actor))
        .ok_or(TransitionError::NotAllowed {
            rule: first.name,
            from,
            to,
            actor: actor_name(actor),
        })?;
    if rule.needs_feedback && feedback.is_none_or(|f| f.trim().is_empty()) {
        return Err(TransitionError::NeedsFeedback { rule: rule.name });
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_ACTORS: [Actor; 6] = [
        Actor::Human(Role::Admin),
        Actor::Human(Role::Maintainer),
        Actor::Human(Role::Reviewer),
        Actor::Human(Role::Reporter),
        Actor::Runner,
        Actor::System,
    ];

    #[test]
    fn only_humans_with_review_roles_finish_work() {
        for a in ALL_ACTORS {
            let r = check(State::InReview, State::Done, a, None);
            let expected = matches!(
                a,
                Actor::Human(Role::Admin | Role::Maintainer | Role::Reviewer)
            );
            assert_eq!(r.is_ok(), expected, "{a:?}");
        }
        // No path to done skips review except a triager closing a backlog item.
        for from in State::ALL {
            for a in [Actor::Runner, Actor::System] {
                assert!(check(from, State::Done, a, None).is_err());
            }
        }
    }

    #[test]
    fn reject_needs_feedback() {
        let who = Actor::Human(Role::Reviewer);
        assert!(matches!(
            check(State::InReview, State::Todo, who, None),
            Err(TransitionError::NeedsFeedback { .. })
        ));
        assert!(matches!(
            check(State::InReview, State::Todo, who, Some("  ")),
            Err(TransitionError::NeedsFeedback { .. })
        ));
        assert_eq!(
            check(State::InReview, State::Todo, who, Some("add a test"))
                .unwrap()
                .name,
            "reject"
        );
    }

    #[test]
    fn errors_name_the_rule() {
        let e = check(State::Backlog, State::Todo, Actor::Runner, None).unwrap_err();
        assert!(e.to_string().contains("`triage`"));
        let e = check(
            State::Backlog,
            State::InReview,
            Actor::Human(Role::Admin),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            TransitionError::NoRule {
                from: State::Backlog,
                to: State::InReview
            }
        );
    }

    #[test]
    fn reporters_move_nothing_and_people_never_claim() {
        for from in State::ALL {
            for to in State::ALL {
                assert!(check(from, to, Actor::Human(Role::Reporter), Some("x")).is_err());
                if to == State::InProgress {
                    assert!(check(from, to, Actor::Human(Role::Admin), None).is_err());
                }
            }
        }
        assert!(check(State::Todo, State::InProgress, Actor::Runner, None).is_ok());
        assert_eq!(
            check(State::InProgress, State::Todo, Actor::Runner, None)
                .unwrap()
                .name,
            "release"
        );
        assert_eq!(
            check(State::InProgress, State::Todo, Actor::System, None)
                .unwrap()
                .name,
            "lease_expired"
        );
        assert!(
            check(
                State::InProgress,
                State::Todo,
                Actor::Human(Role::Admin),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn table_has_no_duplicate_moves() {
        for (i, a) in TRANSITIONS.iter().enumerate() {
            for b in &TRANSITIONS[i + 1..] {
                assert!(
                    !(a.from == b.from && a.to == b.to && a.who == b.who),
                    "{} / {}",
                    a.name,
                    b.name
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("DONE"), None);
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}
