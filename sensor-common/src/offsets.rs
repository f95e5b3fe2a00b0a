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
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 112);

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
            _pad: 0,
        }
    }
}
