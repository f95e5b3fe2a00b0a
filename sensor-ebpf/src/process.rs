//! Which container a process belongs to, and which processes are still the runtime setting a
//! container up.
//!
//! **Identity.** A process's container is not its current cgroup: a process with a writable
//! cgroupfs can move itself anywhere. It is decided by the host — when a host process (the
//! runtime) places a task in a cgroup (`cgroup_attach_task`) or creates it there
//! (`clone3(CLONE_INTO_CGROUP)`, seen at fork) — and inherited at fork (`PROC_IDENTITY`). A
//! process of a container that places one of its processes outside its container's cgroup
//! subtree changes nothing of that process's policy, and the move is an `escape` event, judged
//! by the container's `escape` rules (under `kill`, the process that moved it dies).
//!
//! **Runtime setup.** A runtime (runc) places its init process in the container's cgroup and
//! lets it mount, pivot_root, set the hostname, drop capabilities — all with full privileges —
//! before it execs the container's entrypoint. Those are not the container's actions. A task
//! the host places is marked (`RUNTIME_SETUP`) with the inode of the binary it runs, and stays
//! marked through forks and through execs of that same binary or of an anonymous copy of it
//! (runc re-executes itself from a sealed memfd); any other exec, whatever its name, ends the
//! mark, and so does the process's exit.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, generated::bpf_send_signal},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{
    kind,
    policy::{ACTION_BLOCK, ACTION_NONE, ENFORCED_SIGNAL, Verdict},
    process::{ESCAPE_ATTACH, ESCAPE_CLONE, EscapeEvent, Identity},
};

use crate::{
    maps::{
        CGROUP_POLICY, CONTROL, DOOMED, DOOMED_FILES, PROC_IDENTITY, PROCESS_RULESETS,
        RUNTIME_SETUP, count_lost, submit_control,
    },
    policy,
    task::{
        cgroup_id, cgroup_within, current_task, exe_inode, fill_header, offsets,
        on_default_hierarchy, read_field, task_cgroup_id,
    },
};

const SIGKILL: u32 = 9;

/// The current process's thread-group id.
#[inline(always)]
pub fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// The cgroup whose policy judges the current process: its container's, else its current
/// cgroup (host processes, and processes that predate the sensor and its startup scan).
#[inline(always)]
pub fn subject_cgroup() -> u64 {
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    match unsafe { PROC_IDENTITY.get(current_tgid()) } {
        Some(identity) => identity.cgroup_id,
        // SAFETY: the helper has no preconditions.
        None => unsafe { bpf_get_current_cgroup_id() },
    }
}

#[inline(always)]
fn set_identity(tgid: u32, cgroup_id: u64) {
    if PROC_IDENTITY
        .insert(tgid, Identity { cgroup_id }, 0)
        .is_err()
    {
        count_lost(kind::IDENTITY_UNTRACKED);
    }
}

#[inline(always)]
fn is_container(cgroup_id: u64) -> bool {
    // SAFETY: a hash map lookup with a valid key.
    unsafe { CGROUP_POLICY.get(cgroup_id) }.is_some()
}

