//! Agent adapters: which image runs, with which command, environment, egress and budgets.
//!
//! Built in: `claude-code`, `codex`, `aider`, `mini-swe-agent` and `script`. A `[runner.agents.*]`
//! table overrides a built-in field by field or defines a new agent. Templates are expanded here,
//! from data only: `{task}` (the task text) and `{task_file}` (`/paddock/task.md`) in the
//! command, `{handle:NAME}` in environment values (the broker handle of credential `NAME`; an
//! unknown name is an error). Any other brace is literal text, as shell scripts need. Real
//! secrets never appear in an adapter: credentials name vault secrets, and the sandbox gets
//! handles. A task too long for one `execve` argument is not passed inline: `{task}` then
//! becomes [`TASK_BY_FILE`], pointing at the task file, which always holds the full text.

use std::collections::BTreeMap;
use std::time::Duration;

/// Where the task is mounted inside the sandbox.
pub const TASK_FILE: &str = "/paddock/task.md";

/// Longest argument a `{task}` expansion may produce. Linux refuses an `execve` with any single
/// argument over `MAX_ARG_STRLEN` (128 KiB) with `E2BIG`; this leaves room below it.
pub const MAX_INLINE_TASK_ARG: usize = 96 * 1024;

/// Most bytes all arguments together may take when the task is inline (the whole argument and
/// environment area is limited too, to a quarter of the stack limit, usually 2 MiB).
pub const MAX_INLINE_ARGV: usize = 512 * 1024;

/// What `{task}` expands to when the task is too long to pass inline.
pub const TASK_BY_FILE: &str = "The task is too long to pass on the command line. Read it in full \
from the file /paddock/task.md and do what it says.";

/// A credential an agent uses: a vault secret, offered to the sandbox as a handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUse {
    /// Name the handle is referred to by (`{handle:NAME}`).
    pub name: String,
    /// Vault secret holding the real value.
    pub secret: String,
    /// Hosts the handle may be sent to.
    pub hosts: Vec<String>,
    /// Headers it may appear in.
    pub headers: Vec<String>,
}

/// A resolved agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    /// Agent name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Command template.
    pub command: Vec<String>,
    /// Environment templates.
    pub env: BTreeMap<String, String>,
    /// Hosts the agent may write to (POST, PUT, …) over HTTPS.
    pub write_hosts: Vec<String>,
    /// LLM hosts whose usage counts against `max_tokens`.
    pub token_hosts: Vec<String>,
    /// Credentials offered as handles.
    pub credentials: Vec<CredentialUse>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Token budget.
    pub max_tokens: Option<u64>,
    /// Request budget.
    pub max_requests: Option<u64>,
}

