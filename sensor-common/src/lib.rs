//! Types shared by the kernel programs (`sensor-ebpf`) and the daemon (`sensor`).
//!
//! Every struct here crosses the kernel/user boundary as raw bytes: it is `#[repr(C)]`, has no
//! implicit padding (each size is asserted below), and holds only integers and byte arrays. Enums
//! travel as `u32` and are converted with `TryFrom` on the user side, never read as Rust enums.
//!
//! Module names follow the hooks: `exec` is the `sched_process_exec` program's payload, `cgroup`
//! the `cgroup_mkdir`/`cgroup_rmdir` payload. The same names are used in `sensor-ebpf/src/` and
//! in `sensor/src/events/`.
#![cfg_attr(target_arch = "bpf", no_std)]

pub mod capability;
pub mod cgroup;
pub mod exec;
pub mod names;
pub mod network;
pub mod offsets;
pub mod policy;
pub mod process;
pub mod syscall;

/// Length of `task_struct::comm`, `TASK_COMM_LEN` in the kernel.
pub const COMM_LEN: usize = 16;

/// Event kinds, the first field of every ring-buffer record.
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const CGROUP_MKDIR: u32 = 2;
    pub const CGROUP_RMDIR: u32 = 3;
    pub const CAPABILITY: u32 = 4;
    /// `CAP_SEEN` was full: a check could not be aggregated (its event was sent instead).
    pub const CAPABILITY_UNAGGREGATED: u32 = 5;
    pub const NETWORK: u32 = 6;
    /// `NET_SEEN` was full: a flow could not be aggregated (its event was sent instead).
    pub const NETWORK_UNAGGREGATED: u32 = 7;
    pub const SYSCALL: u32 = 8;
    pub const ESCAPE: u32 = 9;
    /// `PROC_IDENTITY` was full: a process's container could not be recorded (it is judged by
    /// its cgroup).
    pub const IDENTITY_UNTRACKED: u32 = 10;
    /// `SYSCALL_SEEN` was full: a judged syscall could not be counted (its event was sent).
    pub const SYSCALL_UNAGGREGATED: u32 = 11;
    /// A process of a container asked the kernel for one of the sensor's own BPF objects.
    pub const TAMPER: u32 = 12;
    /// `CGROUP_POLICY` was full: a new cgroup got no entry at its creation (a container's is
    /// the host's until the daemon installs one).
    pub const CGROUP_UNTRACKED: u32 = 13;
    /// One past the largest kind: the size of the per-kind lost-event counter array.
    pub const COUNT: u32 = 14;

    /// Human name of a kind, for metrics and logs.
    pub const fn name(kind: u32) -> &'static str {
        match kind {
            EXEC => "exec",
            CGROUP_MKDIR => "cgroup_mkdir",
            CGROUP_RMDIR => "cgroup_rmdir",
            CAPABILITY => "capability",
            CAPABILITY_UNAGGREGATED => "capability_unaggregated",
            NETWORK => "network",
            NETWORK_UNAGGREGATED => "network_unaggregated",
            SYSCALL => "syscall",
            ESCAPE => "escape",
            IDENTITY_UNTRACKED => "identity_untracked",
            SYSCALL_UNAGGREGATED => "syscall_unaggregated",
            TAMPER => "tamper",
            CGROUP_UNTRACKED => "cgroup_untracked",
            _ => "unknown",
        }
    }
}

/// Header of every event on the ring buffer. Filled from the current task by the kernel program
/// that emits the event.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// One of [`kind`].
    pub kind: u32,
    /// Size of the whole record in bytes, header included, so that a decoder can reject a record
    /// whose layout it does not know.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, suspend included.
    pub ktime_ns: u64,
    /// `bpf_get_current_cgroup_id()`: inode of the task's cgroup v2 directory.
    pub cgroup_id: u64,
    /// Thread-group id (what user space calls the pid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Thread-group id of the real parent; 0 when the kernel layout was unknown.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// `process::HEADER_*` bits.
    pub flags: u32,
    pub comm: [u8; COMM_LEN],
}

impl EventHeader {
    pub const fn zeroed() -> Self {
        Self {
            kind: 0,
            size: 0,
            ktime_ns: 0,
            cgroup_id: 0,
            pid: 0,
            tid: 0,
            ppid: 0,
            uid: 0,
            gid: 0,
            flags: 0,
            comm: [0; COMM_LEN],
        }
    }
}

const _: () = assert!(core::mem::size_of::<EventHeader>() == 64);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `#[repr(C)]`, `Copy`, made only of integers and byte arrays,
    // and has no padding (sizes asserted next to each definition), so any bit pattern is valid.
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::exec::ExecEvent {}
    unsafe impl aya::Pod for super::cgroup::CgroupEvent {}
    unsafe impl aya::Pod for super::offsets::KernelOffsets {}
    unsafe impl aya::Pod for super::policy::PolicyConfig {}
    unsafe impl aya::Pod for super::capability::CapabilityEvent {}
    unsafe impl aya::Pod for super::capability::CapKey {}
    unsafe impl aya::Pod for super::capability::CapRuleset {}
    unsafe impl aya::Pod for super::capability::CapConfig {}
    unsafe impl aya::Pod for super::policy::CgroupPolicy {}
    unsafe impl aya::Pod for super::policy::ExecKeyData {}
    unsafe impl aya::Pod for super::policy::ExecValue {}
    unsafe impl aya::Pod for super::policy::ExecRuleset {}
    unsafe impl aya::Pod for super::network::AddrKey {}
    unsafe impl aya::Pod for super::network::CidrKeyData {}
    unsafe impl aya::Pod for super::network::FlowKey {}
    unsafe impl aya::Pod for super::network::NetKey {}
    unsafe impl aya::Pod for super::network::NetworkHooks {}
    unsafe impl aya::Pod for super::network::NetworkEvent {}
    unsafe impl aya::Pod for super::syscall::SyscallEvent {}
    unsafe impl aya::Pod for super::syscall::SysKey {}
    unsafe impl aya::Pod for super::syscall::SysValue {}
    unsafe impl aya::Pod for super::syscall::SeenCall {}
    unsafe impl aya::Pod for super::syscall::SysCountKey {}
    unsafe impl aya::Pod for super::process::Identity {}
    unsafe impl aya::Pod for super::process::EscapeEvent {}
    unsafe impl aya::Pod for super::process::TamperEvent {}
    unsafe impl aya::Pod for super::process::ProcessRuleset {}
}
