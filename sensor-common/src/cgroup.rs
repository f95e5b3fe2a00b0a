//! Payload of the `cgroup_mkdir` and `cgroup_rmdir` programs (`sensor-ebpf/src/cgroup.rs`).
//!
//! Container runtimes create a container's cgroup before they start its first process, so the
//! daemon learns the cgroup id → path mapping from this event before any exec in the container.

use crate::EventHeader;

/// Bytes kept of the cgroup path relative to the v2 root.
pub const PATH_LEN: usize = 512;

pub const FLAG_PATH_TRUNCATED: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupEvent {
    pub header: EventHeader,
    /// Id of the created or removed cgroup (its kernfs node id, the inode of its directory).
    pub id: u64,
    /// Depth below the root: `/a` is 1, `/a/b` is 2.
    pub level: u32,
    pub path_len: u32,
    pub flags: u32,
    pub _pad: u32,
    pub path: [u8; PATH_LEN],
}

const _: () = assert!(
    core::mem::size_of::<CgroupEvent>() == core::mem::size_of::<EventHeader>() + 24 + PATH_LEN
);
