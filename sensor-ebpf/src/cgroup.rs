//! `cgroup_mkdir` / `cgroup_rmdir` on the cgroup v2 hierarchy: the daemon learns a container's
//! cgroup id and path before the runtime starts the container's first process in it.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{
    cgroup::{CgroupEvent, FLAG_PATH_TRUNCATED, MAX_CONTAINER_LEVEL, NAME_LEN, PATH_LEN},
    kind,
};

use crate::{
    maps::{CGROUP_POLICY, CONTROL, POLICY, count_lost, submit_control},
    policy,
    task::{cgroup_id, fill_header, offsets, read_field},
};

/// Both tracepoints: `TP_PROTO(struct cgroup *cgrp, const char *path)`.
///
/// A cgroup gets an entry here only when the host (a runtime) makes one named like a
/// container's where no container's cgroup is above it: a container's sub-cgroups are judged
/// through its own entry (`policy::policy_owner`), and cgroups a container makes get none, so
/// a container cannot fill `CGROUP_POLICY` by making cgroups.
#[raw_tracepoint(tracepoint = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: RawTracePointContext) -> i32 {
    let offsets = offsets();
    let cgrp: *const u8 = ctx.arg(0);
    let parent_cgrp = read_field::<*const u8>(cgrp, offsets.cgroup_parent);
    let parent = parent_cgrp
        .and_then(|p| cgroup_id(p, &offsets))
        .unwrap_or(0);
    if let Some(id) = cgroup_id(cgrp, &offsets)
        && on_v2(cgrp)
        && !policy::has_entry(crate::process::subject_cgroup())
        && read_field::<i32>(cgrp, offsets.cgroup_level)
            .is_some_and(|l| l > 0 && l as u32 <= MAX_CONTAINER_LEVEL)
        && parent_cgrp.is_some_and(|p| policy::owner_of(p).is_none())
        && names_container(cgrp, &offsets)
        // A runtime creating a container's cgroup: a container whose metadata is pending
        // from now on, judged by every rule, not the host until the daemon reads this.
        && let Some(entry) = POLICY.get(0).map(|c| c.pending)
        && CGROUP_POLICY.insert(id, entry, 0).is_err()
    {
        count_lost(kind::CGROUP_UNTRACKED);
    }
    emit(&ctx, kind::CGROUP_MKDIR, parent)
}

/// Whether `cgrp`'s own name is a container's (`sensor_common::cgroup::names_container`).
#[inline(always)]
fn names_container(cgrp: *const u8, offsets: &sensor_common::offsets::KernelOffsets) -> bool {
    let Some(name) = read_field::<*const u8>(cgrp, offsets.cgroup_kn)
        .and_then(|kn| read_field::<*const u8>(kn, offsets.kernfs_node_name))
    else {
        return false;
    };
    let mut buf = [0u8; NAME_LEN];
    // SAFETY: the helper bounds the copy by the buffer and NUL-terminates.
    match unsafe { bpf_probe_read_kernel_str_bytes(name, &mut buf) } {
        Ok(bytes) => {
            let len = bytes.len();
            sensor_common::cgroup::names_container(&buf, len)
        }
        Err(_) => false,
    }
}

#[inline(always)]
fn on_v2(cgrp: *const u8) -> bool {
    crate::task::on_default_hierarchy(cgrp, &offsets())
}

#[raw_tracepoint(tracepoint = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: RawTracePointContext) -> i32 {
    emit(&ctx, kind::CGROUP_RMDIR, 0)
}

#[inline(always)]
fn emit(ctx: &RawTracePointContext, kind: u32, parent: u64) -> i32 {
    let offsets = offsets();
    let cgrp: *const u8 = ctx.arg(0);
    // cgroup v1 hierarchies fire the same tracepoints; only the default (v2) hierarchy, id 0,
    // gives the ids that bpf_get_current_cgroup_id() returns. Unknown layout: fail closed
    // (emit nothing), the daemon still resolves ids by walking the tree.
    let root: Option<*const u8> = read_field(cgrp, offsets.cgroup_root);
    match root.and_then(|r| read_field::<i32>(r, offsets.cgroup_root_hierarchy_id)) {
        Some(0) => {}
        _ => return 0,
    }
    let kn: Option<*const u8> = read_field(cgrp, offsets.cgroup_kn);
    let Some(id) = kn.and_then(|kn| read_field::<u64>(kn, offsets.kernfs_node_id)) else {
        return 0;
    };
    let Some(mut entry) = CONTROL.reserve::<CgroupEvent>(0) else {
        count_lost(kind);
        return 0;
    };
    // SAFETY: the reservation is exclusively ours until submit; all fields read by the decoder
    // are written (the path only up to path_len).
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut event.header,
        kind,
        core::mem::size_of::<CgroupEvent>(),
        &offsets,
    );
    event.id = id;
    event.level = read_field::<i32>(cgrp, offsets.cgroup_level).unwrap_or(0) as u32;
    event.flags = 0;
    event.parent = parent;
    event._pad = 0;
    let path: *const u8 = ctx.arg(1);
    // SAFETY: the helper bounds the copy by the slice length and NUL-terminates.
    event.path_len = match unsafe { bpf_probe_read_kernel_str_bytes(path, &mut event.path) } {
        Ok(bytes) => bytes.len() as u32,
        Err(_) => 0,
    };
    if event.path_len as usize >= PATH_LEN - 1 {
        event.flags |= FLAG_PATH_TRUNCATED;
    }
    submit_control(entry);
    0
}
