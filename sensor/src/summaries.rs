//! Capability checks are counted in the kernel (`CAP_SEEN`, per CPU); the first of each kind
//! is an event, and this module turns the counts of the repeats into summaries at a bounded
//! rate, so that a container checking a capability in a tight loop costs a few lines, not
//! millions, and no count is lost.

use std::collections::HashMap;

use aya::maps::{MapData, PerCpuHashMap};
use sensor_common::capability::CapKey;

pub struct CapSummaries {
    map: PerCpuHashMap<MapData, CapKey, u64>,
    /// Count already accounted for per key (the first check is the kernel's event).
    reported: HashMap<CapKey, u64>,
}

impl CapSummaries {
    pub fn new(map: PerCpuHashMap<MapData, CapKey, u64>) -> Self {
        Self {
            map,
            reported: HashMap::new(),
        }
    }

    /// Checks counted since the last call, per key, beyond the first of each.
    pub fn collect(&mut self, only_cgroup: Option<u64>) -> Vec<(CapKey, u64)> {
        let mut out = Vec::new();
        for item in self.map.iter() {
            let Ok((key, values)) = item else { continue };
            if only_cgroup.is_some_and(|c| c != key.cgroup_id) {
                continue;
            }
            let total: u64 = values.iter().sum();
            let seen = self.reported.entry(key).or_insert(1);
            if total > *seen {
                out.push((key, total - *seen));
                *seen = total;
            }
        }
        out.sort_by_key(|(k, _)| (k.cgroup_id, k.cap, k.syscall, k.granted, k.quiet));
        out
    }

    /// Drops the counts of a cgroup that went away (after its last summary).
    pub fn forget_cgroup(&mut self, cgroup: u64) {
        let keys: Vec<CapKey> = self
            .map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cgroup_id == cgroup)
            .collect();
        for key in keys {
            let _ = self.map.remove(&key);
            self.reported.remove(&key);
        }
    }
}
