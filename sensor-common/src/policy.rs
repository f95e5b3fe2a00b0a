//! Policy as the kernel programs read it: per-cgroup rulesets, compiled by
//! `sensor/src/policy/compile.rs` and installed by `sensor/src/policy/install.rs`.
//!
//! Two generations coexist during a reload: the daemon writes the new generation's entries,
//! flips `PolicyConfig::generation` (one 4-byte write), then removes the old ones. A program
//! reads the generation once per event, so it sees the old policy or the new one, never a mix
//! and never neither.

/// Rule actions, ordered by strength (`sensor::policy::model::Action`).
pub const ACTION_NONE: u8 = 0;
pub const ACTION_AUDIT: u8 = 1;
pub const ACTION_BLOCK: u8 = 2;
pub const ACTION_KILL: u8 = 3;

pub const MODE_AUDIT: u32 = 0;
pub const MODE_ENFORCE: u32 = 1;

/// No ruleset: nothing applies.
pub const NO_RULESET: u32 = 0;

/// `POLICY[0]`: what is active.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// 0 or 1: which slot of `CgroupPolicy::ruleset` and of `host_ruleset` is active.
    pub generation: u32,
    /// `MODE_AUDIT` or `MODE_ENFORCE`.
    pub mode: u32,
    /// Ruleset of processes outside containers (rules with `host: true`), per generation.
    pub host_ruleset: [u32; 2],
    /// The sensor's own process: never judged by any rule (a policy denying CAP_BPF or the
    /// sensor's container must not make it kill itself).
    pub sensor_tgid: u32,
    pub _pad: u32,
    /// Network segmentation per generation.
    pub network: [crate::network::NetworkConfig; 2],
    /// The entry of a container whose metadata is pending (every rule, what every segment
    /// denies), per generation: `cgroup_mkdir` gives it to a new cgroup named like a
    /// container's, so the container is judged as one from its creation, not as the host
    /// until the daemon reads the event.
    pub pending: CgroupPolicy,
}

const _: () = assert!(core::mem::size_of::<PolicyConfig>() == 56);

/// `CGROUP_POLICY[cgroup id]`: the ruleset of a container, per generation. Every container
/// cgroup has an entry (possibly `NO_RULESET`); cgroups without one are the host's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupPolicy {
    pub ruleset: [u32; 2],
    /// Segments the container belongs to (bit = segment index), per generation.
    pub segments: [u64; 2],
}

const _: () = assert!(core::mem::size_of::<CgroupPolicy>() == 24);

/// Bytes of a path that exec rules can match (LPM data is at most 256 bytes, 4 go to the
/// ruleset id).
pub const EXEC_PATH_LEN: usize = 248;

/// Bytes of a path's end that suffix patterns are matched against: a suffix pattern (`*/nc`,
/// `*.sh`) is at most this long.
pub const SUFFIX_LEN: usize = 64;

/// Data of the `EXEC_PREFIX` and `EXEC_SUFFIX` LPM trie keys (the key is
/// `{ prefix_len: u32, data: ExecKeyData }`): the ruleset id, always matched whole, then the
/// path — forward for exact and prefix patterns (NUL-terminated for exact ones), reversed for
/// suffix patterns. `prefix_len` is 32 + 8 × pattern bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecKeyData {
    pub ruleset: u32,
    pub path: [u8; EXEC_PATH_LEN],
}

const _: () = assert!(core::mem::size_of::<ExecKeyData>() == 4 + EXEC_PATH_LEN);

/// What a matching exec pattern means for its ruleset. Already folded by the compiler over
/// every shorter pattern of the same trie, because an LPM lookup returns only the longest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecValue {
    /// Strongest action of the deny rules matching, `ACTION_NONE` if none.
    pub deny_action: u8,
    pub _pad: [u8; 3],
    /// Rule id of that deny rule.
    pub deny_rule: u32,
    /// Allow-list rules (bits of `ExecRuleset::allow_required`) that this path satisfies.
    pub allow_mask: u32,
}

const _: () = assert!(core::mem::size_of::<ExecValue>() == 12);

pub const MAX_ALLOW_RULES: usize = 32;

/// `EXEC_RULESETS[ruleset]`: the allow-list rules of a ruleset, one bit each, grouped by
/// action (bits in neither mask are `audit`), and what it does with execs its patterns cannot
/// judge. Every ruleset with an exec or drift rule has one. Which rule a bit is stays in user
/// space: the kernel reports the violated bits and the daemon names the rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecRuleset {
    /// Every name of an exec must satisfy each of these allow-lists.
    pub allow_required: u32,
    pub allow_kill: u32,
    pub allow_block: u32,
    /// Rule id of the strongest `drift` rule, when `drift_action` is not NONE.
    pub drift_rule: u32,
    /// Rule id of the strongest exec rule (deny or allow), for execs that cannot be judged.
    pub exec_rule: u32,
    /// `ACTION_*` for executing a file that is not from the image (drift).
    pub drift_action: u8,
    /// Bits `1 << ORIGIN_*` that the drift rule covers.
    pub drift_origins: u8,
    /// `ACTION_*` of the strongest exec rule: an exec with a name that must be judged and
    /// cannot be (too long, unreadable, no path) gets it.
    pub exec_action: u8,
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<ExecRuleset>() == 24);

/// `Verdict::rule` when the strongest violation is an allow-list: the daemon finds the rule
/// from `allow_violated`.
pub const RULE_ALLOW_LIST: u32 = u32::MAX;

/// SIGKILL from the kernel.
pub const ENFORCED_SIGNAL: u8 = 1;
/// The operation was refused (EPERM) by a BPF LSM program.
pub const ENFORCED_LSM: u8 = 2;
/// The operation was refused by a cgroup program: the socket call failed with EPERM, or the
/// packet was dropped.
pub const ENFORCED_CGROUP: u8 = 3;

/// The verdict a program reached, carried on its event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Rule id (index in the generation's rule table), or `RULE_ALLOW_LIST`; meaningful when
    /// `action` is not NONE.
    pub rule: u32,
    /// Ruleset the verdict comes from.
    pub ruleset: u32,
    /// Allow-list bits of that ruleset the operation violated.
    pub allow_violated: u32,
    /// `ACTION_*` of the rule.
    pub action: u8,
    /// How the kernel enforced it: 0 not, `ENFORCED_SIGNAL`, `ENFORCED_LSM`.
    pub enforced: u8,
    /// Policy generation slot the verdict comes from.
    pub generation: u8,
    /// `MODE_*` at the time.
    pub mode: u8,
}

const _: () = assert!(core::mem::size_of::<Verdict>() == 16);
