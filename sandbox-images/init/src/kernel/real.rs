//! The kernel for real: prctl, capabilities, rlimits, landlock, the relay, fork/exec and reaping.

use std::ffi::c_char;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use caps::CapSet;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid as NixPid, fork, pipe2};
use paddock_policy::sandbox::{FilesystemPolicy, RelaySettings, Rlimit};

use super::{
    AgentSpawn, CHILD_STEPS, ChildExit, ChildStep, FORWARDED_SIGNALS, Kernel, LandlockOutcome, Pid,
};
use crate::gate::{self, Nonce};
use crate::{InitError, landlock_rules, relay};
use tracing::warn;

/// The real kernel.
#[derive(Debug, Default)]
pub struct RealKernel {
    /// The launcher's stdin while the gate is open (close-on-exec, above fd 2).
    gate_input: Option<OwnedFd>,
}

impl RealKernel {
    /// A handle on the running kernel.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for raw in FORWARDED_SIGNALS {
        if let Ok(sig) = Signal::try_from(*raw) {
            set.add(sig);
        }
    }
    set
}

/// Whether any of the real, effective or saved uids is root (root regains capabilities on exec
/// from the bounding set, so for root the bounding set must be empty).
fn any_root_uid() -> bool {
    let r = nix::unistd::getresuid();
    r.map_or(true, |ids| {
        ids.real.is_root() || ids.effective.is_root() || ids.saved.is_root()
    })
}

fn prctl_err(what: &'static str) -> InitError {
    InitError::Prctl {
        what,
        source: io::Error::last_os_error(),
    }
}

