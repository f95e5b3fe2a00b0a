//! Counters of the daemon, exported in the Prometheus text format on `--metrics-addr`.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use sensor_common::kind;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const KINDS: usize = kind::COUNT as usize;

#[derive(Default)]
pub struct Metrics {
    /// Records read from the ring buffer, per kind.
    pub events: [AtomicU64; KINDS],
    /// Records the kernel could not put on the ring buffer (it was full), per kind: the sum over
    /// CPUs of the kernel's `LOST` counters, refreshed every second.
    pub lost: [AtomicU64; KINDS],
    /// Records that did not decode (unknown kind, wrong size).
    pub decode_errors: AtomicU64,
    /// Events whose cgroup id matched no known cgroup.
    pub unresolved_cgroups: AtomicU64,
    /// Containers currently known.
    pub containers: AtomicU64,
    /// JSON lines written.
    pub lines: AtomicU64,
}

impl Metrics {
    pub fn lost_total(&self) -> u64 {
        self.lost.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn render(&self) -> String {
        let per_kind = |counters: &[AtomicU64; KINDS]| -> Vec<(String, u64)> {
            (1..KINDS)
                .map(|k| {
                    (
                        format!("{{kind=\"{}\"}}", kind::name(k as u32)),
                        counters[k].load(Relaxed),
                    )
                })
                .collect()
        };
        let one = |c: &AtomicU64| vec![(String::new(), c.load(Relaxed))];
        let families = [
            (
                "sensor_events_total",
                "counter",
                "Kernel events read, by kind.",
                per_kind(&self.events),
            ),
            (
                "sensor_lost_events_total",
                "counter",
                "Kernel events dropped because the ring buffer was full, by kind.",
                per_kind(&self.lost),
            ),
            (
                "sensor_decode_errors_total",
                "counter",
                "Ring-buffer records that could not be decoded.",
                one(&self.decode_errors),
            ),
            (
                "sensor_unresolved_cgroups_total",
                "counter",
                "Events whose cgroup id matched no known cgroup.",
                one(&self.unresolved_cgroups),
            ),
            (
                "sensor_containers",
                "gauge",
                "Containers currently known.",
                one(&self.containers),
            ),
            (
                "sensor_output_lines_total",
                "counter",
                "JSON lines written.",
                one(&self.lines),
            ),
        ];
        let mut out = String::new();
        for (name, ty, help, samples) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        out
    }
}

/// Reads an HTTP request up to the end of its headers (at most 8 KiB, 5 s).
async fn read_request_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
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
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Serves `GET /metrics` on `addr`; returns the bound address (port 0 picks a free one).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let Some(request) = read_request_head(&mut stream).await else {
                    return;
                };
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" {
                    ("200 OK", metrics.render())
                } else {
                    ("404 Not Found", "see /metrics\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.lost[kind::EXEC as usize].store(3, Relaxed);
        m.events[kind::EXEC as usize].store(10, Relaxed);
        let text = m.render();
        assert!(
            text.contains("sensor_lost_events_total{kind=\"exec\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("sensor_events_total{kind=\"exec\"} 10"),
            "{text}"
        );
        assert!(text.contains("sensor_decode_errors_total 0"));
        assert_eq!(m.lost_total(), 3);
    }
}
