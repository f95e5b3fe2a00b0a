//! Syscall rules. `sys_enter` is attached to `syscalls:sys_enter_<name>` of each syscall a
//! rule names, and only those: a syscall no rule names never runs a program. It reports the
//! call with its arguments and, under `kill`, signals SIGKILL at entry. Where BPF LSM runs,
//! the LSM hooks below refuse the calls a `block` (or `kill`) verdict covers with EPERM; the
//! `sys_enter` program knows which (`SYSCALL_LSM`) and does not kill those under `block`.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, bpf_probe_read_user_str_bytes},
    macros::{lsm, raw_tracepoint, tracepoint},
    programs::{LsmContext, RawTracePointContext, TracePointContext},
};
use sensor_common::{
    kind,
    policy::{ACTION_BLOCK, ACTION_NONE, ENFORCED_LSM, ENFORCED_SIGNAL, Verdict},
    syscall::{
        ARGS, LSM_REFUSES_ALL, LSM_REFUSES_PTRACE_ATTACH, NR_MAX, SAME_CALL_NS, SEEN_AT_CAPABILITY,
        SEEN_AT_ENTRY, SEEN_AT_LSM, STRINGS, SeenCall, SysCountKey, SysKey, SysValue, SyscallEvent,
    },
};

use crate::{
    maps::{
        EVENTS, SYSCALL_AT_CAPABILITY, SYSCALL_COUNTS, SYSCALL_LSM, SYSCALL_RULES, SYSCALL_SEEN,
        Urgency, count_lost, submit,
    },
    policy,
    task::{current_call, fill_header, in_compat_syscall, native_of_compat, offsets, syscall_args},
};

const EPERM: i32 = 1;

const PTRACE_TRACEME: u64 = 0;
const PTRACE_ATTACH: u64 = 16;
const PTRACE_SEIZE: u64 = 0x4206;

/// Offsets in a `syscalls:sys_enter_*` record: `int __syscall_nr` after the 8-byte common
/// header, then the arguments as `unsigned long`.
const NR_OFFSET: usize = 8;
const ARGS_OFFSET: usize = 16;

/// The rule a syscall falls under for the current task: `None` for host processes without host
/// rules, the runtime setting a container up (runc mounts and pivots before the container's
/// code runs), and syscalls no rule of its ruleset names.
#[inline(always)]
fn rule_for(nr: u32) -> Option<(policy::Active, SysValue)> {
    let cgroup_id = crate::process::subject_cgroup();
    let active = policy::active(cgroup_id)?;
    if crate::process::in_runtime_setup((bpf_get_current_pid_tgid() >> 32) as u32) {
        return None;
    }
    if crate::process::doomed() {
        return None;
    }
    rule_in(active, nr)
}

/// What ruleset `active` says of syscall `nr`, when a rule names it.
#[inline(always)]
fn rule_in(active: policy::Active, nr: u32) -> Option<(policy::Active, SysValue)> {
    if nr >= NR_MAX {
        return None;
    }
    let key = SysKey {
        ruleset: active.ruleset,
        nr,
    };
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let value = *unsafe { SYSCALL_RULES.get(key) }?;
    (value.action != ACTION_NONE).then_some((active, value))
}

#[tracepoint]
pub fn sys_enter(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets inside every sys_enter record (see NR_OFFSET).
    let Ok(nr) = (unsafe { ctx.read_at::<i32>(NR_OFFSET) }) else {
        return 0;
    };
    let Some(rule) = rule_for(nr as u32) else {
        return 0;
    };
    let mut args = [0u64; ARGS];
    for (i, arg) in args.iter_mut().enumerate() {
        // SAFETY: the record holds ARGS arguments after ARGS_OFFSET.
        *arg = unsafe { ctx.read_at::<u64>(ARGS_OFFSET + 8 * i) }.unwrap_or(0);
    }
    judge_at_entry(nr as u32, rule, &args, false);
    0
}

