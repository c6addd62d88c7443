//! Command line and profile loading: `paddock-init [OPTIONS] -- CMD [ARGS...]`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use paddock_policy::sandbox::SandboxProfile;

use crate::InitError;

/// Usage text.
pub const USAGE: &str = "paddock-init [--profile FILE.json] [--relay-listen ADDR:PORT] \
[--proxy-socket PATH] [--gate] [--print-profile] -- CMD [ARGS...]";

/// Parsed command line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// Profile file (JSON); the built-in agent profile when absent.
    pub profile: Option<PathBuf>,
    /// Override of `relay.listen`.
    pub relay_listen: Option<SocketAddr>,
    /// Override of `relay.proxy_socket`.
    pub proxy_socket: Option<String>,
    /// Print the effective profile as JSON and exit.
    pub print_profile: bool,
    /// Hold the agent until a nonce line arrives on stdin; report `\n<nonce> <status>` after it
    /// exits and wait for stdin to close (see [`crate::gate`]).
    pub gate: bool,
    /// The agent command.
    pub command: Vec<OsString>,
}

fn value(it: &mut impl Iterator<Item = OsString>, flag: &str) -> Result<String, InitError> {
    it.next()
        .and_then(|v| v.into_string().ok())
        .ok_or_else(|| InitError::Usage(format!("{flag} needs a UTF-8 value; {USAGE}")))
}

/// Parses the arguments after the program name.
///
/// # Errors
/// [`InitError::Usage`] on an unknown flag, a missing value or a missing command.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, InitError> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--") => {
                out.command = it.collect();
                break;
            }
            Some("--profile") => out.profile = Some(PathBuf::from(value(&mut it, "--profile")?)),
            Some("--relay-listen") => {
                let v = value(&mut it, "--relay-listen")?;
                out.relay_listen = Some(v.parse().map_err(|_| {
                    InitError::Usage(format!("--relay-listen {v:?} is not ADDR:PORT"))
                })?);
            }
            Some("--proxy-socket") => out.proxy_socket = Some(value(&mut it, "--proxy-socket")?),
            Some("--print-profile") => out.print_profile = true,
            Some("--gate") => out.gate = true,
            _ => {
                return Err(InitError::Usage(format!(
                    "unexpected argument {arg:?}; {USAGE}"
                )));
            }
        }
    }
    if out.command.is_empty() && !out.print_profile {
        return Err(InitError::Usage(format!("no agent command; {USAGE}")));
    }
    Ok(out)
}

/// The effective, validated profile.
///
/// # Errors
/// [`InitError::Profile`] when the file cannot be read or parsed,
/// [`InitError::ProfileInvalid`] when it (with overrides) fails validation.
pub fn load_profile(args: &Args) -> Result<SandboxProfile, InitError> {
    let mut profile = match &args.profile {
        None => SandboxProfile::agent_default(),
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| InitError::Profile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            serde_json::from_str(&text).map_err(|e| InitError::Profile {
                path: shown,
                reason: e.to_string(),
            })?
        }
    };
    if let Some(listen) = args.relay_listen {
        profile.relay.listen = listen;
    }
    if let Some(sock) = &args.proxy_socket {
        profile.relay.proxy_socket.clone_from(sock);
    }
    profile.validate()?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_options_and_command() {
        let a = parse(os(&[
            "--relay-listen",
            "127.0.0.1:4000",
            "--proxy-socket",
            "/run/p.sock",
            "--gate",
            "--",
            "sh",
            "-c",
            "--profile",
        ]))
        .unwrap();
        assert_eq!(a.relay_listen, Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(a.proxy_socket.as_deref(), Some("/run/p.sock"));
        assert!(a.gate);
        assert_eq!(a.command, os(&["sh", "-c", "--profile"]));
    }

    #[test]
    fn refuses_unknown_flags_and_missing_command() {
        assert!(parse(os(&["--weaken", "--", "sh"])).is_err());
        assert!(parse(os(&["--profile"])).is_err());
        assert!(parse(os(&[])).is_err());
        assert!(parse(os(&["--relay-listen", "nope", "--", "sh"])).is_err());
        assert!(parse(os(&["--print-profile"])).is_ok());
    }

    #[test]
    fn overrides_are_validated() {
        let a = parse(os(&["--relay-listen", "0.0.0.0:3128", "--", "sh"])).unwrap();
        assert!(matches!(
            load_profile(&a),
            Err(InitError::ProfileInvalid(_))
        ));
        let a = parse(os(&["--relay-listen", "127.0.0.1:3999", "--", "sh"])).unwrap();
        assert_eq!(load_profile(&a).unwrap().relay.listen.port(), 3999);
    }

    #[test]
    fn weakened_profile_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let mut p = SandboxProfile::agent_default();
        p.seccomp.rules.retain(|r| r.syscall != "ptrace");
        std::fs::write(&path, serde_json::to_string(&p).unwrap()).unwrap();
        let a = Args {
            profile: Some(path.clone()),
            command: os(&["sh"]),
            ..Args::default()
        };
        assert!(matches!(
            load_profile(&a),
            Err(InitError::ProfileInvalid(_))
        ));
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(load_profile(&a), Err(InitError::Profile { .. })));
    }
}
