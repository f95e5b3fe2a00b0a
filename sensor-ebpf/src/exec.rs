//! `sched_process_exec`: one event per successful execve, after the new image is in place and
//! before it runs any of its own code.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_probe_read_kernel_str_bytes,
        generated::{bpf_probe_read_user, bpf_send_signal},
    },
    macros::{lsm, raw_tracepoint},
    programs::{LsmContext, RawTracePointContext},
};
use aya_log_ebpf::warn;
use sensor_common::{
    exec::{
        ARGS_LEN, ExecEvent, FILENAME_LEN, FLAG_ARGS_TRUNCATED, FLAG_DRIFT,
        FLAG_FILENAME_TRUNCATED, FLAG_FILENAME_UNREADABLE, OVERLAYFS_SUPER_MAGIC,
    },
    kind,
    offsets::KernelOffsets,
    policy::{
        ACTION_AUDIT, ACTION_BLOCK, ACTION_KILL, ACTION_NONE, ENFORCED_LSM, ENFORCED_SIGNAL,
        EXEC_PATH_LEN, ExecValue, RULE_ALLOW_LIST, Verdict,
    },
};

use crate::{
    maps::{
        EVENTS, EXEC_PREFIX, EXEC_RULESETS, EXEC_SCRATCH, EXEC_SUFFIX, Urgency, count_lost, submit,
    },
    policy,
    task::{current_task, fill_header, offsets, read_field},
};

const SIGKILL: u32 = 9;

/// Fills the header and the file name of an exec event; returns the kernel pointer to the file
/// name when it could be read.
#[inline(always)]
fn fill(event: &mut ExecEvent, bprm: *const u8, offsets: &KernelOffsets) -> Option<*const u8> {
    fill_header(
        &mut event.header,
        kind::EXEC,
        core::mem::size_of::<ExecEvent>(),
        offsets,
    );
    event.flags = 0;
    event._pad = 0;
    event.args_len = 0;
    event.verdict = Verdict::default();
    event.filename_len = 0;
    let filename: Option<*const u8> = read_field(bprm, offsets.bprm_filename);
    match filename {
        // SAFETY: the helper bounds the copy by the slice length and NUL-terminates.
        Some(name) => match unsafe { bpf_probe_read_kernel_str_bytes(name, &mut event.filename) } {
            Ok(bytes) => {
                event.filename_len = bytes.len() as u32;
                if bytes.len() >= FILENAME_LEN - 1 {
                    event.flags |= FLAG_FILENAME_TRUNCATED;
                }
            }
            Err(_) => event.flags |= FLAG_FILENAME_UNREADABLE,
        },
        None => event.flags |= FLAG_FILENAME_UNREADABLE,
    }
    if drifted(bprm, offsets) {
        event.flags |= FLAG_DRIFT;
    }
    filename
}

/// Whether the executed file is on an overlayfs mount (a container's root) and has a copy in
/// its upper, writable layer: written or changed since the container started, not from the
/// image.
#[inline(always)]
fn drifted(bprm: *const u8, offsets: &KernelOffsets) -> bool {
    if offsets.ovl_upper_from_inode == 0 {
        return false;
    }
    let Some(inode) = read_field::<*const u8>(bprm, offsets.bprm_file)
        .and_then(|file| read_field::<*const u8>(file, offsets.file_inode))
    else {
        return false;
    };
    let magic = read_field::<*const u8>(inode, offsets.inode_sb)
        .and_then(|sb| read_field::<u64>(sb, offsets.sb_magic))
        .unwrap_or(0);
    // s_magic is an unsigned long; only its low 32 bits are the magic.
    if magic & 0xffff_ffff != OVERLAYFS_SUPER_MAGIC {
        return false;
    }
    read_field::<*const u8>(inode, offsets.ovl_upper_from_inode).is_some_and(|d| !d.is_null())
}