/// `raw_syscalls:sys_enter(struct pt_regs *regs, long id)`, attached while any rule is judged
/// at syscall entry: 32-bit (`int 0x80`) calls never reach the `syscalls:sys_enter_<name>`
/// tracepoints, so they are judged here, translated to the native syscall they do. A native
/// call leaves at once (its own tracepoint judges it).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn compat_sys_enter(ctx: RawTracePointContext) -> i32 {
    let offsets = offsets();
    if !in_compat_syscall(&offsets) {
        return 0;
    }
    let id = ctx.arg::<u64>(1);
    if id >= u64::from(NR_MAX) {
        return 0;
    }
    let nr = native_of_compat(id as u32);
    // Privileged syscalls are judged at their capability check, 32-bit or not.
    if SYSCALL_AT_CAPABILITY.get(nr).copied().unwrap_or(0) != 0 {
        return 0;
    }
    let Some(rule) = rule_for(nr) else {
        return 0;
    };
    let args = syscall_args(&offsets);
    judge_at_entry(nr, rule, &args, true);
    0
}

/// Judges syscall `nr` done some other way than by its own entry: an io_uring request, a ring's
/// creation, a namespace-creating clone. Killed there under `block` and `kill`.
#[inline(always)]
pub fn judge_elsewhere(nr: u32, args: &[u64; ARGS], seen_at: u8) -> bool {
    let Some((active, value)) = rule_for(nr) else {
        return false;
    };
    let verdict = enforce(&active, &value, false);
    record(nr, args, &value, verdict, seen_at, false);
    verdict.enforced == ENFORCED_SIGNAL
}

/// The verdict on a call judged at its entry; killed there under `kill` (and under `block`
/// when no LSM hook refuses it).
#[inline(always)]
fn judge_at_entry(
    nr: u32,
    (active, value): (policy::Active, SysValue),
    args: &[u64; ARGS],
    compat: bool,
) {
    let refused_by_lsm = match SYSCALL_LSM.get(nr).copied().unwrap_or(0) {
        LSM_REFUSES_ALL => true,
        LSM_REFUSES_PTRACE_ATTACH => {
            matches!(args[0], PTRACE_TRACEME | PTRACE_ATTACH | PTRACE_SEIZE)
        }
        _ => false,
    };
    let verdict = enforce(&active, &value, refused_by_lsm);
    record(nr, args, &value, verdict, SEEN_AT_ENTRY, compat);
}

/// Counts a judged call: the first of its (container, syscall, verdict, where) is an event,
/// the others are counted for the daemon's summaries. A call killed by the kernel is always
/// an event of its own.
#[inline(always)]
fn record(
    nr: u32,
    args: &[u64; ARGS],
    value: &SysValue,
    verdict: Verdict,
    seen_at: u8,
    compat: bool,
) {
    if verdict.enforced == ENFORCED_SIGNAL {
        emit(nr, args, value, verdict, seen_at, compat);
        return;
    }
    if count(nr, verdict, seen_at, compat) {
        emit(nr, args, value, verdict, seen_at, compat);
    }
}

/// Adds one to the call's counter; true when it is the first (an event is due).
#[inline(always)]
fn count(nr: u32, verdict: Verdict, seen_at: u8, compat: bool) -> bool {
    let key = SysCountKey {
        cgroup_id: crate::process::subject_cgroup(),
        nr,
        rule: verdict.rule,
        ruleset: verdict.ruleset,
        action: verdict.action,
        enforced: verdict.enforced,
        seen_at,
        compat: u8::from(compat),
        generation: verdict.generation,
        mode: verdict.mode,
        _pad: [0; 6],
    };
    match SYSCALL_COUNTS.get_ptr_mut(key) {
        Some(n) => {
            // SAFETY: this CPU's slot of a per-CPU value; no other program touches it now.
            unsafe { *n += 1 };
            false
        }
        None => {
            if SYSCALL_COUNTS.insert(key, 1, 0).is_err() {
                // Full: this call cannot be counted, so it is reported on its own.
                count_lost(kind::SYSCALL_UNAGGREGATED);
            }
            true
        }
    }
}

