//! Process identity (`sensor-ebpf/src/process.rs`): which container a process belongs to,
//! whatever cgroup it is in now, and the `escape` events of processes that leave it.
//!
//! A process's container is decided when the host (its runtime) places it in the container's
//! cgroup, or creates it there (`clone3(CLONE_INTO_CGROUP)`), and inherited at fork. A process
//! of a container that moves itself or another of its processes out of its container's cgroup
//! subtree keeps its container's policy, and the move is an `escape`.

use crate::{EventHeader, policy::Verdict};

/// `PROC_IDENTITY[tgid]`: the cgroup v2 id of the process's container (the cgroup the host
/// placed it in).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub cgroup_id: u64,
}

const _: () = assert!(core::mem::size_of::<Identity>() == 8);

/// How a process left its container's cgroup subtree.
pub const ESCAPE_ATTACH: u8 = 1;
/// A process of the container created a child directly in another cgroup
/// (`clone3(CLONE_INTO_CGROUP)`).
pub const ESCAPE_CLONE: u8 = 2;

/// A process of a container placed outside its container's cgroup subtree by a process of a
/// container. The header is the mover's.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EscapeEvent {
    pub header: EventHeader,
    /// The process moved (or created).
    pub moved_tgid: u32,
    pub via: u8,
    pub _pad: [u8; 3],
    /// Its container's cgroup, and the cgroup it was placed in.
    pub from_cgroup: u64,
    pub to_cgroup: u64,
    pub verdict: Verdict,
}

const _: () = assert!(
    core::mem::size_of::<EscapeEvent>() == core::mem::size_of::<EventHeader>() + 8 + 16 + 16
);

/// The sensor's own BPF objects (`SENSOR_OBJECTS` keys: `object << 32 | id`), which no process
/// of a container may obtain a descriptor of (`bpf(BPF_*_GET_FD_BY_ID)`).
pub const OBJECT_PROG: u8 = 1;
pub const OBJECT_MAP: u8 = 2;
pub const OBJECT_LINK: u8 = 3;
pub const OBJECT_BTF: u8 = 4;
/// Not BPF objects: a signal to the sensor's process (`TamperEvent::id` is the signal), and
/// a ptrace-mode access to it (`ptrace`, `/proc/<pid>/mem`, `process_vm_*`, `pidfd_getfd`;
/// `id` is the access mode).
pub const OBJECT_SIGNAL: u8 = 5;
pub const OBJECT_TRACE: u8 = 6;

/// The `SENSOR_OBJECTS` key of object `id` of kind `object`.
pub const fn object_key(object: u8, id: u32) -> u64 {
    ((object as u64) << 32) | id as u64
}

/// The rule id of the sensor's guard of its own objects: not a policy rule, always enforced.
pub const RULE_GUARD: u32 = u32::MAX - 1;

/// A process of a container asked for a descriptor of one of the sensor's objects: refused
/// (BPF LSM) or killed. The header is the caller's.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TamperEvent {
    pub header: EventHeader,
    /// `OBJECT_*` and its id.
    pub object: u8,
    pub _pad: [u8; 3],
    pub id: u32,
    pub verdict: Verdict,
}

const _: () =
    assert!(core::mem::size_of::<TamperEvent>() == core::mem::size_of::<EventHeader>() + 8 + 16);

/// `PROCESS_RULESETS[ruleset]`: what a ruleset says of process-level operations.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessRuleset {
    /// `ACTION_*` of the strongest `escape: deny` rule, and its rule id.
    pub escape_action: u8,
    pub _pad: [u8; 3],
    pub escape_rule: u32,
}

const _: () = assert!(core::mem::size_of::<ProcessRuleset>() == 8);

/// `EventHeader::flags`: the task's current cgroup is not its container's (it was moved, or
/// runs in a sub-cgroup of its container).
pub const HEADER_MOVED: u32 = 1;
