//! Docker Engine API client over its unix socket (Podman's compatible socket too): container
//! inspection, listing and the event stream. HTTP/1.1, one connection per request, every step
//! bounded by the client's timeout.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use hyper::StatusCode;
use serde_json::Value;

use super::{
    Runtime,
    client::{ClientError, Lookup},
};
use crate::http::UnixHttp;
use crate::identity::metadata::{Metadata, Mount, Network};

pub struct DockerClient {
    http: UnixHttp,
    runtime: Runtime,
    /// dockerd's data root (`DockerRootDir`), learned from `/info` once it answers.
    data_root: OnceLock<PathBuf>,
}

impl DockerClient {
    pub fn new(socket: PathBuf, runtime: Runtime, timeout: Duration) -> Self {
        Self {
            http: UnixHttp::new(socket, timeout),
            runtime,
            data_root: OnceLock::new(),
        }
    }

    pub fn data_root_known(&self) -> bool {
        self.runtime != Runtime::Docker || self.data_root.get().is_some()
    }

    /// Learns the data root from `GET /info` (Docker only: Podman keeps other files).
    pub async fn learn_data_root(&self) -> Result<(), ClientError> {
        if self.runtime != Runtime::Docker || self.data_root.get().is_some() {
            return Ok(());
        }
        let (status, v) = self.http.get_json("/info").await?;
        if let (true, Some(root)) = (status.is_success(), v["DockerRootDir"].as_str()) {
            let _ = self.data_root.set(PathBuf::from(root));
        }
        Ok(())
    }

