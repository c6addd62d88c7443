//! The sandbox backend: launches each agent in a hardened Docker container and always removes it.
//!
//! The container settings come from `paddock_policy::sandbox::SandboxProfile` (data, validated
//! before any container starts). The launcher talks to Docker through the narrow [`Engine`]
//! trait, so the exact request and the order of calls are unit-tested against a recording fake
//! ([`fake::FakeEngine`]) and proven against real Docker by the integration tests.
//!
//! One run, in order: create the container (workspace = anonymous size-capped tmpfs volume) →
//! attach → start (paddock-init sets up and its gate waits on stdin) → put the work tree (tar) into
//! `/workspace` → write the run's nonce (the agent starts) → stream, cap and scrub output until
//! the gate reports the agent's status → read `/workspace` back (tar) → close stdin → wait →
//! remove the container and its volume.

mod docker;
mod engine;
mod error;
pub mod fake;
mod launcher;
mod output;
pub mod proxy;
mod spec;
pub mod trust;
pub mod workspace;

pub use docker::DockerEngine;
pub use engine::{
    Attached, Engine, EngineError, InputBox, OutputChunk, OutputStream, OutputStreamBox,
};
pub use error::SandboxError;
pub use launcher::{
    Cleanup, DEFAULT_WORKSPACE_RETURN_CAP, EXIT_REFUSED, EXIT_TIMED_OUT, Launcher, RunOutcome,
    RunStatus,
};
pub use output::{LIVE_HOLD_MAX, LiveScrubber, MarkerScanner, NoSink, OutputCapture, OutputSink};
pub use spec::{
    CA_BUNDLE_ENV_VARS, CA_BUNDLE_FILE, CA_ENV_VARS, CA_FILE, CONTAINER_PREFIX, INIT_GATE_FLAG,
    LABEL_ISSUE, LABEL_MANAGED, LABEL_OWNER, LABEL_RUN, LABEL_SLOT, RunSpec, SANDBOX_HOSTNAME,
    WORKSPACE_INODES, ca_environment, container_body, run_labels, valid_label_value, validate,
};

#[cfg(test)]
mod launcher_tests;
