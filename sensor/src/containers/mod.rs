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
pub mod docker;
pub mod metadata;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;

pub use cgroup_path::{Identity, Runtime};

/// A container as events show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Container {
    pub id: String,
    pub runtime: Runtime,
    /// Kubernetes pod, when the cgroup path places the container in one.
    pub pod: Option<Pod>,
    /// containerd namespace (`ctr`/nerdctl containers under the cgroupfs layout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub uid: String,
}

impl From<Identity> for Container {
    fn from(i: Identity) -> Self {
        Self {
            id: i.id,
            runtime: i.runtime,
            pod: i.pod_uid.map(|uid| Pod { uid }),
            namespace: i.namespace,
        }
    }
}

/// Where an event's cgroup id leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribution {
    Host,
    Container(Arc<Container>),
    /// The id matches no cgroup the sensor knows or can resolve (it may be gone already).
    Unknown,
}

struct Entry {
    path: String,
    container: Option<Arc<Container>>,
}

pub struct Registry {
    root: PathBuf,
    containerd_namespaces: Vec<String>,
    by_cgroup: HashMap<u64, Entry>,
}

impl Registry {
    /// A registry of every cgroup now under the v2 mount `root`.
    pub fn scan(root: &Path, containerd_namespaces: Vec<String>) -> Self {
        let mut registry = Self {
            root: root.to_owned(),
            containerd_namespaces,
            by_cgroup: HashMap::new(),
        };
        for (id, path) in cgroupfs::walk(root) {
            registry.insert(id, path);
        }
        registry
    }

    fn identity(&self, path: &str) -> Option<Identity> {
        let ns: Vec<&str> = self
            .containerd_namespaces
            .iter()
            .map(String::as_str)
            .collect();
        cgroup_path::parse(path, &ns)
    }

    fn insert(&mut self, id: u64, path: String) -> Option<Arc<Container>> {
        let container = self.identity(&path).map(|i| Arc::new(Container::from(i)));
        self.by_cgroup.insert(
            id,
            Entry {
                path,
                container: container.clone(),
            },
        );
        container
    }

    /// A cgroup appeared. Returns its container when it is one.
    pub fn cgroup_created(&mut self, id: u64, path: String) -> Option<Arc<Container>> {
        self.insert(id, path)
    }

    /// A cgroup went away.
    pub fn cgroup_removed(&mut self, id: u64) {
        self.by_cgroup.remove(&id);
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
            Some(path) => match self.insert(id, path) {
                Some(c) => Attribution::Container(c),
                None => Attribution::Host,
            },
            None => Attribution::Unknown,
        }
    }

    /// Path of a known cgroup.
    pub fn path(&self, id: u64) -> Option<&str> {
        self.by_cgroup.get(&id).map(|e| e.path.as_str())
    }

    /// Known cgroups that are containers.
    pub fn containers(&self) -> impl Iterator<Item = (u64, &Arc<Container>)> {
        self.by_cgroup
            .iter()
            .filter_map(|(id, e)| e.container.as_ref().map(|c| (*id, c)))
    }

    pub fn len(&self) -> usize {
        self.by_cgroup.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_cgroup.is_empty()
    }
}
