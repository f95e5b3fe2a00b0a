//! Runtime API clients behind one interface: Docker/Podman Engine API (`docker`), CRI over gRPC
//! (`cri`). Every call is bounded by the client's timeout; a runtime that hangs costs at most
//! that long, never the sensor.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{Runtime, docker::DockerClient, metadata::Metadata};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {socket}: {source}")]
    Connect { socket: PathBuf, source: std::io::Error },
    #[error("{socket} did not answer within {timeout:?}")]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("{socket}: {detail}")]
    Protocol { socket: PathBuf, detail: String },
}

/// One runtime endpoint.
pub enum Client {
    Docker(DockerClient),
    Cri(super::cri::CriClient),
}

impl Client {
    pub fn runtime(&self) -> Runtime {
        match self {
            Self::Docker(c) => c.runtime(),
            Self::Cri(c) => c.runtime(),
        }
    }

    pub fn socket(&self) -> &Path {
        match self {
            Self::Docker(c) => c.socket(),
            Self::Cri(c) => c.socket(),
        }
    }

    /// Name and version of the runtime, to check that it answers.
    pub async fn version(&self) -> Result<String, ClientError> {
        match self {
            Self::Docker(c) => c.version().await,
            Self::Cri(c) => c.version().await,
        }
    }

    /// Full ids of the containers the runtime runs now.
    pub async fn list(&self) -> Result<Vec<String>, ClientError> {
        match self {
            Self::Docker(c) => c.list().await,
            Self::Cri(c) => c.list_container_ids().await,
        }
    }

    /// Metadata of container `id`; `None` when this runtime does not know it.
    pub async fn metadata(&self, id: &str) -> Result<Option<Metadata>, ClientError> {
        match self {
            Self::Docker(c) => c.metadata(id).await,
            Self::Cri(c) => c.metadata(id).await,
        }
    }
}