/// Privileged syscalls (mount, setns, init_module, ...) check a capability before they do
/// anything, so their rules are judged at that check, from the capability programs: no
/// tracepoint is attached for them and no other syscall pays anything. `lsm`: the check is
/// seen by `lsm/capable`, which refuses it (the syscall fails with EPERM) under `block`.
/// `active`: the task's policy, as the capability program already found it (host processes
/// without rules and the runtime's setup never get here). `enforcing`: false for a source
/// that only reports. Returns the LSM answer.
#[inline(always)]
pub fn at_capability_check(
    syscall: i32,
    active: Option<policy::Active>,
    lsm: bool,
    enforcing: bool,
) -> i32 {
    if syscall < 0
        || SYSCALL_AT_CAPABILITY
            .get(syscall as u32)
            .copied()
            .unwrap_or(0)
            == 0
    {
        return 0;
    }
    let Some(rule) = active.and_then(|a| rule_in(a, syscall as u32)) else {
        return 0;
    };
    judge_in_call(syscall as u32, rule, lsm, enforcing, SEEN_AT_CAPABILITY)
}

/// Judges syscall `nr` from inside the call (a capability check or an LSM hook), once per
/// call: the call's later checks only enforce. Under `block` and `kill`, an LSM caller
/// (`lsm`) refuses with EPERM. Returns the LSM answer.
#[inline(always)]
fn judge_in_call(
    nr: u32,
    (active, value): (policy::Active, SysValue),
    lsm: bool,
    enforcing: bool,
    seen_at: u8,
) -> i32 {
    let verdict = if enforcing {
        enforce(&active, &value, lsm)
    } else {
        unenforced(&active, &value)
    };
    let answer = if enforcing && lsm && active.enforce && value.action >= ACTION_BLOCK {
        -EPERM
    } else {
        0
    };
    let (_, compat) = current_call(&offsets());
    let args = syscall_args(&offsets());
    if verdict.enforced != ENFORCED_SIGNAL {
        record(nr, &args, &value, verdict, seen_at, compat);
        return answer;
    }
    // A kill: one line per call. The call's later checks (setns checks twice) are counted.
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let thread = bpf_get_current_pid_tgid();
    // SAFETY: an LRU hash lookup with a valid key; the value is copied out at once.
    if let Some(seen) = unsafe { SYSCALL_SEEN.get(thread) }.copied()
        && seen.nr == nr
        && now.wrapping_sub(seen.ktime_ns) < SAME_CALL_NS
    {
        count(nr, verdict, seen_at, compat);
        return answer;
    }
    let seen = SeenCall {
        nr,
        _pad: 0,
        ktime_ns: now,
    };
    let _ = SYSCALL_SEEN.insert(thread, seen, 0);
    emit(nr, &args, &value, verdict, seen_at, compat);
    answer
}

/// The verdict, not carried out.
#[inline(always)]
fn unenforced(active: &policy::Active, value: &SysValue) -> Verdict {
    Verdict {
        rule: value.rule,
        ruleset: active.ruleset,
        action: value.action,
        generation: active.generation,
        mode: u8::from(active.enforce),
        ..Verdict::default()
    }
}

/// The verdict, carried out: `block` is left to an LSM hook when `lsm_refuses`, else (and
/// for `kill`) SIGKILL now. The process dies on its way back to user space: the call itself
/// still runs unless an LSM hook refuses it.
#[inline(always)]
fn enforce(active: &policy::Active, value: &SysValue, lsm_refuses: bool) -> Verdict {
    let mut verdict = unenforced(active, value);
    if active.enforce && value.action >= ACTION_BLOCK {
        if value.action == ACTION_BLOCK && lsm_refuses {
            verdict.enforced = ENFORCED_LSM;
        } else {
            if crate::process::kill_current() {
                verdict.enforced = ENFORCED_SIGNAL;
            }
        }
    }
    verdict
}

