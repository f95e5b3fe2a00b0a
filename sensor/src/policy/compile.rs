//! Policy + containers → the map entries the kernel programs read. Pure: no kernel, no I/O;
//! golden-tested in `tests/golden`.
//!
//! Containers whose matching rules are the same share one ruleset. Exec patterns become keys of
//! two LPM tries (forward paths for exact and prefix patterns, reversed paths for suffixes);
//! since a trie lookup returns only the longest matching key, each key's value is folded over
//! every shorter pattern of the same trie that also matches it.

use std::collections::{BTreeMap, BTreeSet};

use sensor_common::capability::CapRuleset;
use sensor_common::policy::{
    ACTION_BLOCK, ACTION_KILL, ACTION_NONE, EXEC_PATH_LEN, ExecKeyData, ExecRuleset, ExecValue,
    MAX_ALLOW_RULES, RULE_ALLOW_LIST,
};
use sensor_common::process::ProcessRuleset;
use sensor_common::syscall::SysValue;

use super::model::{Action, List, Mode, PathPattern, Policy, Rule, Selector};
use crate::identity::{Metadata, Runtime};

/// What selectors look at: a container (or the host).
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    /// `None` for host processes.
    pub runtime: Option<Runtime>,
    pub name: Option<&'a str>,
    pub image: Option<&'a str>,
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub pod_labels: Option<&'a BTreeMap<String, String>>,
    pub namespace: Option<&'a str>,
    pub networks: Vec<&'a str>,
    /// All the runtime said, for posture rules.
    pub metadata: Option<&'a Metadata>,
    /// A container whose metadata has not arrived: every rule selects it (fail closed).
    pub pending: bool,
}

impl<'a> Subject<'a> {
    pub fn host() -> Self {
        Self::default()
    }

    /// What selectors see of a container of `runtime`, with what its runtime said of it
    /// (`None`: not known yet, so no selector can be decided and every rule applies until
    /// the runtime answers).
    pub fn container(runtime: Runtime, metadata: Option<&'a Metadata>) -> Self {
        Self {
            runtime: Some(runtime),
            name: metadata.and_then(|m| m.name.as_deref()),
            image: metadata.and_then(|m| m.image.as_deref()),
            labels: metadata.map(|m| &m.labels),
            pod_labels: metadata.and_then(|m| m.pod.as_ref()).map(|p| &p.labels),
            namespace: metadata
                .and_then(|m| m.pod.as_ref())
                .map(|p| p.namespace.as_str()),
            networks: metadata
                .map(|m| m.networks.iter().map(|n| n.name.as_str()).collect())
                .unwrap_or_default(),
            metadata,
            pending: metadata.is_none(),
        }
    }

    /// A container not known yet: judged by every rule of the policy at once, as if each
    /// selected it, until its metadata says which do.
    pub fn pending() -> Self {
        Self {
            pending: true,
            ..Self::default()
        }
    }

    fn is_host(&self) -> bool {
        self.runtime.is_none()
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .and_then(|l| l.get(key))
            .or_else(|| self.pod_labels.and_then(|l| l.get(key)))
            .map(String::as_str)
    }
}

impl Selector {
    /// Every given field must match. A field the container's metadata does not know fails,
    /// except `*` globs, which match anything.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        if s.pending {
            return true;
        }
        if s.is_host() {
            return self.host;
        }
        let glob = |g: &Option<super::model::Glob>, v: Option<&str>| match g {
            None => true,
            Some(g) if g.0 == "*" => true,
            Some(g) => v.is_some_and(|v| g.matches(v)),
        };
        self.labels
            .iter()
            .all(|(k, v)| s.label(k) == Some(v.as_str()))
            && glob(&self.image, s.image)
            && glob(&self.name, s.name)
            && glob(&self.namespace, s.namespace)
            && self.runtime.is_none_or(|r| match s.runtime {
                // A cgroupfs Kubernetes path does not say which CRI runtime it is.
                Some(Runtime::Cri) => matches!(r, Runtime::Containerd | Runtime::CriO),
                other => other == Some(r),
            })
            && self
                .network
                .as_ref()
                .is_none_or(|n| s.networks.contains(&n.as_str()))
    }
}

