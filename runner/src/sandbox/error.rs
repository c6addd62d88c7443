//! Errors of the sandbox launcher.

use super::engine::EngineError;

/// Why a run could not be carried out. Never carries the run's environment or output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox profile is weaker than the baseline; nothing was started.
    #[error("sandbox profile refused: {0}")]
    Profile(#[from] paddock_policy::sandbox::ProfileError),
    /// A field of the run spec is not acceptable; nothing was started.
    #[error("run spec refused: {field}: {why}")]
    InvalidSpec {
        /// Field.
        field: &'static str,
        /// Why.
        why: String,
    },
    /// The container engine failed an operation.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Writing to the gate (the container's stdin) failed.
    #[error("could not signal the sandbox gate: {0}")]
    Gate(String),
    /// The gate reported no agent status: it refused to start the agent or was killed.
    #[error("the sandbox ended before the agent reported its status (exit {0})")]
    GateLost(i64),
    /// The workspace could not be packed or unpacked.
    #[error("workspace: {0}")]
    Workspace(String),
}
