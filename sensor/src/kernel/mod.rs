//! What the daemon needs to know about the running kernel before loading programs.

pub mod btf;
pub mod preflight;
pub mod tracefs;

use sensor_common::offsets::KernelOffsets;

pub use btf::Btf;

/// Resolves every field of [`KernelOffsets`] from `btf`. Returns the offsets and the names of
/// fields that were not found (their offset stays 0 and the programs leave the derived event
/// field empty).
pub fn resolve_offsets(btf: &Btf) -> (KernelOffsets, Vec<&'static str>) {
    let mut missing = Vec::new();
    let also_missing = std::cell::RefCell::new(Vec::new());
    let need = |found: Option<u32>, name: &'static str| {
        found.unwrap_or_else(|| {
            also_missing.borrow_mut().push(name);
            0
        })
    };
    let mut get = |s: &'static str, m: &'static str, name: &'static str| {
        btf.member_offset(s, m).unwrap_or_else(|| {
            missing.push(name);
            0
        })
    };
    let offsets = KernelOffsets {
        task_real_parent: get("task_struct", "real_parent", "task_struct.real_parent"),
        task_tgid: get("task_struct", "tgid", "task_struct.tgid"),
        task_mm: get("task_struct", "mm", "task_struct.mm"),
        mm_arg_start: get("mm_struct", "arg_start", "mm_struct.arg_start"),
        mm_arg_end: get("mm_struct", "arg_end", "mm_struct.arg_end"),
        bprm_filename: get("linux_binprm", "filename", "linux_binprm.filename"),
        cgroup_kn: get("cgroup", "kn", "cgroup.kn"),
        cgroup_level: get("cgroup", "level", "cgroup.level"),
        cgroup_root: get("cgroup", "root", "cgroup.root"),
        cgroup_root_hierarchy_id: get("cgroup_root", "hierarchy_id", "cgroup_root.hierarchy_id"),
        kernfs_node_id: get("kernfs_node", "id", "kernfs_node.id"),
        task_stack: get("task_struct", "stack", "task_struct.stack"),
        pt_regs_from_top: btf
            .struct_size("pt_regs")
            .map_or(0, |size| size + top_of_stack_padding(btf)),
        pt_regs_syscall: if cfg!(target_arch = "aarch64") {
            get("pt_regs", "syscallno", "pt_regs.syscallno")
        } else {
            get("pt_regs", "orig_ax", "pt_regs.orig_ax")
        },
        // THREAD_SIZE of x86_64 and arm64 (4 KiB pages) kernels without KASAN: distribution
        // kernels. A KASAN kernel doubles it and syscall names read as unknown there.
        thread_size: 16 * 1024,
        task_real_cred: get("task_struct", "real_cred", "task_struct.real_cred"),
        bprm_file: get("linux_binprm", "file", "linux_binprm.file"),
        file_inode: get("file", "f_inode", "file.f_inode"),
        inode_sb: get("inode", "i_sb", "inode.i_sb"),
        sb_magic: get("super_block", "s_magic", "super_block.s_magic"),
        ovl_upper_from_inode: ovl_upper_from_inode(btf),
        pt_regs_args: if cfg!(target_arch = "aarch64") {
            // x0 is overwritten by the return value; orig_x0 keeps the first argument.
            [
                btf.member_offset("pt_regs", "orig_x0").unwrap_or(0),
                8,
                16,
                24,
                32,
                40,
            ]
        } else {
            ["di", "si", "dx", "r10", "r8", "r9"]
                .map(|r| btf.member_offset("pt_regs", r).unwrap_or(0))
        },
        task_flags: get("task_struct", "flags", "task_struct.flags"),
        task_cgroups: get("task_struct", "cgroups", "task_struct.cgroups"),
        css_set_dfl_cgrp: get("css_set", "dfl_cgrp", "css_set.dfl_cgrp"),
        cgroup_parent: need(
            nested(
                btf,
                &[("cgroup", "self"), ("cgroup_subsys_state", "parent")],
            ),
            "cgroup.self.parent",
        ),
        task_signal: get("task_struct", "signal", "task_struct.signal"),
        signal_live: get("signal_struct", "live", "signal_struct.live"),
        task_fs: get("task_struct", "fs", "task_struct.fs"),
        fs_root: get("fs_struct", "root", "fs_struct.root"),
        fs_pwd: get("fs_struct", "pwd", "fs_struct.pwd"),
        path_mnt: btf.member_offset("path", "mnt").unwrap_or(0),
        // `path.dentry` follows `mnt`: offset 8, which a 0 "not found" cannot express.
        path_dentry: btf.member_offset("path", "dentry").unwrap_or(0),
        file_path: get("file", "f_path", "file.f_path"),
        dentry_parent: get("dentry", "d_parent", "dentry.d_parent"),
        dentry_name: need(
            nested(btf, &[("dentry", "d_name"), ("qstr", "name")]),
            "dentry.d_name.name",
        ),
        dentry_name_len: need(
            nested(btf, &[("dentry", "d_name"), ("qstr", "len")]),
            "dentry.d_name.len",
        ),
        dentry_inode: get("dentry", "d_inode", "dentry.d_inode"),
        vfsmount_root: btf.member_offset("vfsmount", "mnt_root").unwrap_or(0),
        vfsmount_sb: get("vfsmount", "mnt_sb", "vfsmount.mnt_sb"),
        mount_mnt: get("mount", "mnt", "mount.mnt"),
        mount_parent: get("mount", "mnt_parent", "mount.mnt_parent"),
        mount_mountpoint: get("mount", "mnt_mountpoint", "mount.mnt_mountpoint"),
        inode_nlink: get("inode", "i_nlink", "inode.i_nlink"),
        inode_size: get("inode", "i_size", "inode.i_size"),
        inode_mtime_sec: need(
            btf.member_offset("inode", "i_mtime_sec")
                .or_else(|| btf.member_offset("inode", "__i_mtime"))
                .or_else(|| btf.member_offset("inode", "i_mtime")),
            "inode.i_mtime",
        ),
        inode_mtime_nsec: btf
            .member_offset("inode", "i_mtime_nsec")
            .or_else(|| btf.member_offset("inode", "__i_mtime").map(|o| o + 8))
            .or_else(|| btf.member_offset("inode", "i_mtime").map(|o| o + 8))
            .unwrap_or(0),
        ovl_lower_kind: ovl_lower(btf).0,
        ovl_lower_from_inode: ovl_lower(btf).1,
        thread_status: if cfg!(target_arch = "x86_64") {
            nested(
                btf,
                &[("task_struct", "thread_info"), ("thread_info", "status")],
            )
            .unwrap_or(0)
        } else {
            0
        },
        bprm_interp: get("linux_binprm", "interp", "linux_binprm.interp"),
        mm_exe_file: get("mm_struct", "exe_file", "mm_struct.exe_file"),
        task_files: get("task_struct", "files", "task_struct.files"),
        files_count: get("files_struct", "count", "files_struct.count"),
        task_pid: get("task_struct", "pid", "task_struct.pid"),
        task_nsproxy: get("task_struct", "nsproxy", "task_struct.nsproxy"),
        cred_user_ns: get("cred", "user_ns", "cred.user_ns"),
        pt_regs_compat_args: if cfg!(target_arch = "x86_64") {
            ["bx", "cx", "dx", "si", "di", "bp"]
                .map(|r| btf.member_offset("pt_regs", r).unwrap_or(0))
        } else {
            [0; 6]
        },
        io_kiocb_opcode: btf.member_offset("io_kiocb", "opcode").unwrap_or(0),
        signal_nr_threads: get("signal_struct", "nr_threads", "signal_struct.nr_threads"),
        kernfs_node_name: get("kernfs_node", "name", "kernfs_node.name"),
        bpf_map_id: get("bpf_map", "id", "bpf_map.id"),
        bpf_prog_aux: get("bpf_prog", "aux", "bpf_prog.aux"),
        bpf_prog_aux_id: get("bpf_prog_aux", "id", "bpf_prog_aux.id"),
        cgroup_ancestors: need(
            btf.member_offset("cgroup", "ancestors")
                .or_else(|| btf.member_offset("cgroup", "ancestor_ids")),
            "cgroup.ancestors",
        ),
        cgroup_ancestor_ids: u32::from(btf.member_offset("cgroup", "ancestors").is_none()),
    };
    missing.extend(also_missing.into_inner());
    if offsets.pt_regs_from_top == 0 {
        missing.push("sizeof(pt_regs)");
    }
    (offsets, missing)
}