/// A rule as the kernel reports it: its index in `Compiled::rules` is its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    pub name: String,
    pub action: Action,
}

/// One ruleset's exec entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecEntries {
    pub header: ExecRuleset,
    /// The allow-list rule of each bit of `header` (the kernel only knows bits).
    pub allow_rules: Vec<u32>,
    /// (prefix_len, data, value) for the forward trie.
    pub forward: Vec<(u32, ExecKeyData, ExecValue)>,
    /// … and for the reversed trie.
    pub reverse: Vec<(u32, ExecKeyData, ExecValue)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    pub id: u32,
    /// Indices of the rules it applies.
    pub rules: Vec<usize>,
    pub exec: ExecEntries,
    /// Capability actions, when a capability rule applies.
    pub caps: Option<CapRuleset>,
    /// `SYSCALL_RULES` entries: syscall number → action, rule, string arguments.
    pub syscalls: Vec<(u32, SysValue)>,
    /// `PROCESS_RULESETS` entry, when an `escape` rule applies.
    pub process: Option<ProcessRuleset>,
}

/// Compile errors: conditions only a particular container set reveals.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error(
        "more than {MAX_ALLOW_RULES} exec allow-lists apply to one container (rules {0}); merge some of them"
    )]
    TooManyAllowLists(String),
}

/// Rulesets of one policy generation, built up as containers come.
pub struct Compiler {
    pub mode: Mode,
    pub rules: Vec<RuleInfo>,
    policy_rules: Vec<Rule>,
    by_rules: BTreeMap<Vec<usize>, Ruleset>,
    next_id: u32,
}

impl Compiler {
    /// `first_id` is the first ruleset id to hand out; ids are never reused while a previous
    /// generation may still be installed.
    pub fn new(policy: &Policy, first_id: u32) -> Self {
        Self {
            mode: policy.mode,
            rules: policy
                .rules
                .iter()
                .map(|r| RuleInfo {
                    name: r.name.clone(),
                    action: r.action,
                })
                .collect(),
            policy_rules: policy.rules.clone(),
            by_rules: BTreeMap::new(),
            next_id: first_id.max(1),
        }
    }

    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Rules (by index) that apply to `subject`: exec and capability rules whose selector
    /// matches, and posture rules the container violates.
    pub fn matching(&self, subject: &Subject<'_>) -> Vec<usize> {
        self.policy_rules
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                r.selector.matches(subject)
                    && (r.exec.is_some()
                        || r.capabilities.is_some()
                        || r.syscalls.is_some()
                        || r.drift != 0
                        || r.escape
                        || self.posture_violated(*i, subject))
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn posture_violated(&self, index: usize, subject: &Subject<'_>) -> bool {
        subject
            .metadata
            .is_some_and(|m| super::posture::violated(index, &self.policy_rules[index], m))
    }

    /// Posture findings of every rule selecting `subject`.
    pub fn findings(&self, subject: &Subject<'_>) -> Vec<super::posture::Finding> {
        let Some(m) = subject.metadata else {
            return Vec::new();
        };
        self.policy_rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.selector.matches(subject))
            .flat_map(|(i, r)| super::posture::findings(i, r, m))
            .collect()
    }

