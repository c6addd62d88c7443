//! The narrow container-engine interface the launcher drives (Docker in production, a recording fake in tests).

use std::future::Future;
use std::pin::Pin;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse};
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncWrite;

/// Which stream a chunk of agent output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// The agent's standard output.
    Stdout,
    /// The agent's standard error (paddock-init logs here too).
    Stderr,
}

/// One chunk of output read from an attached container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    /// Where it came from.
    pub stream: OutputStream,
    /// The bytes, unscrubbed.
    pub bytes: Bytes,
}

/// Output stream of an attached container.
pub type OutputStreamBox = Pin<Box<dyn Stream<Item = Result<OutputChunk, EngineError>> + Send>>;
/// Standard input of an attached container.
pub type InputBox = Pin<Box<dyn AsyncWrite + Send>>;

/// An attached container: its output (from before start) and its standard input.
pub struct Attached {
    /// Interleaved stdout/stderr chunks in arrival order; ends when the container stops.
    pub output: OutputStreamBox,
    /// The container's stdin; closing it is the end-of-input signal.
    pub input: InputBox,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").finish_non_exhaustive()
    }
}

/// What went wrong talking to the engine. Messages come from the engine and name the operation;
/// they never carry the container's environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine is not reachable (socket missing, daemon down).
    #[error("container engine unreachable: {0}")]
    Unreachable(String),
    /// The object does not exist.
    #[error("{op}: no such object {id:?}")]
    NotFound {
        /// Operation.
        op: &'static str,
        /// Container or volume.
        id: String,
    },
    /// The engine refused or failed the operation.
    #[error("{op} failed: {message}")]
    Api {
        /// Operation.
        op: &'static str,
        /// Engine's message.
        message: String,
    },
    /// A downloaded archive was larger than allowed.
    #[error("{op}: archive larger than {limit} bytes")]
    TooLarge {
        /// Operation.
        op: &'static str,
        /// The cap.
        limit: u64,
    },
}

/// Everything the launcher asks of a container engine. Each call maps to one Docker API request,
/// so a recording implementation shows the exact order of operations.
pub trait Engine: Clone + Send + Sync + 'static {
    /// `POST /containers/create?name=NAME`; returns the container id.
    fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// `POST /containers/ID/attach?stream=1&stdin=1&stdout=1&stderr=1`.
    fn attach(&self, id: &str) -> impl Future<Output = Result<Attached, EngineError>> + Send;

    /// `POST /containers/ID/start`.
    fn start(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `PUT /containers/ID/archive?path=PATH&noOverwriteDirNonDir=1`: extract a tar stream
    /// (ownership as in the tar headers).
    fn put_archive(
        &self,
        id: &str,
        path: &str,
        tar: Bytes,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `GET /containers/ID/archive?path=PATH`, refused past `max_bytes`.
    fn get_archive(
        &self,
        id: &str,
        path: &str,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Bytes, EngineError>> + Send;

    /// `POST /containers/ID/wait`: the exit code once the container stopped.
    fn wait(&self, id: &str) -> impl Future<Output = Result<i64, EngineError>> + Send;

    /// `POST /containers/ID/kill` (SIGKILL).
    fn kill(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `DELETE /containers/ID?force=1&v=1`: also removes its anonymous volumes (the workspace).
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `GET /containers/json?all=1&filters={"label":[LABELS]}`: ids of containers carrying every
    /// `key=value` label.
    fn list_containers(
        &self,
        labels: &[String],
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;

    /// `GET /volumes?filters={"label":[LABELS]}`: names of volumes carrying every label.
    fn list_volumes(
        &self,
        labels: &[String],
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;

    /// `DELETE /volumes/NAME`.
    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// `GET /containers/ID/json`.
    fn inspect(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ContainerInspectResponse, EngineError>> + Send;
}
