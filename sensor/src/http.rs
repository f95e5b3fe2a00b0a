//! An HTTP/1.1 client over unix sockets (runtime APIs, `sensor containers`), on hyper. Every step
//! is bounded by a timeout so that a peer that hangs costs at most that long. The daemon's own
//! endpoints are served by `api`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("{socket} did not answer within {timeout:?}")]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("{socket}: {detail}")]
    Protocol { socket: PathBuf, detail: String },
}

/// An HTTP endpoint on a unix socket.
#[derive(Clone, Debug)]
pub struct UnixHttp {
    pub socket: PathBuf,
    pub timeout: Duration,
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

impl UnixHttp {
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        Self { socket, timeout }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn timeout_err(&self) -> HttpError {
        HttpError::Timeout {
            socket: self.socket.clone(),
            timeout: self.timeout,
        }
    }

    pub fn protocol(&self, detail: impl std::fmt::Display) -> HttpError {
        HttpError::Protocol {
            socket: self.socket.clone(),
            detail: detail.to_string(),
        }
    }

    async fn connect(&self) -> Result<Sender, HttpError> {
        let stream = tokio::time::timeout(self.timeout, UnixStream::connect(&self.socket))
            .await
            .map_err(|_| self.timeout_err())?
            .map_err(|source| HttpError::Connect {
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

    fn request(path: &str) -> Result<Request<Empty<Bytes>>, hyper::http::Error> {
        Request::get(path)
            .header("Host", "localhost")
            .body(Empty::new())
    }

    /// `GET path` → (status, body). The whole exchange is bounded by the timeout.
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), HttpError> {
        let exchange = async {
            let mut sender = self.connect().await?;
            let request = Self::request(path).map_err(|e| self.protocol(e))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| self.protocol(e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.protocol(e))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timeout_err())?
    }

    /// `GET path` → (status, JSON body; `null` when empty).
    pub async fn get_json(&self, path: &str) -> Result<(StatusCode, Value), HttpError> {
        let (status, body) = self.get(path).await?;
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|e| self.protocol(format!("GET {path}: {e}")))?
        };
        Ok((status, value))
    }

    /// Starts `GET path` and returns the streaming body (for event streams). Only the request
    /// and the response head are bounded by the timeout.
    pub async fn stream(&self, path: &str) -> Result<hyper::body::Incoming, HttpError> {
        let mut sender = self.connect().await?;
        let request = Self::request(path).map_err(|e| self.protocol(e))?;
        let response = tokio::time::timeout(self.timeout, sender.send_request(request))
            .await
            .map_err(|_| self.timeout_err())?
            .map_err(|e| self.protocol(e))?;
        if !response.status().is_success() {
            return Err(self.protocol(format!("GET {path}: {}", response.status())));
        }
        Ok(response.into_body())
    }
}
