//! Enrichment: container metadata from the runtimes' own APIs, fetched in the background as soon
//! as a container's cgroup appears, with bounded waits and per-runtime health.
//!
//! A fetch never blocks the event pipeline for longer than `deadline`: an event of a container
//! whose metadata is still pending waits at most that long (once per container), then goes out
//! with the container id and `"enriched": false`. A runtime that is down or hangs is marked
//! degraded (log line + metric); a background check every few seconds restores it by itself.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};

use super::{
    Runtime,
    client::{Client, ClientError, Lookup},
    cri::CriClient,
    docker::DockerClient,
};
use crate::identity::Metadata;
use crate::metrics::RuntimeHealth;

/// Where metadata for a container stands.
#[derive(Clone, Debug)]
pub enum MetaState {
    Pending,
    Ready {
        metadata: Arc<Metadata>,
        /// CLOCK_BOOTTIME when the answer arrived, comparable with kernel event times.
        ready_boot_ns: u64,
    },
    /// No runtime could say: the reason is logged once per runtime and counted.
    Unavailable(String),
    /// Every runtime that could know the container answered that it does not.
    Unknown(String),
}

/// Socket paths; an empty path disables that runtime.
#[derive(Clone, Debug)]
pub struct Sockets {
    pub docker: PathBuf,
    pub podman: PathBuf,
    pub containerd: PathBuf,
    pub crio: PathBuf,
}

impl Default for Sockets {
    fn default() -> Self {
        Self {
            docker: "/var/run/docker.sock".into(),
            podman: "/run/podman/podman.sock".into(),
            containerd: "/run/containerd/containerd.sock".into(),
            crio: "/var/run/crio/crio.sock".into(),
        }
    }
}

/// One runtime API endpoint and its health.
pub struct Endpoint {
    pub client: Client,
    /// Whether calls fail, and how many did (exported by `/metrics`).
    pub health: Arc<RuntimeHealth>,
    pub last_error: std::sync::Mutex<String>,
}

impl Endpoint {
    fn new(client: Client) -> Self {
        Self {
            health: Arc::new(RuntimeHealth::new(client.runtime().as_str())),
            client,
            last_error: std::sync::Mutex::new(String::new()),
        }
    }

    fn degraded(&self) -> bool {
        self.health.degraded.load(Relaxed)
    }

    pub fn name(&self) -> &'static str {
        self.client.runtime().as_str()
    }

    fn failed(&self, err: &ClientError) {
        self.health.errors.fetch_add(1, Relaxed);
        let text = err.to_string();
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = text.clone();
        if !self.health.degraded.swap(true, Relaxed) {
            log::warn!(
                "enrichment from {} degraded: {text}; events keep their container ids, retrying every {:?}",
                self.name(),
                HEALTH_INTERVAL
            );
        }
    }

    fn succeeded(&self) {
        if self.health.degraded.swap(false, Relaxed) {
            log::info!(
                "enrichment from {} at {} restored",
                self.name(),
                self.client.socket().display()
            );
        }
    }
}

const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

pub struct Enricher {
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Longest a fetch (retries included) may take.
    pub deadline: Duration,
}

/// What a fetch is about.
#[derive(Clone, Debug)]
pub struct Target {
    pub id: String,
    pub runtime: Runtime,
    /// containerd namespace of `ctr` containers: the CRI service only knows `k8s.io`.
    pub namespace: Option<String>,
    /// Only its id's form says it is a container (`Identity::inferred`): a runtime that is not
    /// there does not know it.
    pub inferred: bool,
}

impl Enricher {
    /// Endpoints for every configured socket; `timeout` bounds each API call.
    pub fn new(sockets: &Sockets, timeout: Duration, deadline: Duration) -> Self {
        let mut endpoints = Vec::new();
        let mut add = |path: &PathBuf, make: &dyn Fn(PathBuf) -> Client| {
            if !path.as_os_str().is_empty() {
                endpoints.push(Arc::new(Endpoint::new(make(path.clone()))));
            }
        };
        add(&sockets.docker, &|p| {
            Client::Docker(DockerClient::new(p, Runtime::Docker, timeout))
        });
        add(&sockets.podman, &|p| {
            Client::Docker(DockerClient::new(p, Runtime::Podman, timeout))
        });
        add(&sockets.containerd, &|p| {
            Client::Cri(CriClient::new(p, Runtime::Containerd, timeout))
        });
        add(&sockets.crio, &|p| {
            Client::Cri(CriClient::new(p, Runtime::CriO, timeout))
        });
        Self {
            endpoints,
            deadline,
        }
    }

    /// Endpoints that can know a container of `target`'s runtime.
    fn candidates(&self, target: &Target) -> Vec<Arc<Endpoint>> {
        self.endpoints
            .iter()
            .filter(|e| {
                let r = e.client.runtime();
                match target.runtime {
                    // `ctr` containers outside the CRI namespace have no CRI record.
                    Runtime::Containerd => {
                        r == Runtime::Containerd
                            && target.namespace.as_deref().is_none_or(|ns| ns == "k8s.io")
                    }
                    Runtime::Cri => matches!(r, Runtime::Containerd | Runtime::CriO),
                    other => r == other,
                }
            })
            .cloned()
            .collect()
    }

    /// Checks each endpoint once and logs what answers; missing sockets are noted, not errors.
    pub async fn announce(&self) {
        for e in &self.endpoints {
            let socket = e.client.socket();
            if !socket.exists() {
                log::info!(
                    "{}: no socket at {} (containers of this runtime keep their ids only)",
                    e.name(),
                    socket.display()
                );
                continue;
            }
            match e.client.version().await {
                Ok(v) => {
                    log::info!("{}: {v} at {}", e.name(), socket.display());
                    if let Err(err) = e.client.learn().await {
                        e.failed(&err);
                    }
                }
                Err(err) => e.failed(&err),
            }
        }
    }

