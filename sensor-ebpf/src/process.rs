//! Which tasks in a container cgroup are still the runtime setting the container up.
//!
//! A runtime (runc) moves its init process into the container's cgroup and lets it mount,
//! pivot_root, set the hostname, drop capabilities — all with full privileges — before it
//! execs the container's entrypoint. Those are not the container's actions: a rule denying
//! CAP_SYS_ADMIN or `mount` must not kill `runc init`. A task a host process moves into a
//! cgroup is marked here, with the processes it forks, until it execs.

use aya_ebpf::{
    helpers::bpf_get_current_cgroup_id, macros::raw_tracepoint, programs::RawTracePointContext,
};

use crate::{
    maps::{CGROUP_POLICY, RUNTIME_SETUP},
    task::{offsets, read_field},
};

/// `cgroup_attach_task(struct cgroup *dst_cgrp, const char *path, struct task_struct *task,
/// bool threadgroup)`.
#[raw_tracepoint(tracepoint = "cgroup_attach_task")]
pub fn cgroup_attach_task(ctx: RawTracePointContext) -> i32 {
    // SAFETY: the helper has no preconditions.
    let mover = unsafe { bpf_get_current_cgroup_id() };
    // A container's own process moving itself around stays what it is: only the host (the
    // runtime) hands out the exemption.
    // SAFETY: a hash map lookup with a valid key.
    if unsafe { CGROUP_POLICY.get(mover) }.is_some() {
        return 0;
    }
    let offsets = offsets();
    let task: *const u8 = ctx.arg(2);
    if let Some(tgid) = read_field::<u32>(task, offsets.task_tgid) {
        let _ = RUNTIME_SETUP.insert(tgid, 1, 0);
    }
    0
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`: a setup
/// process's children are setup too (runc's init forks before it execs).
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let offsets = offsets();
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    let (Some(parent_tgid), Some(child_tgid)) = (
        read_field::<u32>(parent, offsets.task_tgid),
        read_field::<u32>(child, offsets.task_tgid),
    ) else {
        return 0;
    };
    // A new thread shares the tgid and the entry.
    // SAFETY: a hash map lookup with a valid key.
    if parent_tgid != child_tgid && unsafe { RUNTIME_SETUP.get(parent_tgid) }.is_some() {
        let _ = RUNTIME_SETUP.insert(child_tgid, 1, 0);
    }
    0
}

/// Whether the current process is a runtime still setting up a container.
#[inline(always)]
pub fn in_runtime_setup(tgid: u32) -> bool {
    // SAFETY: a hash map lookup with a valid key.
    unsafe { RUNTIME_SETUP.get(tgid) }.is_some()
}

/// The process exec'd: from now on it runs the container's code.
#[inline(always)]
pub fn setup_done(tgid: u32) {
    let _ = RUNTIME_SETUP.remove(tgid);
}
