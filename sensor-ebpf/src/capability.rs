//! Capability checks: `lsm/capable` where BPF LSM runs (sees the kernel's no-audit option and
//! can refuse with EPERM); elsewhere `fexit/security_capable` (sees the option and the answer)
//! or, where trampolines are refused too, the `capability:cap_capable` tracepoint. The second
//! source also reports refused checks under LSM (the capability LSM refuses before the BPF
//! LSM hook is called).
//!
//! Every check of a container is counted per (cgroup, capability, syscall, granted, quiet) in
//! `CAP_SEEN`; the first of each is an event, an enforced violation always is.

use aya_ebpf::{
    EbpfContext,
    macros::{fexit, lsm, raw_tracepoint},
    programs::{FExitContext, LsmContext, RawTracePointContext},
};
use sensor_common::{
    capability::{
        CAP_MAX, CAP_OPT_NOAUDIT, CapConfig, CapKey, CapabilityEvent, SOURCE_FEXIT, SOURCE_LSM,
        SOURCE_TRACEPOINT,
    },
    kind,
    policy::{
        ACTION_AUDIT, ACTION_BLOCK, ACTION_KILL, ACTION_NONE, ENFORCED_LSM, ENFORCED_SIGNAL,
        Verdict,
    },
};

use crate::{
    maps::{CAP_RULESETS, CAP_SEEN, EVENTS, Urgency, count_lost, submit},
    policy,
    task::{current_syscall, current_task, fill_header, offsets, read_field},
};

/// Which checks the tracepoint and fexit programs report (set by the loader).
#[unsafe(no_mangle)]
static CAP_CONFIG: CapConfig = CapConfig { refused_only: 0 };

use crate::nr::{CAP_SYS_ADMIN, CAP_SYS_PTRACE, IO_URING_ENTER};
const EPERM: i32 = 1;

// x86_64 syscall numbers whose CAP_SYS_ADMIN checks are asked with CAP_OPT_NOAUDIT, which the
// tracepoint cannot see: memory accounting (`cap_vm_enough_memory` in mmap, mprotect, brk,
// mremap, clone, fork, vfork, execve, execveat, clone3) and seccomp's own check.
#[cfg(bpf_target_arch = "x86_64")]
const VM_ACCOUNTING: [i32; 11] = [9, 10, 12, 25, 56, 57, 58, 59, 322, 435, 317];
// aarch64: mmap, mprotect, brk, mremap, clone, execve, execveat, clone3, seccomp.
#[cfg(not(bpf_target_arch = "x86_64"))]
const VM_ACCOUNTING: [i32; 11] = [222, 226, 214, 216, 220, 221, 281, 435, 277, -2, -2];

// read, pread64, readv, preadv, preadv2: reading /proc/<pid>/stat of another user's process
// (`ps`, `top`) asks CAP_SYS_PTRACE with CAP_OPT_NOAUDIT to decide whether to show addresses.
#[cfg(bpf_target_arch = "x86_64")]
const PROC_READS: [i32; 5] = [0, 17, 19, 295, 327];
#[cfg(not(bpf_target_arch = "x86_64"))]
const PROC_READS: [i32; 5] = [63, 67, 65, 69, 286];

/// The tracepoint's stand-in for CAP_OPT_NOAUDIT: CAP_SYS_ADMIN asked during a syscall that
/// accounts memory (mmap, brk, mremap, mprotect, fork/clone, execve) or outside any syscall
/// (a page fault growing the stack), CAP_SYS_PTRACE asked during a read, CAP_NET_ADMIN asked
/// during a syscall that cannot configure networking (reading `/proc/sys/net/*` asks it: a Go
/// program reads `somaxconn` before it listens, `cat` sends it with sendfile). Other no-audit
/// checks are not recognised on this path.
#[inline(always)]
fn quiet_by_heuristic(cap: u32, syscall: i32) -> bool {
    let mut quiet = false;
    if cap == CAP_SYS_ADMIN {
        quiet = syscall < 0;
        for nr in VM_ACCOUNTING {
            quiet |= nr == syscall;
        }
    } else if cap == CAP_SYS_PTRACE {
        for nr in PROC_READS {
            quiet |= nr == syscall;
        }
    } else if cap == crate::nr::CAP_NET_ADMIN {
        // A use only where networking is configured, or where the syscall is not known.
        let mut configures = syscall < 0
            || syscall == IO_URING_ENTER
            || syscall as u32 == sensor_common::syscall::NR_COMPAT_ONLY;
        for nr in crate::nr::NET_CONFIG {
            configures |= nr == syscall;
        }
        quiet = !configures;
    }
    quiet
}

