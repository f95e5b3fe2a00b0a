//! Capability checks, network flows and judged syscalls are counted in the kernel
//! (`CAP_SEEN`, `NET_SEEN`, `SYSCALL_COUNTS`, per CPU); the first of each key is an event, and this module turns the counts of the
//! repeats into summaries at a bounded rate, so that a container checking a capability or
//! retrying a connection in a tight loop costs a few lines, not millions, and no count is lost.

use std::{collections::HashMap, hash::Hash};

use aya::maps::{MapData, PerCpuHashMap};
use sensor_common::{capability::CapKey, network::NetKey, syscall::SysCountKey};

/// A per-CPU counter key that belongs to one cgroup.
pub trait SeenKey: aya::Pod + Eq + Hash + Ord {
    fn cgroup_id(&self) -> u64;
}

impl SeenKey for CapKey {
    fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }
}

impl SeenKey for NetKey {
    fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }
}

impl SeenKey for SysCountKey {
    fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }
}

pub struct Summaries<K: SeenKey> {
    map: PerCpuHashMap<MapData, K, u64>,
    /// Count already accounted for per key (the first one is the kernel's event).
    reported: HashMap<K, u64>,
}

pub type CapSummaries = Summaries<CapKey>;
pub type NetSummaries = Summaries<NetKey>;
pub type SysSummaries = Summaries<SysCountKey>;

impl<K: SeenKey> Summaries<K> {
    pub fn new(map: PerCpuHashMap<MapData, K, u64>) -> Self {
        Self {
            map,
            reported: HashMap::new(),
        }
    }

    /// Counts since the last call, per key, beyond the first of each; ordered by key.
    pub fn collect(&mut self, only_cgroup: Option<u64>) -> Vec<(K, u64)> {
        let mut out = Vec::new();
        for item in self.map.iter() {
            let Ok((key, values)) = item else { continue };
            if only_cgroup.is_some_and(|c| c != key.cgroup_id()) {
                continue;
            }
            let total: u64 = values.iter().sum();
            let seen = self.reported.entry(key).or_insert(1);
            if total > *seen {
                out.push((key, total - *seen));
                *seen = total;
            }
        }
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// Drops the counts of a cgroup that went away (after its last summary).
    pub fn forget_cgroup(&mut self, cgroup: u64) {
        let keys: Vec<K> = self
            .map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cgroup_id() == cgroup)
            .collect();
        for key in keys {
            let _ = self.map.remove(&key);
            self.reported.remove(&key);
        }
    }
}
