//! Everything after the ring buffer: decoded event → container attribution → JSON line.
//!
//! A new container's events are held back (bounded by `metadata_wait`) until its metadata is
//! there, so that they go out complete and after its `start` line. Only that container waits:
//! the events of every other container and of the host keep flowing, and its own keep their
//! order.

use std::{
    collections::HashMap,
    io,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use sensor_common::kind;
use serde::Serialize;
use serde_json::Value;

use crate::{
    containers::{Attribution, Container, Registry, enrich::MetaState},
    events::{Event, exec::Exec},
    metrics::Metrics,
    output::{ContainerBody, ExecBody, Line, Process, Sink, time::Clock},
};

/// Events of one container waiting for its metadata.
struct Held {
    deadline: Instant,
    events: Vec<Exec>,
}

pub struct Pipeline<S: Sink> {
    pub registry: Registry,
    pub clock: Clock,
    pub sink: S,
    pub metrics: Arc<Metrics>,
    /// Longest a new container's events wait for its metadata.
    pub metadata_wait: Duration,
    held: HashMap<u64, Held>,
}

impl<S: Sink> Pipeline<S> {
    pub fn new(
        registry: Registry,
        sink: S,
        metrics: Arc<Metrics>,
        metadata_wait: Duration,
    ) -> Self {
        Self {
            registry,
            clock: Clock::new(),
            sink,
            metrics,
            metadata_wait,
            held: HashMap::new(),
        }
    }

    fn write(&mut self, kind: &'static str, time: &str, body: impl Serialize) -> io::Result<()> {
        self.sink.write_line(&Line { time, kind, body })?;
        self.metrics.lines.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn handle(&mut self, event: Event) -> io::Result<()> {
        match event {
            Event::Exec(exec) => {
                self.metrics.events[kind::EXEC as usize].fetch_add(1, Relaxed);
                let cgroup_id = exec.header.cgroup_id;
                if let Some(held) = self.held.get_mut(&cgroup_id) {
                    held.events.push(exec);
                    return Ok(());
                }
                let attribution = self.registry.lookup(cgroup_id);
                if let Attribution::Container(c) = &attribution
                    && !c.announced.load(Relaxed)
                    && c.is_pending()
                {
                    self.held.insert(
                        cgroup_id,
                        Held {
                            deadline: Instant::now() + self.metadata_wait,
                            events: vec![exec],
                        },
                    );
                    return Ok(());
                }
                self.write_exec(&exec, attribution)?;
            }
            Event::CgroupMkdir(c) => {
                self.metrics.events[kind::CGROUP_MKDIR as usize].fetch_add(1, Relaxed);
                if let Some(container) =
                    self.registry
                        .cgroup_created(c.id, c.path, c.header.ktime_ns)
                {
                    log::debug!(
                        "container {} ({}) in cgroup {}",
                        container.id,
                        container.runtime.as_str(),
                        c.id
                    );
                }
                self.update_container_gauge();
            }
            Event::CgroupRmdir(c) => {
                self.metrics.events[kind::CGROUP_RMDIR as usize].fetch_add(1, Relaxed);
                self.release(c.id)?;
                if let Some(container) = self.registry.cgroup_removed(c.id) {
                    self.announce(&container)?;
                    let time = self.clock.rfc3339(c.header.ktime_ns);
                    self.container_line(&time, "stop", &container)?;
                }
                self.update_container_gauge();
            }
        }
        Ok(())
    }

    fn write_exec(&mut self, exec: &Exec, attribution: Attribution) -> io::Result<()> {
        let container = match attribution {
            Attribution::Host => None,
            Attribution::Unknown => {
                self.metrics.unresolved_cgroups.fetch_add(1, Relaxed);
                None
            }
            Attribution::Container(c) => {
                self.announce(&c)?;
                Some(c)
            }
        };
        let time = self.clock.rfc3339(exec.header.ktime_ns);
        let body = ExecBody {
            process: Process {
                pid: exec.header.pid,
                ppid: exec.header.ppid,
                uid: exec.header.uid,
                gid: exec.header.gid,
                comm: &exec.header.comm,
                exe: &exec.filename,
                args: &exec.args,
            },
            container: container.as_deref().map(Container::view),
            truncated: exec.truncated,
        };
        self.write("exec", &time, body)
    }

    /// Writes the held events of a container, in order, after its start line.
    fn release(&mut self, cgroup_id: u64) -> io::Result<()> {
        let Some(held) = self.held.remove(&cgroup_id) else {
            return Ok(());
        };
        for exec in held.events {
            let attribution = self.registry.lookup(cgroup_id);
            self.write_exec(&exec, attribution)?;
        }
        Ok(())
    }

    /// Releases every held event (at shutdown).
    pub fn release_all(&mut self) -> io::Result<()> {
        let ids: Vec<u64> = self.held.keys().copied().collect();
        for id in ids {
            self.release(id)?;
        }
        Ok(())
    }

    /// Releases containers whose metadata did not arrive in time; their events go out with
    /// the container id and `"enriched": false`.
    pub fn expire(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let late: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.metrics.metadata_late.fetch_add(1, Relaxed);
            self.release(id)?;
        }
        Ok(())
    }

    /// A metadata fetch finished: announce the container and release its held events.
    pub fn fetched(&mut self, cgroup_id: u64) -> io::Result<()> {
        if let Some(c) = self.registry.container(cgroup_id).cloned() {
            self.announce(&c)?;
        }
        self.release(cgroup_id)
    }

    /// Writes the container's `start` line once.
    fn announce(&mut self, c: &Container) -> io::Result<()> {
        if !c.announce() {
            return Ok(());
        }
        let time = self.clock.now_rfc3339();
        self.container_line(&time, "start", c)
    }

    fn container_line(&mut self, time: &str, event: &'static str, c: &Container) -> io::Result<()> {
        let state = c.meta.borrow().clone();
        let (metadata_ms, error) = match (&state, event) {
            (MetaState::Ready { ready_boot_ns, .. }, "start") => (
                c.created_ns
                    .map(|created| ready_boot_ns.saturating_sub(created) as f64 / 1e6),
                None,
            ),
            (MetaState::Unavailable(why), "start") => (None, Some(why.as_str())),
            (MetaState::Pending, "start") => (None, Some("metadata still pending")),
            _ => (None, None),
        };
        let body = ContainerBody {
            event,
            container: c.view(),
            at_startup: event == "start" && c.created_ns.is_none(),
            metadata_ms,
            metadata_error: error,
        };
        self.write("container", time, body)
    }

    pub fn update_container_gauge(&self) {
        self.metrics
            .containers
            .store(self.registry.containers().count() as u64, Relaxed);
    }

    /// `GET /containers`: what the sensor sees, one object per container.
    pub fn containers_json(&self) -> Value {
        let mut list: Vec<Value> = self
            .registry
            .containers()
            .map(|c| {
                let mut v = serde_json::to_value(c.view()).unwrap_or(Value::Null);
                if let Value::Object(o) = &mut v {
                    o.insert("cgroup_id".into(), c.cgroup_id.into());
                    o.insert(
                        "cgroup".into(),
                        self.registry.path(c.cgroup_id).unwrap_or_default().into(),
                    );
                }
                v
            })
            .collect();
        list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        Value::Array(list)
    }

    pub fn sensor_line(&mut self, body: impl Serialize) -> io::Result<()> {
        let time = self.clock.now_rfc3339();
        self.write("sensor", &time, body)?;
        self.sink.flush()
    }
}
