//! CRI (Kubernetes Container Runtime Interface, `runtime.v1`) client over gRPC on a unix
//! socket, for containerd's and CRI-O's CRI sockets.
//!
//! The protobuf messages are written by hand ([`api`]) with the field numbers of the CRI
//! `api.proto`, and only the fields the sensor reads: no protoc or build script is needed, and
//! prost skips every field it is not told about.
//!
//! One gRPC channel per client is kept and shared by concurrent calls. It is dropped whenever a
//! call fails below the gRPC layer (the socket refused or vanished, the connection broke, the
//! runtime stopped answering), and a cached channel that cannot take a request is replaced
//! before anything is sent, so a restarted runtime (or a client moved to another tokio runtime)
//! is simply reconnected to.
//!
//! What [`CriClient::metadata`] fills, and from where:
//!
//! | field | source |
//! |---|---|
//! | name | `ContainerStatus.metadata.name` (sandboxes: `<pod name>/sandbox`) |
//! | image | `ContainerStatus.image.user_specified_image`, else `.image.image` (sandboxes: verbose `image`) |
//! | image_id | `ContainerStatus.image_ref`, else `.image_id` |
//! | labels | `ContainerStatus.labels` (sandboxes: the sandbox's labels) |
//! | pod | `PodSandboxStatus` of the container's sandbox: name, namespace, uid, labels |
//! | pid | verbose info `pid` (both containerd and CRI-O) |
//! | user | `ContainerStatus.user.linux` (CRI ≥ 1.31), else the OCI spec's `process.user` in verbose info, as `uid:gid` |
//! | privileged | containerd: the CRI config in verbose info; CRI-O: verbose `privileged` |
//! | cap_add / cap_drop | containerd: the CRI config in verbose info (CRI-O does not expose them) |
//! | networks | not filled: host-network and CNI details are not in the container status |

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;
use tonic::{
    Code, Status,
    client::Grpc,
    codegen::http::{Uri, uri::PathAndQuery},
    transport::{Channel, Endpoint},
};
use tonic_prost::ProstCodec;

use super::{Runtime, client::ClientError};
use crate::identity::metadata::{Metadata, PodMeta};

/// The kubelet's limit: a `ListContainers` answer on a busy node, or the verbose info of a
/// container with a large OCI spec, can exceed gRPC's default 4 MiB.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Suffix of the name given to a pod sandbox (pause container). Container names in a pod spec
/// are DNS labels and cannot contain `/`, so `<pod>/sandbox` never names a real container.
pub const SANDBOX_NAME_SUFFIX: &str = "/sandbox";

pub struct CriClient {
    socket: PathBuf,
    runtime: Runtime,
    timeout: Duration,
    /// The cached connection; `None` until the first call and after any transport failure.
    channel: Mutex<Option<Channel>>,
}

/// Why one RPC failed.
#[derive(Debug)]
pub(super) enum RpcError {
    /// The runtime answered `NOT_FOUND`: it does not know the id.
    NotFound(String),
    Client(ClientError),
}

impl From<ClientError> for RpcError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl RpcError {
    /// For calls where "not found" is an error like any other.
    pub(super) fn into_client_error(self, socket: &Path, method: &str) -> ClientError {
        match self {
            Self::NotFound(message) => ClientError::Protocol {
                socket: socket.to_owned(),
                detail: format!("{method}: not found: {message}"),
            },
            Self::Client(e) => e,
        }
    }
}

