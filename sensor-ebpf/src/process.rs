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
    helpers::{bpf_get_current_pid_tgid, generated::bpf_send_signal},
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
        CONTROL, DOOMED, DOOMED_FILES, PROC_IDENTITY, PROCESS_RULESETS, RUNTIME_SETUP, count_lost,
        submit_control,
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

/// The cgroup whose policy judges the current process: its container's, else the one whose
/// entry judges its current cgroup (`policy::policy_owner`: host processes, and processes
/// that predate the sensor and its startup scan).
#[inline(always)]
pub fn subject_cgroup() -> u64 {
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    match unsafe { PROC_IDENTITY.get(current_tgid()) } {
        Some(identity) => identity.cgroup_id,
        None => crate::policy::policy_owner() as u64,
    }
}

/// `subject_cgroup`, for socket programs (`policy::policy_owner_sock`).
#[inline(always)]
pub fn subject_cgroup_sock() -> u64 {
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    match unsafe { PROC_IDENTITY.get(current_tgid()) } {
        Some(identity) => identity.cgroup_id,
        None => crate::policy::policy_owner_sock() as u64,
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
    if !crate::policy::has_entry(mover) {
        // The host decides where a process belongs: the runtime placing a container's init
        // or a `docker exec` process, an administrator, systemd. Into a container's
        // sub-cgroup, it is that container's.
        set_identity(tgid, crate::policy::owner_of(dst).unwrap_or(dst_id));
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
    let parent_cgroup = match identity {
        Some(i) => i.cgroup_id,
        None => crate::policy::policy_owner() as u64,
    };
    if parent_cgroup == child_cgroup {
        return 0;
    }
    let child_cgrp = read_field::<*const u8>(child, offsets.task_cgroups)
        .and_then(|cset| read_field::<*const u8>(cset, offsets.css_set_dfl_cgrp));
    if !crate::policy::has_entry(parent_cgroup) {
        let owner = child_cgrp.and_then(crate::policy::owner_of);
        set_identity(child_tgid, owner.unwrap_or(child_cgroup));
        let _ = RUNTIME_SETUP.insert(child_tgid, exe_inode(parent, &offsets), 0);
        return 0;
    }
    if identity.is_none() {
        set_identity(child_tgid, parent_cgroup);
    }
    if let Some(cgrp) = child_cgrp
        && !cgroup_within(cgrp, parent_cgroup, &offsets)
    {
        escape(child_tgid, parent_cgroup, child_cgroup, ESCAPE_CLONE);
    }
    0
}

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
    if crate::syscall::judge_elsewhere(
        crate::nr::UNSHARE as u32,
        &args,
        sensor_common::syscall::SEEN_AT_FORK,
    ) {
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
    // The macro drops a raw tracepoint program's return value: the answer goes in a map.
    if let Some(slot) = crate::maps::WHOAMI.get_ptr_mut(0) {
        // SAFETY: the map's only slot; the daemon reads it after this run.
        unsafe { *slot = current_tgid() };
    }
    0
}

/// The guard of the sensor's own objects, at a CAP_SYS_ADMIN check of a process of a
/// container (`capability::on_check`): `bpf(BPF_{PROG,MAP,BTF,LINK}_GET_FD_BY_ID)` of an id in
/// `SENSOR_OBJECTS` is refused (where `source` is the LSM hook) or its caller killed, and
/// reported (`kind::TAMPER`). The id is read from the caller's `bpf_attr`, which the kernel
/// copied before this check: a thread rewriting it in between is not seen. 32-bit calls are
/// translated (`current_call`). Global: verified once, on its own; 1 when refused.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn process_guard(cap: u64, syscall: u64, source: u64) -> i64 {
    use sensor_common::process::{
        OBJECT_BTF, OBJECT_LINK, OBJECT_MAP, OBJECT_PROG, RULE_GUARD, object_key,
    };
    if cap as u32 != crate::nr::CAP_SYS_ADMIN || syscall as i32 != crate::nr::BPF {
        return 0;
    }
    let args = crate::task::syscall_args(&offsets());
    // `cmd` is an `int`: the kernel reads the low 32 bits of the register.
    let object = match args[0] as u32 {
        13 => OBJECT_PROG,
        14 => OBJECT_MAP,
        19 => OBJECT_BTF,
        30 => OBJECT_LINK,
        _ => return 0,
    };
    let mut id = 0u32;
    // SAFETY: the helper reads user memory without faulting; 4 bytes into `id`.
    if unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            (&raw mut id).cast(),
            4,
            args[1] as *const core::ffi::c_void,
        )
    } != 0
    {
        return 0;
    }
    // SAFETY: a hash map lookup with a valid key.
    if unsafe { crate::maps::SENSOR_OBJECTS.get(object_key(object, id)) }.is_none() {
        return 0;
    }
    let lsm = source as u8 == sensor_common::capability::SOURCE_LSM;
    let mut verdict = Verdict {
        rule: RULE_GUARD,
        action: if lsm {
            ACTION_BLOCK
        } else {
            sensor_common::policy::ACTION_KILL
        },
        mode: 1,
        ..Verdict::default()
    };
    if lsm {
        verdict.enforced = sensor_common::policy::ENFORCED_LSM;
    } else if kill_current() {
        verdict.enforced = ENFORCED_SIGNAL;
    }
    emit_tamper(object, id, verdict);
    i64::from(lsm)
}