    /// Fetches `target`'s metadata in the background into `state`; `done` receives `token`
    /// when it is there.
    pub fn fetch(
        &self,
        target: Target,
        state: Arc<watch::Sender<MetaState>>,
        token: u64,
        done: mpsc::UnboundedSender<u64>,
    ) {
        let candidates = self.candidates(&target);
        let deadline = self.deadline;
        // The fast path answers synchronously, inside the handling of the cgroup's creation:
        // the container's rules can then be installed before the runtime starts its first
        // process. The API answer completes the metadata later.
        let fast = candidates
            .iter()
            .filter(|e| e.client.learned())
            .find_map(|e| e.client.metadata_fast(&target.id));
        if let Some(metadata) = fast {
            state.send_replace(MetaState::Ready {
                metadata: Arc::new(metadata),
                ready_boot_ns: crate::time::boottime_ns(),
            });
            let _ = done.send(token);
            tokio::spawn(async move {
                if let full @ MetaState::Ready { .. } = fetch(&target, &candidates, deadline).await
                {
                    state.send_replace(full);
                    // Again: the API adds what the fast path cannot know (the addresses).
                    let _ = done.send(token);
                }
            });
            return;
        }
        tokio::spawn(async move {
            // One-time discovery that failed at startup (runtime down or busy) is retried here.
            for e in &candidates {
                if !e.client.learned() {
                    let _ = e.client.learn().await;
                }
            }
            if let Some(metadata) = candidates
                .iter()
                .find_map(|e| e.client.metadata_fast(&target.id))
            {
                state.send_replace(MetaState::Ready {
                    metadata: Arc::new(metadata),
                    ready_boot_ns: crate::time::boottime_ns(),
                });
                let _ = done.send(token);
                if let full @ MetaState::Ready { .. } = fetch(&target, &candidates, deadline).await
                {
                    state.send_replace(full);
                    // Again: the API adds what the fast path cannot know (the addresses).
                    let _ = done.send(token);
                }
                return;
            }
            let result = fetch(&target, &candidates, deadline).await;
            log::debug!(
                "metadata of {} {}: {:?}",
                target.runtime.as_str(),
                target.id,
                matches!(result, MetaState::Ready { .. })
            );
            state.send_replace(result);
            let _ = done.send(token);
        });
    }

    /// Keeps checking degraded or absent endpoints; `restored` receives `()` when one comes
    /// back, so that containers without metadata are fetched again.
    pub fn spawn_health_checks(&self, restored: mpsc::UnboundedSender<()>) {
        for e in &self.endpoints {
            let e = e.clone();
            let restored = restored.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEALTH_INTERVAL);
                loop {
                    tick.tick().await;
                    if !e.degraded() {
                        continue;
                    }
                    if e.client.version().await.is_ok() {
                        let _ = e.client.learn().await;
                        e.succeeded();
                        if restored.send(()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    }
}

/// Asks each candidate until one knows the container. A runtime can answer "unknown" for a
/// moment after the cgroup appears, so "unknown" is retried with backoff until `deadline`.
async fn fetch(target: &Target, candidates: &[Arc<Endpoint>], deadline: Duration) -> MetaState {
    if candidates.is_empty() {
        let why = match &target.namespace {
            Some(ns) => format!(
                "no metadata API for {} namespace {ns}",
                target.runtime.as_str()
            ),
            None => format!("no {} socket configured", target.runtime.as_str()),
        };
        return if target.inferred {
            MetaState::Unknown(why)
        } else {
            MetaState::Unavailable(why)
        };
    }
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    let mut last_error = None;
    loop {
        // Whether every candidate answered, this round, that it does not know the container.
        let mut unknown_to_all = true;
        for e in candidates {
            if !e.client.socket().exists() {
                let err = ClientError::Connect {
                    socket: e.client.socket().to_owned(),
                    source: std::io::ErrorKind::NotFound.into(),
                };
                last_error = Some(err.to_string());
                // A runtime that is not installed knows no inferred container; one a named
                // container's cgroup says exists should have its API too.
                if !target.inferred {
                    e.failed(&err);
                    unknown_to_all = false;
                }
                continue;
            }
            match e.client.metadata(&target.id).await {
                Ok(Lookup::Found(metadata)) => {
                    e.succeeded();
                    return MetaState::Ready {
                        metadata: Arc::new(*metadata),
                        ready_boot_ns: crate::time::boottime_ns(),
                    };
                }
                Ok(Lookup::Unknown) => {
                    e.succeeded();
                    last_error = Some(format!(
                        "{} does not know container {}",
                        e.name(),
                        target.id
                    ));
                }
                Ok(Lookup::Busy) => {
                    e.succeeded();
                    last_error = Some(format!(
                        "{} could not say what container {} is",
                        e.name(),
                        target.id
                    ));
                    unknown_to_all = false;
                }
                Err(err) => {
                    e.failed(&err);
                    last_error = Some(err.to_string());
                    unknown_to_all = false;
                }
            }
        }
        // While every runtime that could answer is down, one attempt is enough: waiting would
        // only delay the container's events.
        let all_down = candidates.iter().all(|e| e.degraded());
        if all_down || started.elapsed() + backoff > deadline {
            let why = last_error.unwrap_or_else(|| "no answer".into());
            return if unknown_to_all {
                MetaState::Unknown(why)
            } else {
                MetaState::Unavailable(why)
            };
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(250));
    }
}