impl CriClient {
    pub fn new(socket: PathBuf, runtime: Runtime, timeout: Duration) -> Self {
        Self {
            socket,
            runtime,
            timeout,
            channel: Mutex::new(None),
        }
    }

    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn protocol(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            detail: detail.into(),
        }
    }

    fn forget_channel(&self) {
        *self.channel.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Runs `operation` (any number of RPCs) within the client's timeout. A timeout also drops
    /// the cached channel: a runtime that stopped answering may be a runtime that was replaced.
    pub(super) async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => result,
            Err(_elapsed) => {
                self.forget_channel();
                Err(ClientError::Timeout {
                    socket: self.socket.clone(),
                    timeout: self.timeout,
                })
            }
        }
    }

    /// The cached channel (and `true`), or a new connection to the socket (and `false`).
    async fn channel(&self) -> Result<(Channel, bool), ClientError> {
        if let Some(channel) = self
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok((channel, true));
        }
        let path = self.socket.clone();
        // The URI only supplies the HTTP/2 `:authority` ("localhost", as grpc-go sends for unix
        // sockets); the connector ignores it and dials the socket path on every (re)connect, so
        // a socket re-created by a restarted runtime is found again.
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        });
        let channel = Endpoint::from_static("http://localhost")
            // Reconnects happen inside the channel's background task, outside `bounded`: they
            // need their own bound.
            .connect_timeout(self.timeout)
            .connect_with_connector(connector)
            .await
            .map_err(|e| self.transport_error("connect", &e))?;
        *self.channel.lock().unwrap_or_else(PoisonError::into_inner) = Some(channel.clone());
        Ok((channel, false))
    }

    /// A gRPC client on a channel ready to take a request.
    async fn ready(&self, method: &str) -> Result<Grpc<Channel>, ClientError> {
        let (channel, cached) = self.channel().await?;
        let mut grpc = Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
        match grpc.ready().await {
            Ok(()) => return Ok(grpc),
            // A fresh connection that is not ready is a real failure.
            Err(e) if !cached => return Err(self.transport_error(method, &e)),
            // The cached channel's background task is gone (it ran on a tokio runtime that has
            // ended since) or its connection broke. Nothing was sent: one fresh connection is
            // worth a try.
            Err(e) => log::debug!(
                "{}: cached CRI channel unusable ({}); reconnecting",
                self.socket.display(),
                error_chain(&e)
            ),
        }
        self.forget_channel();
        let (channel, _) = self.channel().await?;
        let mut grpc = Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
        grpc.ready()
            .await
            .map_err(|e| self.transport_error(method, &e))?;
        Ok(grpc)
    }

    /// A failure below gRPC: the channel is dropped, and the error is `Connect` when the socket
    /// could not be reached (refused, missing), `Timeout` when connecting timed out.
    fn transport_error(
        &self,
        what: &str,
        error: &(dyn std::error::Error + 'static),
    ) -> ClientError {
        self.forget_channel();
        let mut source = Some(error);
        while let Some(e) = source {
            if let Some(io_error) = e.downcast_ref::<io::Error>() {
                if io_error.kind() == io::ErrorKind::TimedOut {
                    return ClientError::Timeout {
                        socket: self.socket.clone(),
                        timeout: self.timeout,
                    };
                }
                // io::Error is not Clone; the OS error code is what callers match on.
                let source = match io_error.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(io_error.kind(), io_error.to_string()),
                };
                return ClientError::Connect {
                    socket: self.socket.clone(),
                    source,
                };
            }
            source = e.source();
        }
        self.protocol(format!("{what}: {}", error_chain(error)))
    }

    /// One unary call of `runtime.v1.RuntimeService/<method>`, not bounded by time itself:
    /// callers wrap whole operations in [`Self::bounded`].
    pub(super) async fn rpc<Req, Resp>(&self, method: &str, request: Req) -> Result<Resp, RpcError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let path = PathAndQuery::try_from(format!("/runtime.v1.RuntimeService/{method}"))
            .map_err(|e| self.protocol(format!("{method}: invalid method path: {e}")))?;
        let mut grpc = self.ready(method).await?;
        match grpc
            .unary(
                tonic::Request::new(request),
                path,
                ProstCodec::<Req, Resp>::default(),
            )
            .await
        {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(self.status_error(method, status)),
        }
    }

    fn status_error(&self, method: &str, status: Status) -> RpcError {
        // A status the runtime sent has no source; one tonic made from a local failure (refused
        // connection, broken stream) carries the underlying error.
        if std::error::Error::source(&status).is_some() {
            return RpcError::Client(self.transport_error(method, &status));
        }
        match status.code() {
            Code::NotFound => RpcError::NotFound(status.message().to_owned()),
            Code::Unimplemented => RpcError::Client(self.protocol(format!(
                "{method}: the runtime does not serve CRI runtime.v1 here: {}",
                status.message()
            ))),
            code => {
                RpcError::Client(self.protocol(format!("{method}: {code:?}: {}", status.message())))
            }
        }
    }

    /// "containerd 1.6.20 (CRI v1)".
    pub async fn version(&self) -> Result<String, ClientError> {
        self.bounded(async {
            let response: api::VersionResponse = self
                .rpc(
                    "Version",
                    api::VersionRequest {
                        version: "v1".into(),
                    },
                )
                .await
                .map_err(|e| e.into_client_error(&self.socket, "Version"))?;
            Ok(version_string(&response))
        })
        .await
    }

    /// Full ids of the running containers (`ListContainers` in state RUNNING). Pod sandboxes are
    /// not containers in CRI and are not listed; [`Self::metadata`] still answers for them.
    pub async fn list_container_ids(&self) -> Result<Vec<String>, ClientError> {
        self.bounded(async {
            let response: api::ListContainersResponse = self
                .rpc(
                    "ListContainers",
                    api::ListContainersRequest {
                        filter: Some(api::ContainerFilter {
                            state: Some(api::ContainerStateValue {
                                state: api::ContainerState::ContainerRunning as i32,
                            }),
                            ..Default::default()
                        }),
                    },
                )
                .await
                .map_err(|e| e.into_client_error(&self.socket, "ListContainers"))?;
            Ok(response.containers.into_iter().map(|c| c.id).collect())
        })
        .await
    }

    /// Metadata of container `id`, or of pod sandbox `id` (named `<pod name>/sandbox`, see
    /// [`sandbox_metadata`]). `None` when the runtime knows neither.
    pub async fn metadata(&self, id: &str) -> Result<Option<Metadata>, ClientError> {
        self.bounded(async {
            let request = api::ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: true,
            };
            let response: api::ContainerStatusResponse =
                match self.rpc("ContainerStatus", request).await {
                    Ok(response) => response,
                    Err(RpcError::NotFound(_)) => return self.sandbox(id).await,
                    Err(RpcError::Client(e)) => return Err(e),
                };
            let status = response
                .status
                .ok_or_else(|| self.protocol(format!("ContainerStatus {id}: no status")))?;
            let info = VerboseInfo::parse(&response.info);
            let sandbox_id = match info.sandbox_id() {
                Some(sandbox_id) => Some(sandbox_id),
                None => self.sandbox_id_of(&status.id).await?,
            };
            let pod = match sandbox_id {
                Some(sandbox_id) => self.sandbox_status(&sandbox_id, false).await?,
                None => None,
            };
            Ok(Some(container_metadata(
                &status,
                &info,
                pod.as_ref().and_then(|p| p.status.as_ref()),
            )))
        })
        .await
    }

    /// `PodSandboxStatus`, `None` when the runtime does not know the sandbox.
    async fn sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<Option<api::PodSandboxStatusResponse>, ClientError> {
        let request = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose,
        };
        match self.rpc("PodSandboxStatus", request).await {
            Ok(response) => Ok(Some(response)),
            Err(RpcError::NotFound(_)) => Ok(None),
            Err(RpcError::Client(e)) => Err(e),
        }
    }

    async fn sandbox(&self, id: &str) -> Result<Option<Metadata>, ClientError> {
        let Some(response) = self.sandbox_status(id, true).await? else {
            return Ok(None);
        };
        let status = response
            .status
            .ok_or_else(|| self.protocol(format!("PodSandboxStatus {id}: no status")))?;
        Ok(Some(sandbox_metadata(
            &status,
            &VerboseInfo::parse(&response.info),
        )))
    }

    /// The sandbox of a container, from `ListContainers` filtered by id: for runtimes whose
    /// verbose info does not name it.
    async fn sandbox_id_of(&self, id: &str) -> Result<Option<String>, ClientError> {
        let response: api::ListContainersResponse = self
            .rpc(
                "ListContainers",
                api::ListContainersRequest {
                    filter: Some(api::ContainerFilter {
                        id: id.to_owned(),
                        ..Default::default()
                    }),
                },
            )
            .await
            .map_err(|e| e.into_client_error(&self.socket, "ListContainers"))?;
        Ok(response
            .containers
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.pod_sandbox_id)
            .filter(|s| !s.is_empty()))
    }
}

