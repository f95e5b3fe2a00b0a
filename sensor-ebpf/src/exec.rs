//! `sched_process_exec`: one event per successful execve, after the new image is in place and
//! before it runs any of its own code.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel_str_bytes, generated::bpf_probe_read_user},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{
    exec::{
        ARGS_LEN, ExecEvent, FILENAME_LEN, FLAG_ARGS_TRUNCATED, FLAG_FILENAME_TRUNCATED,
        FLAG_FILENAME_UNREADABLE,
    },
    kind,
};

use crate::{
    maps::{EVENTS, Urgency, count_lost, submit},
    task::{current_task, fill_header, offsets, read_field},
};

/// Raw tracepoint: `TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
/// Cheaper than the perf-event tracepoint and needs only `linux_binprm.filename`'s offset.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        count_lost(kind::EXEC);
        return 0;
    };
    let offsets = offsets();
    // SAFETY: the reservation is `size_of::<ExecEvent>()` bytes, exclusively ours until submit;
    // every field the decoder reads is written below (the byte arrays only up to their lengths).
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(
        &mut event.header,
        kind::EXEC,
        core::mem::size_of::<ExecEvent>(),
        &offsets,
    );
    event.flags = 0;
    event._pad = 0;

    let bprm: *const u8 = ctx.arg(2);
    event.filename_len = 0;
    match read_field::<*const u8>(bprm, offsets.bprm_filename) {
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

    event.args_len = 0;
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
    submit(entry, Urgency::Batch);
    0
}
