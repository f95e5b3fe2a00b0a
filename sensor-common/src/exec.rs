//! Payload of the exec programs (`sensor-ebpf/src/exec.rs`: `sched_process_exec`,
//! `lsm/bprm_check_security`).
//!
//! An exec is judged under every name it can be told by, and fails a rule when any of them
//! does (`MATCHED_*`): the name it was executed by, made absolute and normalised (`//`, `.`,
//! `..`, the working directory, `/proc/self/root`); the file that actually runs, as a path
//! from the process's root directory; `argv[0]` in that directory when it names another
//! program (a multi-call binary such as busybox runs the applet `argv[0]` names); a script's
//! interpreter; and the program a directly executed dynamic loader (`ld.so PROGRAM`) loads.

use crate::{EventHeader, policy::Verdict};

/// Bytes kept of the executed file name (`linux_binprm::filename`).
pub const FILENAME_LEN: usize = 512;
/// Bytes kept of the argument block (`mm->arg_start..arg_end`, NUL-separated).
pub const ARGS_LEN: usize = 1024;
/// Bytes of a judged path (the resolved file, the name that decided the verdict).
pub const PATH_LEN: usize = 256;

/// `flags` bits.
pub const FLAG_FILENAME_TRUNCATED: u32 = 1;
pub const FLAG_ARGS_TRUNCATED: u32 = 2;
/// The file name could not be read; `filename` is empty.
pub const FLAG_FILENAME_UNREADABLE: u32 = 4;
/// The file is not from the container's image (`origin` says where from).
pub const FLAG_DRIFT: u32 = 8;
/// An image file whose metadata (mode, owner) changed after the container started: copied up
/// to the writable layer with its content, size and modification time unchanged.
pub const FLAG_METADATA_CHANGED: u32 = 16;
/// The executed file has no path from the process's root (a memfd, another container's
/// file): `file` is empty.
pub const FLAG_FILE_UNREACHABLE: u32 = 32;
/// A script: `bprm->interp` (the `#!` interpreter) differs from the name.
pub const FLAG_SCRIPT: u32 = 64;
/// The file is a dynamic loader executed as a program (`ld.so PROGRAM`).
pub const FLAG_LOADER: u32 = 128;

/// Where the executed file comes from (`origin`).
pub const ORIGIN_IMAGE: u8 = 0;
/// Written to the container's writable overlayfs layer after it started (new, or an image
/// file whose content changed).
pub const ORIGIN_UPPER: u8 = 1;
/// An anonymous memory file (`memfd_create`): fileless code.
pub const ORIGIN_MEMFD: u8 = 2;
/// A file deleted since it was opened.
pub const ORIGIN_DELETED: u8 = 3;
/// A tmpfs (`/dev/shm`, an `emptyDir` in memory, a tmpfs mount).
pub const ORIGIN_TMPFS: u8 = 4;
/// Another filesystem than the container's root: a volume or bind mount.
pub const ORIGIN_VOLUME: u8 = 5;
/// Not a container process (host), or a kernel layout the programs could not read.
pub const ORIGIN_UNKNOWN: u8 = 6;

/// Which of the exec's names decided the verdict (`matched`).
pub const MATCHED_NONE: u8 = 0;
pub const MATCHED_NAME: u8 = 1;
pub const MATCHED_FILE: u8 = 2;
pub const MATCHED_ARGV0: u8 = 3;
pub const MATCHED_INTERPRETER: u8 = 4;
pub const MATCHED_LOADED: u8 = 5;
/// A name that had to be judged could not be (too long, unreadable, no path): under enforce
/// the exec fails closed with the strongest exec rule of the ruleset.
pub const MATCHED_UNJUDGEABLE: u8 = 6;
/// The drift rule.
pub const MATCHED_DRIFT: u8 = 7;

/// `super_block.s_magic` of overlayfs, tmpfs and ramfs.
pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Length of `filename` without its terminating NUL.
    pub filename_len: u32,
    /// Bytes of `args` that are valid.
    pub args_len: u32,
    pub flags: u32,
    /// Lengths of `file` and `matched_path` (0: none).
    pub file_len: u16,
    pub matched_len: u16,
    /// Exec rules' verdict on this exec.
    pub verdict: Verdict,
    /// `ORIGIN_*` of the executed file, `MATCHED_*` of the verdict.
    pub origin: u8,
    pub matched: u8,
    pub _pad: [u8; 6],
    pub filename: [u8; FILENAME_LEN],
    /// The executed file's path from the process's root directory.
    pub file: [u8; PATH_LEN],
    /// The name that decided the verdict.
    pub matched_path: [u8; PATH_LEN],
    pub args: [u8; ARGS_LEN],
}

const _: () = assert!(
    core::mem::size_of::<ExecEvent>()
        == core::mem::size_of::<EventHeader>() + 40 + FILENAME_LEN + 2 * PATH_LEN + ARGS_LEN
);
