//! The agent's supervisor: forwards signals, reaps every child (orphans included) and returns
//! the agent's status once it exits.

use nix::libc;
use tracing::{debug, info};

use crate::InitError;
use crate::kernel::{ChildExit, FORWARDED_SIGNALS, Kernel, Pid};

/// Runs until the agent exits; then kills what is left of its process group and, as PID 1 of
/// the sandbox, every other process (one that called `setsid` to leave the group could
/// otherwise keep changing `/workspace` while it is read back, or keep using the proxy), reaps
/// them, and returns the agent's status. The status is reported only after that.
///
/// # Errors
/// A failing `sigwait`/`waitpid`/`kill`.
pub fn supervise<K: Kernel>(k: &mut K, agent: Pid) -> Result<ChildExit, InitError> {
    loop {
        let sig = k.wait_signal()?;
        if sig == libc::SIGCHLD {
            let mut agent_exit = None;
            while let Some((pid, exit)) = k.reap()? {
                if pid == agent {
                    agent_exit = Some(exit);
                } else {
                    debug!(pid, ?exit, "reaped orphan");
                }
            }
            if let Some(exit) = agent_exit {
                info!(pid = agent, ?exit, "agent exited");
                // The agent leads its own session and group: stragglers in it go with it.
                k.signal(-agent, libc::SIGKILL)?;
                // Anything else the agent started, in whatever session or group.
                if k.kill_all_others()? {
                    debug!("killed and reaped every other process of the sandbox");
                }
                while k.reap()?.is_some() {}
                return Ok(exit);
            }
        } else if FORWARDED_SIGNALS.contains(&sig) {
            debug!(signal = sig, pid = agent, "forwarding signal");
            k.signal(agent, sig)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::{Call, FakeKernel};

    #[test]
    fn forwards_signals_reaps_orphans_and_returns_the_agent_status() {
        let mut k = FakeKernel::default();
        k.signals
            .extend([libc::SIGTERM, libc::SIGCHLD, libc::SIGHUP, libc::SIGCHLD]);
        k.exits.push_back(vec![(555, ChildExit::Exited(0))]);
        k.exits.push_back(vec![
            (556, ChildExit::Exited(3)),
            (100, ChildExit::Signaled(15)),
        ]);
        let exit = supervise(&mut k, 100).unwrap();
        assert_eq!(exit, ChildExit::Signaled(15));
        assert_eq!(exit.exit_code(), 143);
        let forwarded: Vec<_> = k
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Signal(pid, sig) => Some((*pid, *sig)),
                _ => None,
            })
            .collect();
        assert_eq!(
            forwarded,
            vec![
                (100, libc::SIGTERM),
                (100, libc::SIGHUP),
                (-100, libc::SIGKILL)
            ]
        );
    }

    #[test]
    fn every_other_process_is_killed_once_the_agent_exits_and_not_before() {
        let mut k = FakeKernel::default();
        k.signals.extend([libc::SIGCHLD, libc::SIGCHLD]);
        k.exits.push_back(vec![(7, ChildExit::Exited(0))]);
        k.exits.push_back(vec![(100, ChildExit::Exited(0))]);
        assert_eq!(supervise(&mut k, 100).unwrap(), ChildExit::Exited(0));
        let at = |c: &Call| k.calls.iter().position(|x| x == c);
        let group = at(&Call::Signal(-100, libc::SIGKILL)).unwrap();
        let all = at(&Call::KillAllOthers).unwrap();
        assert!(group < all, "{:?}", k.calls);
        assert_eq!(
            k.calls
                .iter()
                .filter(|c| **c == Call::KillAllOthers)
                .count(),
            1,
            "only after the agent, not when an orphan exits: {:?}",
            k.calls
        );
        // The last reap follows the kill: nothing killed is left a zombie.
        assert_eq!(k.calls.last(), Some(&Call::Reap));
        // A failing kill is an error, so no status is reported.
        let mut k = FakeKernel {
            fail_on: Some(Call::KillAllOthers),
            ..FakeKernel::default()
        };
        k.signals.push_back(libc::SIGCHLD);
        k.exits.push_back(vec![(100, ChildExit::Exited(0))]);
        assert!(supervise(&mut k, 100).is_err());
    }

    #[test]
    fn orphan_exit_does_not_end_supervision() {
        let mut k = FakeKernel::default();
        k.signals.extend([libc::SIGCHLD, libc::SIGCHLD]);
        k.exits.push_back(vec![(7, ChildExit::Exited(9))]);
        k.exits.push_back(vec![(100, ChildExit::Exited(42))]);
        assert_eq!(supervise(&mut k, 100).unwrap().exit_code(), 42);
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(ChildExit::Exited(0).exit_code(), 0);
        assert_eq!(ChildExit::Exited(300).exit_code(), 44);
        assert_eq!(ChildExit::Signaled(9).exit_code(), 137);
    }
}