/// An adapter that cannot be used. Names the agent and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// No built-in or configured agent of that name.
    #[error("unknown agent `{0}`")]
    Unknown(String),
    /// A field is missing or wrong.
    #[error("agent `{agent}`: {field}: {reason}")]
    Invalid {
        /// Agent name.
        agent: String,
        /// Field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Default wall-clock limit of an agent run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn llm(
    name: &str,
    image: &str,
    command: &[&str],
    env_var: &str,
    host: &str,
    headers: &[&str],
    secret: &str,
) -> Adapter {
    let cred = "llm";
    Adapter {
        name: name.into(),
        image: image.into(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: BTreeMap::from([(env_var.to_owned(), format!("{{handle:{cred}}}"))]),
        write_hosts: vec![host.into()],
        token_hosts: vec![host.into()],
        credentials: vec![CredentialUse {
            name: cred.into(),
            secret: secret.into(),
            hosts: vec![host.into()],
            headers: headers.iter().map(|s| (*s).to_owned()).collect(),
        }],
        timeout: DEFAULT_TIMEOUT,
        max_tokens: None,
        max_requests: None,
    }
}

/// An agent with an image and nothing else (no command, credentials or budgets).
fn bare(name: &str, image: &str) -> Adapter {
    Adapter {
        name: name.into(),
        image: image.into(),
        command: Vec::new(),
        env: BTreeMap::new(),
        write_hosts: Vec::new(),
        token_hosts: Vec::new(),
        credentials: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
        max_tokens: None,
        max_requests: None,
    }
}

/// The built-in agents.
pub fn builtin(name: &str) -> Option<Adapter> {
    const ANTHROPIC: &str = "api.anthropic.com";
    const OPENAI: &str = "api.openai.com";
    Some(match name {
        "claude-code" => llm(
            name,
            "paddock/claude-code:latest",
            &["claude", "-p", "{task}", "--permission-mode", "acceptEdits"],
            "ANTHROPIC_API_KEY",
            ANTHROPIC,
            &["x-api-key", "authorization"],
            "anthropic-api-key",
        ),
        "codex" => llm(
            name,
            "paddock/codex:latest",
            &[
                "codex",
                "exec",
                "--skip-git-repo-check",
                "--sandbox",
                "danger-full-access",
                "{task}",
            ],
            "OPENAI_API_KEY",
            OPENAI,
            &["authorization"],
            "openai-api-key",
        ),
        "aider" => llm(
            name,
            "paddock/aider:latest",
            &[
                "aider",
                "--yes-always",
                "--no-git",
                "--no-auto-commits",
                "--no-check-update",
                "--no-show-release-notes",
                "--no-analytics",
                "--message-file",
                "{task_file}",
            ],
            "ANTHROPIC_API_KEY",
            ANTHROPIC,
            &["x-api-key", "authorization"],
            "anthropic-api-key",
        ),
        "mini-swe-agent" => llm(
            name,
            "paddock/mini-swe-agent:latest",
            &["mini", "--yolo", "--task", "{task}"],
            "ANTHROPIC_API_KEY",
            ANTHROPIC,
            &["x-api-key", "authorization"],
            "anthropic-api-key",
        ),
        // `script` runs the configured command in the generic image; it has no default command.
        "script" => bare(name, "paddock/agent:latest"),
        _ => return None,
    })
}

/// Names of the built-in agents.
pub const BUILTIN: &[&str] = &["claude-code", "codex", "aider", "mini-swe-agent", "script"];

/// Field-by-field overrides from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterOverride {
    /// Image.
    pub image: Option<String>,
    /// Command template.
    pub command: Option<Vec<String>>,
    /// Extra or replaced environment templates.
    pub env: BTreeMap<String, String>,
    /// Replaces the write hosts.
    pub write_hosts: Option<Vec<String>>,
    /// Replaces the credentials.
    pub credentials: Option<Vec<CredentialUse>>,
    /// Timeout.
    pub timeout_secs: Option<u64>,
    /// Token budget.
    pub max_tokens: Option<u64>,
    /// Request budget.
    pub max_requests: Option<u64>,
}

fn invalid(agent: &str, field: &'static str, reason: impl Into<String>) -> AdapterError {
    AdapterError::Invalid {
        agent: agent.into(),
        field,
        reason: reason.into(),
    }
}

fn valid_env_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Applies `over` to the built-in of `name` (or to an empty agent for a new name) and checks
/// the result.
pub fn resolve(name: &str, over: Option<&AdapterOverride>) -> Result<Adapter, AdapterError> {
    let mut a = match (builtin(name), over) {
        (Some(a), _) => a,
        (None, Some(_)) => bare(name, ""),
        (None, None) => return Err(AdapterError::Unknown(name.into())),
    };
    if let Some(o) = over {
        if let Some(i) = &o.image {
            a.image.clone_from(i);
        }
        if let Some(c) = &o.command {
            a.command.clone_from(c);
        }
        for (k, v) in &o.env {
            a.env.insert(k.clone(), v.clone());
        }
        if let Some(w) = &o.write_hosts {
            a.write_hosts.clone_from(w);
        }
        if let Some(c) = &o.credentials {
            a.credentials.clone_from(c);
        }
        if let Some(t) = o.timeout_secs {
            a.timeout = Duration::from_secs(t);
        }
        if o.max_tokens.is_some() {
            a.max_tokens = o.max_tokens;
        }
        if o.max_requests.is_some() {
            a.max_requests = o.max_requests;
        }
    }
    check(&a)?;
    Ok(a)
}

