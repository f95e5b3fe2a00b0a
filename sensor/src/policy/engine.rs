//! The policy in force: which generation is active, which ruleset each container has, rule
//! names for the kernel's verdicts, and per-rule counters.
//!
//! A reload compiles the new policy for every known container into fresh rulesets, writes them
//! into the inactive generation slot, flips the generation with one map write, and removes the
//! old generation's entries after a grace period (a program that read the old generation just
//! before the flip still finds them).

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use sensor_common::policy::{MODE_AUDIT, MODE_ENFORCE, NO_RULESET, PolicyConfig};

use super::{
    Mode, Parsed, Source,
    compile::{CompileError, Compiler, RuleInfo, Subject},
    install::{InstallError, Installer},
    network::{NetworkPlan, container_addresses},
};

/// How long old entries stay after a flip.
const GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Install(#[from] InstallError),
}

struct Generation {
    compiler: Compiler,
    network: NetworkPlan,
    /// Destination segment masks whose `NET_FLOWS` entries are installed.
    flow_masks: BTreeSet<u64>,
    /// Syscalls some rule denies: their tracepoints must be attached.
    syscalls: BTreeSet<(&'static str, u32)>,
    /// Those a `block` or `kill` rule denies.
    enforced_syscalls: BTreeSet<&'static str>,
    mode: Mode,
    hash: String,
    /// The ruleset of containers whose metadata has not arrived (`Subject::pending`).
    pending_ruleset: u32,
}

/// What one container cgroup has under a generation.
#[derive(Clone, Debug, Default)]
struct CgroupState {
    ruleset: u32,
    /// Segment mask (`NetworkPlan`).
    segments: u64,
    /// Its addresses, in `NET_ADDRS` under the generation's slot.
    addrs: Vec<[u8; 16]>,
}

pub struct Engine {
    installer: Installer,
    mode_override: Option<Mode>,
    slot: usize,
    current: Generation,
    /// The generation before the last flip, until its grace period ends, with what its
    /// containers had.
    previous: Option<(Generation, usize, Instant, HashMap<u64, CgroupState>)>,
    /// Each known container cgroup under the current generation.
    cgroups: HashMap<u64, CgroupState>,
}

/// What a load did, for the `{"kind":"policy","event":"loaded"}` line.
pub struct Loaded {
    pub hash: String,
    pub mode: Mode,
    pub rules: usize,
    pub rulesets: usize,
    pub containers: usize,
    pub took: Duration,
}

impl Engine {
    /// Installs `parsed` with no container known yet (the host ruleset only).
    pub fn new(
        installer: Installer,
        source: &Source,
        parsed: &Parsed,
        mode_override: Option<Mode>,
    ) -> Result<(Self, Loaded), EngineError> {
        let placeholder = Generation {
            compiler: Compiler::new(&parsed.policy, 1),
            network: NetworkPlan::default(),
            flow_masks: BTreeSet::new(),
            syscalls: BTreeSet::new(),
            enforced_syscalls: BTreeSet::new(),
            mode: Mode::Audit,
            hash: String::new(),
            pending_ruleset: NO_RULESET,
        };
        let mut engine = Self {
            installer,
            mode_override,
            // Start so that the first load goes to slot 0.
            slot: 1,
            current: placeholder,
            previous: None,
            cgroups: HashMap::new(),
        };
        let loaded = engine.load(source, parsed, Vec::new())?;
        Ok((engine, loaded))
    }

    pub fn mode(&self) -> Mode {
        self.current.mode
    }

    pub fn hash(&self) -> &str {
        &self.current.hash
    }

    /// The rule behind a kernel verdict.
    pub fn rule(&self, v: &sensor_common::policy::Verdict) -> Option<&RuleInfo> {
        let generation = if usize::from(v.generation) == self.slot {
            Some(&self.current)
        } else {
            self.previous.as_ref().map(|(g, _, _, _)| g)
        }?;
        let rule = generation.compiler.ruleset(v.ruleset)?.verdict_rule(
            v.rule,
            v.action,
            v.allow_violated,
        )?;
        generation.compiler.rules.get(rule as usize)
    }

    /// A container cgroup appeared: it is a container (so host rules do not apply), judged
    /// by every rule at once until its metadata says which apply (fail closed: a container
    /// whose runtime is slow to answer does not run unjudged meanwhile).
    pub fn container_seen(&mut self, cgroup: u64) -> Result<(), EngineError> {
        if !self.cgroups.contains_key(&cgroup) {
            let ruleset = self.current.pending_ruleset;
            let segments = self.current.network.pending_segments();
            self.installer
                .set_cgroup(cgroup, self.slot, ruleset, segments)?;
            self.cgroups.insert(
                cgroup,
                CgroupState {
                    ruleset,
                    segments,
                    ..CgroupState::default()
                },
            );
        }
        Ok(())
    }

