//! What a runtime's API says about a container, on top of what its cgroup path says.

use std::collections::BTreeMap;

use serde::Serialize;

/// Container metadata from the runtime's API. Every field is optional: runtimes differ in what
/// they expose (CRI has no `privileged` outside verbose info; Docker has no pods).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Docker: the name without its leading `/`; CRI: the container name in the pod spec.
    pub name: Option<String>,
    /// The image as the user wrote it (`Config.Image`, or the CRI spec's image).
    pub image: Option<String>,
    /// Image ID or digest (`sha256:…`).
    pub image_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub privileged: Option<bool>,
    /// The user the container runs as, as configured (`Config.User`; empty means the image's).
    pub user: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// PID of the container's first process in the host PID namespace.
    pub pid: Option<u32>,
    pub networks: Vec<Network>,
    pub pod: Option<PodMeta>,
    /// Host paths mounted into the container (`source` on the host, `destination` inside).
    pub mounts: Vec<Mount>,
    /// Read from the runtime's files on disk (the fast path at container creation), not its
    /// API: the addresses may be missing still.
    #[serde(skip)]
    pub from_disk: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: String,
    pub destination: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Network {
    pub name: String,
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
}
