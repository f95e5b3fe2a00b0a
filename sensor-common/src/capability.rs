//! Capability checks (`sensor-ebpf/src/capability.rs`: `lsm/capable` and the
//! `capability:cap_capable` tracepoint).

use crate::{EventHeader, policy::Verdict};

/// `CAP_OPT_NOAUDIT` of `security_capable`'s opts: a quiet probe, not a use.
pub const CAP_OPT_NOAUDIT: u32 = 1 << 1;

/// Highest capability number the maps hold (CAP_LAST_CAP is 40 today).
pub const CAP_MAX: u32 = 63;

/// Where a check was seen.
pub const SOURCE_LSM: u8 = 1;
pub const SOURCE_TRACEPOINT: u8 = 2;
pub const SOURCE_FEXIT: u8 = 3;

/// First occurrence of a (cgroup, capability, syscall, granted, quiet) check, or an enforced
/// violation. Repeats are counted in `CAP_SEEN` and summarised by the daemon.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CapabilityEvent {
    pub header: EventHeader,
    pub cap: u32,
    /// Syscall number in progress, -1 outside a syscall (a page fault).
    pub syscall: i32,
    pub granted: u8,
    /// The kernel asked without auditing (CAP_OPT_NOAUDIT), or the tracepoint's heuristic
    /// recognised a memory-accounting probe.
    pub quiet: u8,
    pub source: u8,
    pub _pad: [u8; 5],
    pub verdict: Verdict,
}

const _: () =
    assert!(core::mem::size_of::<CapabilityEvent>() == core::mem::size_of::<EventHeader>() + 32);

/// `CAP_SEEN` key: one aggregate per cgroup, capability, syscall and kind of check.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapKey {
    pub cgroup_id: u64,
    pub syscall: i32,
    pub cap: u8,
    pub granted: u8,
    pub quiet: u8,
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<CapKey>() == 16);

/// `CAP_RULESETS[ruleset]`: the action of each capability (bit = capability number) and the
/// rule behind it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapRuleset {
    pub kill: u64,
    pub block: u64,
    pub audit: u64,
    pub rule: [u32; 64],
}

const _: () = assert!(core::mem::size_of::<CapRuleset>() == 24 + 256);

impl CapRuleset {
    pub const fn empty() -> Self {
        Self {
            kill: 0,
            block: 0,
            audit: 0,
            rule: [0; 64],
        }
    }
}

/// How the capability programs split the work (the daemon sets it before load).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapConfig {
    /// 1 when granted checks come from `lsm/capable` and the tracepoint or `fexit` reports
    /// refusals only.
    pub refused_only: u32,
}