    /// The ruleset for `subject`: `Ok((id, true))` when it was created by this call (its
    /// entries must be installed), `Ok((NO_RULESET, false))` when no rule applies.
    pub fn ruleset_for(&mut self, subject: &Subject<'_>) -> Result<(u32, bool), CompileError> {
        let mut rules = self.matching(subject);
        // A posture rule the container violates stops every exec (its action), so the same
        // rules with and without a violation are different rulesets.
        let violated: Vec<usize> = rules
            .iter()
            .copied()
            .filter(|i| self.posture_violated(*i, subject))
            .collect();
        if !violated.is_empty() {
            rules.push(usize::MAX);
            rules.extend(&violated);
        }
        if rules.is_empty() {
            return Ok((sensor_common::policy::NO_RULESET, false));
        }
        if let Some(rs) = self.by_rules.get(&rules) {
            return Ok((rs.id, false));
        }
        let id = self.next_id;
        let split = rules
            .iter()
            .position(|r| *r == usize::MAX)
            .unwrap_or(rules.len());
        let (applied, posture) = (&rules[..split], rules.get(split + 1..).unwrap_or(&[]));
        let exec = self.exec_entries(id, applied, posture)?;
        let caps = self.cap_ruleset(applied);
        let syscalls = self.syscall_entries(applied);
        let process = self.process_ruleset(applied);
        self.next_id += 1;
        self.by_rules.insert(
            rules.clone(),
            Ruleset {
                id,
                rules,
                exec,
                caps,
                syscalls,
                process,
            },
        );
        Ok((id, true))
    }

    pub fn ruleset(&self, id: u32) -> Option<&Ruleset> {
        self.by_rules.values().find(|r| r.id == id)
    }

    pub fn rulesets(&self) -> impl Iterator<Item = &Ruleset> {
        self.by_rules.values()
    }

    /// Per capability, the strongest action of the rules denying it (an allow-list denies every
    /// capability it does not name).
    fn cap_ruleset(&self, rules: &[usize]) -> Option<CapRuleset> {
        let mut action = [ACTION_NONE; 64];
        let mut rule_of = [0u32; 64];
        let mut any = false;
        for &ri in rules {
            let rule = &self.policy_rules[ri];
            let Some(list) = &rule.capabilities else {
                continue;
            };
            let denied: Vec<u32> = match list {
                List::Deny(caps) => caps.clone(),
                List::Allow(caps) => (0..crate::syscalls::names::CAPABILITIES.len() as u32)
                    .filter(|c| !caps.contains(c))
                    .collect(),
            };
            for cap in denied.into_iter().filter(|c| *c < 64) {
                let code = rule.action.code();
                if code > action[cap as usize] {
                    action[cap as usize] = code;
                    rule_of[cap as usize] = ri as u32;
                }
                any = true;
            }
        }
        any.then(|| {
            let mut rs = CapRuleset::empty();
            for (cap, a) in action.iter().enumerate() {
                let bit = 1u64 << cap;
                match *a {
                    ACTION_KILL => rs.kill |= bit,
                    ACTION_BLOCK => rs.block |= bit,
                    sensor_common::policy::ACTION_AUDIT => rs.audit |= bit,
                    _ => continue,
                }
                rs.rule[cap] = rule_of[cap];
            }
            rs
        })
    }

    /// The strongest `escape` rule.
    fn process_ruleset(&self, rules: &[usize]) -> Option<ProcessRuleset> {
        let mut out: Option<ProcessRuleset> = None;
        for &ri in rules {
            let rule = &self.policy_rules[ri];
            if rule.escape && out.is_none_or(|o| rule.action.code() > o.escape_action) {
                out = Some(ProcessRuleset {
                    escape_action: rule.action.code(),
                    escape_rule: ri as u32,
                    ..ProcessRuleset::default()
                });
            }
        }
        out
    }

    /// Per syscall, the strongest action of the rules denying it (an allow-list denies every
    /// syscall of this architecture it does not name).
    fn syscall_entries(&self, rules: &[usize]) -> Vec<(u32, SysValue)> {
        let mut out: BTreeMap<u32, SysValue> = BTreeMap::new();
        for &ri in rules {
            let rule = &self.policy_rules[ri];
            let Some(list) = &rule.syscalls else { continue };
            for (name, nr) in denied_syscalls(list) {
                let entry = out.entry(nr).or_insert_with(|| SysValue {
                    strings: crate::syscalls::args::string_args(name),
                    ..SysValue::default()
                });
                if rule.action.code() > entry.action {
                    entry.action = rule.action.code();
                    entry.rule = ri as u32;
                }
            }
        }
        out.into_iter().collect()
    }

