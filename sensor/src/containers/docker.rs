//! Docker Engine API client over its unix socket (Podman's compatible socket too): container
//! inspection, listing and the event stream. HTTP/1.1, one connection per request, every step
//! bounded by the client's timeout.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use super::{
    Runtime,
    client::ClientError,
    metadata::{Metadata, Network},
};

pub struct DockerClient {
    socket: PathBuf,
    runtime: Runtime,
    timeout: Duration,
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

impl DockerClient {
    pub fn new(socket: PathBuf, runtime: Runtime, timeout: Duration) -> Self {
        Self {
            socket,
            runtime,
            timeout,
        }
    }

    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn timeout_err(&self) -> ClientError {
        ClientError::Timeout {
            socket: self.socket.clone(),
            timeout: self.timeout,
        }
    }

    fn protocol(&self, detail: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            detail: detail.to_string(),
        }
    }

    async fn connect(&self) -> Result<Sender, ClientError> {
        let stream = tokio::time::timeout(self.timeout, UnixStream::connect(&self.socket))
            .await
            .map_err(|_| self.timeout_err())?
            .map_err(|source| ClientError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (sender, conn) = tokio::time::timeout(
            self.timeout,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| self.timeout_err())?
        .map_err(|e| self.protocol(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn request(path: &str) -> Request<Empty<Bytes>> {
        Request::get(path)
            .header("Host", "docker")
            .body(Empty::new())
            .expect("static request parts are valid")
    }

    /// `GET path` → (status, JSON body). The whole exchange is bounded by the timeout.
    pub async fn get_json(&self, path: &str) -> Result<(StatusCode, Value), ClientError> {
        let exchange = async {
            let mut sender = self.connect().await?;
            let response = sender
                .send_request(Self::request(path))
                .await
                .map_err(|e| self.protocol(e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.protocol(e))?
                .to_bytes();
            let value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| self.protocol(format!("GET {path}: {e}")))?
            };
            Ok((status, value))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timeout_err())?
    }

    /// `GET /version` → "Docker 20.10.24 (API 1.41)".
    pub async fn version(&self) -> Result<String, ClientError> {
        let (status, v) = self.get_json("/version").await?;
        if !status.is_success() {
            return Err(self.protocol(format!("GET /version: {status}")));
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
        let (status, v) = self.get_json("/containers/json").await?;
        if !status.is_success() {
            return Err(self.protocol(format!("GET /containers/json: {status}")));
        }
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(|c| c["Id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// `GET /containers/{id}/json`, parsed; `None` on 404.
    pub async fn metadata(&self, id: &str) -> Result<Option<Metadata>, ClientError> {
        let (status, v) = self.get_json(&format!("/containers/{id}/json")).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(metadata_from_inspect(&v))),
            s => Err(self.protocol(format!("GET /containers/{id}/json: {s}"))),
        }
    }

    /// Opens `GET /events` filtered to container events and returns the streaming body.
    /// Each JSON object arrives on its own line.
    pub async fn events(&self) -> Result<hyper::body::Incoming, ClientError> {
        let mut sender = self.connect().await?;
        let path = r#"/events?filters={"type":["container"]}"#.replace('"', "%22");
        let response = tokio::time::timeout(self.timeout, sender.send_request(Self::request(&path)))
            .await
            .map_err(|_| self.timeout_err())?
            .map_err(|e| self.protocol(e))?;
        if !response.status().is_success() {
            return Err(self.protocol(format!("GET /events: {}", response.status())));
        }
        Ok(response.into_body())
    }
}

fn string(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
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
    Metadata {
        name: string(&v["Name"]).map(|n| n.trim_start_matches('/').to_owned()),
        image: string(&v["Config"]["Image"]),
        image_id: string(&v["Image"]),
        labels,
        privileged: v["HostConfig"]["Privileged"].as_bool(),
        user: v["Config"]["User"].as_str().map(str::to_owned),
        cap_add: strings(&v["HostConfig"]["CapAdd"]),
        cap_drop: strings(&v["HostConfig"]["CapDrop"]),
        pid: v["State"]["Pid"].as_u64().filter(|p| *p > 0).map(|p| p as u32),
        networks,
        pod: None,
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
      "HostConfig": {"Privileged": true, "CapAdd": ["NET_ADMIN"], "CapDrop": null},
      "Config": {"User": "1000", "Image": "local/busybox", "Labels": {"tier": "web", "team": "a"}},
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
        assert_eq!(m.cap_add, ["NET_ADMIN"]);
        assert!(m.cap_drop.is_empty());
        assert_eq!(m.pid, Some(4242));
        assert_eq!(
            m.networks,
            [
                Network { name: "bridge".into(), ip: Some("172.17.0.3".into()), ipv6: None },
                Network { name: "net1".into(), ip: Some("172.30.0.2".into()), ipv6: Some("fd00:30::2".into()) },
            ]
        );
        assert!(m.pod.is_none());
    }

    #[test]
    fn tolerates_missing_fields() {
        let m = metadata_from_inspect(&serde_json::json!({"Id": "x"}));
        assert_eq!(m, Metadata::default());
    }
}