/// Checks made with credentials other than the task's own (`override_creds`: overlayfs acting
/// as its mounter, `access()` testing the real ids) are not the task using its privilege. An
/// io_uring request is: it runs under credentials the process registered with the ring (a
/// personality), which may hold what the process has since dropped — its checks are the
/// process's own uses.
#[inline(always)]
fn borrowed_creds(cred: *const u8) -> bool {
    let offsets = offsets();
    let real = match read_field::<*const u8>(current_task(), offsets.task_real_cred) {
        Some(real) => real,
        None => return false,
    };
    real != cred && !in_io_uring(&offsets)
}

/// An io_uring worker thread, or a request issued inline by `io_uring_enter`.
#[inline(always)]
fn in_io_uring(offsets: &sensor_common::offsets::KernelOffsets) -> bool {
    let worker = read_field::<u32>(current_task(), offsets.task_flags)
        .is_some_and(|f| f & sensor_common::offsets::PF_IO_WORKER != 0);
    worker || current_syscall(offsets) == IO_URING_ENTER
}

#[lsm(hook = "capable")]
pub fn capable(ctx: LsmContext) -> i32 {
    // capable(const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts)
    let cred: *const u8 = ctx.arg(0);
    let cap: i32 = ctx.arg(2);
    let opts: u32 = ctx.arg(3);
    let previous: i32 = ctx.arg(4);
    if previous != 0 {
        return previous;
    }
    let Some(scope) = scope(cap as u32) else {
        return 0;
    };
    // Reaching the BPF LSM means the capability LSM granted it.
    let quiet = opts & CAP_OPT_NOAUDIT != 0 || borrowed_creds(cred);
    let syscall = current_syscall(&offsets());
    on_check(&ctx, scope, cap as u32, true, quiet, syscall, SOURCE_LSM)
}

/// Where BPF LSM is off but trampolines work: every check, with the kernel's no-audit option
/// and its answer. Runs after the check, so `block` is a kill here.
#[fexit(function = "security_capable")]
pub fn security_capable(ctx: FExitContext) -> i32 {
    // security_capable(const struct cred *cred, struct user_namespace *ns, int cap,
    //                  unsigned int opts) -> int
    let cred: *const u8 = ctx.arg(0);
    let cap: i32 = ctx.arg(2);
    let opts: u32 = ctx.arg(3);
    let ret: i32 = ctx.arg(4);
    // SAFETY: reading a static; volatile so the loader's values are used.
    let layout = unsafe { core::ptr::read_volatile(&CAP_CONFIG) };
    let granted = ret == 0;
    if granted && layout.refused_only != 0 {
        return 0;
    }
    let Some(scope) = scope(cap as u32) else {
        return 0;
    };
    let quiet = granted && (opts & CAP_OPT_NOAUDIT != 0 || borrowed_creds(cred));
    let syscall = current_syscall(&offsets());
    on_check(
        &ctx,
        scope,
        cap as u32,
        granted,
        quiet,
        syscall,
        SOURCE_FEXIT,
    );
    0
}

/// Raw tracepoint `cap_capable(const struct cred *cred, struct user_namespace *target_ns,
/// const struct user_namespace *capable_ns, int cap, int ret)` (kernels 6.14+).
#[raw_tracepoint(tracepoint = "cap_capable")]
pub fn cap_capable(ctx: RawTracePointContext) -> i32 {
    // SAFETY: reading a static; volatile so the loader's values are used.
    let layout = unsafe { core::ptr::read_volatile(&CAP_CONFIG) };
    let cred: *const u8 = ctx.arg(0);
    let cap = ctx.arg::<u64>(3) as i32;
    let ret = ctx.arg::<u64>(4) as i32;
    let granted = ret == 0;
    if granted && layout.refused_only != 0 {
        return 0;
    }
    // Host processes leave here, before any of the reads below.
    let Some(scope) = scope(cap as u32) else {
        return 0;
    };
    let syscall = current_syscall(&offsets());
    let quiet = granted && (quiet_by_heuristic(cap as u32, syscall) || borrowed_creds(cred));
    on_check(
        &ctx,
        scope,
        cap as u32,
        granted,
        quiet,
        syscall,
        SOURCE_TRACEPOINT,
    );
    0
}

/// Whose check it is, when it is one to look at.
struct Scope {
    cgroup_id: u64,
    active: Option<policy::Active>,
    /// The caller is doomed by an earlier kill (and now signalled): whatever it asks is
    /// refused where this is the LSM hook, since it must not finish what it started.
    doomed: bool,
}