fn check(a: &Adapter) -> Result<(), AdapterError> {
    if a.image.is_empty() {
        return Err(invalid(&a.name, "image", "is required"));
    }
    if a.command.is_empty() || a.command[0].is_empty() {
        return Err(invalid(
            &a.name,
            "command",
            "is required (argv, first element the program)",
        ));
    }
    if a.timeout.is_zero() || a.timeout > Duration::from_secs(24 * 3600) {
        return Err(invalid(&a.name, "timeout_secs", "must be 1..=86400"));
    }
    let names: Vec<&str> = a.credentials.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in a.credentials.iter().enumerate() {
        if c.name.is_empty() || names[..i].contains(&c.name.as_str()) {
            return Err(invalid(
                &a.name,
                "credentials",
                "names must be non-empty and unique",
            ));
        }
        if c.hosts.is_empty() || c.headers.is_empty() {
            return Err(invalid(
                &a.name,
                "credentials",
                format!("`{}` needs hosts and headers", c.name),
            ));
        }
    }
    for (k, v) in &a.env {
        if !valid_env_name(k) {
            return Err(invalid(
                &a.name,
                "env",
                format!("{k:?} is not an environment variable name"),
            ));
        }
        expand_env_value(v, &|n| names.contains(&n).then(String::new))
            .map_err(|r| invalid(&a.name, "env", format!("{k}: {r}")))?;
    }
    if a.max_tokens.is_some() && a.token_hosts.is_empty() {
        return Err(invalid(
            &a.name,
            "max_tokens",
            "the agent has no LLM host to meter",
        ));
    }
    Ok(())
}

/// Expands a command template for `task`: every argument through [`expand_command_arg`]. When an
/// argument would exceed [`MAX_INLINE_TASK_ARG`] or all of them [`MAX_INLINE_ARGV`], `{task}`
/// expands to [`TASK_BY_FILE`] instead, so the agent still starts and reads the task from
/// [`TASK_FILE`].
pub fn expand_command(command: &[String], task: &str) -> Vec<String> {
    let inline: Vec<String> = command
        .iter()
        .map(|a| expand_command_arg(a, task))
        .collect();
    let total = inline
        .iter()
        .fold(0usize, |n, a| n.saturating_add(a.len()).saturating_add(1));
    if total <= MAX_INLINE_ARGV && inline.iter().all(|a| a.len() <= MAX_INLINE_TASK_ARG) {
        return inline;
    }
    command
        .iter()
        .map(|a| expand_command_arg(a, TASK_BY_FILE))
        .collect()
}

/// Expands one command argument: `{task}` and `{task_file}`, in one pass (task text that
/// itself contains `{task_file}` stays as it is). Other braces are left alone.
pub fn expand_command_arg(arg: &str, task: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    loop {
        let next = [("{task_file}", TASK_FILE), ("{task}", task)]
            .into_iter()
            .filter_map(|(k, v)| rest.find(k).map(|i| (i, k, v)))
            .min_by_key(|(i, _, _)| *i);
        let Some((i, k, v)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i]);
        out.push_str(v);
        rest = &rest[i + k.len()..];
    }
}