    fn exec_entries(
        &self,
        id: u32,
        rules: &[usize],
        posture: &[usize],
    ) -> Result<ExecEntries, CompileError> {
        let mut header = ExecRuleset::default();
        let mut allow_rules = Vec::new();
        // (bytes, is_reverse) → value contributed by this pattern alone.
        let mut patterns: Vec<(bool, Vec<u8>, ExecValue)> = Vec::new();
        let mut bit = 0usize;
        for &ri in rules {
            let rule = &self.policy_rules[ri];
            let Some(list) = &rule.exec else { continue };
            if rule.action.code() > header.exec_action {
                header.exec_action = rule.action.code();
                header.exec_rule = ri as u32;
            }
            let (value, items) = match list {
                List::Deny(items) => (
                    ExecValue {
                        deny_action: rule.action.code(),
                        deny_rule: ri as u32,
                        ..Default::default()
                    },
                    items,
                ),
                List::Allow(items) => {
                    if bit >= MAX_ALLOW_RULES {
                        let names: Vec<&str> = rules
                            .iter()
                            .map(|&i| self.policy_rules[i].name.as_str())
                            .collect();
                        return Err(CompileError::TooManyAllowLists(names.join(", ")));
                    }
                    header.allow_required |= 1 << bit;
                    match rule.action.code() {
                        ACTION_KILL => header.allow_kill |= 1 << bit,
                        ACTION_BLOCK => header.allow_block |= 1 << bit,
                        _ => {}
                    }
                    allow_rules.push(ri as u32);
                    bit += 1;
                    (
                        ExecValue {
                            allow_mask: 1 << (bit - 1),
                            ..Default::default()
                        },
                        items,
                    )
                }
            };
            for item in items {
                let (reverse, bytes) = match item {
                    PathPattern::Exact(p) => (false, [p.as_bytes(), b"\0"].concat()),
                    PathPattern::Prefix(p) => (false, p.as_bytes().to_vec()),
                    PathPattern::Any => (false, Vec::new()),
                    PathPattern::Suffix(s) => (true, s.bytes().rev().collect()),
                };
                patterns.push((reverse, bytes, value));
            }
        }
        for &ri in rules {
            let rule = &self.policy_rules[ri];
            if rule.drift != 0 && rule.action.code() > header.drift_action {
                header.drift_action = rule.action.code();
                header.drift_rule = ri as u32;
            }
            header.drift_origins |= rule.drift;
        }
        // A violated posture rule denies every exec ("*") with its action.
        for &ri in posture {
            let code = self.policy_rules[ri].action.code();
            if code > header.exec_action {
                header.exec_action = code;
                header.exec_rule = ri as u32;
            }
            patterns.push((
                false,
                Vec::new(),
                ExecValue {
                    deny_action: self.policy_rules[ri].action.code(),
                    deny_rule: ri as u32,
                    ..Default::default()
                },
            ));
        }
        let fold = |reverse: bool| -> Vec<(u32, ExecKeyData, ExecValue)> {
            let mine: Vec<&(bool, Vec<u8>, ExecValue)> =
                patterns.iter().filter(|p| p.0 == reverse).collect();
            let keys: BTreeSet<&Vec<u8>> = mine.iter().map(|p| &p.1).collect();
            keys.into_iter()
                .map(|key| {
                    let mut v = ExecValue::default();
                    // Every pattern of this trie that is a prefix of `key` also matches
                    // whatever `key` matches.
                    for (_, _, pv) in mine.iter().filter(|p| key.starts_with(&p.1)) {
                        if pv.deny_action > v.deny_action {
                            v.deny_action = pv.deny_action;
                            v.deny_rule = pv.deny_rule;
                        }
                        v.allow_mask |= pv.allow_mask;
                    }
                    if v.deny_action == ACTION_NONE {
                        v.deny_rule = 0;
                    }
                    let mut data = ExecKeyData {
                        ruleset: id,
                        path: [0; EXEC_PATH_LEN],
                    };
                    data.path[..key.len()].copy_from_slice(key);
                    (32 + 8 * key.len() as u32, data, v)
                })
                .collect()
        };
        Ok(ExecEntries {
            header,
            allow_rules,
            forward: fold(false),
            reverse: fold(true),
        })
    }
}