/// `None` for checks nobody asked about: host processes without host rules, and the runtime
/// setting a container up (runc init mounting, pivoting, dropping capabilities is not the
/// container using a capability).
#[inline(always)]
fn scope(cap: u32) -> Option<Scope> {
    if cap > CAP_MAX {
        return None;
    }
    let cgroup_id = crate::process::subject_cgroup();
    // Containers are observed always; the host only when its rules ask.
    let container = policy::has_entry(cgroup_id);
    let active = policy::active(cgroup_id);
    if !container && active.is_none() {
        return None;
    }
    if crate::process::in_runtime_setup(
        (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32,
    ) {
        return None;
    }
    let doomed = container && crate::process::doomed();
    Some(Scope {
        cgroup_id,
        active,
        doomed,
    })
}

/// Flags of one check, packed for the global functions below (which take scalars only).
const GRANTED: u64 = 1;
const QUIET: u64 = 2;
const SECONDARY: u64 = 4;
const SOURCE_SHIFT: u64 = 8;

/// Applies the syscall rules judged at capability checks (`syscall::at_capability_check`),
/// then the capability rules, then the packet-socket check. Returns the LSM answer (0 or
/// -EPERM). Each part is a global function, verified once on its own: inlined, the verifier
/// walks the product of their paths (more than a million instructions on 5.10).
#[inline(always)]
fn on_check<C: EbpfContext>(
    _ctx: &C,
    scope: Scope,
    cap: u32,
    granted: bool,
    quiet: bool,
    syscall: i32,
    source: u8,
) -> i32 {
    if scope.doomed {
        return -EPERM;
    }
    // Under BPF LSM the second source reports refused checks only: the kernel's refusals and
    // the ones `lsm/capable` or a syscall LSM hook already enforced. It reports, never enforces.
    // SAFETY: reading a static; volatile so the loader's values are used.
    let secondary =
        source != SOURCE_LSM && unsafe { core::ptr::read_volatile(&CAP_CONFIG) }.refused_only != 0;
    let mut flags = (source as u64) << SOURCE_SHIFT;
    if granted {
        flags |= GRANTED;
    }
    if quiet {
        flags |= QUIET;
    }
    if secondary {
        flags |= SECONDARY;
    }
    // The answers are 0 or -EPERM; the verifier sees only a number, and an LSM program must
    // provably return an errno (6.12+ check): the answer is rebuilt from constants below.
    let active = policy::Active::pack(scope.active);
    let by_syscall = capability_syscall_rules(syscall as u64, active, flags) != 0;
    let by_capability =
        capability_rules(cap as u64, syscall as u64, scope.cgroup_id, active, flags) != 0;
    // The sensor's own objects, asked for by id: refused where this is the LSM hook, the
    // caller killed elsewhere — in audit mode too: the guard is not a policy rule.
    if granted
        && !secondary
        && cap == CAP_SYS_ADMIN
        && syscall == crate::nr::BPF
        && crate::process::process_guard(cap as u64, syscall as u64, source as u64) != 0
    {
        return -EPERM;
    }
    // A packet socket, CAP_NET_ADMIN, or a BPF program load with CAP_SYS_ADMIN in a segmented
    // container: refused where this is the LSM hook, the caller killed elsewhere.
    if granted
        && !secondary
        && ((cap == crate::nr::CAP_NET_RAW
            && crate::network::network_packet_socket(cap as u64, syscall as u64) != 0)
            || (cap == crate::nr::CAP_NET_ADMIN
                && !quiet
                && crate::network::network_admin(cap as u64) != 0)
            || (cap == CAP_SYS_ADMIN
                && !quiet
                && crate::network::network_bpf_load(cap as u64, syscall as u64) != 0))
    {
        if source == SOURCE_LSM {
            return -EPERM;
        }
        crate::process::kill_current();
    }
    if by_syscall || by_capability {
        -EPERM
    } else {
        0
    }
}

/// The syscall rules judged at this check (global: see `on_check`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn capability_syscall_rules(syscall: u64, active: u64, flags: u64) -> i64 {
    let source = (flags >> SOURCE_SHIFT) as u8;
    crate::syscall::at_capability_check(
        syscall as i32,
        policy::Active::unpack(active),
        source == SOURCE_LSM,
        flags & SECONDARY == 0,
    ) as i64
}

