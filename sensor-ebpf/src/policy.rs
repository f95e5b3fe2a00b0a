//! Reading the installed policy: which ruleset applies to the current task, and in which mode.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_pid_tgid,
    generated::bpf_get_current_ancestor_cgroup_id,
};
use sensor_common::{
    cgroup::MAX_CONTAINER_LEVEL,
    offsets::KernelOffsets,
    policy::{MODE_ENFORCE, NO_RULESET},
};

use crate::{
    maps::{CGROUP_POLICY, POLICY},
    task::{cgroup_id, read_field},
};

/// Whether cgroup `id` has an entry: it is a container's own cgroup (or one the kernel took
/// for one at its creation).
#[inline(always)]
pub fn has_entry(id: u64) -> bool {
    // SAFETY: a hash map lookup with a valid key.
    unsafe { CGROUP_POLICY.get(id) }.is_some()
}

/// The cgroup whose entry judges the current task's cgroup: that cgroup when it has an entry,
/// else its outermost ancestor that has one (down to `MAX_CONTAINER_LEVEL`), else the cgroup
/// itself, the host's. A container's sub-cgroups have no entry of their own, so a container
/// that makes cgroups fills no map. For tracing and LSM programs, which read the cgroup's
/// ancestors from kernel memory (`bpf_get_current_ancestor_cgroup_id` is not theirs on every
/// supported kernel). Global (verified once, on its own).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn policy_owner() -> i64 {
    // SAFETY: the helper has no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    if has_entry(id) || is_sensor() {
        return id as i64;
    }
    let offsets = crate::task::offsets();
    let cgrp = read_field::<*const u8>(crate::task::current_task(), offsets.task_cgroups)
        .and_then(|cset| read_field::<*const u8>(cset, offsets.css_set_dfl_cgrp));
    match cgrp.and_then(|c| ancestor_owner(c, &offsets)) {
        Some(owner) => owner as i64,
        None => id as i64,
    }
}

/// `policy_owner`, for socket programs (`cgroup/sock_create`, `cgroup/connect*`,
/// `cgroup/sendmsg*`), which cannot read kernel memory but have had
/// `bpf_get_current_ancestor_cgroup_id` since 5.7. Global.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn policy_owner_sock() -> i64 {
    // SAFETY: the helpers have no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    if has_entry(id) || is_sensor() {
        return id as i64;
    }
    // SAFETY: as above; 0 past the task's own level.
    outermost_with_entry(id, |level| unsafe {
        bpf_get_current_ancestor_cgroup_id(level as i32)
    })
    .unwrap_or(id) as i64
}

/// The outermost ancestor of cgroup `id` with an entry, where `ancestor(level)` is its
/// ancestor at `level` (1..=`MAX_CONTAINER_LEVEL`, root's children at 1): 0, or `id` itself,
/// once past its parent's level. Every way of finding a cgroup's owner walks through here.
#[inline(always)]
pub fn outermost_with_entry(id: u64, ancestor: impl Fn(u32) -> u64) -> Option<u64> {
    for level in 1..=MAX_CONTAINER_LEVEL {
        let at = ancestor(level);
        if at == 0 || at == id {
            break;
        }
        if has_entry(at) {
            return Some(at);
        }
    }
    None
}

/// Whether the current task is the sensor's (never judged: its own many `bpf()` calls at a
/// load need no walk).
#[inline(always)]
fn is_sensor() -> bool {
    POLICY
        .get(0)
        .is_some_and(|c| (bpf_get_current_pid_tgid() >> 32) as u32 == c.sensor_tgid)
}

/// The cgroup whose entry judges cgroup `cgrp` (a `struct cgroup *`): `cgrp` when it has an
/// entry, else its outermost ancestor with one (down to `MAX_CONTAINER_LEVEL`); `None` for
/// the host's.
#[inline(always)]
pub fn owner_of(cgrp: *const u8) -> Option<u64> {
    match policy_owner_of(cgrp as u64) {
        0 => None,
        owner => Some(owner as u64),
    }
}

/// `owner_of`, as a global function (verified once, on its own): 0 for the host's.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn policy_owner_of(cgrp: u64) -> i64 {
    let cgrp = cgrp as *const u8;
    let offsets = crate::task::offsets();
    let Some(id) = cgroup_id(cgrp, &offsets) else {
        return 0;
    };
    if has_entry(id) {
        return id as i64;
    }
    ancestor_owner(cgrp, &offsets).map_or(0, |o| o as i64)
}

/// The outermost ancestor of `cgrp` above it with an entry, down to `MAX_CONTAINER_LEVEL`,
/// from its ancestor array (whatever its depth, the walk is as long as the deepest level a
/// container's own cgroup can be at).
#[inline(always)]
fn ancestor_owner(cgrp: *const u8, offsets: &KernelOffsets) -> Option<u64> {
    let level = read_field::<i32>(cgrp, offsets.cgroup_level)?;
    if offsets.cgroup_ancestors == 0 {
        return None;
    }
    outermost_with_entry(0, |at| {
        if at as i32 >= level {
            return 0;
        }
        // Ids before 6.1, pointers since.
        let slot = read_field::<u64>(cgrp, offsets.cgroup_ancestors + at * 8);
        let ancestor = if offsets.cgroup_ancestor_ids != 0 {
            slot
        } else {
            slot.and_then(|a| cgroup_id(a as *const u8, offsets))
        };
        ancestor.unwrap_or(0)
    })
}

/// The active policy for one event.
#[derive(Clone, Copy)]
pub struct Active {
    pub ruleset: u32,
    pub generation: u8,
    pub enforce: bool,
}

impl Active {
    /// As one scalar, for global functions (which take scalars only); 0 is `None`.
    #[inline(always)]
    pub fn pack(active: Option<Active>) -> u64 {
        match active {
            Some(a) => {
                1 << 63
                    | u64::from(a.enforce) << 40
                    | u64::from(a.generation) << 32
                    | u64::from(a.ruleset)
            }
            None => 0,
        }
    }

    #[inline(always)]
    pub fn unpack(packed: u64) -> Option<Active> {
        (packed >> 63 != 0).then_some(Active {
            ruleset: packed as u32,
            generation: (packed >> 32) as u8 & 1,
            enforce: (packed >> 40) & 1 != 0,
        })
    }
}

/// The ruleset of cgroup `cgroup_id` under the active generation. Container cgroups have an
/// entry (possibly NO_RULESET); any other cgroup is the host's. `None` when nothing applies,
/// and always for the sensor itself.
#[inline(always)]
pub fn active(cgroup_id: u64) -> Option<Active> {
    let config = POLICY.get(0)?;
    if (bpf_get_current_pid_tgid() >> 32) as u32 == config.sensor_tgid {
        return None;
    }
    let generation = (config.generation & 1) as usize;
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let ruleset = match unsafe { CGROUP_POLICY.get(cgroup_id) } {
        Some(p) => p.ruleset[generation],
        None => config.host_ruleset[generation],
    };
    if ruleset == NO_RULESET {
        return None;
    }
    Some(Active {
        ruleset,
        generation: generation as u8,
        enforce: config.mode == MODE_ENFORCE,
    })
}