/// The syscalls of this architecture a list denies: its names, or every other one.
pub fn denied_syscalls(list: &List<String>) -> Vec<(&'static str, u32)> {
    let table = crate::syscalls::names::Arch::native().table();
    // A name covers its family (`names::FAMILIES`).
    let named = |n: &str| {
        list.items()
            .iter()
            .any(|x| crate::syscalls::names::family(x).any(|m| m.eq_ignore_ascii_case(n)))
    };
    let deny = matches!(list, List::Deny(_));
    table
        .iter()
        .filter(|(n, _)| named(n) == deny)
        .copied()
        .collect()
}

/// Every syscall some rule of `policy` denies (whatever its selector): the tracepoints to
/// attach.
pub fn hooked_syscalls(policy: &Policy) -> BTreeSet<(&'static str, u32)> {
    policy
        .rules
        .iter()
        .filter_map(|r| r.syscalls.as_ref())
        .flat_map(denied_syscalls)
        .collect()
}

/// Syscalls a `block` or `kill` rule denies.
pub fn enforced_syscalls(policy: &Policy) -> BTreeSet<&'static str> {
    policy
        .rules
        .iter()
        .filter(|r| r.action >= Action::Block)
        .filter_map(|r| r.syscalls.as_ref())
        .flat_map(denied_syscalls)
        .map(|(name, _)| name)
        .collect()
}

/// The ruleset of every subject, from scratch: what a reload installs.
pub struct Plan {
    pub compiler: Compiler,
    pub cgroups: BTreeMap<u64, u32>,
    pub host_ruleset: u32,
}

pub fn compile<'a>(
    policy: &Policy,
    first_id: u32,
    subjects: impl IntoIterator<Item = (u64, Subject<'a>)>,
) -> Result<Plan, CompileError> {
    let mut compiler = Compiler::new(policy, first_id);
    let mut cgroups = BTreeMap::new();
    for (cgroup, subject) in subjects {
        let (id, _) = compiler.ruleset_for(&subject)?;
        cgroups.insert(cgroup, id);
    }
    let (host_ruleset, _) = compiler.ruleset_for(&Subject::host())?;
    Ok(Plan {
        compiler,
        cgroups,
        host_ruleset,
    })
}

/// Human-readable dump of a plan, for golden tests and `sensor policy compile`.
pub fn render(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let action = |code: u8| match Action::from_code(code) {
        Some(a) => a.as_str(),
        None => "none",
    };
    let show = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|&b| {
                if b == 0 {
                    "\\0".to_owned()
                } else {
                    (b as char).to_string()
                }
            })
            .collect::<String>()
    };
    let mut out = String::new();
    let _ = writeln!(out, "mode {}", plan.compiler.mode.as_str());
    for (i, r) in plan.compiler.rules.iter().enumerate() {
        let _ = writeln!(out, "rule {i} {} {}", r.name, r.action.as_str());
    }
    for rs in plan.compiler.rulesets() {
        let _ = writeln!(
            out,
            "ruleset {} rules {:?} allow_required {:#x}",
            rs.id, rs.rules, rs.exec.header.allow_required
        );
        if let Some(caps) = &rs.caps {
            for cap in 0..64u32 {
                let bit = 1u64 << cap;
                let a = if caps.kill & bit != 0 {
                    "kill"
                } else if caps.block & bit != 0 {
                    "block"
                } else if caps.audit & bit != 0 {
                    "audit"
                } else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "  capability {} {a} rule {}",
                    crate::syscalls::names::capability_name(cap),
                    caps.rule[cap as usize]
                );
            }
        }
        for (b, rule) in rs.exec.allow_rules.iter().enumerate() {
            let _ = writeln!(
                out,
                "  allow-list bit {b}: rule {rule} {}",
                action(rs.allow_action(b))
            );
        }
        for (trie, entries) in [("forward", &rs.exec.forward), ("reverse", &rs.exec.reverse)] {
            for (len, data, v) in entries {
                let n = (*len as usize - 32) / 8;
                let _ = writeln!(
                    out,
                    "  {trie} \"{}\" deny {} rule {} allow {:#x}",
                    show(&data.path[..n]),
                    action(v.deny_action),
                    v.deny_rule,
                    v.allow_mask
                );
            }
        }
    }
    for (cg, id) in &plan.cgroups {
        let _ = writeln!(out, "cgroup {cg} ruleset {id}");
    }
    let _ = writeln!(out, "host ruleset {}", plan.host_ruleset);
    out
}

