//! Payload of the `sched_process_exec` program (`sensor-ebpf/src/exec.rs`).

use crate::{EventHeader, policy::Verdict};

/// Bytes kept of the executed file name (`linux_binprm::filename`).
pub const FILENAME_LEN: usize = 512;
/// Bytes kept of the argument block (`mm->arg_start..arg_end`, NUL-separated).
pub const ARGS_LEN: usize = 1024;

/// `flags` bits.
pub const FLAG_FILENAME_TRUNCATED: u32 = 1;
pub const FLAG_ARGS_TRUNCATED: u32 = 2;
/// The file name could not be read; `filename` is empty.
pub const FLAG_FILENAME_UNREADABLE: u32 = 4;
/// The file comes from the container's writable overlayfs layer, not from its image: it was
/// written (or changed) after the container started.
pub const FLAG_DRIFT: u32 = 8;

/// `super_block.s_magic` of overlayfs.
pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Length of `filename` without its terminating NUL.
    pub filename_len: u32,
    /// Bytes of `args` that are valid.
    pub args_len: u32,
    pub flags: u32,
    pub _pad: u32,
    /// Exec rules' verdict on this exec.
    pub verdict: Verdict,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
}

const _: () = assert!(
    core::mem::size_of::<ExecEvent>()
        == core::mem::size_of::<EventHeader>() + 32 + FILENAME_LEN + ARGS_LEN
);