/// The capability rules of this check (global: see `on_check`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn capability_rules(
    cap: u64,
    syscall: u64,
    cgroup_id: u64,
    active: u64,
    flags: u64,
) -> i64 {
    let scope = Scope {
        cgroup_id,
        active: policy::Active::unpack(active),
        doomed: false,
    };
    on_cap_check(
        scope,
        cap as u32,
        flags & GRANTED != 0,
        flags & QUIET != 0,
        syscall as i32,
        (flags >> SOURCE_SHIFT) as u8,
    ) as i64
}

/// Counts the check, applies the container's capability rules, emits what must be seen.
/// Returns the LSM answer (0 or -EPERM).
#[inline(always)]
fn on_cap_check(
    scope: Scope,
    cap: u32,
    granted: bool,
    quiet: bool,
    syscall: i32,
    source: u8,
) -> i32 {
    let Scope {
        cgroup_id, active, ..
    } = scope;
    let cap = cap & 63;

    // A use (granted, not quiet) under a rule is a violation.
    let mut verdict = Verdict::default();
    if granted
        && !quiet
        && let Some(active) = &active
    {
        // SAFETY: a hash map lookup with a valid key.
        if let Some(rs) = unsafe { CAP_RULESETS.get(active.ruleset) } {
            // Mask where the verifier sees it: LLVM knows cap <= 63 from the check above and
            // would drop a plain `& 63`, but the verifier lost that bound through a spill.
            let index = core::hint::black_box(cap) & 63;
            let bit = 1u64 << index;
            let action = if rs.kill & bit != 0 {
                ACTION_KILL
            } else if rs.block & bit != 0 {
                ACTION_BLOCK
            } else if rs.audit & bit != 0 {
                ACTION_AUDIT
            } else {
                ACTION_NONE
            };
            if action != ACTION_NONE {
                verdict.action = action;
                verdict.rule = rs.rule.get(index as usize).copied().unwrap_or(0);
                verdict.ruleset = active.ruleset;
                verdict.generation = active.generation;
                verdict.mode = u8::from(active.enforce);
            }
        }
    }
    let mut answer = 0;
    if verdict.mode == 1 && verdict.action >= ACTION_BLOCK {
        if verdict.action == ACTION_BLOCK && source == SOURCE_LSM {
            verdict.enforced = ENFORCED_LSM;
            answer = -EPERM;
        } else {
            // kill, or block where no LSM hook can refuse: SIGKILL at the check. Where the
            // LSM hook runs, `kill` refuses the check too: the operation never happens.
            if crate::process::kill_current() {
                verdict.enforced = ENFORCED_SIGNAL;
            }
            if source == SOURCE_LSM {
                answer = -EPERM;
            }
        }
    }

    // Enforced violations are never aggregated away: each is an event of its own.
    let must_emit = verdict.enforced != 0 || {
        let key = CapKey {
            cgroup_id,
            syscall,
            cap: cap as u8,
            granted: u8::from(granted),
            quiet: u8::from(quiet),
            _pad: 0,
        };
        // Per-CPU counters: no atomics needed (and none the 5.10 verifier lacks).
        match CAP_SEEN.get_ptr_mut(key) {
            Some(count) => {
                // SAFETY: this CPU's slot of a per-CPU value; no other program touches it now.
                unsafe { *count += 1 };
                false
            }
            None => {
                if CAP_SEEN.insert(key, 1, 0).is_err() {
                    // Full: this check cannot be counted, so it is reported on its own.
                    count_lost(kind::CAPABILITY_UNAGGREGATED);
                }
                true
            }
        }
    };
    if must_emit {
        emit(cap, syscall, granted, quiet, source, verdict);
    }
    answer
}

#[inline(always)]
fn emit(cap: u32, syscall: i32, granted: bool, quiet: bool, source: u8, verdict: Verdict) {
    let Some(mut entry) = EVENTS.reserve::<CapabilityEvent>(0) else {
        count_lost(kind::CAPABILITY);
        return;
    };
    let offsets = offsets();
    // SAFETY: the reservation is exclusively ours until submit; every field is written.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut event.header,
        kind::CAPABILITY,
        core::mem::size_of::<CapabilityEvent>(),
        &offsets,
    );
    event.cap = cap;
    event.syscall = syscall;
    event.granted = u8::from(granted);
    event.quiet = u8::from(quiet);
    event.source = source;
    event._pad = [0; 5];
    event.verdict = verdict;
    let urgency = if verdict.action != ACTION_NONE {
        Urgency::Now
    } else {
        Urgency::Batch
    };
    submit(entry, urgency);
}
