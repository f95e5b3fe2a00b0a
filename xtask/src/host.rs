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
