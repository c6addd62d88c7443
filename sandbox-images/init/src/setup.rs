//! The setup sequence, in the one order that is safe:
//! no_new_privs → non-dumpable → subreaper → capabilities → rlimits → landlock → signals →
//! relay → gate (nonce from stdin; stdin → /dev/null) → agent (setsid → signals reset → seccomp → exec).
//!
//! no_new_privs first: nothing after it can gain privileges through exec. Non-dumpable before
//! anything sensitive is in memory. Capabilities before rlimits so the agent cannot raise a hard
//! limit (CAP_SYS_RESOURCE is gone). Landlock after, while paths can still be opened. The relay
//! is started by init after landlock, so it runs confined too. Seccomp last, in the child just
//! before exec, so init's own setup never hits it and the agent never runs without it.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use paddock_policy::sandbox::SandboxProfile;
use seccompiler::BpfProgram;
use tracing::info;

use crate::InitError;
use crate::gate::Nonce;
use crate::kernel::{AgentSpawn, Kernel, LandlockOutcome, Pid};

/// What [`run`] started.
#[derive(Debug)]
pub struct Started {
    /// The agent's pid.
    pub pid: Pid,
    /// What landlock did.
    pub landlock: LandlockOutcome,
    /// The launcher's nonce, when the gate is on.
    pub nonce: Option<Nonce>,
}

/// Runs every step and starts the agent. With `gate`, the agent starts only once the launcher's
/// nonce has been read from stdin (after non-dumpable, so the nonce is never readable).
///
/// # Errors
/// The first failing step's error; nothing after it runs (fail closed).
pub fn run<K: Kernel>(
    k: &mut K,
    profile: &SandboxProfile,
    agent: &AgentSpawn,
    gate: bool,
) -> Result<Started, InitError> {
    k.set_no_new_privs()?;
    k.set_non_dumpable()?;
    k.set_child_subreaper()?;
    k.clear_capabilities()?;
    for (limit, value) in profile.rlimits.in_order() {
        k.set_rlimit(limit, value)?;
    }
    let landlock = k.apply_landlock(&profile.filesystem)?;
    k.block_signals()?;
    k.start_relay(&profile.relay)?;
    let nonce = if gate { Some(k.open_gate()?) } else { None };
    let pid = k.spawn_agent(agent)?;
    info!(pid, landlock = ?landlock, seccomp_programs = agent.filters.len(), gate, "agent started");
    Ok(Started {
        pid,
        landlock,
        nonce,
    })
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, InitError> {
    CString::new(bytes).map_err(|_| InitError::Agent {
        program: what.to_owned(),
        reason: "contains a NUL byte".into(),
    })
}

/// Resolves the program like `execvp` (a name without `/` is searched in `PATH`).
///
/// # Errors
/// [`InitError::Agent`] when nothing executable is found.
pub fn resolve_program(
    program: &OsStr,
    path_var: Option<&OsStr>,
    is_executable: impl Fn(&Path) -> bool,
) -> Result<PathBuf, InitError> {
    let shown = program.to_string_lossy().into_owned();
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(InitError::Agent {
            program: shown,
            reason: "empty program name".into(),
        });
    }
    let default_path = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let path = path_var.unwrap_or(default_path);
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| InitError::Agent {
            program: shown,
            reason: "not found in PATH".into(),
        })
}