/// LSM hook `task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig, const
/// struct cred *cred)`: a process of a container signalling the sensor (it shares the host's
/// PID namespace) is refused with EPERM. `kill -0` (no signal) is let through.
#[aya_ebpf::macros::lsm(hook = "task_kill")]
pub fn guard_task_kill(ctx: aya_ebpf::programs::LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    let sig: i32 = ctx.arg(2);
    let previous: i32 = ctx.arg(4);
    if previous != 0 {
        return previous;
    }
    if sig == 0 {
        return 0;
    }
    guard_process(target, sensor_common::process::OBJECT_SIGNAL, sig as u32)
}

const PTRACE_MODE_ATTACH: u32 = 0x02;

/// LSM hook `ptrace_access_check(struct task_struct *child, unsigned int mode)`: a process of
/// a container attaching to the sensor — `ptrace`, opening `/proc/<pid>/mem`,
/// `process_vm_readv/writev`, `pidfd_getfd` — is refused with EPERM. Reads (`ps`) pass.
#[aya_ebpf::macros::lsm(hook = "ptrace_access_check")]
pub fn guard_ptrace(ctx: aya_ebpf::programs::LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    let mode: u32 = ctx.arg(1);
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    if mode & PTRACE_MODE_ATTACH == 0 {
        return 0;
    }
    guard_process(target, sensor_common::process::OBJECT_TRACE, mode)
}

/// LSM hook `bpf(int cmd, union bpf_attr *attr, unsigned int size, ...)`, before any
/// command runs: `BPF_{PROG,MAP,BTF,LINK}_GET_FD_BY_ID` of one of the sensor's objects by a
/// process of a container is refused. `attr` is the kernel's copy: a thread rewriting the
/// caller's memory after the copy changes nothing (the capability-check guard,
/// `process_guard`, reads the caller's memory and is what kernels without BPF LSM get).
#[aya_ebpf::macros::lsm(hook = "bpf")]
pub fn guard_bpf(ctx: aya_ebpf::programs::LsmContext) -> i32 {
    use sensor_common::process::{OBJECT_BTF, OBJECT_LINK, OBJECT_MAP, OBJECT_PROG};
    let cmd: i32 = ctx.arg(0);
    let attr: *const u8 = ctx.arg(1);
    let object = match cmd {
        13 => OBJECT_PROG,
        14 => OBJECT_MAP,
        19 => OBJECT_BTF,
        30 => OBJECT_LINK,
        _ => return 0,
    };
    // `prog_id`, `map_id`, `btf_id`, `link_id`: the first member of the command's struct.
    match crate::task::read_at::<u32>(attr) {
        Some(id) => guard_object(object, id),
        None => 0,
    }
}

