//! Minimal programs that `sensor probe` loads and attaches to learn what this kernel allows.
//! Each one does nothing observable: those that could run are attached only to an empty
//! temporary cgroup or detached at once, and the helper calls sit behind a condition that is
//! never true at run time (the verifier still checks that the helper is allowed).

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_probe_read_kernel, generated::bpf_send_signal,
    },
    macros::{
        btf_tracepoint, cgroup_skb, cgroup_sock, cgroup_sock_addr, fentry, kprobe, lsm,
        raw_tracepoint, tracepoint,
    },
    programs::{
        BtfTracePointContext, FEntryContext, LsmContext, ProbeContext, RawTracePointContext,
        SkBuffContext, SockAddrContext, SockContext, TracePointContext,
    },
};

/// Calls `bpf_send_signal` only for pid 0, which never runs BPF-visible user code.
#[inline(always)]
fn signal_never() {
    if bpf_get_current_pid_tgid() == 0 {
        // SAFETY: unreachable at run time; present so that the verifier checks the helper.
        unsafe { bpf_send_signal(9) };
    }
}

#[tracepoint]
pub fn probe_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

#[tracepoint]
pub fn probe_tracepoint_signal(_ctx: TracePointContext) -> u32 {
    signal_never();
    0
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn probe_raw_tracepoint(_ctx: RawTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn probe_tp_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[lsm(hook = "capable")]
pub fn probe_lsm(_ctx: LsmContext) -> i32 {
    0
}

#[fentry(function = "security_capable")]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[cgroup_sock_addr(connect4)]
pub fn probe_connect4(_ctx: SockAddrContext) -> i32 {
    1
}

/// True for no real connect (address family 0xffff), unknown to the verifier.
#[inline(always)]
fn never(ctx: &SockAddrContext) -> bool {
    // SAFETY: the context pointer is the kernel's; the read is rewritten by the verifier.
    unsafe { (*ctx.sock_addr).user_family == 0xffff }
}

#[cgroup_sock_addr(connect4)]
pub fn probe_connect4_signal(ctx: SockAddrContext) -> i32 {
    if never(&ctx) {
        // SAFETY: unreachable at run time; present so that the verifier checks the helper.
        unsafe { bpf_send_signal(9) };
    }
    1
}

/// The helpers that name the calling task, as the network programs use them when allowed.
#[cgroup_sock_addr(connect4)]
pub fn probe_connect4_task(ctx: SockAddrContext) -> i32 {
    if never(&ctx) {
        let pid = bpf_get_current_pid_tgid();
        let comm = bpf_get_current_comm().unwrap_or([0; 16]);
        // SAFETY: the helpers have no preconditions; the read checks its address.
        let parent = unsafe {
            let task = bpf_get_current_task() as *const u64;
            bpf_probe_read_kernel(task).unwrap_or(0)
        };
        // Return values of cgroup programs must be 0 or 1.
        return i32::from((pid ^ u64::from(comm[0]) ^ parent) == 7);
    }
    1
}

/// `bpf_get_current_pid_tgid` alone (the kill fallback keys on it).
#[cgroup_sock_addr(connect4)]
pub fn probe_connect4_pid(ctx: SockAddrContext) -> i32 {
    if never(&ctx) {
        return i32::from(bpf_get_current_pid_tgid() == 7);
    }
    1
}

#[cgroup_sock(sock_create)]
pub fn probe_sock_create(_ctx: SockContext) -> i32 {
    1
}

#[cgroup_skb(egress)]
pub fn probe_skb(_ctx: SkBuffContext) -> i32 {
    1
}
