//! Reading the current task: the common event header and the fields behind `OFFSETS`.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
};
use sensor_common::{EventHeader, offsets::KernelOffsets};

/// Field offsets of the running kernel, written by the daemon before load (see
/// `sensor_common::offsets`). Read-only: the verifier sees the values as constants.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets::zeroed();

#[inline(always)]
pub fn offsets() -> KernelOffsets {
    // SAFETY: reading a static; volatile so that the compiler does not fold the zero
    // initialiser, which the loader replaces.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

/// Reads a `T` at `base + offset` in kernel memory. `None` when the offset is unknown (0) or the
/// read faults: callers leave the field empty (fail open, the event is still emitted).
#[inline(always)]
pub fn read_field<T>(base: *const u8, offset: u32) -> Option<T> {
    if offset == 0 || base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and returns an error instead of faulting.
    unsafe { bpf_probe_read_kernel(base.add(offset as usize) as *const T).ok() }
}

/// Reads a `T` at `at` in kernel memory (`read_field` for a first member, offset 0).
#[inline(always)]
pub fn read_at<T>(at: *const u8) -> Option<T> {
    if at.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and returns an error instead of faulting.
    unsafe { bpf_probe_read_kernel(at as *const T).ok() }
}

/// `current` as a raw pointer.
#[inline(always)]
pub fn current_task() -> *const u8 {
    // SAFETY: the helper has no preconditions.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// Fills `header` from the current task.
#[inline(always)]
pub fn fill_header(header: &mut EventHeader, kind: u32, size: usize, offsets: &KernelOffsets) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    header.kind = kind;
    header.size = size as u32;
    // SAFETY: these helpers have no preconditions.
    unsafe {
        header.ktime_ns = bpf_ktime_get_boot_ns();
        header.cgroup_id = crate::process::subject_cgroup();
        header.flags = if header.cgroup_id != bpf_get_current_cgroup_id() {
            sensor_common::process::HEADER_MOVED
        } else {
            0
        };
    }
    header.pid = (pid_tgid >> 32) as u32;
    header.tid = pid_tgid as u32;
    header.uid = uid_gid as u32;
    header.gid = (uid_gid >> 32) as u32;
    header.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let parent: Option<*const u8> = read_field(current_task(), offsets.task_real_parent);
    header.ppid = parent
        .and_then(|p| read_field::<u32>(p, offsets.task_tgid))
        .unwrap_or(0);
}

/// The registers the current task saved on entry to the kernel (at the top of its kernel
/// stack); `None` when the layout is unknown.
#[inline(always)]
fn user_regs(offsets: &KernelOffsets) -> Option<*const u8> {
    if offsets.pt_regs_from_top == 0 || offsets.thread_size == 0 {
        return None;
    }
    let stack = read_field::<*const u8>(current_task(), offsets.task_stack)?;
    Some(
        (stack as usize).wrapping_add((offsets.thread_size - offsets.pt_regs_from_top) as usize)
            as *const u8,
    )
}

/// The arguments of the syscall in progress, from the saved registers (0 where unreadable);
/// a 32-bit call's from its own registers, 32 bits each.
#[inline(always)]
pub fn syscall_args(offsets: &KernelOffsets) -> [u64; 6] {
    let mut args = [0u64; 6];
    let compat = in_compat_syscall(offsets);
    if let Some(regs) = user_regs(offsets) {
        for (i, arg) in args.iter_mut().enumerate() {
            *arg = if compat {
                read_field::<u64>(regs, offsets.pt_regs_compat_args[i]).unwrap_or(0) & 0xffff_ffff
            } else {
                read_field::<u64>(regs, offsets.pt_regs_args[i]).unwrap_or(0)
            };
        }
    }
    args
}

/// The syscall the current task is in (pt_regs at the top of its kernel stack), -1 outside a
/// syscall or when the layout is unknown. A 32-bit call's number is translated to the native
/// syscall that does the same (`native_of_compat`), so every rule and heuristic keyed by native
/// numbers applies to it.
#[inline(always)]
pub fn current_syscall(offsets: &KernelOffsets) -> i32 {
    current_call(offsets).0
}

/// `current_syscall`, and whether the call is a 32-bit one.
#[inline(always)]
pub fn current_call(offsets: &KernelOffsets) -> (i32, bool) {
    let Some(regs) = user_regs(offsets) else {
        return (-1, false);
    };
    // SAFETY: bpf_probe_read_kernel checks the address; a bad pointer yields an error.
    let nr = match unsafe {
        bpf_probe_read_kernel(regs.add(offsets.pt_regs_syscall as usize) as *const i64)
    } {
        Ok(nr) => nr,
        Err(_) => return (-1, false),
    };
    if nr < 0 {
        return (-1, false);
    }
    if in_compat_syscall(offsets) {
        return (native_of_compat(nr as u32) as i32, true);
    }
    (nr as i32, false)
}

/// The native syscall a 32-bit syscall `nr` does (`COMPAT_SYSCALLS`, filled by the daemon),
/// or `NR_COMPAT_ONLY` when there is none.
#[inline(always)]
pub fn native_of_compat(nr: u32) -> u32 {
    match crate::maps::COMPAT_SYSCALLS.get(nr).copied() {
        Some(v) if v != 0 => u32::from(v - 1),
        _ => sensor_common::syscall::NR_COMPAT_ONLY,
    }
}

/// The cgroup v2 id of `task` (`task->cgroups->dfl_cgrp->kn->id`); `None` when unreadable.
#[inline(always)]
pub fn task_cgroup_id(task: *const u8, offsets: &KernelOffsets) -> Option<u64> {
    let cset = read_field::<*const u8>(task, offsets.task_cgroups)?;
    let cgrp = read_field::<*const u8>(cset, offsets.css_set_dfl_cgrp)?;
    cgroup_id(cgrp, offsets)
}

/// The id of a cgroup (its kernfs node id, the inode of its directory).
#[inline(always)]
pub fn cgroup_id(cgrp: *const u8, offsets: &KernelOffsets) -> Option<u64> {
    let kn = read_field::<*const u8>(cgrp, offsets.cgroup_kn)?;
    read_field::<u64>(kn, offsets.kernfs_node_id)
}

/// Whether `cgrp` is on the cgroup v2 (default) hierarchy, whose ids
/// `bpf_get_current_cgroup_id()` returns. Unknown layout: false.
#[inline(always)]
pub fn on_default_hierarchy(cgrp: *const u8, offsets: &KernelOffsets) -> bool {
    let root: Option<*const u8> = read_field(cgrp, offsets.cgroup_root);
    matches!(
        root.and_then(|r| read_field::<i32>(r, offsets.cgroup_root_hierarchy_id)),
        Some(0)
    )
}

/// Whether the cgroup `cgrp` is `ancestor_id` or below it (up to 16 levels up).
#[inline(always)]
pub fn cgroup_within(cgrp: *const u8, ancestor_id: u64, offsets: &KernelOffsets) -> bool {
    let mut c = cgrp;
    for _ in 0..16 {
        if c.is_null() {
            return false;
        }
        if cgroup_id(c, offsets) == Some(ancestor_id) {
            return true;
        }
        match read_field::<*const u8>(c, offsets.cgroup_parent) {
            Some(p) => c = p,
            None => return false,
        }
    }
    false
}

/// The inode of the file `task` runs (`task->mm->exe_file->f_inode`), as an identity: 0 when
/// unreadable (a kernel thread).
#[inline(always)]
pub fn exe_inode(task: *const u8, offsets: &KernelOffsets) -> u64 {
    read_field::<*const u8>(task, offsets.task_mm)
        .and_then(|mm| read_field::<*const u8>(mm, offsets.mm_exe_file))
        .and_then(|f| read_field::<*const u8>(f, offsets.file_inode))
        .map_or(0, |i| i as u64)
}

/// Whether the current task is in a 32-bit syscall (x86_64 `TS_COMPAT`).
#[inline(always)]
pub fn in_compat_syscall(offsets: &KernelOffsets) -> bool {
    read_field::<u32>(current_task(), offsets.thread_status)
        .is_some_and(|s| s & sensor_common::offsets::TS_COMPAT != 0)
}
