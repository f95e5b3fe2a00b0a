//! What identifies a container, read by identity (`containers`), verdicts (`policy`) and sinks
//! (`output`) alike: the runtime that runs it, and what its runtime's API says about it. Only
//! types live here; `containers` fills them in.

pub mod metadata;

use serde::Serialize;

pub use metadata::Metadata;

/// The runtime that made a container, from its cgroup path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Containerd,
    #[serde(rename = "cri-o")]
    CriO,
    Podman,
    /// A Kubernetes container under the cgroupfs driver: the path does not say whether
    /// containerd or CRI-O runs it.
    Cri,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Podman => "podman",
            Self::Cri => "cri",
        }
    }
}
