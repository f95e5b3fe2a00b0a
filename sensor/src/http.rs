//! Minimal HTTP/1.1 over unix sockets and TCP: a client (runtime APIs, `sensor containers`) and a
//! server for the daemon's own endpoints (`/metrics`, `/containers`). Every step is bounded by a
//! timeout so that a peer that hangs costs at most that long.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::UnixStream,
};

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

/// Reads a request up to the end of its headers (at most 8 KiB, 5 s) and returns its path.
pub async fn read_request_path<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    (parts.next() == Some("GET")).then(|| parts.next().map(str::to_owned))?
}

/// Writes a complete response and closes the write side.
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: StatusCode,
    content_type: &str,
    body: &str,
) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
