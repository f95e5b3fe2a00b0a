//! Kernel structure field offsets, resolved at load time from the running kernel's BTF.
//!
//! Rust eBPF programs do not get CO-RE relocations, and `task_struct` moves between kernel
//! versions and configurations. The daemon reads `/sys/kernel/btf/vmlinux`, finds each field
//! below, and writes this struct into the programs' read-only `OFFSETS` global before loading
//! them, so one object runs on every kernel. A zero offset means "not found": programs check
//! before dereferencing and leave the derived field empty.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `mm_struct.arg_start` (the field sits in an anonymous struct on recent kernels)
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `linux_binprm.filename`
    pub bprm_filename: u32,
    /// `cgroup.kn`
    pub cgroup_kn: u32,
    /// `cgroup.level`
    pub cgroup_level: u32,
    /// `cgroup.root`
    pub cgroup_root: u32,
    /// `cgroup_root.hierarchy_id`
    pub cgroup_root_hierarchy_id: u32,
    /// `kernfs_node.id`
    pub kernfs_node_id: u32,
    /// `task_struct.stack`
    pub task_stack: u32,
    /// How far below the top of the task's kernel stack the registers saved at syscall entry
    /// start: `sizeof(struct pt_regs)` plus the stack padding (16 bytes on x86_64 kernels built
    /// with FRED support, whatever the CPU).
    pub pt_regs_from_top: u32,
    /// `pt_regs.orig_ax` (x86_64) or `pt_regs.syscallno` (aarch64): the syscall in progress.
    pub pt_regs_syscall: u32,
    /// Kernel stack size (THREAD_SIZE).
    pub thread_size: u32,
    /// `task_struct.real_cred`: a check made with other credentials (overlayfs and access()
    /// override them) is not the task using its own privilege.
    pub task_real_cred: u32,
    /// `linux_binprm.file`: the file being executed.
    pub bprm_file: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    /// `inode.i_sb`
    pub inode_sb: u32,
    /// `super_block.s_magic`
    pub sb_magic: u32,
    /// From an overlayfs inode (`ovl_inode.vfs_inode`) to `ovl_inode.__upperdentry`: set when
    /// the file has a copy in the container's writable layer (written or changed after the
    /// container started).
    pub ovl_upper_from_inode: u32,
    /// Where the saved registers hold syscall arguments 0..6 (`pt_regs.di, si, dx, r10, r8,
    /// r9` on x86_64; `regs[0..6]` on aarch64), for syscalls judged away from their entry.
    pub pt_regs_args: [u32; 6],
    /// `task_struct.flags` (PF_IO_WORKER: an io_uring worker thread).
    pub task_flags: u32,
    /// `task_struct.cgroups` (the css_set) and `css_set.dfl_cgrp`: a task's cgroup v2.
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.self.parent`: the parent cgroup (a css is the first member of its cgroup).
    pub cgroup_parent: u32,
    /// `task_struct.signal` and `signal_struct.live`: threads of the group still alive.
    pub task_signal: u32,
    pub signal_live: u32,
    /// `task_struct.fs`, `fs_struct.root` and `fs_struct.pwd` (each a `struct path`).
    pub task_fs: u32,
    pub fs_root: u32,
    pub fs_pwd: u32,
    /// `path.mnt` and `path.dentry`.
    pub path_mnt: u32,
    pub path_dentry: u32,
    /// `file.f_path`.
    pub file_path: u32,
    /// `dentry.d_parent`, the name pointer and length of `dentry.d_name`, `dentry.d_inode`.
    pub dentry_parent: u32,
    pub dentry_name: u32,
    pub dentry_name_len: u32,
    pub dentry_inode: u32,
    /// `vfsmount.mnt_root`, `vfsmount.mnt_sb`.
    pub vfsmount_root: u32,
    pub vfsmount_sb: u32,
    /// `mount.mnt` (the embedded vfsmount), `mount.mnt_parent`, `mount.mnt_mountpoint`.
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    /// `inode.i_nlink`, `inode.i_size`, and the seconds and nanoseconds of its mtime.
    pub inode_nlink: u32,
    pub inode_size: u32,
    pub inode_mtime_sec: u32,
    pub inode_mtime_nsec: u32,
    /// How an overlayfs inode finds its lower file: `OVL_LOWER_*`, and the offset from
    /// `ovl_inode.vfs_inode` to the field.
    pub ovl_lower_kind: u32,
    pub ovl_lower_from_inode: u32,
    /// `thread_info.status` (x86_64: TS_COMPAT while a 32-bit syscall runs), from the task.
    pub thread_status: u32,
    /// `linux_binprm.interp`: the interpreter of a script (its `#!` line), else the file name.
    pub bprm_interp: u32,
    /// `mm_struct.exe_file`.
    pub mm_exe_file: u32,
    /// `task_struct.files`, `files_struct.count`.
    pub task_files: u32,
    pub files_count: u32,
    /// `task_struct.pid` (the thread id).
    pub task_pid: u32,
    /// `task_struct.nsproxy`, and `task_struct.real_cred` → `cred.user_ns`.
    pub task_nsproxy: u32,
    pub cred_user_ns: u32,
    /// Where the saved registers hold a 32-bit syscall's arguments (`pt_regs.bx, cx, dx, si,
    /// di, bp` on x86_64).
    pub pt_regs_compat_args: [u32; 6],
    /// `io_kiocb.opcode` (6.0+ `io_uring:io_uring_submit_req` passes the request); 0 on older
    /// kernels, whose `io_uring_submit_sqe` passes the opcode itself.
    pub io_kiocb_opcode: u32,
    /// `signal_struct.nr_threads`: a file table referenced by more tasks than the process has
    /// threads is shared with another process (`clone(CLONE_FILES)`).
    pub signal_nr_threads: u32,
    /// `kernfs_node.name`: a cgroup's own name, to recognise a container's at its creation.
    pub kernfs_node_name: u32,
    /// `bpf_map.id`, `bpf_prog.aux` and `bpf_prog_aux.id`: the object a new descriptor is
    /// made for, at the `bpf_map` / `bpf_prog` LSM hooks.
    pub bpf_map_id: u32,
    pub bpf_prog_aux: u32,
    pub bpf_prog_aux_id: u32,
    /// `cgroup.ancestors` (6.1+, `struct cgroup *[]`) or `cgroup.ancestor_ids` (before,
    /// `u64[]`): a cgroup's ancestor at each level, itself at its own; and 1 when the array
    /// holds ids rather than pointers.
    pub cgroup_ancestors: u32,
    pub cgroup_ancestor_ids: u32,
}