/// `cgroup_attach_task(struct cgroup *dst_cgrp, const char *path, struct task_struct *task,
/// bool threadgroup)`, after the move.
#[raw_tracepoint(tracepoint = "cgroup_attach_task")]
pub fn cgroup_attach_task(ctx: RawTracePointContext) -> i32 {
    let offsets = offsets();
    let dst: *const u8 = ctx.arg(0);
    // cgroup v1 hierarchies fire this too: only the v2 hierarchy gives the ids policy uses.
    if !on_default_hierarchy(dst, &offsets) {
        return 0;
    }
    let Some(dst_id) = cgroup_id(dst, &offsets) else {
        return 0;
    };
    let task: *const u8 = ctx.arg(2);
    let Some(tgid) = read_field::<u32>(task, offsets.task_tgid) else {
        return 0;
    };
    let mover = subject_cgroup();
    if !is_container(mover) {
        // The host decides where a process belongs: the runtime placing a container's init
        // or a `docker exec` process, an administrator, systemd.
        set_identity(tgid, dst_id);
        let _ = RUNTIME_SETUP.insert(tgid, exe_inode(task, &offsets), 0);
        return 0;
    }
    // A process of a container moved a process: it stays what it was.
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let container = match unsafe { PROC_IDENTITY.get(tgid) } {
        Some(identity) => identity.cgroup_id,
        None => {
            set_identity(tgid, mover);
            mover
        }
    };
    if !cgroup_within(dst, container, &offsets) {
        escape(tgid, container, dst_id, ESCAPE_ATTACH);
    }
    0
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`: the child is
/// of its parent's container, and a runtime's setup children are setup too (runc's init forks
/// before it execs). A child created in another cgroup than its parent's
/// (`clone3(CLONE_INTO_CGROUP)`) was placed there by its parent.
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
    // A new thread shares the tgid and the entries.
    if parent_tgid == child_tgid {
        return 0;
    }
    // SAFETY: hash map lookups with valid keys; the values are copied out at once.
    let identity = unsafe { PROC_IDENTITY.get(parent_tgid) }.copied();
    if let Some(identity) = identity {
        set_identity(child_tgid, identity.cgroup_id);
    }
    // SAFETY: as above.
    let setup = unsafe { RUNTIME_SETUP.get(parent_tgid) }.copied();
    if let Some(exe) = setup {
        let _ = RUNTIME_SETUP.insert(child_tgid, exe, 0);
    } else {
        new_namespaces(parent, child, child_tgid, &offsets);
    }
    let parent_cset: Option<*const u8> = read_field(parent, offsets.task_cgroups);
    let child_cset: Option<*const u8> = read_field(child, offsets.task_cgroups);
    if parent_cset == child_cset {
        return 0;
    }
    let Some(child_cgroup) = task_cgroup_id(child, &offsets) else {
        return 0;
    };
    // SAFETY: the helper has no preconditions.
    let parent_cgroup = identity.map_or(unsafe { bpf_get_current_cgroup_id() }, |i| i.cgroup_id);
    if parent_cgroup == child_cgroup {
        return 0;
    }
    if !is_container(parent_cgroup) {
        set_identity(child_tgid, child_cgroup);
        let _ = RUNTIME_SETUP.insert(child_tgid, exe_inode(parent, &offsets), 0);
        return 0;
    }
    if identity.is_none() {
        set_identity(child_tgid, parent_cgroup);
    }
    let child_cgrp = read_field::<*const u8>(child, offsets.task_cgroups)
        .and_then(|cset| read_field::<*const u8>(cset, offsets.css_set_dfl_cgrp));
    if let Some(cgrp) = child_cgrp
        && !cgroup_within(cgrp, parent_cgroup, &offsets)
    {
        escape(child_tgid, parent_cgroup, child_cgroup, ESCAPE_CLONE);
    }
    0
}

/// `unshare` on this architecture: a clone that creates namespaces is judged as it.
#[cfg(bpf_target_arch = "x86_64")]
const NR_UNSHARE: u32 = 272;
#[cfg(not(bpf_target_arch = "x86_64"))]
const NR_UNSHARE: u32 = 97;

/// A clone that created namespaces (`clone(CLONE_NEWNS | ...)`, `clone3`) did what `unshare`
/// does: judged by the rules naming `unshare`, for the calling process. Under `kill` the caller
/// dies here and the child at its first judged operation (it has run no code of its own yet,
/// but nothing here can signal it).
#[inline(always)]
fn new_namespaces(
    parent: *const u8,
    child: *const u8,
    child_tgid: u32,
    o: &sensor_common::offsets::KernelOffsets,
) {
    let ns = |t: *const u8| read_field::<*const u8>(t, o.task_nsproxy);
    let userns = |t: *const u8| {
        read_field::<*const u8>(t, o.task_real_cred)
            .and_then(|c| read_field::<*const u8>(c, o.cred_user_ns))
    };
    if ns(parent) == ns(child) && userns(parent) == userns(child) {
        return;
    }
    // The clone's flags, for the event: its first argument (clone) or the clone_args' first
    // field (clone3) are not read; the namespaces are what the kernel made.
    let args = [0u64; sensor_common::syscall::ARGS];
    if crate::syscall::judge_elsewhere(NR_UNSHARE, &args, sensor_common::syscall::SEEN_AT_FORK) {
        let _ = DOOMED.insert(child_tgid, 1, 0);
    }
}

/// `sched_process_exit(struct task_struct *p)`: when the last thread of a process exits, its
/// entries go (a later process with the same pid must not inherit them).
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let offsets = offsets();
    let task: *const u8 = ctx.arg(0);
    let live = read_field::<*const u8>(task, offsets.task_signal)
        .and_then(|signal| read_field::<i32>(signal, offsets.signal_live));
    // Unknown layout: leave the entries; RUNTIME_SETUP is LRU and PROC_IDENTITY entries are
    // replaced when the pid is placed or forked again.
    if live != Some(0) {
        return 0;
    }
    let Some(tgid) = read_field::<u32>(task, offsets.task_tgid) else {
        return 0;
    };
    let _ = PROC_IDENTITY.remove(tgid);
    let _ = RUNTIME_SETUP.remove(tgid);
    let _ = DOOMED.remove(tgid);
    0
}

/// Reports (and under `escape` rules enforces) process `moved` of container `from` landing in
/// cgroup `to`, outside its container. The current task is the process that did it.
#[inline(always)]
fn escape(moved: u32, from: u64, to: u64, via: u8) {
    let mut verdict = Verdict::default();
    if let Some(active) = policy::active(from)
        // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
        && let Some(rs) = unsafe { PROCESS_RULESETS.get(active.ruleset) }.copied()
        && rs.escape_action != ACTION_NONE
    {
        verdict.action = rs.escape_action;
        verdict.rule = rs.escape_rule;
        verdict.ruleset = active.ruleset;
        verdict.generation = active.generation;
        verdict.mode = u8::from(active.enforce);
        // The move has happened (this tracepoint comes after it): `block` and `kill` kill the
        // process that made it. The moved process keeps its container's policy either way.
        if active.enforce && rs.escape_action >= ACTION_BLOCK && kill_current() {
            verdict.enforced = ENFORCED_SIGNAL;
        }
    }
    let Some(mut entry) = CONTROL.reserve::<EscapeEvent>(0) else {
        count_lost(kind::ESCAPE);
        return;
    };
    // SAFETY: the reservation is exclusively ours until submit; every field is written.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut event.header,
        kind::ESCAPE,
        core::mem::size_of::<EscapeEvent>(),
        &offsets(),
    );
    event.moved_tgid = moved;
    event.via = via;
    event._pad = [0; 3];
    event.from_cgroup = from;
    event.to_cgroup = to;
    event.verdict = verdict;
    submit_control(entry);
}

/// Sends SIGKILL to the current process and returns whether it was sent. When the process
/// shares its file table with another process, that process gets whatever the killed call
/// obtained (a descriptor): the table is doomed too, and its users die at their next judged
/// operation (`doomed`).
#[inline(always)]
pub fn kill_current() -> bool {
    process_kill_current() != 0
}

/// `kill_current`, as a global function: verified once per program, not at every call site.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn process_kill_current() -> i64 {
    // SAFETY: the helper signals the current task; no memory is involved.
    if unsafe { bpf_send_signal(SIGKILL) } != 0 {
        return 0;
    }
    let o = offsets();
    let task = current_task();
    let files = read_field::<*const u8>(task, o.task_files);
    // `files_struct.count` is its first member: offset 0, which read_field takes for unknown.
    let users = files.and_then(|f| {
        crate::task::read_at::<i32>((f as usize + o.files_count as usize) as *const u8)
    });
    let threads = read_field::<*const u8>(task, o.task_signal)
        .and_then(|sig| read_field::<i32>(sig, o.signal_nr_threads));
    if let (Some(files), Some(users), Some(threads)) = (files, users, threads)
        && users > threads
    {
        let _ = DOOMED_FILES.insert(files as u64, 1, 0);
        // An exec gives its process a file table of its own (a copy): the parent sharing this
        // one, the usual way to set this up, is doomed by its pid as well.
        if let Some(parent) = read_field::<*const u8>(task, o.task_real_parent)
            && read_field::<*const u8>(parent, o.task_files) == Some(files)
            && let Some(ptgid) = read_field::<u32>(parent, o.task_tgid)
        {
            let _ = DOOMED.insert(ptgid, 1, 0);
        }
    }
    1
}

/// Kills the current process if it was doomed (`DOOMED`, `DOOMED_FILES`); true when it was.
#[inline(always)]
pub fn doomed() -> bool {
    let tgid = current_tgid();
    // SAFETY: hash map lookups with valid keys.
    let mut doomed = unsafe { DOOMED.get(tgid) }.is_some();
    if !doomed {
        let o = offsets();
        if let Some(files) = read_field::<*const u8>(current_task(), o.task_files) {
            // SAFETY: as above.
            doomed = unsafe { DOOMED_FILES.get(files as u64) }.is_some();
        }
    }
    if doomed {
        // SAFETY: the helper signals the current task; no memory is involved.
        unsafe { bpf_send_signal(SIGKILL) };
    }
    doomed
}

/// At an exec by a process in runtime setup: whether it is still the runtime — it executes
/// the binary it ran when the host placed it (`/proc/self/exe`), or an anonymous copy
/// (`anonymous`: a sealed memfd, as runc re-executes itself). Any other file ends the setup
/// mark, whatever name it was executed by.
#[inline(always)]
pub fn still_runtime(tgid: u32, file_inode: u64, anonymous: bool) -> bool {
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    match unsafe { RUNTIME_SETUP.get(tgid) }.copied() {
        Some(exe) if file_inode != 0 && (exe == file_inode || anonymous) => {
            let _ = RUNTIME_SETUP.insert(tgid, file_inode, 0);
            true
        }
        Some(_) => {
            let _ = RUNTIME_SETUP.remove(tgid);
            false
        }
        None => false,
    }
}

/// Whether the current process is a runtime still setting up a container.
#[inline(always)]
pub fn in_runtime_setup(tgid: u32) -> bool {
    // SAFETY: a hash map lookup with a valid key.
    unsafe { RUNTIME_SETUP.get(tgid) }.is_some()
}

/// Run once by the daemon through `BPF_PROG_TEST_RUN`, in its own context: returns its
/// thread-group id as the kernel knows it, which is what the programs compare with to exempt
/// the sensor (its pid in its own PID namespace may be anything).
#[raw_tracepoint(tracepoint = "sensor_whoami")]
pub fn sensor_whoami(_ctx: RawTracePointContext) -> i32 {
    let _ = current_task();
    current_tgid() as i32
}
