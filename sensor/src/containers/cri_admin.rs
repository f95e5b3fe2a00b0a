//! CRI lifecycle calls (pods and containers: run, create, start, stop, remove, exec), for the
//! integration tests that drive a real containerd or CRI-O the way the kubelet does. Not part of
//! the sensor, which only reads: compiled with the `cri-admin` feature.
//!
//! The messages carry the field numbers of the CRI `api.proto` (`runtime.v1`) and only the
//! fields a test needs; the ones the read path shares live in [`super::cri::api`].

use std::collections::BTreeMap;

use super::{client::ClientError, cri::CriClient};

pub use super::cri::api::{ContainerMetadata, ImageSpec, PodSandboxMetadata};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum NamespaceMode {
    /// Shared by the containers of the pod.
    Pod = 0,
    Container = 1,
    /// The host's (Kubernetes "node") namespace: `hostNetwork`, `hostPID`, `hostIPC`.
    Node = 2,
    Target = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceOption {
    #[prost(enumeration = "NamespaceMode", tag = "1")]
    pub network: i32,
    #[prost(enumeration = "NamespaceMode", tag = "2")]
    pub pid: i32,
    #[prost(enumeration = "NamespaceMode", tag = "3")]
    pub ipc: i32,
    #[prost(string, tag = "4")]
    pub target_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64Value {
    #[prost(int64, tag = "1")]
    pub value: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    pub namespace_options: Option<NamespaceOption>,
    #[prost(message, optional, tag = "3")]
    pub run_as_user: Option<Int64Value>,
    #[prost(bool, tag = "4")]
    pub readonly_rootfs: bool,
    /// Must be true for the pod to run privileged containers.
    #[prost(bool, tag = "6")]
    pub privileged: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandboxConfig {
    /// cgroupfs syntax (`/kubepods/besteffort/pod<uid>`); the runtime converts it for systemd.
    #[prost(string, tag = "1")]
    pub cgroup_parent: String,
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxSandboxSecurityContext>,
    #[prost(btree_map = "string, string", tag = "3")]
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(string, tag = "2")]
    pub hostname: String,
    /// Where container logs go; empty means none are written.
    #[prost(string, tag = "3")]
    pub log_directory: String,
    #[prost(btree_map = "string, string", tag = "6")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "7")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandboxConfig>,
}

impl PodSandboxConfig {
    /// A pod in the host's network (and so UTS) namespace, as `hostNetwork: true` pods are: no
    /// CNI needed. Own PID namespace per container, IPC shared in the pod; under `cgroup_parent`.
    pub fn host_network(
        name: &str,
        namespace: &str,
        uid: &str,
        cgroup_parent: &str,
        labels: BTreeMap<String, String>,
    ) -> Self {
        Self {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.to_owned(),
                namespace: namespace.to_owned(),
                attempt: 0,
            }),
            // No hostname: the pod shares the host's UTS namespace with its network, and runc
            // refuses to set a hostname without a private one.
            labels,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.to_owned(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        target_id: String::new(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    pub config: Option<PodSandboxConfig>,
    /// Runtime handler (RuntimeClass); empty selects the runtime's default.
    #[prost(string, tag = "2")]
    pub runtime_handler: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxResponse {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxIdRequest {
    /// `StopPodSandboxRequest` and `RemovePodSandboxRequest` are both `{ pod_sandbox_id = 1 }`.
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Capability {
    #[prost(string, repeated, tag = "1")]
    pub add_capabilities: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub drop_capabilities: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerSecurityContext {
    #[prost(message, optional, tag = "1")]
    pub capabilities: Option<Capability>,
    #[prost(bool, tag = "2")]
    pub privileged: bool,
    #[prost(message, optional, tag = "3")]
    pub namespace_options: Option<NamespaceOption>,
    #[prost(message, optional, tag = "5")]
    pub run_as_user: Option<Int64Value>,
    #[prost(string, tag = "6")]
    pub run_as_username: String,
    #[prost(bool, tag = "7")]
    pub readonly_rootfs: bool,
    #[prost(bool, tag = "11")]
    pub no_new_privs: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerConfig {
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxContainerSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "2")]
    pub image: Option<ImageSpec>,
    /// Entrypoint (Docker's `ENTRYPOINT`); empty uses the image's.
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    /// Arguments (Docker's `CMD`).
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    #[prost(string, tag = "5")]
    pub working_dir: String,
    #[prost(message, repeated, tag = "6")]
    pub envs: Vec<KeyValue>,
    #[prost(btree_map = "string, string", tag = "9")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "10")]
    pub annotations: BTreeMap<String, String>,
    /// Relative to the pod's `log_directory`.
    #[prost(string, tag = "11")]
    pub log_path: String,
    #[prost(message, optional, tag = "15")]
    pub linux: Option<LinuxContainerConfig>,
}

impl ContainerConfig {
    /// Container `name` running `command` (entrypoint and arguments) from `image`.
    pub fn new(name: &str, image: &str, command: &[&str]) -> Self {
        Self {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    pub config: Option<ContainerConfig>,
    /// The config the pod was run with, again.
    #[prost(message, optional, tag = "3")]
    pub sandbox_config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerResponse {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerIdRequest {
    /// `StartContainerRequest` and `RemoveContainerRequest` are both `{ container_id = 1 }`.
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StopContainerRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    /// Seconds between SIGTERM and SIGKILL; 0 kills at once.
    #[prost(int64, tag = "2")]
    pub timeout: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecSyncRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, repeated, tag = "2")]
    pub cmd: Vec<String>,
    /// Seconds; 0 means no limit on the runtime's side (the client's timeout still applies).
    #[prost(int64, tag = "3")]
    pub timeout: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecSyncResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub stdout: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub stderr: Vec<u8>,
    #[prost(int32, tag = "3")]
    pub exit_code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxFilter {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub label_selector: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<PodSandboxFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(btree_map = "string, string", tag = "5")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxResponse {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

/// Every lifecycle response that carries nothing (`StartContainerResponse`, …).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

impl CriClient {
    /// One RPC within the client's timeout; "not found" is an error here.
    async fn admin<Req, Resp>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<Resp, ClientError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.bounded(async {
            self.rpc(method, request)
                .await
                .map_err(|e| e.into_client_error(self.socket(), method))
        })
        .await
    }

    /// Runs a pod sandbox (its pause container); returns the sandbox id.
    pub async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, ClientError> {
        let response: RunPodSandboxResponse = self
            .admin(
                "RunPodSandbox",
                RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                },
            )
            .await?;
        Ok(response.pod_sandbox_id)
    }

    /// Creates a container in a pod; returns the container id. The image must be present:
    /// CRI does not pull on create.
    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, ClientError> {
        let response: CreateContainerResponse = self
            .admin(
                "CreateContainer",
                CreateContainerRequest {
                    pod_sandbox_id: pod_sandbox_id.to_owned(),
                    config: Some(config),
                    sandbox_config: Some(sandbox_config),
                },
            )
            .await?;
        Ok(response.container_id)
    }

    pub async fn start_container(&self, container_id: &str) -> Result<(), ClientError> {
        let _: Empty = self
            .admin(
                "StartContainer",
                ContainerIdRequest {
                    container_id: container_id.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace_seconds` (0: SIGKILL at once).
    pub async fn stop_container(
        &self,
        container_id: &str,
        grace_seconds: i64,
    ) -> Result<(), ClientError> {
        let _: Empty = self
            .admin(
                "StopContainer",
                StopContainerRequest {
                    container_id: container_id.to_owned(),
                    timeout: grace_seconds,
                },
            )
            .await?;
        Ok(())
    }

    pub async fn remove_container(&self, container_id: &str) -> Result<(), ClientError> {
        let _: Empty = self
            .admin(
                "RemoveContainer",
                ContainerIdRequest {
                    container_id: container_id.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// Stops every container of the pod and its sandbox. Idempotent.
    pub async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), ClientError> {
        let _: Empty = self
            .admin(
                "StopPodSandbox",
                PodSandboxIdRequest {
                    pod_sandbox_id: pod_sandbox_id.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// Removes the pod and its containers. Idempotent.
    pub async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), ClientError> {
        let _: Empty = self
            .admin(
                "RemovePodSandbox",
                PodSandboxIdRequest {
                    pod_sandbox_id: pod_sandbox_id.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// Ids of the pod sandboxes whose labels include all of `label_selector`.
    pub async fn list_pod_sandbox_ids(
        &self,
        label_selector: BTreeMap<String, String>,
    ) -> Result<Vec<String>, ClientError> {
        let response: ListPodSandboxResponse = self
            .admin(
                "ListPodSandbox",
                ListPodSandboxRequest {
                    filter: Some(PodSandboxFilter {
                        id: String::new(),
                        label_selector,
                    }),
                },
            )
            .await?;
        Ok(response.items.into_iter().map(|p| p.id).collect())
    }

    /// Runs `cmd` in a running container and waits for it (at most `timeout_seconds` on the
    /// runtime's side, and the client's timeout).
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[&str],
        timeout_seconds: i64,
    ) -> Result<ExecSyncResponse, ClientError> {
        self.admin(
            "ExecSync",
            ExecSyncRequest {
                container_id: container_id.to_owned(),
                cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
                timeout: timeout_seconds,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn host_network_pod_encodes_node_network_mode() {
        let config = PodSandboxConfig::host_network(
            "demo",
            "default",
            "0b5f3c4e-8a9d-4f1e-b2c3-d4e5f6a7b8c9",
            "/kubepods/besteffort/pod0b5f3c4e-8a9d-4f1e-b2c3-d4e5f6a7b8c9",
            BTreeMap::from([("app".into(), "demo".into())]),
        );
        let decoded = PodSandboxConfig::decode(config.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, config);
        let ns = decoded
            .linux
            .and_then(|l| l.security_context)
            .and_then(|s| s.namespace_options)
            .unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        // NODE = 2 on the wire: field 1, varint.
        assert!(ns.encode_to_vec().starts_with(&[0x08, 0x02]));
    }

    #[test]
    fn empty_responses_decode_from_nothing() {
        assert_eq!(Empty::decode(&[][..]).unwrap(), Empty {});
    }
}
