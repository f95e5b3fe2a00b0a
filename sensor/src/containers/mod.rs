//! cgroup id → container. The kernel reports the v2 cgroup id of every event; this registry
//! maps it to a container identity (from the cgroup path) or to the host.
//!
//! It is filled by a walk of the v2 tree at startup and kept current by the kernel's
//! `cgroup_mkdir` / `cgroup_rmdir` events, which arrive on the same ring buffer as, and before,
//! the events of processes in the new cgroup.

pub mod cgroup_path;
pub mod cgroupfs;
pub mod client;
pub mod cri;
#[cfg(feature = "cri-admin")]
pub mod cri_admin;
pub mod docker;
pub mod enrich;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
};

use tokio::sync::{mpsc, watch};

use crate::identity::Metadata;
pub use cgroup_path::{Identity, Runtime};
use enrich::{Enricher, MetaState, Target};

/// A container the sensor knows: identity from its cgroup path, metadata from its runtime.
#[derive(Debug)]
pub struct Container {
    pub cgroup_id: u64,
    pub id: String,
    pub runtime: Runtime,
    /// Kubernetes pod UID from the cgroup path.
    pub pod_uid: Option<String>,
    /// containerd namespace (`ctr`/nerdctl containers under the cgroupfs layout).
    pub namespace: Option<String>,
    /// A container only if its runtime knows it (`Identity::inferred`).
    pub inferred: bool,
    /// Kernel boot-clock time of the cgroup's creation; `None` for containers found at startup.
    pub created_ns: Option<u64>,
    /// Metadata as the enricher fills it in.
    pub meta: Arc<watch::Sender<MetaState>>,
    /// Whether its `start` line was written.
    pub announced: AtomicBool,
    /// Whether its posture was judged (once, with its metadata).
    pub posture_judged: AtomicBool,
}

impl Container {
    fn new(cgroup_id: u64, identity: Identity, created_ns: Option<u64>) -> Self {
        let (meta, _) = watch::channel(MetaState::Pending);
        Self {
            cgroup_id,
            id: identity.id,
            runtime: identity.runtime,
            pod_uid: identity.pod_uid,
            namespace: identity.namespace,
            inferred: identity.inferred,
            created_ns,
            meta: Arc::new(meta),
            announced: AtomicBool::new(false),
            posture_judged: AtomicBool::new(false),
        }
    }

    pub fn target(&self) -> Target {
        Target {
            id: self.id.clone(),
            runtime: self.runtime,
            namespace: self.namespace.clone(),
            inferred: self.inferred,
        }
    }

    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        match &*self.meta.borrow() {
            MetaState::Ready { metadata, .. } => Some(metadata.clone()),
            _ => None,
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(*self.meta.borrow(), MetaState::Pending)
    }

    /// Marks the start line as written; true the first time.
    pub fn announce(&self) -> bool {
        !self.announced.swap(true, Relaxed)
    }
}

/// Where an event's cgroup id leads.
#[derive(Clone, Debug)]
pub enum Attribution {
    Host,
    Container(Arc<Container>),
    /// The id matches no cgroup the sensor knows or can resolve (it may be gone already).
    Unknown,
}

struct Entry {
    path: String,
    /// The container this cgroup is part of: the container's own cgroup, or one of its
    /// sub-cgroups (`container.cgroup_id` says which).
    container: Option<Arc<Container>>,
}

/// Who made a cgroup, as far as the daemon knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maker {
    /// The host: a runtime, systemd, an administrator.
    Host,
    /// A process of a container.
    Container,
    /// Not known (found by walking the tree or by its id).
    Unknown,
}

pub struct Registry {
    root: PathBuf,
    containerd_namespaces: Vec<String>,
    by_cgroup: HashMap<u64, Entry>,
    enricher: Arc<Enricher>,
    /// Receives the cgroup id of each container whose fetch finished.
    done: mpsc::UnboundedSender<u64>,
}

