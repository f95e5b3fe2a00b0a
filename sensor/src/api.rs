//! The daemon's HTTP endpoints, on a unix socket (`--api-socket`, for `sensor containers`) and
//! optionally on TCP (`--metrics-addr`, for Prometheus): `GET /metrics`, `GET /containers`.
//! Requests for daemon state go to the pipeline's task through a channel; nothing else touches
//! it.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, UnixListener},
    sync::{mpsc, oneshot},
};

use crate::metrics::Metrics;

/// A question for the pipeline's task.
pub enum Request {
    /// JSON array of the containers the sensor knows.
    Containers(oneshot::Sender<String>),
}

#[derive(Clone)]
struct Handler {
    metrics: Arc<Metrics>,
    requests: mpsc::Sender<Request>,
}

/// How long a client may take to send its request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

impl Handler {
    /// Serves one connection with hyper's HTTP/1 server.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S) {
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let handler = self.clone();
            async move { Ok::<_, std::convert::Infallible>(handler.answer(request).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn answer(&self, request: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "only GET\n".into(),
            );
        }
        match request.uri().path() {
            "/metrics" => response(
                StatusCode::OK,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                self.metrics.render(),
            ),
            "/containers" => {
                let (tx, rx) = oneshot::channel();
                let answer = match self.requests.send(Request::Containers(tx)).await {
                    Ok(()) => tokio::time::timeout(Duration::from_secs(5), rx)
                        .await
                        .ok()
                        .and_then(Result::ok),
                    Err(_) => None,
                };
                match answer {
                    Some(body) => response(StatusCode::OK, "application/json", body),
                    None => response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "busy\n".into(),
                    ),
                }
            }
            _ => response(
                StatusCode::NOT_FOUND,
                "text/plain",
                "try /metrics or /containers\n".into(),
            ),
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Self::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Self::Unix(l)
    }
}

/// Accepts connections forever, each served on its own task.
fn spawn_server(listener: Listener, handler: Handler) {
    tokio::spawn(async move {
        loop {
            let handler = handler.clone();
            match &listener {
                Listener::Tcp(l) => {
                    if let Ok((stream, _)) = l.accept().await {
                        tokio::spawn(async move { handler.serve(stream).await });
                    }
                }
                Listener::Unix(l) => {
                    if let Ok((stream, _)) = l.accept().await {
                        tokio::spawn(async move { handler.serve(stream).await });
                    }
                }
            }
        }
    });
}

/// Serves on TCP; returns the bound address (port 0 picks a free one).
pub async fn serve_tcp(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    requests: mpsc::Sender<Request>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    spawn_server(Listener::from(listener), Handler { metrics, requests });
    Ok(bound)
}

/// Serves on a unix socket at `path` (mode 0600: the container inventory is for root). A stale
/// socket left by a sensor that died is replaced; a live one is an error.
pub async fn serve_unix(
    path: &Path,
    metrics: Arc<Metrics>,
    requests: mpsc::Sender<Request>,
) -> std::io::Result<()> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "another sensor answers on {}; give this one --api-socket PATH",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    spawn_server(Listener::from(listener), Handler { metrics, requests });
    Ok(())
}