    /// Metadata from the files dockerd writes when it creates a container
    /// (`<data root>/containers/<id>/config.v2.json` and `hostconfig.json`), without asking
    /// dockerd. It is there before the container's cgroup exists, whereas `GET
    /// /containers/{id}/json` blocks until the container has finished starting (dockerd holds
    /// the container's lock), i.e. after its first exec. IP addresses are not assigned yet at
    /// that point: the API answer that follows fills them in.
    pub fn metadata_from_disk(&self, id: &str) -> Option<Metadata> {
        let dir = self.data_root.get()?.join("containers").join(id);
        let config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.v2.json")).ok()?).ok()?;
        let host: Value = std::fs::read(dir.join("hostconfig.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let mut merged = config;
        merged["HostConfig"] = host;
        Some(Metadata {
            from_disk: true,
            ..metadata_from_inspect(&merged)
        })
    }

    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    pub fn socket(&self) -> &Path {
        self.http.socket()
    }

    /// `GET /version` → "Docker Engine 20.10.24 (API 1.41)".
    pub async fn version(&self) -> Result<String, ClientError> {
        let (status, v) = self.http.get_json("/version").await?;
        if !status.is_success() {
            return Err(self.http.protocol(format!("GET /version: {status}")));
        }
        let product = v["Components"][0]["Name"].as_str().unwrap_or("Engine");
        Ok(format!(
            "{} {} (API {})",
            product,
            v["Version"].as_str().unwrap_or("?"),
            v["ApiVersion"].as_str().unwrap_or("?")
        ))
    }

    /// Ids of running containers.
    pub async fn list(&self) -> Result<Vec<String>, ClientError> {
        let (status, v) = self.http.get_json("/containers/json").await?;
        if !status.is_success() {
            return Err(self
                .http
                .protocol(format!("GET /containers/json: {status}")));
        }
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["Id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET /containers/{id}/json`, parsed: unknown on 404, and when the container that
    /// answers is another (the API also resolves names and id prefixes: a cgroup's id is a
    /// whole id); busy on a server error for this one container (Podman answers 500 while a
    /// container it is starting or cleaning up is locked): the API is up, and the fetch
    /// retries.
    pub async fn metadata(&self, id: &str) -> Result<Lookup, ClientError> {
        let (status, v) = self
            .http
            .get_json(&format!("/containers/{id}/json"))
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(Lookup::Unknown),
            s if s.is_server_error() => {
                log::debug!("GET /containers/{id}/json: {s}; asking again");
                Ok(Lookup::Busy)
            }
            s if s.is_success() && v["Id"].as_str() != Some(id) => Ok(Lookup::Unknown),
            s if s.is_success() => Ok(Lookup::Found(Box::new(metadata_from_inspect(&v)))),
            s => Err(self
                .http
                .protocol(format!("GET /containers/{id}/json: {s}"))),
        }
    }
}

fn string(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Capability names as `CAP_X`: the API returns them as the user typed them (`net_admin`,
/// `NET_ADMIN`), the files as `CAP_NET_ADMIN`; `ALL` stays `ALL`.
fn capabilities(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .map(|s| {
                    let upper = s.to_ascii_uppercase();
                    if upper == "ALL" || upper.starts_with("CAP_") {
                        upper
                    } else {
                        format!("CAP_{upper}")
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Metadata from a `GET /containers/{id}/json` body (Docker and Podman answer alike).
pub fn metadata_from_inspect(v: &Value) -> Metadata {
    let labels: BTreeMap<String, String> = v["Config"]["Labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut networks: Vec<Network> = v["NetworkSettings"]["Networks"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(name, n)| Network {
                    name: name.clone(),
                    ip: string(&n["IPAddress"]),
                    ipv6: string(&n["GlobalIPv6Address"]),
                })
                .collect()
        })
        .unwrap_or_default();
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    // The API lists "Mounts"; the on-disk config has "MountPoints" keyed by destination.
    let mount = |m: &Value| {
        Some(Mount {
            source: string(&m["Source"])?,
            destination: string(&m["Destination"])?,
        })
    };
    let mounts: Vec<Mount> = match (&v["Mounts"], &v["MountPoints"]) {
        (Value::Array(a), _) => a.iter().filter_map(mount).collect(),
        (_, Value::Object(o)) => o.values().filter_map(mount).collect(),
        _ => Vec::new(),
    };
    Metadata {
        mounts,
        name: string(&v["Name"]).map(|n| n.trim_start_matches('/').to_owned()),
        image: string(&v["Config"]["Image"]),
        image_id: string(&v["Image"]),
        labels,
        privileged: v["HostConfig"]["Privileged"].as_bool(),
        user: v["Config"]["User"].as_str().map(str::to_owned),
        cap_add: capabilities(&v["HostConfig"]["CapAdd"]),
        cap_drop: capabilities(&v["HostConfig"]["CapDrop"]),
        pid: v["State"]["Pid"]
            .as_u64()
            .filter(|p| *p > 0)
            .map(|p| p as u32),
        networks,
        pod: None,
        from_disk: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real `docker inspect` of `docker run --privileged --user 1000
    /// --cap-add NET_ADMIN --label tier=web --network net1 local/busybox` (Docker 20.10).
    const INSPECT: &str = r#"{
      "Id": "3f1c2e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e",
      "Name": "/web1",
      "Image": "sha256:e2d08718503d450db8ec1704d4922a52d57934451bbc7d0add6aa3c1eb30fa52",
      "State": {"Status": "running", "Running": true, "Pid": 4242},
      "HostConfig": {"Privileged": true, "CapAdd": ["net_admin"], "CapDrop": null},
      "Config": {"User": "1000", "Image": "local/busybox", "Labels": {"tier": "web", "team": "a"}},
      "Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/run/docker.sock"}],
      "NetworkSettings": {"Networks": {
        "net1": {"IPAddress": "172.30.0.2", "GlobalIPv6Address": "fd00:30::2"},
        "bridge": {"IPAddress": "172.17.0.3", "GlobalIPv6Address": ""}
      }}
    }"#;

    #[test]
    fn parses_inspect() {
        let m = metadata_from_inspect(&serde_json::from_str(INSPECT).unwrap());
        assert_eq!(m.name.as_deref(), Some("web1"));
        assert_eq!(m.image.as_deref(), Some("local/busybox"));
        assert_eq!(
            m.image_id.as_deref(),
            Some("sha256:e2d08718503d450db8ec1704d4922a52d57934451bbc7d0add6aa3c1eb30fa52")
        );
        assert_eq!(m.labels.get("tier").map(String::as_str), Some("web"));
        assert_eq!(m.privileged, Some(true));
        assert_eq!(m.user.as_deref(), Some("1000"));
        assert_eq!(m.cap_add, ["CAP_NET_ADMIN"]);
        assert!(m.cap_drop.is_empty());
        assert_eq!(m.pid, Some(4242));
        assert_eq!(
            m.networks,
            [
                Network {
                    name: "bridge".into(),
                    ip: Some("172.17.0.3".into()),
                    ipv6: None
                },
                Network {
                    name: "net1".into(),
                    ip: Some("172.30.0.2".into()),
                    ipv6: Some("fd00:30::2".into())
                },
            ]
        );
        assert!(m.pod.is_none());
        assert_eq!(
            m.mounts,
            [Mount {
                source: "/var/run/docker.sock".into(),
                destination: "/run/docker.sock".into()
            }]
        );
    }

    #[test]
    fn tolerates_missing_fields() {
        let m = metadata_from_inspect(&serde_json::json!({"Id": "x"}));
        assert_eq!(m, Metadata::default());
    }
}
