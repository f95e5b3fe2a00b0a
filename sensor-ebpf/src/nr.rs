//! The syscall and capability numbers the programs test for themselves (the ones a policy
//! names reach them through maps the daemon fills). One place, per architecture.

#[cfg(bpf_target_arch = "x86_64")]
mod arch {
    pub const EXECVE: i32 = 59;
    pub const EXECVEAT: i32 = 322;
    pub const SOCKET: i32 = 41;
    pub const BPF: i32 = 321;
    pub const UNSHARE: i32 = 272;
}

#[cfg(not(bpf_target_arch = "x86_64"))]
mod arch {
    pub const EXECVE: i32 = 221;
    pub const EXECVEAT: i32 = 281;
    pub const SOCKET: i32 = 198;
    pub const BPF: i32 = 280;
    pub const UNSHARE: i32 = 97;
}

pub use arch::*;

/// `io_uring_enter`: the same number on x86_64 and aarch64.
pub const IO_URING_ENTER: i32 = 426;

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