impl Registry {
    /// A registry of every cgroup now under the v2 mount `root`; metadata fetches for the
    /// containers among them start at once.
    pub fn scan(
        root: &Path,
        containerd_namespaces: Vec<String>,
        enricher: Arc<Enricher>,
        done: mpsc::UnboundedSender<u64>,
    ) -> Self {
        let mut registry = Self {
            root: root.to_owned(),
            containerd_namespaces,
            by_cgroup: HashMap::new(),
            enricher,
            done,
        };
        // Parents first: a sub-cgroup finds its container registered.
        let mut cgroups: Vec<(u64, String)> = cgroupfs::walk(root).into_iter().collect();
        cgroups.sort_by_key(|(_, path)| path.matches('/').count());
        for (id, path) in cgroups {
            registry.insert(id, path, None, Maker::Unknown);
        }
        registry
    }

    /// The identity a path gives, with the path of the container's own cgroup.
    fn identity(&self, path: &str) -> Option<(Identity, String)> {
        let ns: Vec<&str> = self
            .containerd_namespaces
            .iter()
            .map(String::as_str)
            .collect();
        cgroup_path::parse_with_own(path, &ns)
    }

    /// Registers cgroup `id` at `path`. A container's own cgroup is a container (its metadata
    /// fetch starts), unless a container made it; a container's sub-cgroup is that container's
    /// (no container of its own, no fetch: the kernel judges it through its container's
    /// entry); anything else is the host's.
    fn insert(
        &mut self,
        id: u64,
        path: String,
        created_ns: Option<u64>,
        maker: Maker,
    ) -> Option<Arc<Container>> {
        let container = match self.identity(&path) {
            Some((_, own)) if own != path.trim_end_matches('/') => self.container_at(&own),
            // A cgroup named like a container's that a container made (where the host's
            // cgroupfs is writable to it): the host's, as the kernel took it.
            Some(_) if maker == Maker::Container => None,
            Some((identity, _)) => {
                let c = Arc::new(Container::new(id, identity, created_ns));
                self.refetch(&c);
                Some(c)
            }
            None => None,
        };
        self.by_cgroup.insert(
            id,
            Entry {
                path,
                container: container.clone(),
            },
        );
        container
    }

    /// The container whose own cgroup is at `own`, if that cgroup is registered as one. One
    /// not registered (its creation not read) is not made a container here: by its
    /// sub-cgroup's name, a cgroup a container made would be.
    fn container_at(&self, own: &str) -> Option<Arc<Container>> {
        let id = cgroupfs::id_of_path(&self.root, own)?;
        self.by_cgroup.get(&id)?.container.clone()
    }

    /// (Re)starts the metadata fetch of `c`.
    pub fn refetch(&self, c: &Container) {
        c.meta.send_replace(MetaState::Pending);
        self.enricher
            .fetch(c.target(), c.meta.clone(), c.cgroup_id, self.done.clone());
    }

    /// Fetches again every container whose metadata is unavailable (a runtime came back).
    pub fn refetch_unavailable(&self) {
        for c in self.containers() {
            if matches!(
                *c.meta.borrow(),
                MetaState::Unavailable(_) | MetaState::Unknown(_)
            ) {
                self.refetch(c);
            }
        }
    }

    /// A cgroup appeared at kernel time `created_ns`, made by `maker`. Returns the container
    /// it is part of, if any: its own when `id` is that container's own cgroup.
    pub fn cgroup_created(
        &mut self,
        id: u64,
        path: String,
        created_ns: u64,
        maker: Maker,
    ) -> Option<Arc<Container>> {
        if let Some(existing) = self.by_cgroup.get(&id)
            && existing.path == path
        {
            // Already seen by the startup walk.
            return existing.container.clone();
        }
        self.insert(id, path, Some(created_ns), maker)
    }

    /// Whether live process `pid` is outside cgroup `id` and its sub-cgroups (everywhere is,
    /// once the cgroup is gone); `false` for a process that is gone.
    pub fn process_outside(&self, pid: u32, id: u64) -> bool {
        let Some(path) = cgroupfs::v2_path_of_pid(pid) else {
            return false;
        };
        let Some(own) = cgroupfs::path_of_id(&self.root, id) else {
            return true;
        };
        let own = own.trim_end_matches('/');
        !(path == own || path.starts_with(&format!("{own}/")))
    }

