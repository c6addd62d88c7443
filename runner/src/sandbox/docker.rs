//! The [`Engine`] over the Docker API (bollard).

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptions,
    ListVolumesOptions, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StartContainerOptions, UploadToContainerOptionsBuilder, WaitContainerOptions,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::engine::{Attached, Engine, EngineError, OutputChunk, OutputStream};

/// Upper bound on one API call as seen by the HTTP client. The launcher puts its own, shorter
/// deadlines around every call; this only has to outlast the longest run (attach and wait stay
/// open for the whole run).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Docker through its local socket.
#[derive(Clone, Debug)]
pub struct DockerEngine {
    docker: Docker,
}

impl DockerEngine {
    /// Connects to the local daemon (`DOCKER_HOST` or `/var/run/docker.sock`).
    pub fn connect_local() -> Result<Self, EngineError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| EngineError::Unreachable(e.to_string()))?
            .with_timeout(CLIENT_TIMEOUT);
        Ok(Self { docker })
    }

    /// Wraps an existing client.
    #[must_use]
    pub fn from_client(docker: Docker) -> Self {
        Self { docker }
    }

    /// Checks that the daemon answers.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| EngineError::Unreachable(e.to_string()))
    }

    /// The underlying client (for callers that need more than the launcher does).
    #[must_use]
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn api(op: &'static str, id: &str, e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404, ..
        } => EngineError::NotFound {
            op,
            id: id.to_owned(),
        },
        BollardError::DockerResponseServerError { message, .. } => EngineError::Api { op, message },
        BollardError::IOError { err } => EngineError::Unreachable(err.to_string()),
        BollardError::HyperResponseError { err } => EngineError::Unreachable(err.to_string()),
        other => EngineError::Api {
            op,
            message: other.to_string(),
        },
    }
}

fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), labels.to_vec())])
}

impl Engine for DockerEngine {
    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, EngineError> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|r| r.id)
            .map_err(|e| api("create container", name, e))
    }

    async fn attach(&self, id: &str) -> Result<Attached, EngineError> {
        let options = AttachContainerOptionsBuilder::new()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .logs(false)
            .build();
        let results = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| api("attach", id, e))?;
        let output = results.output.filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) => Some(Ok(OutputChunk {
                    stream: OutputStream::Stdout,
                    bytes: message,
                })),
                // A container without a TTY never sends console frames; treat them as stdout.
                Ok(LogOutput::Console { message }) => Some(Ok(OutputChunk {
                    stream: OutputStream::Stdout,
                    bytes: message,
                })),
                Ok(LogOutput::StdErr { message }) => Some(Ok(OutputChunk {
                    stream: OutputStream::Stderr,
                    bytes: message,
                })),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(api("attach stream", "", e))),
            }
        });
        Ok(Attached {
            output: Box::pin(output),
            input: results.input,
        })
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| api("start", id, e))
    }

    async fn put_archive(&self, id: &str, path: &str, tar: Bytes) -> Result<(), EngineError> {
        let options = UploadToContainerOptionsBuilder::new()
            .path(path)
            .no_overwrite_dir_non_dir("1")
            .build();
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(tar))
            .await
            .map_err(|e| api("put archive", id, e))
    }

    async fn get_archive(
        &self,
        id: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Bytes, EngineError> {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut out = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| api("get archive", id, e))?;
            let total = u64::try_from(out.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
            if total > max_bytes {
                return Err(EngineError::TooLarge {
                    op: "get archive",
                    limit: max_bytes,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        let mut stream = self.docker.wait_container(id, None::<WaitContainerOptions>);
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard turns a non-zero exit into an error; it is a status, not a failure.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(api("wait", id, e)),
            None => Err(EngineError::Api {
                op: "wait",
                message: "stream ended without a status".into(),
            }),
        }
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        match self.docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 409: not running any more, which is what we wanted.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(api("kill", id, e)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| api("remove container", id, e))
    }

    async fn list_containers(&self, labels: &[String]) -> Result<Vec<String>, EngineError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filter(labels)),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| api("list containers", "", e))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    async fn list_volumes(&self, labels: &[String]) -> Result<Vec<String>, EngineError> {
        let options = ListVolumesOptions {
            filters: Some(label_filter(labels)),
        };
        let list = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| api("list volumes", "", e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        self.docker
            .remove_volume(name, Some(options))
            .await
            .map_err(|e| api("remove volume", name, e))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, EngineError> {
        self.docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|e| api("inspect", id, e))
    }
}
