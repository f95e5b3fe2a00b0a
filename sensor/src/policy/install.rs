//! Compiled policy → the kernel's maps (`sensor-ebpf/src/maps.rs`: `POLICY`,
//! `CGROUP_POLICY`, `EXEC_PREFIX`, `EXEC_SUFFIX`, `EXEC_RULESETS`, `CAP_RULESETS`,
//! `NET_ADDRS`, `NET_CIDRS`, `NET_FLOWS`, `SYSCALL_RULES`).

use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, MapError, lpm_trie::Key},
};
use sensor_common::names::map;
use sensor_common::{
    capability::CapRuleset,
    network::{AddrKey, CidrKeyData, FlowKey},
    policy::{CgroupPolicy, ExecKeyData, ExecRuleset, ExecValue, PolicyConfig},
    process::ProcessRuleset,
    syscall::{SysKey, SysValue},
};

use super::{compile::Ruleset, network::NetworkPlan};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("policy map {0} is missing from the kernel object")]
    MissingMap(&'static str),
    #[error("writing policy map {map}: {source}")]
    Map { map: &'static str, source: MapError },
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> InstallError {
    move |source| InstallError::Map { map, source }
}

pub struct Installer {
    /// The sensor's thread-group id as the kernel sees it (`loader::kernel_tgid`).
    sensor_tgid: u32,
    config: Array<MapData, PolicyConfig>,
    cgroups: HashMap<MapData, u64, CgroupPolicy>,
    prefix: LpmTrie<MapData, ExecKeyData, ExecValue>,
    suffix: LpmTrie<MapData, ExecKeyData, ExecValue>,
    rulesets: HashMap<MapData, u32, ExecRuleset>,
    caps: HashMap<MapData, u32, CapRuleset>,
    addrs: HashMap<MapData, AddrKey, u64>,
    cidrs: LpmTrie<MapData, CidrKeyData, u64>,
    flows: HashMap<MapData, FlowKey, u64>,
    syscalls: HashMap<MapData, SysKey, SysValue>,
    process: HashMap<MapData, u32, ProcessRuleset>,
    /// `PROC_IDENTITY`, read only: tgid → the cgroup of its container.
    identities: HashMap<MapData, u32, u64>,
    /// `PROC_IDENTITY` grouped by container, and when it was read (`processes_of`).
    by_container: Option<(std::time::Instant, std::collections::HashMap<u64, Vec<u32>>)>,
}

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, InstallError> {
    let map = ebpf.take_map(name).ok_or(InstallError::MissingMap(name))?;
    T::try_from(map).map_err(map_err(name))
}

impl Installer {
    /// Takes the policy maps out of the loaded object.
    pub fn from_ebpf(ebpf: &mut Ebpf, sensor_tgid: u32) -> Result<Self, InstallError> {
        Ok(Self {
            sensor_tgid,
            config: take(ebpf, map::POLICY)?,
            cgroups: take(ebpf, map::CGROUP_POLICY)?,
            prefix: take(ebpf, map::EXEC_PREFIX)?,
            suffix: take(ebpf, map::EXEC_SUFFIX)?,
            rulesets: take(ebpf, map::EXEC_RULESETS)?,
            caps: take(ebpf, map::CAP_RULESETS)?,
            addrs: take(ebpf, map::NET_ADDRS)?,
            cidrs: take(ebpf, map::NET_CIDRS)?,
            flows: take(ebpf, map::NET_FLOWS)?,
            syscalls: take(ebpf, map::SYSCALL_RULES)?,
            process: take(ebpf, map::PROCESS_RULESETS)?,
            identities: take(ebpf, map::PROC_IDENTITY)?,
            by_container: None,
        })
    }

    pub fn config(&self) -> PolicyConfig {
        self.config.get(&0, 0).unwrap_or_default()
    }

    /// One write: the switch between generations. The sensor's own process is exempt from
    /// every rule.
    pub fn set_config(&mut self, config: PolicyConfig) -> Result<(), InstallError> {
        let config = PolicyConfig {
            sensor_tgid: self.sensor_tgid,
            ..config
        };
        self.config.set(0, config, 0).map_err(map_err(map::POLICY))
    }

    pub fn install_ruleset(&mut self, rs: &Ruleset) -> Result<(), InstallError> {
        for (len, data, value) in &rs.exec.forward {
            self.prefix
                .insert(&Key::new(*len, *data), value, 0)
                .map_err(map_err(map::EXEC_PREFIX))?;
        }
        for (len, data, value) in &rs.exec.reverse {
            self.suffix
                .insert(&Key::new(*len, *data), value, 0)
                .map_err(map_err(map::EXEC_SUFFIX))?;
        }
        if rs.exec.header.allow_required != 0
            || rs.exec.header.drift_action != 0
            || rs.exec.header.exec_action != 0
        {
            self.rulesets
                .insert(rs.id, rs.exec.header, 0)
                .map_err(map_err(map::EXEC_RULESETS))?;
        }
        if let Some(process) = &rs.process {
            self.process
                .insert(rs.id, process, 0)
                .map_err(map_err(map::PROCESS_RULESETS))?;
        }
        if let Some(caps) = &rs.caps {
            self.caps
                .insert(rs.id, caps, 0)
                .map_err(map_err(map::CAP_RULESETS))?;
        }
        for (nr, value) in &rs.syscalls {
            let key = SysKey {
                ruleset: rs.id,
                nr: *nr,
            };
            self.syscalls
                .insert(key, value, 0)
                .map_err(map_err(map::SYSCALL_RULES))?;
        }
        Ok(())
    }

    /// Removes a ruleset's entries; entries already gone are fine.
    pub fn remove_ruleset(&mut self, rs: &Ruleset) {
        for (len, data, _) in &rs.exec.forward {
            let _ = self.prefix.remove(&Key::new(*len, *data));
        }
        for (len, data, _) in &rs.exec.reverse {
            let _ = self.suffix.remove(&Key::new(*len, *data));
        }
        let _ = self.rulesets.remove(&rs.id);
        let _ = self.caps.remove(&rs.id);
        let _ = self.process.remove(&rs.id);
        for (nr, _) in &rs.syscalls {
            let _ = self.syscalls.remove(&SysKey {
                ruleset: rs.id,
                nr: *nr,
            });
        }
    }

    /// Sets the ruleset and segments of `cgroup` in generation `slot`, keeping the other slot.
    pub fn set_cgroup(
        &mut self,
        cgroup: u64,
        slot: usize,
        ruleset: u32,
        segments: u64,
    ) -> Result<(), InstallError> {
        let mut entry = self.cgroups.get(&cgroup, 0).unwrap_or_default();
        entry.ruleset[slot & 1] = ruleset;
        entry.segments[slot & 1] = segments;
        self.cgroups
            .insert(cgroup, entry, 0)
            .map_err(map_err(map::CGROUP_POLICY))
    }

    /// The cgroups that have an entry in the kernel.
    pub fn cgroups(&self) -> Vec<u64> {
        self.cgroups.keys().filter_map(Result::ok).collect()
    }

    /// The cgroups processes belong to, by `PROC_IDENTITY`.
    pub fn identities(&self) -> std::collections::HashSet<u64> {
        self.identities
            .iter()
            .filter_map(Result::ok)
            .map(|(_, c)| c)
            .collect()
    }

    /// The processes (`PROC_IDENTITY`) identified as cgroup `cgroup`'s, as the map was at
    /// most `max_age` ago: callers asking of many cgroups at once share one walk of the map
    /// (up to 262,144 entries).
    pub fn processes_of(&mut self, cgroup: u64, max_age: std::time::Duration) -> Vec<u32> {
        let fresh = self
            .by_container
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < max_age);
        if !fresh {
            let mut grouped = std::collections::HashMap::<u64, Vec<u32>>::new();
            for (pid, c) in self.identities.iter().filter_map(Result::ok) {
                grouped.entry(c).or_default().push(pid);
            }
            self.by_container = Some((std::time::Instant::now(), grouped));
        }
        self.by_container
            .as_ref()
            .and_then(|(_, grouped)| grouped.get(&cgroup).cloned())
            .unwrap_or_default()
    }

    pub fn remove_cgroup(&mut self, cgroup: u64) {
        let _ = self.cgroups.remove(&cgroup);
    }
}

impl Installer {
    /// Writes a generation's CIDR entries into `slot`.
    pub fn install_network(&mut self, slot: usize, plan: &NetworkPlan) -> Result<(), InstallError> {
        for (len, data, mask) in plan.cidr_entries(slot) {
            self.cidrs
                .insert(&Key::new(len, data), mask, 0)
                .map_err(map_err(map::NET_CIDRS))?;
        }
        Ok(())
    }

    /// Removes what `install_network` wrote; entries already gone are fine.
    pub fn remove_network(&mut self, slot: usize, plan: &NetworkPlan) {
        for (len, data, _) in plan.cidr_entries(slot) {
            let _ = self.cidrs.remove(&Key::new(len, data));
        }
    }

    /// The allowed flows towards addresses of segment mask `to`, in `slot`.
    pub fn install_flows(
        &mut self,
        slot: usize,
        plan: &NetworkPlan,
        to: u64,
    ) -> Result<(), InstallError> {
        for (key, from) in plan.flow_entries(slot, to) {
            self.flows
                .insert(key, from, 0)
                .map_err(map_err(map::NET_FLOWS))?;
        }
        Ok(())
    }

    pub fn remove_flows(&mut self, slot: usize, plan: &NetworkPlan, to: u64) {
        for (key, _) in plan.flow_entries(slot, to) {
            let _ = self.flows.remove(&key);
        }
    }

    /// A container's address and its segments under generation `slot`.
    pub fn set_address(
        &mut self,
        slot: usize,
        addr: [u8; 16],
        segments: u64,
    ) -> Result<(), InstallError> {
        let key = AddrKey {
            generation: slot as u32,
            addr,
        };
        self.addrs
            .insert(key, segments, 0)
            .map_err(map_err(map::NET_ADDRS))
    }

    pub fn remove_address(&mut self, slot: usize, addr: [u8; 16]) {
        let _ = self.addrs.remove(&AddrKey {
            generation: slot as u32,
            addr,
        });
    }
}
