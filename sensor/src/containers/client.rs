//! Runtime API clients behind one interface: Docker/Podman Engine API (`docker`), CRI over gRPC
//! (`cri`). Every call is bounded by the client's timeout; a runtime that hangs costs at most
//! that long, never the sensor.

use std::path::Path;

use super::{Runtime, docker::DockerClient};
use crate::identity::Metadata;

/// Errors of runtime clients: the HTTP client's (connect, timeout, protocol), which the gRPC
/// client maps its own failures onto.
pub use crate::http::HttpError as ClientError;

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

    /// Metadata available without a round trip to the runtime (Docker's on-disk container
    /// config), for the container's first events; the API answer completes it.
    pub fn metadata_fast(&self, id: &str) -> Option<Metadata> {
        match self {
            Self::Docker(c) => c.metadata_from_disk(id),
            Self::Cri(_) => None,
        }
    }

    /// Whether the one-time discovery is done (or not needed).
    pub fn learned(&self) -> bool {
        match self {
            Self::Docker(c) => c.data_root_known(),
            Self::Cri(_) => true,
        }
    }

    /// One-time discovery after the runtime first answers.
    pub async fn learn(&self) -> Result<(), ClientError> {
        match self {
            Self::Docker(c) => c.learn_data_root().await,
            Self::Cri(_) => Ok(()),
        }
    }

    /// What this runtime says of container `id`.
    pub async fn metadata(&self, id: &str) -> Result<Lookup, ClientError> {
        match self {
            Self::Docker(c) => c.metadata(id).await,
            Self::Cri(c) => Ok(match c.metadata(id).await? {
                Some(metadata) => Lookup::Found(Box::new(metadata)),
                None => Lookup::Unknown,
            }),
        }
    }
}

/// A runtime's answer about one container.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<Metadata>),
    /// It does not know the container.
    Unknown,
    /// It cannot say now (Podman answers 500 while a container it is starting or cleaning up
    /// is locked): asked again, and never taken for "unknown".
    Busy,
}