/// LSM hook `bpf_map(struct bpf_map *map, fmode_t fmode)`: a new descriptor of `map`, by id
/// or by path (`BPF_OBJ_GET` of a pin under any bpffs mount). One of the sensor's maps is
/// refused to a process of a container.
#[aya_ebpf::macros::lsm(hook = "bpf_map")]
pub fn guard_bpf_map(ctx: aya_ebpf::programs::LsmContext) -> i32 {
    let map: *const u8 = ctx.arg(0);
    match read_field::<u32>(map, offsets().bpf_map_id) {
        Some(id) => guard_object(sensor_common::process::OBJECT_MAP, id),
        None => 0,
    }
}

/// LSM hook `bpf_prog(struct bpf_prog *prog)`: a new descriptor of `prog`, by id or by path.
#[aya_ebpf::macros::lsm(hook = "bpf_prog")]
pub fn guard_bpf_prog(ctx: aya_ebpf::programs::LsmContext) -> i32 {
    let offsets = offsets();
    let prog: *const u8 = ctx.arg(0);
    match read_field::<*const u8>(prog, offsets.bpf_prog_aux)
        .and_then(|aux| read_field::<u32>(aux, offsets.bpf_prog_aux_id))
    {
        Some(id) => guard_object(sensor_common::process::OBJECT_PROG, id),
        None => 0,
    }
}

/// The guard's answer for object `id` of kind `object` asked for by the current process:
/// EPERM, and a `kind::TAMPER` event, when it is one of the sensor's and the caller is of a
/// container (the sensor itself, and the host, may hold them).
#[inline(always)]
fn guard_object(object: u8, id: u32) -> i32 {
    let Some(config) = crate::maps::POLICY.get(0) else {
        return 0;
    };
    if current_tgid() == config.sensor_tgid || !crate::policy::has_entry(subject_cgroup()) {
        return 0;
    }
    // SAFETY: a hash map lookup with a valid key.
    if unsafe { crate::maps::SENSOR_OBJECTS.get(sensor_common::process::object_key(object, id)) }
        .is_none()
    {
        return 0;
    }
    emit_tamper(
        object,
        id,
        Verdict {
            rule: sensor_common::process::RULE_GUARD,
            action: ACTION_BLOCK,
            mode: 1,
            enforced: sensor_common::policy::ENFORCED_LSM,
            ..Verdict::default()
        },
    );
    -1
}

/// -EPERM (and a tamper event) when `target` is the sensor and the caller a process of a
/// container; 0 otherwise.
#[inline(always)]
fn guard_process(target: *const u8, object: u8, detail: u32) -> i32 {
    let Some(config) = crate::maps::POLICY.get(0) else {
        return 0;
    };
    let sensor = config.sensor_tgid;
    if sensor == 0 || read_field::<u32>(target, offsets().task_tgid) != Some(sensor) {
        return 0;
    }
    if !crate::policy::has_entry(subject_cgroup()) {
        return 0;
    }
    let verdict = Verdict {
        rule: sensor_common::process::RULE_GUARD,
        action: ACTION_BLOCK,
        mode: 1,
        enforced: sensor_common::policy::ENFORCED_LSM,
        ..Verdict::default()
    };
    emit_tamper(object, detail, verdict);
    -1
}

/// A `kind::TAMPER` event of the current process, on the control ring.
#[inline(always)]
fn emit_tamper(object: u8, id: u32, verdict: Verdict) {
    use sensor_common::process::TamperEvent;
    let Some(mut entry) = CONTROL.reserve::<TamperEvent>(0) else {
        count_lost(kind::TAMPER);
        return;
    };
    // SAFETY: the reservation is exclusively ours until submit; every field is written.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut event.header,
        kind::TAMPER,
        core::mem::size_of::<TamperEvent>(),
        &offsets(),
    );
    event.object = object;
    event._pad = [0; 3];
    event.id = id;
    event.verdict = verdict;
    submit_control(entry);
}
