//! The agent's supervisor: forwards signals, reaps every child (orphans included) and returns
//! the agent's status once it exits.

use nix::libc;
use tracing::{debug, info};

use crate::InitError;
use crate::kernel::{ChildExit, FORWARDED_SIGNALS, Kernel, Pid};

/// Runs until the agent exits; then kills what is left of its process group, reaps what has
/// already exited, and returns the agent's status.
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
