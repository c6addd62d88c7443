//! A recording [`Engine`] that plays a scripted container, for unit tests of the launcher.
//!
//! It behaves like the gate in a real container: nothing is "run" before the nonce line arrives
//! on stdin; then the scripted output is sent, then the `\n<nonce> <code>` marker (unless the
//! script hangs), and the container exits when stdin closes.

use std::sync::{Arc, Mutex};

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, ContainerState};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};

use super::engine::{Attached, Engine, EngineError, OutputChunk, OutputStream};

/// One recorded call.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `create_container(name, body)`.
    Create {
        /// Name.
        name: String,
        /// The exact request.
        body: Box<ContainerCreateBody>,
    },
    /// `attach(id)`.
    Attach(String),
    /// `start(id)`.
    Start(String),
    /// `put_archive(id, path, tar)`.
    PutArchive {
        /// Container.
        id: String,
        /// Destination.
        path: String,
        /// Tar bytes.
        len: usize,
    },
    /// `get_archive(id, path)`.
    GetArchive {
        /// Container.
        id: String,
        /// Source.
        path: String,
    },
    /// `wait(id)`.
    Wait(String),
    /// `kill(id)`.
    Kill(String),
    /// `remove_container(id)`.
    Remove(String),
    /// `list_containers(labels)`, joined with `,`.
    ListContainers(String),
    /// `list_volumes(labels)`, joined with `,`.
    ListVolumes(String),
    /// `remove_volume(name)`.
    RemoveVolume(String),
    /// `inspect(id)`.
    Inspect(String),
}

/// What the scripted container does.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// Output sent once the gate opens.
    pub output: Vec<OutputChunk>,
    /// The agent's exit code.
    pub exit_code: i64,
    /// Never finish (for timeouts).
    pub hang: bool,
    /// End the output without the marker (paddock-init refused, or the sandbox died).
    pub no_marker: bool,
    /// What `get_archive` returns.
    pub archive: Bytes,
    /// Fail this operation (by its [`Call`] name, e.g. `"start"`).
    pub fail: Option<&'static str>,
    /// Leftover containers and volumes `list_*` report.
    pub leftovers: (Vec<String>, Vec<String>),
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    exited: Option<watch::Sender<Option<i64>>>,
}

/// The recording fake.
#[derive(Clone)]
pub struct FakeEngine {
    script: Arc<Script>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEngine").finish_non_exhaustive()
    }
}

const ID: &str = "fake-container-id";

impl FakeEngine {
    /// A fake playing `script`.
    #[must_use]
    pub fn new(script: Script) -> Self {
        Self {
            script: Arc::new(script),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .lock()
            .map(|s| s.calls.clone())
            .unwrap_or_default()
    }

    /// The calls as short names, in order (`create`, `attach`, …).
    #[must_use]
    pub fn call_names(&self) -> Vec<&'static str> {
        self.calls().iter().map(call_name).collect()
    }

    fn record(&self, call: Call) -> Result<(), EngineError> {
        let name = call_name(&call);
        if let Ok(mut s) = self.state.lock() {
            s.calls.push(call);
        }
        if self.script.fail == Some(name) {
            return Err(EngineError::Api {
                op: name,
                message: "scripted failure".into(),
            });
        }
        Ok(())
    }

    fn exit_channel(&self) -> watch::Receiver<Option<i64>> {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match &s.exited {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(None);
                s.exited = Some(tx);
                rx
            }
        }
    }

    fn set_exit(&self, code: i64) {
        let _ = self.exit_channel();
        if let Ok(s) = self.state.lock()
            && let Some(tx) = &s.exited
        {
            tx.send_if_modified(|v| {
                if v.is_none() {
                    *v = Some(code);
                    true
                } else {
                    false
                }
            });
        }
    }
}

