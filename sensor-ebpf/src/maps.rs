//! Every map of the kernel side. The daemon opens them by these names (`sensor/src/loader.rs`).

use aya_ebpf::{
    macros::map,
    maps::{
        Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf, lpm_trie::Key,
        ring_buf::RingBufEntry,
    },
};
use sensor_common::{
    capability::{CapKey, CapRuleset},
    kind,
    network::{AddrKey, CidrKeyData, FlowKey, NetKey},
    policy::{CgroupPolicy, ExecKeyData, ExecRuleset, ExecValue, PolicyConfig},
    syscall::{NR_MAX, SeenCall, SysKey, SysValue},
};

/// All events, every kind, in order of reservation. Sized by the daemon at load time
/// (`--ring-buffer-mib`); this default only applies when it does not.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Events that could not be reserved on `EVENTS` because it was full, per kind. The daemon
/// exports them; nothing is dropped without being counted here.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(kind::COUNT, 0);

/// Counts one event of `kind` that could not be emitted.
#[inline(always)]
pub fn count_lost(kind: u32) {
    if let Some(counter) = LOST.get_ptr_mut(kind) {
        // SAFETY: the pointer comes from a successful per-CPU array lookup, so it points at this
        // CPU's slot, which no other program can touch while this one runs (no preemption of a
        // BPF program by another on the same CPU for these program types).
        unsafe { *counter += 1 };
    }
}

/// Pending ring-buffer bytes above which a routine event wakes the daemon. Below it the daemon
/// drains on its own timer: one wakeup per event would cost more than the event itself (a
/// fork+exec loop ran 15% slower with a wakeup per exec, 0% with batching). Set by the loader.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 64 * 1024;

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// How soon the daemon must see an event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Seen within the daemon's drain interval, or at once when the buffer fills up.
    Batch,
    /// Wake the daemon now: it must act on this (a new container cgroup).
    Now,
}

#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>, urgency: Urgency) {
    // SAFETY: reading a static; volatile so the loader's value is used, not the initialiser.
    let threshold = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    let flags = if urgency == Urgency::Now || EVENTS.query(BPF_RB_AVAIL_DATA) >= threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags);
}

/// `POLICY[0]`: active generation, mode, host rulesets (`sensor_common::policy`).
#[map]
pub static POLICY: Array<PolicyConfig> = Array::with_max_entries(1, 0);

/// Container cgroup id → its ruleset per generation.
#[map]
pub static CGROUP_POLICY: HashMap<u64, CgroupPolicy> =
    HashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// Exec patterns matched on the path as executed: exact (NUL-terminated) and prefix patterns.
#[map]
pub static EXEC_PREFIX: LpmTrie<ExecKeyData, ExecValue> = LpmTrie::with_max_entries(262_144, 0);

/// Exec patterns matched on the reversed path: suffix patterns (`*/nc`).
#[map]
pub static EXEC_SUFFIX: LpmTrie<ExecKeyData, ExecValue> = LpmTrie::with_max_entries(262_144, 0);

/// Ruleset id → its exec allow-lists.
#[map]
pub static EXEC_RULESETS: HashMap<u32, ExecRuleset> =
    HashMap::with_max_entries(16_384, BPF_F_NO_PREALLOC);

/// Hash maps sized for the worst case allocate entries as they are used, not up front.
const BPF_F_NO_PREALLOC: u32 = 1;

/// The two trie keys of the exec program, too big for its stack.
#[repr(C)]
pub struct ExecScratch {
    pub forward: Key<ExecKeyData>,
    pub reverse: Key<ExecKeyData>,
}

#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecScratch> = PerCpuArray::with_max_entries(1, 0);

/// Capability checks per (cgroup, capability, syscall, granted, quiet): how many. The first
/// of each is an event; the daemon reads the counts and writes summaries.
#[map]
pub static CAP_SEEN: PerCpuHashMap<CapKey, u64> =
    PerCpuHashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// Ruleset id → capability actions.
#[map]
pub static CAP_RULESETS: HashMap<u32, CapRuleset> =
    HashMap::with_max_entries(16_384, BPF_F_NO_PREALLOC);

/// Processes (tgid) a host process moved into a cgroup that have not exec'd since: a container
/// runtime setting a container up (`process.rs`). LRU: a leaked entry ages out.
#[map]
pub static RUNTIME_SETUP: LruHashMap<u32, u8> = LruHashMap::with_max_entries(65_536, 0);

/// (generation, container address) → the address's segments.
#[map]
pub static NET_ADDRS: HashMap<AddrKey, u64> = HashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// (generation, CIDR) → the segments it belongs to, folded over the shorter CIDRs covering it.
#[map]
pub static NET_CIDRS: LpmTrie<CidrKeyData, u64> = LpmTrie::with_max_entries(65_536, 0);

/// Allowed cross-segment flows (`FlowKey`) → the segments they are allowed from.
#[map]
pub static NET_FLOWS: HashMap<FlowKey, u64> = HashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// Flows per (container, remote, port, protocol, direction, verdict): how many. The first of
/// each is an event; the daemon reads the counts and writes summaries.
#[map]
pub static NET_SEEN: PerCpuHashMap<NetKey, u64> =
    PerCpuHashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// Threads whose connect or send a `kill` verdict refused, for the syscall-exit tracepoint
/// to kill where a cgroup program may not signal.
#[map]
pub static NET_KILL: LruHashMap<u64, u8> = LruHashMap::with_max_entries(8_192, 0);

/// (ruleset, syscall number) → what the ruleset's rules say of it.
#[map]
pub static SYSCALL_RULES: HashMap<SysKey, SysValue> =
    HashMap::with_max_entries(262_144, BPF_F_NO_PREALLOC);

/// Syscall number → whether an attached LSM hook refuses it (`syscall.rs`), set by the daemon.
#[map]
pub static SYSCALL_LSM: Array<u8> = Array::with_max_entries(NR_MAX, 0);

/// Syscall number → 1 when its rules are judged at its capability check instead of its
/// entry tracepoint (privileged syscalls: no tracepoint, no cost for other syscalls).
#[map]
pub static SYSCALL_AT_CAPABILITY: Array<u8> = Array::with_max_entries(NR_MAX, 0);

/// Thread → the last syscall reported from a capability check, so that the several checks of
/// one call make one event.
#[map]
pub static SYSCALL_SEEN: LruHashMap<u64, SeenCall> = LruHashMap::with_max_entries(16_384, 0);