/// Expands one environment value: each `{handle:NAME}` through `handle`; an unknown name or an
/// unclosed reference is an error. Other braces are left alone.
pub fn expand_env_value(
    value: &str,
    handle: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    const OPEN: &str = "{handle:";
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let close = after
            .find('}')
            .ok_or_else(|| "unclosed `{handle:`".to_owned())?;
        let name = &after[..close];
        let h = handle(name)
            .ok_or_else(|| format!("`{{handle:{name}}}` names no credential of the agent"))?;
        out.push_str(&h);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_but_script_resolves_alone() {
        for name in BUILTIN {
            let r = resolve(name, None);
            if *name == "script" {
                assert!(matches!(
                    r,
                    Err(AdapterError::Invalid {
                        field: "command",
                        ..
                    })
                ));
            } else {
                let a = r.unwrap();
                assert!(a.env.values().all(|v| v.starts_with("{handle:")), "{name}");
                assert!(!a.credentials.is_empty());
            }
        }
        assert!(matches!(
            resolve("nope", None),
            Err(AdapterError::Unknown(_))
        ));
    }

    #[test]
    fn overrides_apply_field_by_field() {
        let o = AdapterOverride {
            command: Some(vec!["sh".into(), "-c".into(), "echo hi > a.txt".into()]),
            timeout_secs: Some(60),
            ..AdapterOverride::default()
        };
        let a = resolve("script", Some(&o)).unwrap();
        assert_eq!(a.image, "paddock/agent:latest");
        assert_eq!(a.timeout, Duration::from_secs(60));
        let o = AdapterOverride {
            image: Some("corp/claude:1".into()),
            ..AdapterOverride::default()
        };
        let a = resolve("claude-code", Some(&o)).unwrap();
        assert_eq!(a.image, "corp/claude:1");
        assert_eq!(a.command[0], "claude");
    }

    #[test]
    fn a_task_too_long_for_one_argument_goes_by_file_and_a_normal_one_inline() {
        assert!(TASK_BY_FILE.contains(TASK_FILE));
        // A discussion full of `<` (each JSON-escaped to six bytes) past Linux's 128 KiB.
        let huge = "\\u003c".repeat(30_000);
        assert!(huge.len() > 128 * 1024);
        let normal = "Fix the parser; see the comments.".repeat(100);
        for name in ["claude-code", "codex", "mini-swe-agent"] {
            let a = resolve(name, None).unwrap();
            let long = expand_command(&a.command, &huge);
            assert!(!long.iter().any(|x| x.contains(&huge)), "{name}");
            assert!(long.iter().any(|x| x == TASK_BY_FILE), "{name}");
            assert!(
                long.iter().all(|x| x.len() <= MAX_INLINE_TASK_ARG),
                "{name}"
            );
            let short = expand_command(&a.command, &normal);
            assert!(short.contains(&normal), "{name}: inline");
            assert!(!short.iter().any(|x| x == TASK_BY_FILE), "{name}");
        }
        // Just under the bound stays inline; just over goes by file.
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), "{task}".to_owned()];
        let at = "x".repeat(MAX_INLINE_TASK_ARG);
        assert_eq!(expand_command(&cmd, &at)[2], at);
        let over = "x".repeat(MAX_INLINE_TASK_ARG + 1);
        assert_eq!(expand_command(&cmd, &over)[2], TASK_BY_FILE);
        // A task repeated across arguments counts in all.
        let many: Vec<String> = std::iter::repeat_n("{task}".to_owned(), 8).collect();
        let part = "y".repeat(MAX_INLINE_TASK_ARG - 10);
        assert!(
            expand_command(&many, &part)
                .iter()
                .all(|x| x == TASK_BY_FILE)
        );
        // `{task_file}` is untouched by the switch.
        let aider = resolve("aider", None).unwrap();
        assert!(expand_command(&aider.command, &huge).contains(&TASK_FILE.to_owned()));
    }

    #[test]
    fn templates_are_checked_and_expanded() {
        assert_eq!(
            expand_command_arg("read {task_file}: {task}", "T{task_file}"),
            "read /paddock/task.md: T{task_file}"
        );
        assert_eq!(
            expand_command_arg("echo ${HOME} {name} {task", "x"),
            "echo ${HOME} {name} {task"
        );
        assert!(expand_env_value("{handle:llm", &|_| None).is_err());
        assert_eq!(expand_env_value("${X} {y}", &|_| None).unwrap(), "${X} {y}");
        let h = |n: &str| (n == "llm").then(|| "pdk_h_x".to_owned());
        assert_eq!(
            expand_env_value("Bearer {handle:llm}", &h).unwrap(),
            "Bearer pdk_h_x"
        );
        assert!(expand_env_value("{handle:other}", &h).is_err());
        assert_eq!(
            expand_env_value("{secret:llm}", &h).unwrap(),
            "{secret:llm}"
        );

        let bad_env = AdapterOverride {
            command: Some(vec!["true".into()]),
            env: BTreeMap::from([("KEY".into(), "{handle:missing}".into())]),
            ..AdapterOverride::default()
        };
        assert!(matches!(
            resolve("script", Some(&bad_env)),
            Err(AdapterError::Invalid { field: "env", .. })
        ));
        let bad_name = AdapterOverride {
            command: Some(vec!["true".into()]),
            env: BTreeMap::from([("A=B".into(), "x".into())]),
            ..AdapterOverride::default()
        };
        assert!(resolve("script", Some(&bad_name)).is_err());
        let tokens_without_host = AdapterOverride {
            command: Some(vec!["true".into()]),
            max_tokens: Some(10),
            ..AdapterOverride::default()
        };
        assert!(resolve("script", Some(&tokens_without_host)).is_err());
    }
}