    /// A container's metadata is known (or known to be unavailable): install its rules.
    pub fn container_ready(
        &mut self,
        cgroup: u64,
        subject: &Subject<'_>,
    ) -> Result<u32, EngineError> {
        let (id, created) = self.current.compiler.ruleset_for(subject)?;
        if created && let Some(rs) = self.current.compiler.ruleset(id) {
            self.installer.install_ruleset(rs)?;
        }
        let state = self.state_for(subject, id);
        let old = self.cgroups.remove(&cgroup).unwrap_or_default();
        for addr in old.addrs.iter().filter(|a| !state.addrs.contains(a)) {
            if !self.cgroups.values().any(|s| s.addrs.contains(addr)) {
                self.installer.remove_address(self.slot, *addr);
            }
        }
        install_state(
            &mut self.installer,
            cgroup,
            self.slot,
            &self.current.network,
            &mut self.current.flow_masks,
            &state,
        )?;
        self.cgroups.insert(cgroup, state);
        Ok(id)
    }

    /// A container's segments and addresses under the current generation.
    fn state_for(&self, subject: &Subject<'_>, ruleset: u32) -> CgroupState {
        CgroupState {
            ruleset,
            segments: self.current.network.segments_of(subject),
            addrs: subject
                .metadata
                .map(container_addresses)
                .unwrap_or_default(),
        }
    }

    /// Segment names of a mask under the generation in `slot` (events carry the slot).
    pub fn segment_names(&self, slot: u8, mask: u64) -> Vec<String> {
        let generation = match &self.previous {
            Some((g, s, _, _)) if usize::from(slot) == *s => g,
            _ => &self.current,
        };
        generation
            .network
            .names_of(mask)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Syscalls a `block` or `kill` rule names, when the policy in force enforces: their LSM
    /// hooks must be attached.
    pub fn enforced_syscalls(&self) -> BTreeSet<&'static str> {
        if self.current.mode != Mode::Enforce {
            return BTreeSet::new();
        }
        self.current.enforced_syscalls.clone()
    }

    /// Syscalls (name, number) some rule of the policy in force denies.
    pub fn hooked_syscalls(&self) -> &BTreeSet<(&'static str, u32)> {
        &self.current.syscalls
    }

    /// Whether the policy in force can judge inbound flows (the ingress program is needed).
    pub fn needs_ingress(&self) -> bool {
        self.current.network.config.ingress != 0
    }

    /// The active generation slot.
    pub fn slot(&self) -> u8 {
        self.slot as u8
    }

    /// A container's segments under the current generation.
    pub fn segments_of(&self, cgroup: u64) -> u64 {
        self.cgroups.get(&cgroup).map_or(0, |s| s.segments)
    }

    /// An address's segments under the current generation: its container's and its CIDRs'.
    pub fn address_segments(&self, addr: &[u8; 16]) -> u64 {
        let container = self
            .cgroups
            .values()
            .filter(|s| s.addrs.contains(addr))
            .fold(0, |m, s| m | s.segments);
        container | self.current.network.cidr_segments(addr)
    }

    /// The first address a container is known by.
    pub fn address_of(&self, cgroup: u64) -> Option<[u8; 16]> {
        self.cgroups.get(&cgroup)?.addrs.first().copied()
    }

    /// The rule and action capability `cap` gets in `cgroup` under the current policy.
    pub fn capability_rule(&self, cgroup: u64, cap: u32) -> Option<(String, super::Action)> {
        let id = self.cgroups.get(&cgroup)?.ruleset;
        let rs = self.current.compiler.ruleset(id)?;
        let caps = rs.caps.as_ref()?;
        let bit = 1u64 << (cap & 63);
        let action = if caps.kill & bit != 0 {
            super::Action::Kill
        } else if caps.block & bit != 0 {
            super::Action::Block
        } else if caps.audit & bit != 0 {
            super::Action::Audit
        } else {
            return None;
        };
        let rule = self
            .current
            .compiler
            .rules
            .get(caps.rule[(cap & 63) as usize] as usize)?;
        Some((rule.name.clone(), action))
    }

