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
        header.cgroup_id = bpf_get_current_cgroup_id();
    }
    header.pid = (pid_tgid >> 32) as u32;
    header.tid = pid_tgid as u32;
    header.uid = uid_gid as u32;
    header.gid = (uid_gid >> 32) as u32;
    header._pad = 0;
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

/// The arguments of the syscall in progress, from the saved registers (0 where unreadable).
#[inline(always)]
pub fn syscall_args(offsets: &KernelOffsets) -> [u64; 6] {
    let mut args = [0u64; 6];
    if let Some(regs) = user_regs(offsets) {
        for (i, arg) in args.iter_mut().enumerate() {
            *arg = read_field::<u64>(regs, offsets.pt_regs_args[i]).unwrap_or(0);
        }
    }
    args
}

/// The syscall the current task is in (pt_regs at the top of its kernel stack), -1 outside a
/// syscall or when the layout is unknown.
#[inline(always)]
pub fn current_syscall(offsets: &KernelOffsets) -> i32 {
    let Some(regs) = user_regs(offsets) else {
        return -1;
    };
    // SAFETY: bpf_probe_read_kernel checks the address; a bad pointer yields an error.
    match unsafe { bpf_probe_read_kernel(regs.add(offsets.pt_regs_syscall as usize) as *const i64) }
    {
        Ok(nr) => nr as i32,
        Err(_) => -1,
    }
}
