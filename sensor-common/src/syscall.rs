//! Syscall rules (`sensor-ebpf/src/syscall.rs`: the `sys_enter` tracepoint program attached to
//! `syscalls:sys_enter_<name>` of each syscall a rule names, and the BPF LSM hooks that refuse
//! them where the kernel allows BPF LSM).

use crate::{EventHeader, policy::Verdict};

/// Arguments a syscall tracepoint record carries.
pub const ARGS: usize = 6;
/// Bytes kept of a string argument (mount source, target and type; a path).
pub const STRING_LEN: usize = 128;
/// Arguments 0..STRINGS can be read as strings from the caller's memory.
pub const STRINGS: usize = 3;
/// Syscall numbers the maps hold (x86_64, aarch64 and i386 numbers are below 512).
pub const NR_MAX: u32 = 512;
/// The native number a 32-bit syscall without a native equivalent (`socketcall`, `ipc`) is
/// judged as: no rule names it, so only allow-lists (which deny it) apply.
pub const NR_COMPAT_ONLY: u32 = NR_MAX - 1;

/// A syscall a rule names, made by a process the rule applies to.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallEvent {
    pub header: EventHeader,
    /// Syscall number on this architecture.
    pub nr: u32,
    /// Bit i: `strings[i]` holds argument i, read from the caller's memory.
    pub strings_read: u8,
    /// `SEEN_AT_*`: where the call was judged.
    pub seen_at: u8,
    /// 1: a 32-bit call (`int 0x80`); `nr` is the native syscall it was judged as.
    pub compat: u8,
    pub _pad: u8,
    /// The raw arguments, as the tracepoint recorded them.
    pub args: [u64; ARGS],
    pub verdict: Verdict,
    /// NUL-terminated string arguments.
    pub strings: [[u8; STRING_LEN]; STRINGS],
}

const _: () = assert!(
    core::mem::size_of::<SyscallEvent>()
        == core::mem::size_of::<EventHeader>() + 8 + 8 * ARGS + 16 + STRING_LEN * STRINGS
);

/// `SYSCALL_LSM` values: an attached LSM hook refuses every call of the syscall, or only
/// ptrace's attach requests (PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_TRACEME; the others reach no
/// hook).
pub const LSM_REFUSES_ALL: u8 = 1;
pub const LSM_REFUSES_PTRACE_ATTACH: u8 = 2;

/// Judged at syscall entry (`syscalls:sys_enter_<name>`).
pub const SEEN_AT_ENTRY: u8 = 1;
/// Judged at the syscall's capability check (privileged syscalls, whose tracepoint is not
/// attached: see `SYSCALL_AT_CAPABILITY`).
pub const SEEN_AT_CAPABILITY: u8 = 2;
/// Judged at the BPF LSM hook that refused it (a privileged syscall whose hook comes before
/// its capability check).
pub const SEEN_AT_LSM: u8 = 3;
/// An io_uring request doing what the syscall does (`io_uring:io_uring_submit_req`).
pub const SEEN_AT_IO_URING: u8 = 4;
/// A `clone`/`clone3` that created namespaces, judged as `unshare` (`sched_process_fork`).
pub const SEEN_AT_FORK: u8 = 5;
/// `io_uring_setup`, judged where the ring is created (`io_uring:io_uring_create`).
pub const SEEN_AT_RING_CREATE: u8 = 6;

/// An enforced verdict repeated by one thread for the same syscall within this many
/// nanoseconds is the same call (setns checks CAP_SYS_ADMIN twice): counted, not another line.
pub const SAME_CALL_NS: u64 = 50_000_000;

/// `SYSCALL_COUNTS` key: judged calls per (container, syscall, verdict, where). The first of
/// each is an event; the daemon reads the counts and writes summaries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysCountKey {
    pub cgroup_id: u64,
    pub nr: u32,
    pub rule: u32,
    pub ruleset: u32,
    pub action: u8,
    pub enforced: u8,
    pub seen_at: u8,
    pub compat: u8,
    pub generation: u8,
    pub mode: u8,
    pub _pad: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<SysCountKey>() == 32);

/// `SYSCALL_SEEN` value: the last call reported per thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeenCall {
    pub nr: u32,
    pub _pad: u32,
    pub ktime_ns: u64,
}

/// `SYSCALL_RULES` key: a ruleset and a syscall number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysKey {
    pub ruleset: u32,
    pub nr: u32,
}

const _: () = assert!(core::mem::size_of::<SysKey>() == 8);

/// What a ruleset's rules say of one syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysValue {
    /// Strongest `ACTION_*` of the rules denying it.
    pub action: u8,
    /// Bit i: argument i (< `STRINGS`) is a string worth reading for the event.
    pub strings: u8,
    pub _pad: [u8; 2],
    /// Rule id of that rule.
    pub rule: u32,
}

const _: () = assert!(core::mem::size_of::<SysValue>() == 8);
