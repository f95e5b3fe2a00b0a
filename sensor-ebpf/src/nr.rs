//! The syscall and capability numbers the programs test for themselves (the ones a policy
//! names reach them through maps the daemon fills). One place, per architecture.

#[cfg(bpf_target_arch = "x86_64")]
mod arch {
    pub const EXECVE: i32 = 59;
    pub const EXECVEAT: i32 = 322;
    pub const SOCKET: i32 = 41;
    pub const BPF: i32 = 321;
    pub const UNSHARE: i32 = 272;
    /// Syscalls through which CAP_NET_ADMIN configures networking: write, pwrite64, writev,
    /// pwritev, pwritev2 (netlink, sysctl and sysfs writes), ioctl, sendto, sendmsg, sendmmsg,
    /// bind, setsockopt, bpf.
    pub const NET_CONFIG: [i32; 12] = [1, 18, 20, 296, 328, 16, 44, 46, 307, 49, 54, 321];
    pub const SETSOCKOPT: i32 = 54;
    /// sendto, sendmsg, sendmmsg.
    pub const SENDS: [i32; 3] = [44, 46, 307];
}

#[cfg(not(bpf_target_arch = "x86_64"))]
mod arch {
    pub const EXECVE: i32 = 221;
    pub const EXECVEAT: i32 = 281;
    pub const SOCKET: i32 = 198;
    pub const BPF: i32 = 280;
    pub const UNSHARE: i32 = 97;
    /// As on x86_64.
    pub const NET_CONFIG: [i32; 12] = [64, 68, 66, 70, 287, 29, 206, 211, 269, 200, 208, 280];
    pub const SETSOCKOPT: i32 = 208;
    pub const SENDS: [i32; 3] = [206, 211, 269];
}

pub use arch::*;

/// `io_uring_enter`: the same number on x86_64 and aarch64.
pub const IO_URING_ENTER: i32 = 426;

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