    /// Posture findings for a container, with the rule and its action.
    pub fn findings(&self, subject: &Subject<'_>) -> Vec<(super::posture::Finding, RuleInfo)> {
        self.current
            .compiler
            .findings(subject)
            .into_iter()
            .filter_map(|f| Some((f.clone(), self.current.compiler.rules.get(f.rule)?.clone())))
            .collect()
    }

    /// The container cgroups live processes belong to (`PROC_IDENTITY`).
    pub fn referenced_cgroups(&self) -> std::collections::HashSet<u64> {
        self.installer.identities()
    }

    /// The processes the kernel identifies as cgroup `cgroup`'s (its container's), as they
    /// were at most `max_age` ago.
    pub fn processes_of(&mut self, cgroup: u64, max_age: std::time::Duration) -> Vec<u32> {
        self.installer.processes_of(cgroup, max_age)
    }

    /// Cgroups with a kernel entry the daemon does not know (yet): the kernel made them
    /// containers at their creation, by their name or their parent's entry.
    pub fn untracked(&self) -> Vec<u64> {
        let mut ids = self.installer.cgroups();
        ids.retain(|id| !self.cgroups.contains_key(id));
        ids
    }

    /// A container's cgroup went away (or is no container's): its entries go, whether the
    /// daemon knew it or only the kernel did.
    pub fn container_gone(&mut self, cgroup: u64) {
        if let Some(state) = self.cgroups.remove(&cgroup) {
            // An address several containers claim (the containers of a pod share its) stays
            // while any of them does.
            for addr in state.addrs {
                if !self.cgroups.values().any(|s| s.addrs.contains(&addr)) {
                    self.installer.remove_address(self.slot, addr);
                }
            }
        }
        self.installer.remove_cgroup(cgroup);
    }