/// `ovl_inode.__upperdentry - ovl_inode.vfs_inode`. Overlayfs is a module on most
/// distributions, so its types are often not in vmlinux BTF; `__upperdentry` has followed
/// `vfs_inode` directly since overlayfs got its own inode (4.13), so `sizeof(struct inode)`
/// (pointer-aligned) stands in.
fn ovl_upper_from_inode(btf: &btf::Btf) -> u32 {
    match (
        btf.member_offset("ovl_inode", "__upperdentry"),
        btf.member_offset("ovl_inode", "vfs_inode"),
    ) {
        (Some(upper), Some(inode)) if upper > inode => upper - inode,
        _ => btf
            .struct_size("inode")
            .map_or(0, |size| size.next_multiple_of(8)),
    }
}

/// The offset of a chain of embedded members: `[("cgroup", "self"), ("cgroup_subsys_state",
/// "parent")]` is `offsetof(cgroup, self) + offsetof(cgroup_subsys_state, parent)`. Offsets of
/// 0 are fine inside the chain (a first member), not as the result.
fn nested(btf: &btf::Btf, chain: &[(&str, &str)]) -> Option<u32> {
    let mut total = 0;
    for (s, m) in chain {
        total += btf.member_offset(s, m)?;
    }
    (total != 0).then_some(total)
}