/// Short name of a call.
#[must_use]
pub fn call_name(call: &Call) -> &'static str {
    match call {
        Call::Create { .. } => "create",
        Call::Attach(_) => "attach",
        Call::Start(_) => "start",
        Call::PutArchive { .. } => "put_archive",
        Call::GetArchive { .. } => "get_archive",
        Call::Wait(_) => "wait",
        Call::Kill(_) => "kill",
        Call::Remove(_) => "remove",
        Call::ListContainers(_) => "list_containers",
        Call::ListVolumes(_) => "list_volumes",
        Call::RemoveVolume(_) => "remove_volume",
        Call::Inspect(_) => "inspect",
    }
}

impl Engine for FakeEngine {
    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, EngineError> {
        self.record(Call::Create {
            name: name.to_owned(),
            body: Box::new(body),
        })?;
        Ok(ID.to_owned())
    }

    async fn attach(&self, id: &str) -> Result<Attached, EngineError> {
        self.record(Call::Attach(id.to_owned()))?;
        let (stdin_w, stdin_r) = tokio::io::duplex(4096);
        let (tx, rx) = mpsc::channel::<Result<OutputChunk, EngineError>>(64);
        let script = Arc::clone(&self.script);
        let me = self.clone();
        let mut exited = self.exit_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdin_r).lines();
            let play = async {
                let Ok(Some(nonce)) = lines.next_line().await else {
                    me.set_exit(125);
                    return;
                };
                for chunk in &script.output {
                    if tx.send(Ok(chunk.clone())).await.is_err() {
                        return;
                    }
                }
                if script.hang {
                    std::future::pending::<()>().await;
                }
                if script.no_marker {
                    me.set_exit(script.exit_code);
                    return;
                }
                let marker = format!("\n{nonce} {}\n", script.exit_code);
                let _ = tx
                    .send(Ok(OutputChunk {
                        stream: OutputStream::Stdout,
                        bytes: Bytes::from(marker),
                    }))
                    .await;
                // Held until stdin closes.
                while let Ok(Some(_)) = lines.next_line().await {}
                me.set_exit(script.exit_code);
            };
            tokio::select! {
                () = play => {}
                _ = exited.wait_for(Option::is_some) => {}
            }
            drop(tx);
        });
        let output = tokio_stream_from(rx);
        Ok(Attached {
            output,
            input: Box::pin(stdin_w),
        })
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.record(Call::Start(id.to_owned()))
    }

    async fn put_archive(&self, id: &str, path: &str, tar: Bytes) -> Result<(), EngineError> {
        self.record(Call::PutArchive {
            id: id.to_owned(),
            path: path.to_owned(),
            len: tar.len(),
        })
    }

    async fn get_archive(
        &self,
        id: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Bytes, EngineError> {
        self.record(Call::GetArchive {
            id: id.to_owned(),
            path: path.to_owned(),
        })?;
        if u64::try_from(self.script.archive.len()).unwrap_or(u64::MAX) > max_bytes {
            return Err(EngineError::TooLarge {
                op: "get archive",
                limit: max_bytes,
            });
        }
        Ok(self.script.archive.clone())
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        self.record(Call::Wait(id.to_owned()))?;
        let mut rx = self.exit_channel();
        let code = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| EngineError::Api {
                op: "wait",
                message: "fake dropped".into(),
            })?;
        Ok(code.unwrap_or(-1))
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.record(Call::Kill(id.to_owned()))?;
        self.set_exit(137);
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        self.record(Call::Remove(id.to_owned()))?;
        self.set_exit(137);
        Ok(())
    }

    async fn list_containers(&self, labels: &[String]) -> Result<Vec<String>, EngineError> {
        self.record(Call::ListContainers(labels.join(",")))?;
        Ok(self.script.leftovers.0.clone())
    }

    async fn list_volumes(&self, labels: &[String]) -> Result<Vec<String>, EngineError> {
        self.record(Call::ListVolumes(labels.join(",")))?;
        Ok(self.script.leftovers.1.clone())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.record(Call::RemoveVolume(name.to_owned()))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, EngineError> {
        self.record(Call::Inspect(id.to_owned()))?;
        Ok(ContainerInspectResponse {
            id: Some(id.to_owned()),
            state: Some(ContainerState {
                oom_killed: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Result<OutputChunk, EngineError>>,
) -> super::engine::OutputStreamBox {
    Box::pin(
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed(),
    )
}
