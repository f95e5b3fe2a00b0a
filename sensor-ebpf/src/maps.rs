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
    process::{Identity, ProcessRuleset},
    syscall::{NR_MAX, SeenCall, SysCountKey, SysKey, SysValue},
};

/// All events, every kind, in order of reservation. Sized by the daemon at load time
/// (`--ring-buffer-mib`); this default only applies when it does not.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Events the daemon must act on at once and that a flood of the others must never crowd
/// out: cgroup creation and removal (a new container's rules depend on it), escapes.
#[map]
pub static CONTROL: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

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

/// Submits a `CONTROL` record and wakes the daemon.
#[inline(always)]
pub fn submit_control<T>(entry: RingBufEntry<T>) {
    entry.submit(BPF_RB_FORCE_WAKEUP);
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

/// The exec program's working memory, too big for its stack (`exec.rs`).
#[repr(C)]
pub struct ExecScratch {
    /// The two trie keys: the judged path forward, and reversed. `reverse` must follow
    /// `forward`: the reversing loop reads up to 256 bytes past `forward.data.path`.
    pub forward: Key<ExecKeyData>,
    pub reverse: Key<ExecKeyData>,
    /// A name as read, before normalisation.
    pub raw: [u8; 512],
    /// The path being judged.
    pub path: [u8; 512],
    /// The executed file's path, and the name that decided the verdict, for the event.
    pub file: [u8; 256],
    pub matched: [u8; 256],
    pub filename: [u8; 512],
    pub args: [u8; 1024],
    /// Where each component of `path` starts, and how many there are.
    pub stack: [u32; 32],
    /// The dentries of a walk to the root, innermost first.
    pub dentries: [u64; 32],
    pub depth: u32,
    /// Where the last component of the judged name starts.
    pub name_base: u32,
    pub _pad2: u32,
    /// Loop state kept in memory rather than registers (`exec.rs`: `get`/`set`): the
    /// verifier then sees unknown values instead of one exact value per path, and can prune.
    pub v: [u32; 8],
    pub filename_len: u32,
    pub args_len: u32,
    pub matched_len: u32,
    // The verdict being built.
    pub deny_rule: u32,
    pub violated: u32,
    pub allow_required: u32,
    pub exec_rule: u32,
    pub drift_rule: u32,
    pub file_len: u32,
    pub file_base: u32,
    pub name_len: i32,
    pub flags: u32,
    pub _pad: u32,
    pub root_mnt: u64,
    pub root_dentry: u64,
    pub pwd_mnt: u64,
    pub pwd_dentry: u64,
    pub file_inode: u64,
    /// The exec's `linux_binprm`, as a number (`exec.rs`: `launder`).
    pub bprm: u64,
    pub deny_action: u8,
    pub deny_matched: u8,
    pub allow_matched: u8,
    pub exec_action: u8,
    pub drift_action: u8,
    pub drift_origins: u8,
    pub origin: u8,
    pub container: u8,
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

/// Processes (tgid) a host process placed in a container cgroup that have not run anything
/// but the runtime's own binary since: a container runtime setting a container up
/// (`process.rs`). The value is the inode of the runtime binary the process runs. Cleared at
/// any other exec and when the process exits; LRU, so that nothing can fill it for good.
#[map]
pub static RUNTIME_SETUP: LruHashMap<u32, u64> = LruHashMap::with_max_entries(65_536, 0);

/// Process (tgid) → its container (`process.rs`): set when the host places it, inherited at
/// fork, removed when its last thread exits. Not LRU: an evicted entry would let a process
/// that left its cgroup leave its policy too; a full map is counted and the process is judged
/// by its cgroup.
#[map]
pub static PROC_IDENTITY: HashMap<u32, Identity> =
    HashMap::with_max_entries(262_144, BPF_F_NO_PREALLOC);

/// Processes to kill at their next judged operation (exec, capability check, judged syscall):
/// the child of a clone a `kill` verdict stopped (`process.rs`). Keyed by tgid.
#[map]
pub static DOOMED: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16_384, 0);

/// File tables (`files_struct` addresses) of processes a `kill` verdict killed while another
/// process shared the table (`clone(CLONE_FILES)`): what the killed call obtained is that
/// process's too, so it dies at its next judged operation.
#[map]
pub static DOOMED_FILES: LruHashMap<u64, u8> = LruHashMap::with_max_entries(16_384, 0);

/// `sensor_whoami`'s answer: the thread-group id of the process that ran it.
#[map]
pub static WHOAMI: Array<u32> = Array::with_max_entries(1, 0);

/// The sensor's own programs, maps, links and BTF objects (`sensor_common::process::object_key`),
/// filled by the daemon: no process of a container gets a descriptor of them.
#[map]
pub static SENSOR_OBJECTS: HashMap<u64, u8> = HashMap::with_max_entries(1024, 0);

/// Ruleset id → its process-level rules (`escape`).
#[map]
pub static PROCESS_RULESETS: HashMap<u32, ProcessRuleset> =
    HashMap::with_max_entries(16_384, BPF_F_NO_PREALLOC);

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

/// i386 syscall number → 1 + the native syscall doing the same (0: none), set by the daemon
/// (`sensor/src/syscalls/compat_table.rs`): 32-bit calls are judged as what they do.
#[map]
pub static COMPAT_SYSCALLS: Array<u16> = Array::with_max_entries(NR_MAX, 0);

/// io_uring opcode → 1 + the native syscall the operation does (0: none), set by the daemon.
#[map]
pub static IOURING_SYSCALLS: Array<u16> = Array::with_max_entries(256, 0);

/// `[0]`: 1 + the native number of `io_uring_setup`, judged at ring creation.
#[map]
pub static IOURING_SETUP_NR: Array<u32> = Array::with_max_entries(1, 0);

/// Judged calls per (container, syscall, verdict, where) (`SysCountKey`): how many. The first
/// of each is an event; the daemon reads the counts and writes summaries.
#[map]
pub static SYSCALL_COUNTS: PerCpuHashMap<SysCountKey, u64> =
    PerCpuHashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// Thread → the last syscall reported from a capability check, so that the several checks of
/// one call make one event.
#[map]
pub static SYSCALL_SEEN: LruHashMap<u64, SeenCall> = LruHashMap::with_max_entries(16_384, 0);