/// Where an overlayfs inode keeps its lower layer (`OVL_LOWER_*`, offset from `vfs_inode`).
/// Overlayfs is a module on most distributions and its types may be absent from vmlinux BTF:
/// then the layout of the kernel's version, right after `__upperdentry`.
fn ovl_lower(btf: &btf::Btf) -> (u32, u32) {
    use sensor_common::offsets::{
        OVL_LOWER_ENTRY, OVL_LOWER_INODE, OVL_LOWER_NONE, OVL_LOWER_PATH,
    };
    let upper = ovl_upper_from_inode(btf);
    if upper == 0 {
        return (OVL_LOWER_NONE, 0);
    }
    if let Some(inode) = btf.member_offset("ovl_inode", "vfs_inode") {
        for (field, kind) in [
            ("oe", OVL_LOWER_ENTRY),
            ("lowerpath", OVL_LOWER_PATH),
            ("lower", OVL_LOWER_INODE),
        ] {
            if let Some(off) = btf.member_offset("ovl_inode", field) {
                return (kind, off - inode);
            }
        }
        return (OVL_LOWER_NONE, 0);
    }
    let kind = match parse_version(&release()) {
        Some(v) if v >= (6, 5) => OVL_LOWER_ENTRY,
        Some(v) if v >= (6, 1) => OVL_LOWER_PATH,
        Some(_) => OVL_LOWER_INODE,
        None => OVL_LOWER_NONE,
    };
    (kind, upper + 8)
}

/// TOP_OF_KERNEL_STACK_PADDING: x86_64 kernels built with CONFIG_X86_FRED (Debian's 7.x among
/// them) keep 16 bytes free above the saved registers, whether or not the CPU uses FRED. The
/// FRED entry code in the kernel's BTF tells such a build.
fn top_of_stack_padding(btf: &btf::Btf) -> u32 {
    let fred = btf.has_func("fred_entry_from_user") || btf.struct_size("fred_info").is_some();
    if cfg!(target_arch = "x86_64") && fred {
        16
    } else {
        0
    }
}

/// `uname -r`.
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// (major, minor) from a release string such as `6.1.0-50-amd64`.
pub(crate) fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_version("5.10.0-32-amd64"), Some((5, 10)));
        assert_eq!(parse_version("garbage"), None);
    }
}