/// `KernelOffsets::ovl_lower_kind`: the lower layer of an overlayfs inode is
/// `struct inode *lower` (5.10), `struct ovl_path lowerpath` (5.11–6.4), or
/// `struct ovl_entry *oe` (6.5+, `__numlower` then `__lowerstack[]`).
pub const OVL_LOWER_NONE: u32 = 0;
pub const OVL_LOWER_INODE: u32 = 1;
pub const OVL_LOWER_PATH: u32 = 2;
pub const OVL_LOWER_ENTRY: u32 = 3;

/// `task_struct.flags`: an io_uring worker (io-wq or SQPOLL thread).
pub const PF_IO_WORKER: u32 = 0x10;
/// `thread_info.status` on x86_64: the task is in a 32-bit (int 0x80 / sysenter) syscall.
pub const TS_COMPAT: u32 = 0x2;

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 304);

impl KernelOffsets {
    pub const fn zeroed() -> Self {
        Self {
            task_real_parent: 0,
            task_tgid: 0,
            task_mm: 0,
            mm_arg_start: 0,
            mm_arg_end: 0,
            bprm_filename: 0,
            cgroup_kn: 0,
            cgroup_level: 0,
            cgroup_root: 0,
            cgroup_root_hierarchy_id: 0,
            kernfs_node_id: 0,
            task_stack: 0,
            pt_regs_from_top: 0,
            pt_regs_syscall: 0,
            thread_size: 0,
            task_real_cred: 0,
            bprm_file: 0,
            file_inode: 0,
            inode_sb: 0,
            sb_magic: 0,
            ovl_upper_from_inode: 0,
            pt_regs_args: [0; 6],
            task_flags: 0,
            task_cgroups: 0,
            css_set_dfl_cgrp: 0,
            cgroup_parent: 0,
            task_signal: 0,
            signal_live: 0,
            task_fs: 0,
            fs_root: 0,
            fs_pwd: 0,
            path_mnt: 0,
            path_dentry: 0,
            file_path: 0,
            dentry_parent: 0,
            dentry_name: 0,
            dentry_name_len: 0,
            dentry_inode: 0,
            vfsmount_root: 0,
            vfsmount_sb: 0,
            mount_mnt: 0,
            mount_parent: 0,
            mount_mountpoint: 0,
            inode_nlink: 0,
            inode_size: 0,
            inode_mtime_sec: 0,
            inode_mtime_nsec: 0,
            ovl_lower_kind: 0,
            ovl_lower_from_inode: 0,
            thread_status: 0,
            bprm_interp: 0,
            mm_exe_file: 0,
            task_files: 0,
            files_count: 0,
            task_pid: 0,
            task_nsproxy: 0,
            cred_user_ns: 0,
            pt_regs_compat_args: [0; 6],
            io_kiocb_opcode: 0,
            signal_nr_threads: 0,
            kernfs_node_name: 0,
            bpf_map_id: 0,
            bpf_prog_aux: 0,
            bpf_prog_aux_id: 0,
            cgroup_ancestors: 0,
            cgroup_ancestor_ids: 0,
        }
    }
}