/// Raw tracepoint: `TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
/// Cheaper than the perf-event tracepoint and needs only `linux_binprm.filename`'s offset.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let tgid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        crate::process::setup_done(tgid);
        count_lost(kind::EXEC);
        return 0;
    };
    let offsets = offsets();
    // SAFETY: the reservation is `size_of::<ExecEvent>()` bytes, exclusively ours until submit;
    // every field the decoder reads is written below (the byte arrays only up to their lengths).
    let event = unsafe { &mut *entry.as_mut_ptr() };
    let filename = fill(event, ctx.arg(2), &offsets);
    // The runtime re-executing itself while it sets the container up (runc init from a
    // sealed copy of its binary) is not the container; the container's own code starts at the
    // next exec.
    if crate::process::in_runtime_setup(tgid) {
        let mut head = [0u8; 16];
        head.copy_from_slice(&event.filename[..16]);
        if runtime_reexec(&head) {
            submit(entry, Urgency::Batch);
            return 0;
        }
    }
    crate::process::setup_done(tgid);

    let mm: Option<*const u8> = read_field(current_task(), offsets.task_mm);
    if let Some(mm) = mm {
        let start: u64 = read_field(mm, offsets.mm_arg_start).unwrap_or(0);
        let end: u64 = read_field(mm, offsets.mm_arg_end).unwrap_or(0);
        if end > start {
            let mut len = end - start;
            if len > ARGS_LEN as u64 {
                len = ARGS_LEN as u64;
                event.flags |= FLAG_ARGS_TRUNCATED;
            }
            // SAFETY: `len` is at most ARGS_LEN, the size of the destination; the helper reads
            // user memory without faulting and reports an error instead.
            let ret = unsafe {
                bpf_probe_read_user(
                    event.args.as_mut_ptr().cast(),
                    len as u32,
                    start as *const core::ffi::c_void,
                )
            };
            if ret == 0 {
                event.args_len = len as u32;
            }
        }
    }
    let mut urgency = Urgency::Batch;
    if let (Some(active), Some(name)) = (policy::active(event.header.cgroup_id), filename) {
        let drift = event.flags & FLAG_DRIFT != 0;
        let verdict = evaluate(&ctx, active.ruleset, name, drift);
        let action = verdict.action;
        if action != ACTION_NONE {
            event.verdict = verdict;
            event.verdict.generation = active.generation;
            event.verdict.mode = u8::from(active.enforce);
            // `block` is refused earlier by bprm_check_security where BPF LSM runs; an exec
            // that got here anyway is killed: the new image dies before running any code.
            if active.enforce && action >= ACTION_BLOCK {
                // SAFETY: the helper signals the current task; no memory is involved.
                if unsafe { bpf_send_signal(SIGKILL) } == 0 {
                    event.verdict.enforced = ENFORCED_SIGNAL;
                }
            }
            urgency = Urgency::Now;
        }
    }
    submit(entry, urgency);
    0
}

/// LSM hook `bprm_check_security(struct linux_binprm *bprm)`, where the kernel allows BPF
/// LSM: an exec that a `block` rule denies fails with EPERM and the process goes on. The
/// exec never happens, so this hook reports it (`sched_process_exec` will not fire).
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    let bprm: *const u8 = ctx.arg(0);
    // Another LSM program already refused: keep its answer.
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    // SAFETY: the helper has no preconditions.
    let cgroup = unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() };
    let Some(active) = policy::active(cgroup) else {
        return 0;
    };
    if !active.enforce {
        return 0;
    }
    let offsets = offsets();
    let Some(name) = read_field::<*const u8>(bprm, offsets.bprm_filename) else {
        return 0;
    };
    let tgid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    if crate::process::in_runtime_setup(tgid) {
        let mut head = [0u8; 16];
        // SAFETY: the helper bounds the copy by the buffer and NUL-terminates.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(name, &mut head) };
        if runtime_reexec(&head) {
            return 0;
        }
    }
    let verdict = evaluate(&ctx, active.ruleset, name, drifted(bprm, &offsets));
    // `kill` is carried out at sched_process_exec; audit-only verdicts are reported there.
    if verdict.action != ACTION_BLOCK {
        return 0;
    }
    match EVENTS.reserve::<ExecEvent>(0) {
        Some(mut entry) => {
            // SAFETY: as in sched_process_exec.
            let event = unsafe { &mut *entry.as_mut_ptr() };
            fill(event, bprm, &offsets);
            event.verdict = verdict;
            event.verdict.generation = active.generation;
            event.verdict.mode = 1;
            event.verdict.enforced = ENFORCED_LSM;
            submit(entry, Urgency::Now);
        }
        None => count_lost(kind::EXEC),
    }
    -EPERM
}

const EPERM: i32 = 1;