#[inline(always)]
fn emit(
    nr: u32,
    args: &[u64; ARGS],
    value: &SysValue,
    verdict: Verdict,
    seen_at: u8,
    compat: bool,
) {
    let Some(mut entry) = EVENTS.reserve::<SyscallEvent>(0) else {
        count_lost(kind::SYSCALL);
        return;
    };
    // SAFETY: the reservation is exclusively ours until submit; every field the decoder reads
    // is written (the strings only where `strings_read` says so).
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut event.header,
        kind::SYSCALL,
        core::mem::size_of::<SyscallEvent>(),
        &offsets(),
    );
    event.nr = nr;
    event.args = *args;
    event.seen_at = seen_at;
    event.compat = u8::from(compat);
    event._pad = 0;
    event.verdict = verdict;
    event.strings_read = 0;
    for (i, &arg) in args.iter().enumerate().take(STRINGS) {
        if value.strings & (1 << i) != 0 && arg != 0 {
            // SAFETY: the helper reads user memory without faulting, bounded by the slice.
            let read =
                unsafe { bpf_probe_read_user_str_bytes(arg as *const u8, &mut event.strings[i]) };
            if read.is_ok() {
                event.strings_read |= 1 << i;
            }
        }
    }
    submit(entry, Urgency::Now);
}

/// The LSM answer for the syscall in progress: EPERM when the task's rules `block` or `kill`
/// it. The hooks below are reached from the syscalls `SYSCALL_LSM` marks (and, for
/// `ptrace_access_check`, from /proc reads, whose syscalls rules do not block through here
/// unless they name them).
#[inline(always)]
fn refuse() -> i32 {
    let (nr, _) = current_call(&offsets());
    if nr < 0 {
        return 0;
    }
    // A privileged syscall has no entry tracepoint: its event is emitted here (the hook comes
    // before its capability check: mount's sb_mount before may_mount).
    if SYSCALL_AT_CAPABILITY.get(nr as u32).copied().unwrap_or(0) != 0 {
        return match rule_for(nr as u32) {
            Some(rule) => judge_in_call(nr as u32, rule, true, true, SEEN_AT_LSM),
            None => 0,
        };
    }
    match rule_for(nr as u32) {
        Some((active, value)) if active.enforce && value.action >= ACTION_BLOCK => -EPERM,
        _ => 0,
    }
}

// A BPF LSM program is only run while the ones before it answered 0 (the trampoline skips the
// rest after a refusal), so these need not read the previous answer.

/// `sb_mount(dev_name, path, type, flags, data)`: mount(2).
#[lsm(hook = "sb_mount")]
pub fn sb_mount(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `sb_umount(mnt, flags)`: umount2(2).
#[lsm(hook = "sb_umount")]
pub fn sb_umount(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `sb_pivotroot(old_path, new_path)`: pivot_root(2).
#[lsm(hook = "sb_pivotroot")]
pub fn sb_pivotroot(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `ptrace_access_check(child, mode)`: ptrace(2) PTRACE_ATTACH and PTRACE_SEIZE.
#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `ptrace_traceme(parent)`: ptrace(2) PTRACE_TRACEME.
#[lsm(hook = "ptrace_traceme")]
pub fn ptrace_traceme(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `bpf(cmd, attr, size[, kernel])`: bpf(2).
#[lsm(hook = "bpf")]
pub fn bpf(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `kernel_load_data(id, contents)`: init_module(2), kexec_load(2).
#[lsm(hook = "kernel_load_data")]
pub fn kernel_load_data(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `kernel_read_file(file, id, contents)`: finit_module(2), kexec_file_load(2).
#[lsm(hook = "kernel_read_file")]
pub fn kernel_read_file(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `perf_event_open(attr, type)`: perf_event_open(2).
#[lsm(hook = "perf_event_open")]
pub fn perf_event_open(_ctx: LsmContext) -> i32 {
    refuse()
}

/// `path_chroot(path)`: chroot(2) (kernels built with CONFIG_SECURITY_PATH).
#[lsm(hook = "path_chroot")]
pub fn path_chroot(_ctx: LsmContext) -> i32 {
    refuse()
}