/// The error and its sources, "a: b: c", for messages.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}

pub fn version_string(v: &api::VersionResponse) -> String {
    format!(
        "{} {} (CRI {})",
        v.runtime_name, v.runtime_version, v.runtime_api_version
    )
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The JSON under the `info` key of a verbose status. Runtimes put what they like there; every
/// accessor tolerates absence and wrong types.
#[derive(Debug, Default)]
pub struct VerboseInfo(Value);

impl VerboseInfo {
    pub fn parse(info: &BTreeMap<String, String>) -> Self {
        let Some(raw) = info.get("info") else {
            return Self::default();
        };
        match serde_json::from_str(raw) {
            Ok(v) => Self(v),
            Err(e) => {
                log::debug!("CRI verbose info is not JSON ({e}); ignoring it");
                Self::default()
            }
        }
    }

    fn sandbox_id(&self) -> Option<String> {
        self.0["sandboxID"].as_str().and_then(non_empty)
    }

    fn pid(&self) -> Option<u32> {
        self.0["pid"]
            .as_u64()
            .filter(|&p| p > 0)
            .and_then(|p| u32::try_from(p).ok())
    }

    fn image(&self) -> Option<String> {
        self.0["image"].as_str().and_then(non_empty)
    }

    /// The user the OCI runtime starts the first process as.
    fn spec_user(&self) -> Option<String> {
        let user = &self.0["runtimeSpec"]["process"]["user"];
        let uid = user["uid"].as_u64()?;
        Some(format!("{uid}:{}", user["gid"].as_u64().unwrap_or(0)))
    }

    /// containerd keeps the CRI `ContainerConfig` of the create request under `config`
    /// (protobuf JSON names, zero values omitted); CRI-O reports `privileged` at top level.
    fn privileged(&self) -> Option<bool> {
        let config = &self.0["config"];
        if config.is_object() {
            return Some(
                config["linux"]["security_context"]["privileged"]
                    .as_bool()
                    .unwrap_or(false),
            );
        }
        self.0["privileged"].as_bool()
    }

    fn capabilities(&self, which: &str) -> Vec<String> {
        self.0["config"]["linux"]["security_context"]["capabilities"][which]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn pod_meta(sandbox: &api::PodSandboxStatus) -> Option<PodMeta> {
    let m = sandbox.metadata.as_ref()?;
    Some(PodMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        labels: sandbox.labels.clone(),
    })
}

/// Metadata of a container from its (verbose) `ContainerStatus` and its sandbox's status.
pub fn container_metadata(
    status: &api::ContainerStatus,
    info: &VerboseInfo,
    sandbox: Option<&api::PodSandboxStatus>,
) -> Metadata {
    let image = status
        .image
        .as_ref()
        .and_then(|i| non_empty(&i.user_specified_image).or_else(|| non_empty(&i.image)));
    let user = status
        .user
        .as_ref()
        .and_then(|u| u.linux.as_ref())
        .map(|l| format!("{}:{}", l.uid, l.gid))
        .or_else(|| info.spec_user());
    Metadata {
        name: status.metadata.as_ref().and_then(|m| non_empty(&m.name)),
        image,
        image_id: non_empty(&status.image_ref).or_else(|| non_empty(&status.image_id)),
        labels: status.labels.clone(),
        privileged: info.privileged(),
        user,
        cap_add: info.capabilities("add_capabilities"),
        cap_drop: info.capabilities("drop_capabilities"),
        pid: info.pid(),
        networks: Vec::new(),
        pod: sandbox.and_then(pod_meta),
        // ContainerStatus.mounts is not read yet: posture's runtime-socket check covers
        // Docker and Podman containers only.
        mounts: Vec::new(),
        from_disk: false,
    }
}

/// Metadata of a pod sandbox (the pause container) from its verbose `PodSandboxStatus`: named
/// `<pod name>` + [`SANDBOX_NAME_SUFFIX`], labelled with the pod's labels, in its own pod.
/// `privileged` stays unknown: the sandbox config's flag says whether the pod may run privileged
/// containers, not whether the pause process is privileged.
pub fn sandbox_metadata(sandbox: &api::PodSandboxStatus, info: &VerboseInfo) -> Metadata {
    let pod = pod_meta(sandbox);
    Metadata {
        name: pod
            .as_ref()
            .map(|p| format!("{}{SANDBOX_NAME_SUFFIX}", p.name)),
        image: info.image(),
        image_id: None,
        labels: sandbox.labels.clone(),
        privileged: None,
        user: info.spec_user(),
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        pid: info.pid(),
        networks: Vec::new(),
        pod,
        mounts: Vec::new(),
        from_disk: false,
    }
}

/// The `runtime.v1` messages the sensor reads, with the field numbers of the CRI `api.proto`.
/// Fields not declared here are skipped when decoding.
pub mod api {
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionRequest {
        #[prost(string, tag = "1")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub runtime_name: String,
        #[prost(string, tag = "3")]
        pub runtime_version: String,
        #[prost(string, tag = "4")]
        pub runtime_api_version: String,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum ContainerState {
        ContainerCreated = 0,
        ContainerRunning = 1,
        ContainerExited = 2,
        ContainerUnknown = 3,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum PodSandboxState {
        SandboxReady = 0,
        SandboxNotready = 1,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSpec {
        /// The image as the runtime resolved it (often the image id when the kubelet created
        /// the container).
        #[prost(string, tag = "1")]
        pub image: String,
        #[prost(btree_map = "string, string", tag = "2")]
        pub annotations: BTreeMap<String, String>,
        /// The reference the user wrote in the pod spec (CRI ≥ 1.29).
        #[prost(string, tag = "18")]
        pub user_specified_image: String,
        #[prost(string, tag = "19")]
        pub runtime_handler: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint32, tag = "2")]
        pub attempt: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub uid: String,
        #[prost(string, tag = "3")]
        pub namespace: String,
        #[prost(uint32, tag = "4")]
        pub attempt: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStateValue {
        #[prost(enumeration = "ContainerState", tag = "1")]
        pub state: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerFilter {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(message, optional, tag = "2")]
        pub state: Option<ContainerStateValue>,
        #[prost(string, tag = "3")]
        pub pod_sandbox_id: String,
        #[prost(btree_map = "string, string", tag = "4")]
        pub label_selector: BTreeMap<String, String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersRequest {
        #[prost(message, optional, tag = "1")]
        pub filter: Option<ContainerFilter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Container {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub pod_sandbox_id: String,
        #[prost(message, optional, tag = "3")]
        pub metadata: Option<ContainerMetadata>,
        #[prost(message, optional, tag = "4")]
        pub image: Option<ImageSpec>,
        #[prost(string, tag = "5")]
        pub image_ref: String,
        #[prost(enumeration = "ContainerState", tag = "6")]
        pub state: i32,
        #[prost(int64, tag = "7")]
        pub created_at: i64,
        #[prost(btree_map = "string, string", tag = "8")]
        pub labels: BTreeMap<String, String>,
        #[prost(btree_map = "string, string", tag = "9")]
        pub annotations: BTreeMap<String, String>,
        #[prost(string, tag = "10")]
        pub image_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersResponse {
        #[prost(message, repeated, tag = "1")]
        pub containers: Vec<Container>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStatusRequest {
        #[prost(string, tag = "1")]
        pub container_id: String,
        #[prost(bool, tag = "2")]
        pub verbose: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxContainerUser {
        #[prost(int64, tag = "1")]
        pub uid: i64,
        #[prost(int64, tag = "2")]
        pub gid: i64,
        #[prost(int64, repeated, tag = "3")]
        pub supplemental_groups: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerUser {
        #[prost(message, optional, tag = "1")]
        pub linux: Option<LinuxContainerUser>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStatus {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(message, optional, tag = "2")]
        pub metadata: Option<ContainerMetadata>,
        #[prost(enumeration = "ContainerState", tag = "3")]
        pub state: i32,
        #[prost(int64, tag = "4")]
        pub created_at: i64,
        #[prost(int64, tag = "5")]
        pub started_at: i64,
        #[prost(int64, tag = "6")]
        pub finished_at: i64,
        #[prost(int32, tag = "7")]
        pub exit_code: i32,
        #[prost(message, optional, tag = "8")]
        pub image: Option<ImageSpec>,
        #[prost(string, tag = "9")]
        pub image_ref: String,
        #[prost(string, tag = "10")]
        pub reason: String,
        #[prost(string, tag = "11")]
        pub message: String,
        #[prost(btree_map = "string, string", tag = "12")]
        pub labels: BTreeMap<String, String>,
        #[prost(btree_map = "string, string", tag = "13")]
        pub annotations: BTreeMap<String, String>,
        #[prost(string, tag = "15")]
        pub log_path: String,
        #[prost(string, tag = "17")]
        pub image_id: String,
        #[prost(message, optional, tag = "18")]
        pub user: Option<ContainerUser>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStatusResponse {
        #[prost(message, optional, tag = "1")]
        pub status: Option<ContainerStatus>,
        /// Verbose only: runtime-specific JSON, under the key `info` for containerd and CRI-O.
        #[prost(btree_map = "string, string", tag = "2")]
        pub info: BTreeMap<String, String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxStatusRequest {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
        #[prost(bool, tag = "2")]
        pub verbose: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxNetworkStatus {
        #[prost(string, tag = "1")]
        pub ip: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxStatus {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(message, optional, tag = "2")]
        pub metadata: Option<PodSandboxMetadata>,
        #[prost(enumeration = "PodSandboxState", tag = "3")]
        pub state: i32,
        #[prost(int64, tag = "4")]
        pub created_at: i64,
        #[prost(message, optional, tag = "5")]
        pub network: Option<PodSandboxNetworkStatus>,
        #[prost(btree_map = "string, string", tag = "7")]
        pub labels: BTreeMap<String, String>,
        #[prost(btree_map = "string, string", tag = "8")]
        pub annotations: BTreeMap<String, String>,
        #[prost(string, tag = "9")]
        pub runtime_handler: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxStatusResponse {
        #[prost(message, optional, tag = "1")]
        pub status: Option<PodSandboxStatus>,
        #[prost(btree_map = "string, string", tag = "2")]
        pub info: BTreeMap<String, String>,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::{api::*, *};

    fn roundtrip<M: prost::Message + Default>(m: &M) -> M {
        M::decode(m.encode_to_vec().as_slice()).expect("decodes")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const CONTAINER_ID: &str = "4c1b1f0b7a3e2d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c";
    const SANDBOX_ID: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const POD_UID: &str = "0b5f3c4e-8a9d-4f1e-b2c3-d4e5f6a7b8c9";

    /// Verbose info as containerd 1.6 writes it (trimmed): CRI config with protobuf JSON
    /// names, OCI spec, pid, sandbox id.
    fn containerd_info() -> BTreeMap<String, String> {
        let info = serde_json::json!({
            "sandboxID": SANDBOX_ID,
            "pid": 4242,
            "removing": false,
            "snapshotKey": CONTAINER_ID,
            "snapshotter": "overlayfs",
            "runtimeType": "io.containerd.runc.v2",
            "config": {
                "metadata": {"name": "web"},
                "image": {"image": "local/busybox:latest"},
                "linux": {"security_context": {
                    "capabilities": {"add_capabilities": ["NET_ADMIN"], "drop_capabilities": ["ALL"]},
                    "privileged": true,
                }},
            },
            "runtimeSpec": {"process": {"user": {"uid": 1000, "gid": 2000}}},
        });
        BTreeMap::from([("info".to_owned(), info.to_string())])
    }

    fn container_status() -> ContainerStatus {
        ContainerStatus {
            id: CONTAINER_ID.into(),
            metadata: Some(ContainerMetadata {
                name: "web".into(),
                attempt: 0,
            }),
            state: ContainerState::ContainerRunning as i32,
            image: Some(ImageSpec {
                image: "docker.io/local/busybox:latest".into(),
                ..Default::default()
            }),
            image_ref: "sha256:3f0e21c83ce9a76c181c3e4ff09dce638853f4b526f67d4663d99798ac355ccb"
                .into(),
            labels: labels(&[("io.kubernetes.container.name", "web"), ("tier", "front")]),
            annotations: labels(&[("io.kubernetes.container.restartCount", "0")]),
            ..Default::default()
        }
    }

    fn sandbox_status() -> PodSandboxStatus {
        PodSandboxStatus {
            id: SANDBOX_ID.into(),
            metadata: Some(PodSandboxMetadata {
                name: "demo-7d9c".into(),
                uid: POD_UID.into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            state: PodSandboxState::SandboxReady as i32,
            created_at: 1_700_000_000_000_000_000,
            labels: labels(&[("app", "demo"), ("io.kubernetes.pod.namespace", "default")]),
            ..Default::default()
        }
    }

    #[test]
    fn container_with_pod_from_encoded_responses() {
        let response = roundtrip(&ContainerStatusResponse {
            status: Some(container_status()),
            info: containerd_info(),
        });
        let pod = roundtrip(&PodSandboxStatusResponse {
            status: Some(sandbox_status()),
            info: BTreeMap::new(),
        });
        let info = VerboseInfo::parse(&response.info);
        assert_eq!(info.sandbox_id().as_deref(), Some(SANDBOX_ID));
        let m = container_metadata(
            response.status.as_ref().unwrap(),
            &info,
            pod.status.as_ref(),
        );
        assert_eq!(m.name.as_deref(), Some("web"));
        assert_eq!(m.image.as_deref(), Some("docker.io/local/busybox:latest"));
        assert_eq!(
            m.image_id.as_deref(),
            Some("sha256:3f0e21c83ce9a76c181c3e4ff09dce638853f4b526f67d4663d99798ac355ccb")
        );
        assert_eq!(m.labels["tier"], "front");
        assert_eq!(m.pid, Some(4242));
        assert_eq!(m.privileged, Some(true));
        assert_eq!(m.user.as_deref(), Some("1000:2000"));
        assert_eq!(m.cap_add, ["NET_ADMIN"]);
        assert_eq!(m.cap_drop, ["ALL"]);
        let pod = m.pod.expect("pod");
        assert_eq!(pod.name, "demo-7d9c");
        assert_eq!(pod.namespace, "default");
        assert_eq!(pod.uid, POD_UID);
        assert_eq!(pod.labels["app"], "demo");
    }

    #[test]
    fn user_specified_image_and_cri_user_win() {
        let mut status = container_status();
        status.image = Some(ImageSpec {
            image: "sha256:3f0e21c8".into(),
            user_specified_image: "nginx:1.27".into(),
            ..Default::default()
        });
        status.image_ref = String::new();
        status.image_id = "sha256:3f0e21c8".into();
        status.user = Some(ContainerUser {
            linux: Some(LinuxContainerUser {
                uid: 0,
                gid: 0,
                supplemental_groups: vec![10],
            }),
        });
        let status = roundtrip(&status);
        let m = container_metadata(&status, &VerboseInfo::parse(&containerd_info()), None);
        assert_eq!(m.image.as_deref(), Some("nginx:1.27"));
        assert_eq!(m.image_id.as_deref(), Some("sha256:3f0e21c8"));
        assert_eq!(m.user.as_deref(), Some("0:0"));
        assert_eq!(m.pod, None);
    }

    #[test]
    fn non_verbose_status_leaves_unknowns_unknown() {
        let m = container_metadata(&container_status(), &VerboseInfo::default(), None);
        assert_eq!(m.name.as_deref(), Some("web"));
        assert_eq!(m.pid, None);
        assert_eq!(m.privileged, None);
        assert_eq!(m.user, None);
        assert!(m.cap_add.is_empty() && m.cap_drop.is_empty());
    }

    #[test]
    fn containerd_config_without_security_context_is_unprivileged() {
        let info = serde_json::json!({"pid": 7, "config": {"metadata": {"name": "x"}}});
        let info = VerboseInfo::parse(&BTreeMap::from([("info".into(), info.to_string())]));
        assert_eq!(info.privileged(), Some(false));
        assert_eq!(info.pid(), Some(7));
    }

    #[test]
    fn crio_verbose_info() {
        let info = serde_json::json!({
            "sandboxID": SANDBOX_ID, "pid": 99, "privileged": true,
            "runtimeSpec": {"process": {"user": {"uid": 0, "gid": 0}}},
        });
        let info = VerboseInfo::parse(&BTreeMap::from([("info".into(), info.to_string())]));
        assert_eq!(info.sandbox_id().as_deref(), Some(SANDBOX_ID));
        assert_eq!(info.privileged(), Some(true));
        let m = container_metadata(&container_status(), &info, None);
        assert_eq!(m.user.as_deref(), Some("0:0"));
        assert!(m.cap_add.is_empty());
    }

    #[test]
    fn malformed_verbose_info_is_ignored() {
        for raw in [
            "not json",
            "[1,2]",
            r#"{"pid": "12", "sandboxID": 5}"#,
            r#"{"pid": -1}"#,
        ] {
            let info = VerboseInfo::parse(&BTreeMap::from([("info".into(), raw.into())]));
            assert_eq!(info.pid(), None, "{raw}");
            assert_eq!(info.sandbox_id(), None, "{raw}");
            assert_eq!(info.privileged(), None, "{raw}");
        }
    }

    #[test]
    fn sandbox_id_gives_sandbox_metadata() {
        let info = serde_json::json!({
            "pid": 4100, "processStatus": "running", "image": "local/pause:latest",
            "config": {"linux": {"security_context": {"privileged": true}}},
            "runtimeSpec": {"process": {"user": {"uid": 65535, "gid": 65535}}},
        });
        let response = roundtrip(&PodSandboxStatusResponse {
            status: Some(sandbox_status()),
            info: BTreeMap::from([("info".into(), info.to_string())]),
        });
        let m = sandbox_metadata(
            response.status.as_ref().unwrap(),
            &VerboseInfo::parse(&response.info),
        );
        assert_eq!(m.name.as_deref(), Some("demo-7d9c/sandbox"));
        assert_eq!(m.image.as_deref(), Some("local/pause:latest"));
        assert_eq!(m.pid, Some(4100));
        assert_eq!(m.user.as_deref(), Some("65535:65535"));
        assert_eq!(
            m.privileged, None,
            "the sandbox flag is about the pod, not pause"
        );
        assert_eq!(m.labels["app"], "demo");
        let pod = m.pod.expect("pod");
        assert_eq!(
            (pod.name.as_str(), pod.namespace.as_str(), pod.uid.as_str()),
            ("demo-7d9c", "default", POD_UID)
        );
        assert_eq!(pod.labels["app"], "demo");
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // A ContainerStatus with fields this file does not declare (mounts = 14,
        // resources = 16, image_source = 19) still decodes.
        let mut bytes = container_status().encode_to_vec();
        // field 14 (length-delimited): Mount { container_path: "/data" }
        bytes.extend_from_slice(&[0x72, 0x07, 0x0a, 0x05, b'/', b'd', b'a', b't', b'a']);
        // field 19 (length-delimited): "mirror"
        bytes.extend_from_slice(&[0x9a, 0x01, 0x06, b'm', b'i', b'r', b'r', b'o', b'r']);
        let status = ContainerStatus::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(status, container_status());
    }

    #[test]
    fn version_line() {
        let v = roundtrip(&VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "containerd".into(),
            runtime_version: "1.6.20~ds1".into(),
            runtime_api_version: "v1".into(),
        });
        assert_eq!(version_string(&v), "containerd 1.6.20~ds1 (CRI v1)");
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error_naming_it() {
        let socket = std::env::temp_dir().join(format!("no-such-cri-{}.sock", std::process::id()));
        let client = CriClient::new(socket.clone(), Runtime::Containerd, Duration::from_secs(2));
        match client.version().await {
            Err(ClientError::Connect { socket: s, source }) => {
                assert_eq!(s, socket);
                assert_eq!(source.kind(), io::ErrorKind::NotFound, "{source}");
            }
            other => panic!("expected Connect, got {other:?}"),
        }
        let err = client.metadata(CONTAINER_ID).await.unwrap_err();
        assert!(
            err.to_string().contains(&socket.display().to_string()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn silent_socket_times_out() {
        // A listener that accepts and never answers: the HTTP/2 handshake cannot complete.
        let dir = std::env::temp_dir().join(format!("cri-silent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("cri.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let client = CriClient::new(socket.clone(), Runtime::CriO, Duration::from_millis(300));
        let started = std::time::Instant::now();
        match client.list_container_ids().await {
            Err(ClientError::Timeout { socket: s, .. }) => assert_eq!(s, socket),
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