impl Kernel for RealKernel {
    fn set_no_new_privs(&mut self) -> Result<(), InitError> {
        // SAFETY: prctl with integer arguments only; no memory is passed.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(prctl_err("PR_SET_NO_NEW_PRIVS"));
        }
        Ok(())
    }

    fn set_non_dumpable(&mut self) -> Result<(), InitError> {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            return Err(prctl_err("PR_SET_DUMPABLE"));
        }
        // SAFETY: prctl with integer arguments only.
        let now = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        if now != 0 {
            return Err(prctl_err("PR_GET_DUMPABLE (still dumpable)"));
        }
        Ok(())
    }

    fn set_child_subreaper(&mut self) -> Result<(), InitError> {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(prctl_err("PR_SET_CHILD_SUBREAPER"));
        }
        Ok(())
    }

    fn clear_capabilities(&mut self) -> Result<(), InitError> {
        let fail = |what: &str, e: caps::errors::CapsError| {
            InitError::Capabilities(format!("{what}: {e}"))
        };
        // The bounding set first: dropping from it needs CAP_SETPCAP, which goes with the
        // effective set below. A non-empty bounding set without CAP_SETPCAP is refused.
        let bounding = caps::read(None, CapSet::Bounding).map_err(|e| fail("read bounding", e))?;
        let can_drop = caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)
            .map_err(|e| fail("read effective", e))?;
        let keep_bounding = !bounding.is_empty() && !can_drop && !any_root_uid();
        if keep_bounding {
            // Without CAP_SETPCAP the bounding set cannot shrink. For a non-root uid under
            // no_new_privs it is inert: exec can no longer gain file capabilities or setuid.
            warn!(
                bounding = bounding.len(),
                "capability bounding set not empty and cannot be dropped; inert under \
                 no_new_privs for a non-root uid (run the container with --cap-drop ALL)"
            );
        } else {
            for cap in bounding {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| fail(&format!("drop {cap} from bounding"), e))?;
            }
        }
        for set in [
            CapSet::Ambient,
            CapSet::Inheritable,
            CapSet::Effective,
            CapSet::Permitted,
        ] {
            caps::clear(None, set).map_err(|e| fail(&format!("clear {set:?}"), e))?;
        }
        let verify_bounding = (!keep_bounding).then_some(CapSet::Bounding);
        for set in verify_bounding.into_iter().chain([
            CapSet::Ambient,
            CapSet::Inheritable,
            CapSet::Effective,
            CapSet::Permitted,
        ]) {
            let left = caps::read(None, set).map_err(|e| fail("verify", e))?;
            if !left.is_empty() {
                return Err(InitError::Capabilities(format!(
                    "{set:?} still holds {} capabilities",
                    left.len()
                )));
            }
        }
        Ok(())
    }

    fn set_rlimit(&mut self, limit: Rlimit, value: u64) -> Result<(), InitError> {
        let (resource, name) = match limit {
            Rlimit::Core => (Resource::RLIMIT_CORE, "RLIMIT_CORE"),
            Rlimit::Nofile => (Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
            Rlimit::Fsize => (Resource::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
            Rlimit::Nproc => (Resource::RLIMIT_NPROC, "RLIMIT_NPROC"),
        };
        let err = |e: Errno| InitError::Rlimit {
            limit: name,
            source: io::Error::from(e),
        };
        // Never above the inherited hard limit: lowering is the point, and raising it would need
        // CAP_SYS_RESOURCE, which is already gone.
        let (_, hard) = getrlimit(resource).map_err(err)?;
        let value = value.min(hard);
        setrlimit(resource, value, value).map_err(err)
    }

    fn apply_landlock(&mut self, fs: &FilesystemPolicy) -> Result<LandlockOutcome, InitError> {
        landlock_rules::apply(fs)
    }

    fn block_signals(&mut self) -> Result<(), InitError> {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled_signals()), None)
            .map_err(|e| InitError::os("sigprocmask", e))
    }

    fn start_relay(&mut self, settings: &RelaySettings) -> Result<(), InitError> {
        let listener = relay::bind(settings.listen)?;
        relay::spawn(
            listener,
            PathBuf::from(&settings.proxy_socket),
            settings.max_connections,
        )?;
        Ok(())
    }

    fn open_gate(&mut self) -> Result<Nonce, InitError> {
        let stdin = io::stdin();
        let nonce = gate::read_nonce(&mut stdin.lock())?;
        // Move the launcher's stdin out of the agent's reach: a close-on-exec copy for init,
        // /dev/null on fd 0 for everything exec'd from here on.
        // SAFETY: fcntl on fd 0 with an integer argument; the result is a new descriptor we own.
        let kept = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
        if kept < 0 {
            return Err(InitError::Os {
                what: "keep stdin",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `kept` is a fresh descriptor nothing else owns.
        let kept = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(kept) };
        let null = nix::fcntl::open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| InitError::os("open /dev/null", e))?;
        // SAFETY: dup2 of a descriptor we own onto fd 0; dup2 clears close-on-exec on the copy.
        if unsafe { libc::dup2(null.as_raw_fd(), 0) } != 0 {
            return Err(InitError::Os {
                what: "dup2 /dev/null",
                source: io::Error::last_os_error(),
            });
        }
        self.gate_input = Some(kept);
        Ok(nonce)
    }

    fn close_gate(&mut self, nonce: &Nonce, code: u8) -> Result<(), InitError> {
        gate::report(&mut io::stdout().lock(), nonce, code).map_err(|source| InitError::Os {
            what: "write the gate marker",
            source,
        })?;
        if let Some(fd) = self.gate_input.take() {
            gate::wait_for_close(&mut std::fs::File::from(fd));
        }
        Ok(())
    }

    fn spawn_agent(&mut self, agent: &AgentSpawn) -> Result<Pid, InitError> {
        spawn(agent)
    }

    fn wait_signal(&mut self) -> Result<i32, InitError> {
        loop {
            match handled_signals().wait() {
                Ok(sig) => return Ok(sig as i32),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(InitError::os("sigwait", e)),
            }
        }
    }

    fn reap(&mut self) -> Result<Option<(Pid, ChildExit)>, InitError> {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    return Ok(Some((pid.as_raw(), ChildExit::Exited(code))));
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    return Ok(Some((pid.as_raw(), ChildExit::Signaled(sig as i32))));
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(None),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(InitError::os("waitpid", e)),
            }
        }
    }

    fn signal(&mut self, pid: Pid, sig: i32) -> Result<(), InitError> {
        let sig = Signal::try_from(sig).map_err(|e| InitError::os("signal number", e))?;
        match kill(NixPid::from_raw(pid), sig) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(InitError::os("kill", e)),
        }
    }

    fn kill_all_others(&mut self) -> Result<bool, InitError> {
        if nix::unistd::getpid().as_raw() != 1 {
            return Ok(false);
        }
        let deadline = Instant::now() + KILL_ALL_TIMEOUT;
        loop {
            // From PID 1, kill(-1) reaches every process of the namespace except init itself
            // (its relay threads included); zombies count until reaped, and ESRCH means no
            // process is left. Repeating it catches a child forked during the previous round.
            match kill(NixPid::from_raw(-1), Signal::SIGKILL) {
                Err(Errno::ESRCH) => return Ok(true),
                Ok(()) => {}
                Err(e) => return Err(InitError::os("kill -1", e)),
            }
            while self.reap()?.is_some() {}
            if Instant::now() >= deadline {
                return Err(InitError::Os {
                    what: "kill the sandbox's remaining processes",
                    source: io::Error::new(io::ErrorKind::TimedOut, "processes survived SIGKILL"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// How long the processes left after the agent may take to die before paddock-init gives up
/// (and exits without reporting the agent's status, so nothing is read back).
const KILL_ALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Forks the agent. The child runs only async-signal-safe calls (other threads may hold locks),
/// and reports a failed step through a close-on-exec pipe: EOF on the pipe means `exec` worked.
fn spawn(agent: &AgentSpawn) -> Result<Pid, InitError> {
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).map_err(|e| InitError::os("pipe2", e))?;
    let mut argv: Vec<*const c_char> = agent.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const c_char> = agent.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = SigSet::empty();

    // SAFETY: the child only calls async-signal-safe functions (setsid, signal, sigprocmask,
    // prctl/seccomp, execve, write, _exit) on memory prepared before the fork.
    match unsafe { fork() } {
        Err(e) => Err(InitError::os("fork", e)),
        Ok(ForkResult::Child) => child(agent, &argv, &envp, &empty, &wr),
        Ok(ForkResult::Parent { child }) => {
            drop(wr);
            parent_wait_exec(rd, child)
        }
    }
}

fn child(
    agent: &AgentSpawn,
    argv: &[*const c_char],
    envp: &[*const c_char],
    empty: &SigSet,
    report: &OwnedFd,
) -> ! {
    for (index, step) in CHILD_STEPS.iter().enumerate() {
        let ok = match step {
            // SAFETY: setsid takes no arguments.
            ChildStep::NewSession => (unsafe { libc::setsid() }) >= 0,
            ChildStep::ResetSignals => {
                // SAFETY: restoring a default disposition; no handler pointer involved.
                let pipe_ok =
                    (unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) }) != libc::SIG_ERR;
                // SAFETY: `empty` is a valid, initialised sigset on this stack.
                let mask_ok = (unsafe {
                    libc::sigprocmask(libc::SIG_SETMASK, empty.as_ref(), std::ptr::null_mut())
                }) == 0;
                pipe_ok && mask_ok
            }
            ChildStep::InstallSeccomp => agent
                .filters
                .iter()
                .all(|f| seccompiler::apply_filter(f).is_ok()),
            ChildStep::Exec => {
                // SAFETY: program, argv and envp are NUL-terminated strings and NULL-terminated
                // arrays that outlive the call (it only returns on failure).
                unsafe { libc::execve(agent.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
                false
            }
        };
        if !ok {
            let errno = Errno::last_raw();
            let mut msg = [0u8; 5];
            msg[0] = u8::try_from(index).unwrap_or(u8::MAX);
            msg[1..].copy_from_slice(&errno.to_ne_bytes());
            // SAFETY: writing 5 bytes from a stack buffer to our own pipe.
            unsafe { libc::write(report.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
            // SAFETY: _exit never returns and runs no atexit handlers (the parent's state).
            unsafe { libc::_exit(127) };
        }
    }
    // SAFETY: unreachable in practice (exec replaced the image); exit without unwinding.
    unsafe { libc::_exit(127) }
}

fn parent_wait_exec(rd: OwnedFd, child: NixPid) -> Result<Pid, InitError> {
    let mut msg = [0u8; 5];
    let mut got = 0;
    while got < msg.len() {
        match nix::unistd::read(&rd, &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(InitError::os("read exec status", e)),
        }
    }
    if got == 0 {
        return Ok(child.as_raw());
    }
    // The child failed before exec: collect it and report the step.
    let _ = waitpid(child, None);
    let step = CHILD_STEPS
        .get(usize::from(msg[0]))
        .map_or("unknown", |s| s.name());
    let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
    Err(InitError::ChildSetup {
        step,
        source: io::Error::from_raw_os_error(errno),
    })
}