    /// Cgroup `id` is no container after all (an inferred one its runtime does not know): it
    /// and its sub-cgroups are the host's. Returns whether it was a container.
    pub fn disown(&mut self, id: u64) -> bool {
        let mut was = false;
        for entry in self.by_cgroup.values_mut() {
            if entry.container.as_ref().is_some_and(|c| c.cgroup_id == id) {
                entry.container = None;
                was = true;
            }
        }
        was
    }

    /// A cgroup went away; returns its container when it was that container's own.
    pub fn cgroup_removed(&mut self, id: u64) -> Option<Arc<Container>> {
        self.by_cgroup
            .remove(&id)
            .and_then(|e| e.container)
            .filter(|c| c.cgroup_id == id)
    }

    /// The container (or host) of cgroup `id`. Unknown ids are resolved through the kernel
    /// once and remembered.
    pub fn lookup(&mut self, id: u64) -> Attribution {
        if let Some(entry) = self.by_cgroup.get(&id) {
            return match &entry.container {
                Some(c) => Attribution::Container(c.clone()),
                None => Attribution::Host,
            };
        }
        match cgroupfs::path_of_id(&self.root, id) {
            Some(path) => match self.insert(id, path, None, Maker::Unknown) {
                Some(c) => Attribution::Container(c),
                None => Attribution::Host,
            },
            None => Attribution::Unknown,
        }
    }

    /// Asks every runtime that answers for its running containers and registers those whose
    /// cgroup the path rules did not recognise, found through their first process's cgroup.
    pub async fn adopt_listed(&mut self, enricher: &Enricher) -> Vec<Arc<Container>> {
        let known: std::collections::HashSet<String> =
            self.containers().map(|c| c.id.clone()).collect();
        let mut adopted = Vec::new();
        for endpoint in &enricher.endpoints {
            if !endpoint.client.socket().exists() {
                continue;
            }
            let Ok(ids) = endpoint.client.list().await else {
                continue;
            };
            for id in ids.into_iter().filter(|id| !known.contains(id)) {
                let Ok(client::Lookup::Found(metadata)) = endpoint.client.metadata(&id).await
                else {
                    continue;
                };
                let Some(path) = metadata.pid.and_then(cgroupfs::v2_path_of_pid) else {
                    continue;
                };
                let Ok(meta) = std::fs::metadata(self.root.join(path.trim_start_matches('/')))
                else {
                    continue;
                };
                let cgroup_id = std::os::unix::fs::MetadataExt::ino(&meta);
                let identity = Identity {
                    runtime: endpoint.client.runtime(),
                    id: id.clone(),
                    pod_uid: metadata.pod.as_ref().map(|p| p.uid.clone()),
                    namespace: None,
                    inferred: false,
                };
                let container = Arc::new(Container::new(cgroup_id, identity, None));
                container.meta.send_replace(MetaState::Ready {
                    metadata: Arc::new(*metadata),
                    ready_boot_ns: crate::time::boottime_ns(),
                });
                self.by_cgroup.insert(
                    cgroup_id,
                    Entry {
                        path,
                        container: Some(container.clone()),
                    },
                );
                adopted.push(container);
            }
        }
        adopted
    }

    /// The container of a known cgroup id.
    pub fn container(&self, cgroup_id: u64) -> Option<&Arc<Container>> {
        self.by_cgroup
            .get(&cgroup_id)
            .and_then(|e| e.container.as_ref())
    }

    /// Path of a known cgroup.
    pub fn path(&self, id: u64) -> Option<&str> {
        self.by_cgroup.get(&id).map(|e| e.path.as_str())
    }

    /// Known containers, each once (by its own cgroup).
    pub fn containers(&self) -> impl Iterator<Item = &Arc<Container>> {
        self.by_cgroup
            .iter()
            .filter_map(|(id, e)| e.container.as_ref().filter(|c| c.cgroup_id == *id))
    }

    pub fn len(&self) -> usize {
        self.by_cgroup.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_cgroup.is_empty()
    }
}