/// An exec of the running binary itself: `/proc/self/exe` or an fd (`/dev/fd/N`, a sealed
/// memfd copy), as runc re-executes `runc init`. Compared as two words: no loop for the
/// verifier to walk.
#[inline(always)]
fn runtime_reexec(name: &[u8; 16]) -> bool {
    let word = |b: &[u8; 16], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let (first, second) = (word(name, 0), word(name, 8));
    // "/proc/self/exe\0": the second word's low 7 bytes are "lf/exe\0".
    let is_self = first == u64::from_le_bytes(*b"/proc/se")
        && second & 0x00ff_ffff_ffff_ffff == u64::from_le_bytes(*b"lf/exe\0\0");
    is_self || first == u64::from_le_bytes(*b"/dev/fd/")
}

/// The verdict of the exec rules of `ruleset` on the file `name`: deny patterns that match,
/// allow-lists that do not. Unreadable memory: no verdict (fail open; the event still reports
/// the exec). Written without data-dependent loops so that the verifier stays linear.
#[inline(always)]
fn evaluate<C: EbpfContext>(ctx: &C, ruleset: u32, name: *const u8, drift: bool) -> Verdict {
    let mut verdict = Verdict {
        ruleset,
        ..Verdict::default()
    };
    let Some(scratch) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return verdict;
    };
    // SAFETY: per-CPU scratch, exclusively ours for the duration of this program.
    let scratch = unsafe { &mut *scratch };
    scratch.forward.data.ruleset = ruleset;
    scratch.reverse.data.ruleset = ruleset;
    // SAFETY: the helper bounds the copy by the slice length and NUL-terminates.
    let len = match unsafe { bpf_probe_read_kernel_str_bytes(name, &mut scratch.forward.data.path) }
    {
        Ok(bytes) => bytes.len(),
        Err(_) => return verdict,
    };
    // The helper stops one byte short of the buffer: a path that filled it may be longer.
    if len >= EXEC_PATH_LEN - 1 {
        // Rare, and worth an operator's eye: path rules cannot match such an exec.
        warn!(
            ctx,
            "exec of a path of {} bytes or more is not matched against exec rules",
            EXEC_PATH_LEN - 1
        );
        return verdict;
    }
    // Exact patterns end with the NUL: match it too.
    scratch.forward.prefix_len = 32 + 8 * (len as u32 + 1);
    scratch.reverse.prefix_len = 32 + 8 * len as u32;
    // reverse[i] = forward[len - 1 - i] for every i, masked into the 256 bytes that follow
    // forward.path's start (all inside the scratch value): bytes past `len` are garbage that
    // prefix_len excludes from the match.
    let forward = scratch.forward.data.path.as_ptr();
    let reverse = scratch.reverse.data.path.as_mut_ptr();
    for i in 0..EXEC_PATH_LEN {
        let j = (len.wrapping_sub(1).wrapping_sub(i)) & 0xff;
        // SAFETY: j < 256 and forward.path is followed by the reverse key within the same
        // ExecScratch, so forward + j stays inside the scratch value; i < EXEC_PATH_LEN.
        unsafe { *reverse.add(i) = *forward.add(j) };
    }
    let none = ExecValue::default();
    let fwd = EXEC_PREFIX.get(&scratch.forward).copied().unwrap_or(none);
    let rev = EXEC_SUFFIX.get(&scratch.reverse).copied().unwrap_or(none);
    if fwd.deny_action >= rev.deny_action {
        verdict.action = fwd.deny_action;
        verdict.rule = fwd.deny_rule;
    } else {
        verdict.action = rev.deny_action;
        verdict.rule = rev.deny_rule;
    }
    // SAFETY: a hash map lookup with a valid key.
    if let Some(rs) = unsafe { EXEC_RULESETS.get(ruleset) } {
        let violated = rs.allow_required & !(fwd.allow_mask | rev.allow_mask);
        let allow_action = if violated & rs.allow_kill != 0 {
            ACTION_KILL
        } else if violated & rs.allow_block != 0 {
            ACTION_BLOCK
        } else if violated != 0 {
            ACTION_AUDIT
        } else {
            ACTION_NONE
        };
        verdict.allow_violated = violated;
        if allow_action > verdict.action {
            verdict.action = allow_action;
            verdict.rule = RULE_ALLOW_LIST;
        }
        if drift && rs.drift_action > verdict.action {
            verdict.action = rs.drift_action;
            verdict.rule = rs.drift_rule;
        }
    }
    verdict
}
