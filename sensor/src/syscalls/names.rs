//! Names a policy may use: Linux capabilities and syscalls (per architecture), with
//! "did you mean" suggestions for typos.

use super::syscall_table;

/// Capability names without the `CAP_` prefix, indexed by capability number
/// (`include/uapi/linux/capability.h`).
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Capability number of `name`: with or without `CAP_`, any case.
pub fn capability(name: &str) -> Option<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .map(|i| i as u32)
}

/// `CAP_SYS_ADMIN` for 21.
pub fn capability_name(cap: u32) -> String {
    CAPABILITIES
        .get(cap as usize)
        .map(|c| format!("CAP_{c}"))
        .unwrap_or_else(|| format!("CAP_{cap}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on.
    pub const fn native() -> Self {
        if cfg!(target_arch = "aarch64") {
            Self::Aarch64
        } else {
            Self::X86_64
        }
    }

    pub fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Self::X86_64 => syscall_table::X86_64,
            Self::Aarch64 => syscall_table::AARCH64,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }
}

/// Syscall number of `name` on `arch`.
pub fn syscall(arch: Arch, name: &str) -> Option<u32> {
    let name = name.trim().to_ascii_lowercase();
    arch.table()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

/// The `COMPAT_SYSCALLS` entries of this architecture: (32-bit number, 1 + the native number
/// doing the same). Only x86_64 kernels run 32-bit (i386) syscalls here.
pub fn compat_entries() -> Vec<(u32, u16)> {
    if Arch::native() != Arch::X86_64 {
        return Vec::new();
    }
    super::compat_table::I386
        .iter()
        .filter_map(|(_, nr, native)| {
            let native = syscall(Arch::X86_64, (*native)?)?;
            Some((*nr, native as u16 + 1))
        })
        .collect()
}

/// Syscalls that do the operation a syscall name stands for, so that a rule naming one covers
/// the others (the new mount API mounts as `mount` does; `process_vm_writev` and
/// `pidfd_getfd` reach into another process as `ptrace` does). A clone creating namespaces is
/// judged as `unshare` (at fork, `sensor-ebpf/src/process.rs`), a 32-bit call as its native
/// syscall, an io_uring request as the syscall it does.
pub const FAMILIES: &[(&str, &[&str])] = &[
    (
        "mount",
        &[
            "fsopen",
            "fspick",
            "fsmount",
            "move_mount",
            "open_tree",
            "mount_setattr",
        ],
    ),
    (
        "ptrace",
        &["process_vm_readv", "process_vm_writev", "pidfd_getfd"],
    ),
    ("init_module", &["finit_module"]),
    ("finit_module", &["init_module"]),
    ("kexec_load", &["kexec_file_load"]),
    ("kexec_file_load", &["kexec_load"]),
];

/// `name` and the syscalls of its family.
pub fn family<'a>(name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let members = FAMILIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or(&[][..], |(_, m)| *m);
    std::iter::once(name).chain(members.iter().copied())
}

/// Syscall name of `nr` on `arch`.
pub fn syscall_name(arch: Arch, nr: u32) -> Option<&'static str> {
    arch.table()
        .iter()
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}

/// Whether `name` is a syscall on any supported architecture (a policy written for x86_64
/// may name `open`, which aarch64 lacks: that is not a typo).
pub fn syscall_anywhere(name: &str) -> bool {
    [Arch::X86_64, Arch::Aarch64]
        .iter()
        .any(|a| syscall(*a, name).is_some())
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions (`deyn` is
/// one edit from `deny`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `input` when it is close enough to be a typo of it.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    let (best, distance) = candidates
        .into_iter()
        .map(|c| (c, edit_distance(&input, &c.to_ascii_lowercase())))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (input.len() / 3).clamp(1, 3)).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_any_form() {
        assert_eq!(capability("SYS_ADMIN"), Some(21));
        assert_eq!(capability("cap_sys_admin"), Some(21));
        assert_eq!(capability("CAP_NET_RAW"), Some(13));
        assert_eq!(capability("checkpoint_restore"), Some(40));
        assert_eq!(capability("SYS_ADMN"), None);
        assert_eq!(capability_name(21), "CAP_SYS_ADMIN");
        assert_eq!(CAPABILITIES.len(), 41);
    }

    #[test]
    fn syscalls_per_architecture() {
        assert_eq!(syscall(Arch::X86_64, "mount"), Some(165));
        assert_eq!(syscall(Arch::Aarch64, "mount"), Some(40));
        assert_eq!(syscall(Arch::X86_64, "unshare"), Some(272));
        assert_eq!(syscall(Arch::Aarch64, "unshare"), Some(97));
        assert_eq!(syscall(Arch::X86_64, "bpf"), Some(321));
        assert_eq!(syscall(Arch::Aarch64, "bpf"), Some(280));
        // x86_64-only legacy syscalls exist there and not on aarch64.
        assert_eq!(syscall(Arch::X86_64, "open"), Some(2));
        assert_eq!(syscall(Arch::Aarch64, "open"), None);
        assert!(syscall_anywhere("open"));
        assert!(!syscall_anywhere("mountt"));
        assert_eq!(syscall_name(Arch::X86_64, 165), Some("mount"));
    }

    #[test]
    fn compat_calls_are_their_native_syscalls() {
        let e: std::collections::BTreeMap<u32, u16> = compat_entries().into_iter().collect();
        if Arch::native() != Arch::X86_64 {
            return;
        }
        // i386 164 is setresuid, x86_64 164 is settimeofday: the number alone misleads.
        assert_eq!(
            e.get(&164).map(|n| n - 1),
            syscall(Arch::X86_64, "setresuid").map(|n| n as u16)
        );
        assert_eq!(e.get(&21).map(|n| n - 1), Some(165), "mount");
        assert_eq!(e.get(&22).map(|n| n - 1), Some(166), "umount is umount2");
        assert_eq!(e.get(&310).map(|n| n - 1), Some(272), "unshare");
        assert_eq!(e.get(&357).map(|n| n - 1), Some(321), "bpf");
        assert_eq!(e.get(&102), None, "socketcall has no native equivalent");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("SYS_ADMN", CAPABILITIES.iter().copied()),
            Some("SYS_ADMIN")
        );
        assert_eq!(
            did_you_mean("net_raww", CAPABILITIES.iter().copied()),
            Some("NET_RAW")
        );
        assert_eq!(
            did_you_mean("mountt", Arch::X86_64.table().iter().map(|(n, _)| *n)),
            Some("mount")
        );
        assert_eq!(
            did_you_mean("completely_else", CAPABILITIES.iter().copied()),
            None
        );
        assert_eq!(did_you_mean("deyn", ["deny", "allow"]), Some("deny"));
    }
}
