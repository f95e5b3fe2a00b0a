//! The cgroup v2 hierarchy on this host: where it is mounted, and which path a cgroup id has.
//!
//! `bpf_get_current_cgroup_id()` is the inode number of the task's v2 cgroup directory. Hosts
//! mount v2 at `/sys/fs/cgroup` (pure v2) or `/sys/fs/cgroup/unified` (hybrid); the mount is
//! found in `/proc/self/mountinfo`, never assumed.

use std::{
    collections::HashMap,
    fs, io,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

/// Mount point of the cgroup v2 hierarchy whose root is the hierarchy root, from mountinfo text.
pub fn find_v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let fields: Vec<&str> = left.split_whitespace().collect();
        // fields: id parent major:minor root mount_point options [optional...]
        let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
        (fstype == "cgroup2" && *root == "/").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\')
            .then(|| s.get(i + 1..i + 4))
            .flatten()
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The v2 mount of this process's mount namespace.
pub fn v2_mount() -> io::Result<Option<PathBuf>> {
    Ok(find_v2_mount(&fs::read_to_string("/proc/self/mountinfo")?))
}

/// The cgroup v2 path of process `pid` (`0::/path` in /proc/PID/cgroup).
pub fn v2_path_of_pid(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Every cgroup directory under `root`, as (id, path relative to the root starting with `/`).
/// Directories that vanish during the walk are skipped.
pub fn walk(root: &Path) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    let mut stack = vec![(root.to_path_buf(), String::from("/"))];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(meta) = fs::metadata(&dir) else {
            continue;
        };
        out.insert(meta.ino(), rel.clone());
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child_rel = if rel == "/" {
                    format!("/{name}")
                } else {
                    format!("{rel}/{name}")
                };
                stack.push((entry.path(), child_rel));
            }
        }
    }
    out
}

/// Id of the cgroup at `path` (relative to the v2 root): its directory's inode number.
pub fn id_of_path(root: &Path, path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(root.join(path.trim_start_matches('/')))
        .ok()
        .map(|m| m.ino())
}

/// Path of cgroup `id` via `open_by_handle_at` (kernfs exports cgroup ids as file handles),
/// without walking the tree. `None` when the cgroup is gone or the kernel refuses.
pub fn path_of_id(root: &Path, id: u64) -> Option<String> {
    const FILEID_KERNFS: i32 = 0xfe;
    #[repr(C)]
    struct Handle {
        handle_bytes: u32,
        handle_type: i32,
        id: u64,
    }
    let root_dir = fs::File::open(root).ok()?;
    let mut handle = Handle {
        handle_bytes: 8,
        handle_type: FILEID_KERNFS,
        id,
    };
    // SAFETY: `handle` is a valid `struct file_handle` with 8 bytes of f_handle, as
    // handle_bytes says; the call only reads it. The returned fd is owned below.
    let fd = unsafe {
        libc::open_by_handle_at(
            root_dir.as_raw_fd(),
            (&mut handle as *mut Handle).cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor we own.
    let file = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let target = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let rel = target.strip_prefix(root).ok()?;
    Some(format!("/{}", rel.display()).replace("//", "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_and_pure_v2_mountinfo() {
        let hybrid = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
32 25 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
33 32 0:28 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 32 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
";
        assert_eq!(
            find_v2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(find_v2_mount(pure), Some(PathBuf::from("/sys/fs/cgroup")));
        // A container's view: a bind of a sub-tree is not the hierarchy root.
        let nested = "500 400 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(find_v2_mount(nested), None);
        assert_eq!(find_v2_mount("garbage\n\n"), None);
        let escaped = "1 2 0:1 / /mnt/cg\\040v2 rw - cgroup2 cgroup2 rw\n";
        assert_eq!(find_v2_mount(escaped), Some(PathBuf::from("/mnt/cg v2")));
    }

    #[test]
    fn this_host_resolves_its_own_cgroup() {
        let Some(root) = v2_mount().expect("mountinfo") else {
            eprintln!("skipped: no cgroup v2 mount on this host");
            return;
        };
        let ids = walk(&root);
        let root_ino = fs::metadata(&root).expect("stat root").ino();
        assert_eq!(ids.get(&root_ino).map(String::as_str), Some("/"));
        if let Some((id, path)) = ids.iter().find(|(_, p)| p.as_str() != "/") {
            match path_of_id(&root, *id) {
                Some(resolved) => assert_eq!(&resolved, path),
                None => eprintln!("note: open_by_handle_at is refused here; the tree walk is used"),
            }
        }
    }
}
