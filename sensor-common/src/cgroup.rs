//! Payload of the `cgroup_mkdir` and `cgroup_rmdir` programs (`sensor-ebpf/src/cgroup.rs`).
//!
//! Container runtimes create a container's cgroup before they start its first process, so the
//! daemon learns the cgroup id → path mapping from this event before any exec in the container.

use crate::EventHeader;

/// Bytes kept of the cgroup path relative to the v2 root.
pub const PATH_LEN: usize = 512;

pub const FLAG_PATH_TRUNCATED: u32 = 1;
/// Bytes of a cgroup's own name (`kernfs_node.name`) that `cgroup_mkdir` reads. The longest
/// container name, `cri-containerd-<64 hex>.scope`, is 85.
pub const NAME_LEN: usize = 128;

/// The deepest level (the root is 0) at which a cgroup can be a container's own: runtimes
/// place them a few levels down (a Kubernetes pod's container, under
/// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`, is at 4).
/// Each level is a step of every program's walk, verified on every load: 8, not more.
/// Only the container's own cgroup has a `CGROUP_POLICY` entry; its sub-cgroups, at any depth,
/// are judged through the entry of their outermost ancestor that has one, looked for down to
/// this level.
pub const MAX_CONTAINER_LEVEL: u32 = 8;

/// Whether a new cgroup's own name is one a runtime gives a container's cgroup:
/// `<prefix><64 lowercase hex>[.scope]` with a prefix of `docker-`, `cri-containerd-`,
/// `crio-`, `libpod-` or `nerdctl-`, or a bare `<64 lowercase hex>`. The kernel side of the daemon's
/// `containers::cgroup_path` (which also looks at the parents, and may still say "host": the
/// daemon then drops the entry): from its creation such a cgroup, made by the host (a
/// runtime) where no container's cgroup is above it, is judged as a container whose metadata
/// is pending, not as the host. Runtime helpers (`libpod-conmon-<id>.scope`,
/// `crio-conmon-<id>.scope`) are not matched.
#[inline(always)]
pub fn names_container(name: &[u8; NAME_LEN], len: usize) -> bool {
    if len > NAME_LEN - 1 {
        return false;
    }
    let scope = b".scope";
    let scoped = len >= scope.len() && ends_with(name, len, scope);
    let end = if scoped { len - scope.len() } else { len };
    if end < 64 {
        return false;
    }
    let start = end - 64;
    let mut i = 0;
    while i < 64 {
        let b = name[(start + i) & (NAME_LEN - 1)];
        if !(b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return false;
        }
        i += 1;
    }
    match start {
        0 => !scoped,
        5 => begins_with(name, b"crio-"),
        7 => begins_with(name, b"docker-") || begins_with(name, b"libpod-"),
        8 => begins_with(name, b"nerdctl-"),
        15 => begins_with(name, b"cri-containerd-"),
        _ => false,
    }
}

#[inline(always)]
fn begins_with<const N: usize>(name: &[u8; NAME_LEN], prefix: &[u8; N]) -> bool {
    let mut i = 0;
    while i < N {
        if name[i & (NAME_LEN - 1)] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[inline(always)]
fn ends_with<const N: usize>(name: &[u8; NAME_LEN], len: usize, suffix: &[u8; N]) -> bool {
    let mut i = 0;
    while i < N {
        if name[(len - N + i) & (NAME_LEN - 1)] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

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
    /// Id of the parent cgroup (0 for the root, and in `cgroup_rmdir` records).
    pub parent: u64,
    pub path: [u8; PATH_LEN],
}

const _: () = assert!(
    core::mem::size_of::<CgroupEvent>() == core::mem::size_of::<EventHeader>() + 32 + PATH_LEN
);

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(name: &str) -> bool {
        let mut buf = [0u8; NAME_LEN];
        let len = name.len().min(NAME_LEN);
        buf[..len].copy_from_slice(&name.as_bytes()[..len]);
        names_container(&buf, name.len())
    }

    #[test]
    fn recognises_the_runtimes_container_names() {
        let id = "0123456789abcdef".repeat(4);
        for name in [
            id.clone(),
            format!("docker-{id}.scope"),
            format!("cri-containerd-{id}.scope"),
            format!("crio-{id}.scope"),
            format!("crio-{id}"),
            format!("libpod-{id}.scope"),
            format!("libpod-{id}"),
            format!("nerdctl-{id}.scope"),
        ] {
            assert!(matches(&name), "{name}");
        }
        for name in [
            format!("libpod-conmon-{id}.scope"),
            format!("crio-conmon-{id}.scope"),
            format!("docker-{}.scope", &id[1..]),
            format!("docker-{}.scope", id.to_uppercase()),
            format!("x{id}"),
            format!("evil-{id}.scope"),
            format!("{id}.service"),
            format!("{id}.scope"),
            "system.slice".to_owned(),
            "cron.service".to_owned(),
            String::new(),
            "a".repeat(200),
        ] {
            assert!(!matches(&name), "{name}");
        }
    }
}