    /// Replaces the policy: compiles it for every container in `subjects`, installs it in the
    /// inactive slot and flips to it. On error nothing changes.
    pub fn load(
        &mut self,
        source: &Source,
        parsed: &Parsed,
        subjects: Vec<(u64, Subject<'_>)>,
    ) -> Result<Loaded, EngineError> {
        let started = Instant::now();
        // A reload right after another: the grace period of the one before ends now.
        self.retire(true);
        let first_id = self.current.compiler.next_id();
        let mut compiler = Compiler::new(&parsed.policy, first_id);
        let network = NetworkPlan::new(&parsed.policy);
        let mut assignments = Vec::with_capacity(subjects.len());
        for (cgroup, subject) in &subjects {
            let (ruleset, _) = compiler.ruleset_for(subject)?;
            assignments.push((
                *cgroup,
                CgroupState {
                    ruleset,
                    segments: network.segments_of(subject),
                    addrs: subject
                        .metadata
                        .map(container_addresses)
                        .unwrap_or_default(),
                },
            ));
        }
        let (host, _) = compiler.ruleset_for(&Subject::host())?;
        let (pending_ruleset, _) = compiler.ruleset_for(&Subject::pending())?;

        let next = 1 - self.slot;
        let installed: Vec<_> = compiler.rulesets().collect();
        let mut flow_masks = network.cidr_masks();
        let undo = |installer: &mut Installer, masks: &BTreeSet<u64>| {
            for rs in &installed {
                installer.remove_ruleset(rs);
            }
            installer.remove_network(next, &network);
            for mask in masks {
                installer.remove_flows(next, &network, *mask);
            }
        };
        let written = installed
            .iter()
            .try_for_each(|rs| self.installer.install_ruleset(rs))
            .and_then(|()| self.installer.install_network(next, &network))
            .and_then(|()| {
                flow_masks
                    .iter()
                    .try_for_each(|m| self.installer.install_flows(next, &network, *m))
            });
        if let Err(e) = written {
            undo(&mut self.installer, &flow_masks);
            return Err(e.into());
        }
        // Containers not in `subjects` (metadata pending) are judged by every rule, and by
        // what every segment would deny.
        // So are those the kernel made containers at their creation, whose event the daemon
        // has not read yet. What the kernel gives a new one in the next generation is written
        // first, so that one created from here on is never without an entry there.
        let pending_segments = network.pending_segments();
        let mut config = self.installer.config();
        config.pending.ruleset[next] = pending_ruleset;
        config.pending.segments[next] = pending_segments;
        self.installer.set_config(config)?;
        let mut pending: BTreeSet<u64> = self.cgroups.keys().copied().collect();
        pending.extend(self.installer.cgroups());
        for cgroup in &pending {
            self.installer
                .set_cgroup(*cgroup, next, pending_ruleset, pending_segments)?;
        }
        let mut cgroups = HashMap::new();
        for (cgroup, state) in assignments {
            install_state(
                &mut self.installer,
                cgroup,
                next,
                &network,
                &mut flow_masks,
                &state,
            )?;
            cgroups.insert(cgroup, state);
        }
        for cgroup in &pending {
            cgroups.entry(*cgroup).or_insert_with(|| CgroupState {
                ruleset: pending_ruleset,
                segments: pending_segments,
                ..CgroupState::default()
            });
        }
        let mode = self.mode_override.unwrap_or(parsed.policy.mode);
        let mut config = self.installer.config();
        config.host_ruleset[next] = host;
        config.network[next] = network.config;
        config.generation = next as u32;
        config.mode = match mode {
            Mode::Audit => MODE_AUDIT,
            Mode::Enforce => MODE_ENFORCE,
        };
        // The flip: from here on every program sees the new generation.
        self.installer.set_config(PolicyConfig { ..config })?;
        // A cgroup copied its parent's entry between the list above and the parent's write:
        // its new slot may be stale. Pending until the daemon reads it (fail closed).
        for cgroup in self.installer.cgroups() {
            if let std::collections::hash_map::Entry::Vacant(e) = cgroups.entry(cgroup) {
                let _ = self
                    .installer
                    .set_cgroup(cgroup, next, pending_ruleset, pending_segments);
                e.insert(CgroupState {
                    ruleset: pending_ruleset,
                    segments: pending_segments,
                    ..CgroupState::default()
                });
            }
        }

        let old = std::mem::replace(
            &mut self.current,
            Generation {
                compiler,
                network,
                flow_masks,
                syscalls: super::compile::hooked_syscalls(&parsed.policy),
                enforced_syscalls: super::compile::enforced_syscalls(&parsed.policy),
                mode,
                hash: source.hash(),
                pending_ruleset,
            },
        );
        let old_cgroups = std::mem::replace(&mut self.cgroups, cgroups);
        self.previous = Some((old, self.slot, Instant::now() + GRACE, old_cgroups));
        self.slot = next;
        Ok(Loaded {
            hash: self.current.hash.clone(),
            mode,
            rules: parsed.policy.rules.len(),
            rulesets: self.current.compiler.rulesets().count(),
            containers: subjects.len(),
            took: started.elapsed(),
        })
    }

    /// Removes the previous generation's entries once its grace period is over (or now).
    pub fn retire(&mut self, now: bool) {
        let due = self
            .previous
            .as_ref()
            .is_some_and(|(_, _, at, _)| now || Instant::now() >= *at);
        if !due {
            return;
        }
        let Some((old, slot, _, old_cgroups)) = self.previous.take() else {
            return;
        };
        for rs in old.compiler.rulesets() {
            self.installer.remove_ruleset(rs);
        }
        self.installer.remove_network(slot, &old.network);
        for mask in &old.flow_masks {
            self.installer.remove_flows(slot, &old.network, *mask);
        }
        for state in old_cgroups.values() {
            for addr in &state.addrs {
                self.installer.remove_address(slot, *addr);
            }
        }
        for cgroup in self.cgroups.keys().copied().collect::<Vec<_>>() {
            let _ = self.installer.set_cgroup(cgroup, slot, NO_RULESET, 0);
        }
        let mut config = self.installer.config();
        config.host_ruleset[slot] = NO_RULESET;
        config.network[slot] = Default::default();
        config.pending.ruleset[slot] = NO_RULESET;
        config.pending.segments[slot] = 0;
        let _ = self.installer.set_config(config);
    }
}

/// Writes a container's entries into `slot`: its addresses (each with its segments and those
/// of the CIDRs covering it), the allowed flows towards each mask not seen before (its own,
/// for what arrives at it; its addresses', for what is sent to them), then its cgroup entry.
fn install_state(
    installer: &mut Installer,
    cgroup: u64,
    slot: usize,
    plan: &NetworkPlan,
    flow_masks: &mut BTreeSet<u64>,
    state: &CgroupState,
) -> Result<(), InstallError> {
    let mut masks = vec![state.segments];
    for addr in &state.addrs {
        let mask = state.segments | plan.cidr_segments(addr);
        installer.set_address(slot, *addr, mask)?;
        masks.push(mask);
    }
    for mask in masks {
        if mask != 0 && !flow_masks.contains(&mask) {
            installer.install_flows(slot, plan, mask)?;
            flow_masks.insert(mask);
        }
    }
    installer.set_cgroup(cgroup, slot, state.ruleset, state.segments)
}
