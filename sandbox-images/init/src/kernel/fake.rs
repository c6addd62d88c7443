//! A recording kernel: every call is logged in order; signals and exits are scripted.

use std::collections::VecDeque;

use paddock_policy::sandbox::{FilesystemPolicy, RelaySettings, Rlimit};

use super::{AgentSpawn, CHILD_STEPS, ChildExit, ChildStep, Kernel, LandlockOutcome, Pid};
use crate::InitError;
use crate::gate::{self, Nonce};

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    NoNewPrivs,
    NonDumpable,
    ChildSubreaper,
    ClearCapabilities,
    Rlimit(Rlimit, u64),
    Landlock,
    BlockSignals,
    Relay(String),
    OpenGate,
    CloseGate(u8),
    Spawn(Vec<ChildStep>),
    WaitSignal,
    Reap,
    Signal(Pid, i32),
    KillAllOthers,
}

#[derive(Debug, Default)]
pub struct FakeKernel {
    pub calls: Vec<Call>,
    pub signals: VecDeque<i32>,
    pub exits: VecDeque<Vec<(Pid, ChildExit)>>,
    pub fail_on: Option<Call>,
    pub landlock: Option<LandlockOutcome>,
    pub pending: VecDeque<(Pid, ChildExit)>,
}

impl FakeKernel {
    fn record(&mut self, call: Call) -> Result<(), InitError> {
        let fail = self.fail_on.as_ref() == Some(&call);
        self.calls.push(call);
        if fail {
            return Err(InitError::Capabilities("scripted failure".into()));
        }
        Ok(())
    }
}

impl Kernel for FakeKernel {
    fn set_no_new_privs(&mut self) -> Result<(), InitError> {
        self.record(Call::NoNewPrivs)
    }
    fn set_non_dumpable(&mut self) -> Result<(), InitError> {
        self.record(Call::NonDumpable)
    }
    fn set_child_subreaper(&mut self) -> Result<(), InitError> {
        self.record(Call::ChildSubreaper)
    }
    fn clear_capabilities(&mut self) -> Result<(), InitError> {
        self.record(Call::ClearCapabilities)
    }
    fn set_rlimit(&mut self, limit: Rlimit, value: u64) -> Result<(), InitError> {
        self.record(Call::Rlimit(limit, value))
    }
    fn apply_landlock(&mut self, _fs: &FilesystemPolicy) -> Result<LandlockOutcome, InitError> {
        self.record(Call::Landlock)?;
        Ok(self
            .landlock
            .unwrap_or(LandlockOutcome::Enforced { abi: 6 }))
    }
    fn block_signals(&mut self) -> Result<(), InitError> {
        self.record(Call::BlockSignals)
    }
    fn start_relay(&mut self, relay: &RelaySettings) -> Result<(), InitError> {
        self.record(Call::Relay(relay.listen.to_string()))
    }
    fn open_gate(&mut self) -> Result<Nonce, InitError> {
        self.record(Call::OpenGate)?;
        gate::read_nonce(&mut std::io::Cursor::new(
            b"00112233445566778899aabbccddeeff\n",
        ))
    }
    fn close_gate(&mut self, _nonce: &Nonce, code: u8) -> Result<(), InitError> {
        self.record(Call::CloseGate(code))
    }
    fn spawn_agent(&mut self, _agent: &AgentSpawn) -> Result<Pid, InitError> {
        self.record(Call::Spawn(CHILD_STEPS.to_vec()))?;
        Ok(100)
    }
    fn wait_signal(&mut self) -> Result<i32, InitError> {
        self.calls.push(Call::WaitSignal);
        let sig = self
            .signals
            .pop_front()
            .ok_or_else(|| InitError::Usage("script ran out of signals".into()))?;
        if sig == nix::libc::SIGCHLD
            && let Some(batch) = self.exits.pop_front()
        {
            self.pending.extend(batch);
        }
        Ok(sig)
    }
    fn reap(&mut self) -> Result<Option<(Pid, ChildExit)>, InitError> {
        self.calls.push(Call::Reap);
        Ok(self.pending.pop_front())
    }
    fn signal(&mut self, pid: Pid, sig: i32) -> Result<(), InitError> {
        self.record(Call::Signal(pid, sig))
    }
    fn kill_all_others(&mut self) -> Result<bool, InitError> {
        self.record(Call::KillAllOthers)?;
        Ok(true)
    }
}
