//! Host state the sensor needs at run time and that a fresh machine may lack.

use std::{fs, process::Command};

use crate::util::run;

fn mounted(mount_point: &str, fstype: &str) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(" - "))
        .any(|(left, right)| {
            left.split_whitespace().nth(4) == Some(mount_point)
                && right.split_whitespace().next() == Some(fstype)
        })
}

/// The sensor refuses to start without bpffs (it pins its maps there); fresh machines and some
/// containers lack the mount.
pub fn ensure_bpffs() -> anyhow::Result<()> {
    if !mounted("/sys/fs/bpf", "bpf") {
        run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
    }
    Ok(())
}

/// Mount points of every cgroup hierarchy (v1 controllers and v2), from mountinfo.
pub fn cgroup_mounts() -> Vec<std::path::PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| left.split_whitespace().nth(4))
                .flatten()
                .map(|mp| std::path::PathBuf::from(unescape_mountinfo(mp)))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i] == b'\\')
            .then(|| s.get(i + 1..i + 4))
            .flatten()
            .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
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