impl Ruleset {
    /// Action of allow-list bit `b`.
    pub fn allow_action(&self, b: usize) -> u8 {
        let h = &self.exec.header;
        if h.allow_kill & (1 << b) != 0 {
            ACTION_KILL
        } else if h.allow_block & (1 << b) != 0 {
            ACTION_BLOCK
        } else {
            sensor_common::policy::ACTION_AUDIT
        }
    }

    /// The rule behind a kernel verdict of this ruleset: `rule`, or for `RULE_ALLOW_LIST` the
    /// first violated allow-list with the verdict's action.
    pub fn verdict_rule(&self, rule: u32, action: u8, violated: u32) -> Option<u32> {
        if rule != RULE_ALLOW_LIST {
            return Some(rule);
        }
        (0..self.exec.allow_rules.len())
            .find(|&b| violated & (1 << b) != 0 && self.allow_action(b) == action)
            .map(|b| self.exec.allow_rules[b])
    }
}

/// What the kernel decides for an exec of `path` under `rs` (the same evaluation as
/// `sensor-ebpf/src/exec.rs`, for tests): (action, rule id).
pub fn evaluate_exec(rs: &Ruleset, path: &str) -> Option<(u8, u32)> {
    let longest = |entries: &[(u32, ExecKeyData, ExecValue)], key: &[u8]| {
        entries
            .iter()
            .filter(|(len, data, _)| {
                let n = (*len as usize - 32) / 8;
                key.len() >= n && data.path[..n] == key[..n]
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, _, v)| *v)
            .unwrap_or_default()
    };
    let forward: Vec<u8> = [path.as_bytes(), b"\0"].concat();
    // The kernel reverses only the last SUFFIX_LEN bytes, all a suffix pattern can be.
    let reverse: Vec<u8> = path
        .bytes()
        .rev()
        .take(sensor_common::policy::SUFFIX_LEN)
        .collect();
    let f = longest(&rs.exec.forward, &forward);
    let r = longest(&rs.exec.reverse, &reverse);
    let (mut action, mut rule) = if f.deny_action >= r.deny_action {
        (f.deny_action, f.deny_rule)
    } else {
        (r.deny_action, r.deny_rule)
    };
    let h = &rs.exec.header;
    let violated = h.allow_required & !(f.allow_mask | r.allow_mask);
    let allow_action = if violated & h.allow_kill != 0 {
        ACTION_KILL
    } else if violated & h.allow_block != 0 {
        ACTION_BLOCK
    } else if violated != 0 {
        sensor_common::policy::ACTION_AUDIT
    } else {
        ACTION_NONE
    };
    if allow_action > action {
        action = allow_action;
        rule = RULE_ALLOW_LIST;
    }
    if action == ACTION_NONE {
        return None;
    }
    rs.verdict_rule(rule, action, violated)
        .map(|rule| (action, rule))
}