/// Builds the agent's exec arguments: the command, the inherited environment with the proxy
/// variables forced to the relay, and the compiled filters.
///
/// # Errors
/// [`InitError::Agent`] for an unresolvable program or a NUL byte.
pub fn prepare_agent(
    command: &[OsString],
    env: Vec<(OsString, OsString)>,
    profile: &SandboxProfile,
    filters: Vec<BpfProgram>,
    is_executable: impl Fn(&Path) -> bool,
) -> Result<AgentSpawn, InitError> {
    let Some(first) = command.first() else {
        return Err(InitError::Usage("no agent command".into()));
    };
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let program = resolve_program(first, path_var, is_executable)?;
    let shown = first.to_string_lossy().into_owned();
    let argv = command
        .iter()
        .map(|a| cstring(a.as_bytes(), &shown))
        .collect::<Result<Vec<_>, _>>()?;
    let proxy = profile.relay.proxy_environment();
    let mut envp = Vec::with_capacity(env.len() + proxy.len());
    for (k, v) in &env {
        if proxy.iter().any(|(pk, _)| OsStr::new(pk) == k) {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(cstring(&kv, &shown)?);
    }
    for (k, v) in proxy {
        envp.push(cstring(format!("{k}={v}").as_bytes(), &shown)?);
    }
    Ok(AgentSpawn {
        program: cstring(program.as_os_str().as_bytes(), &shown)?,
        argv,
        envp,
        filters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::{Call, FakeKernel};
    use crate::kernel::{CHILD_STEPS, ChildStep};
    use paddock_policy::sandbox::Rlimit;

    fn agent() -> AgentSpawn {
        AgentSpawn {
            program: CString::new("/bin/true").unwrap(),
            argv: vec![CString::new("true").unwrap()],
            envp: vec![],
            filters: vec![],
        }
    }

    #[test]
    fn steps_run_in_the_safe_order_with_seccomp_last_before_exec() {
        let profile = SandboxProfile::agent_default();
        let mut k = FakeKernel::default();
        let started = run(&mut k, &profile, &agent(), true).unwrap();
        assert_eq!(started.pid, 100);
        assert!(started.nonce.is_some());
        assert_eq!(
            k.calls,
            vec![
                Call::NoNewPrivs,
                Call::NonDumpable,
                Call::ChildSubreaper,
                Call::ClearCapabilities,
                Call::Rlimit(Rlimit::Core, 0),
                Call::Rlimit(Rlimit::Nofile, 4096),
                Call::Rlimit(Rlimit::Fsize, 1 << 30),
                Call::Rlimit(Rlimit::Nproc, 1024),
                Call::Landlock,
                Call::BlockSignals,
                Call::Relay("127.0.0.1:3128".into()),
                Call::OpenGate,
                Call::Spawn(vec![
                    ChildStep::NewSession,
                    ChildStep::ResetSignals,
                    ChildStep::InstallSeccomp,
                    ChildStep::Exec,
                ]),
            ]
        );
        // Seccomp is the last thing before exec.
        assert_eq!(
            CHILD_STEPS[CHILD_STEPS.len() - 2],
            ChildStep::InstallSeccomp
        );
        assert_eq!(CHILD_STEPS[CHILD_STEPS.len() - 1], ChildStep::Exec);
    }

    #[test]
    fn without_the_gate_nothing_is_read_from_stdin() {
        let mut k = FakeKernel::default();
        let started = run(&mut k, &SandboxProfile::agent_default(), &agent(), false).unwrap();
        assert!(started.nonce.is_none());
        assert!(!k.calls.contains(&Call::OpenGate));
    }

    #[test]
    fn a_failing_step_stops_everything_after_it() {
        for failing in [
            Call::NoNewPrivs,
            Call::NonDumpable,
            Call::ClearCapabilities,
            Call::Rlimit(Rlimit::Core, 0),
            Call::Landlock,
            Call::Relay("127.0.0.1:3128".into()),
            Call::OpenGate,
        ] {
            let mut k = FakeKernel {
                fail_on: Some(failing.clone()),
                ..FakeKernel::default()
            };
            assert!(run(&mut k, &SandboxProfile::agent_default(), &agent(), true).is_err());
            assert_eq!(k.calls.last(), Some(&failing));
            assert!(
                !k.calls.iter().any(|c| matches!(c, Call::Spawn(_))),
                "{failing:?}"
            );
        }
    }

    #[test]
    fn proxy_variables_are_forced_to_the_relay() {
        let profile = SandboxProfile::agent_default();
        let env = vec![
            (OsString::from("PATH"), OsString::from("/usr/bin")),
            (
                OsString::from("HTTPS_PROXY"),
                OsString::from("http://evil.test:1"),
            ),
            (OsString::from("LANG"), OsString::from("C.UTF-8")),
        ];
        let a = prepare_agent(
            &[OsString::from("git"), OsString::from("status")],
            env,
            &profile,
            vec![],
            |p| p == Path::new("/usr/bin/git"),
        )
        .unwrap();
        assert_eq!(a.program.to_str().unwrap(), "/usr/bin/git");
        let envs: Vec<&str> = a.envp.iter().map(|c| c.to_str().unwrap()).collect();
        assert!(envs.contains(&"HTTPS_PROXY=http://127.0.0.1:3128"));
        assert!(!envs.iter().any(|e| e.contains("evil.test")));
        assert!(envs.contains(&"LANG=C.UTF-8"));
    }

    #[test]
    fn program_resolution() {
        let exe = |p: &Path| p == Path::new("/bin/sh");
        assert_eq!(
            resolve_program(OsStr::new("sh"), Some(OsStr::new("relative:/bin")), exe).unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert!(resolve_program(OsStr::new("nope"), None, exe).is_err());
        assert!(resolve_program(OsStr::new(""), None, exe).is_err());
        assert_eq!(
            resolve_program(OsStr::new("./x"), None, exe).unwrap(),
            PathBuf::from("./x")
        );
    }
}
