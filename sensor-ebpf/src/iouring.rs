//! io_uring: operations a ring performs are the syscalls they stand for. A request submitted
//! to a ring (`io_uring:io_uring_submit_req`) is judged by the syscall rules of what it does
//! (`IORING_OP_SYMLINKAT` is `symlinkat`, `IORING_OP_OPENAT` is `openat`: `IOURING_SYSCALLS`),
//! and the creation of a ring (`io_uring:io_uring_create`) by the rules naming
//! `io_uring_setup`, without hooking any syscall. Requests are killed where they are
//! submitted; the capability checks they make run under the ring's credentials and are
//! judged as the process's own uses (`capability.rs`).

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use sensor_common::syscall::{ARGS, SEEN_AT_IO_URING, SEEN_AT_RING_CREATE};

use crate::{
    maps::IOURING_SYSCALLS,
    task::{offsets, read_field},
};

/// `io_uring_submit_req(struct io_kiocb *req)` (6.0+), or `io_uring_submit_sqe(void *ctx, u8
/// opcode, ...)` before.
#[raw_tracepoint(tracepoint = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: RawTracePointContext) -> i32 {
    let o = offsets();
    let opcode: u32 = if o.io_kiocb_opcode != 0 {
        let req: *const u8 = ctx.arg(0);
        match read_field::<u8>(req, o.io_kiocb_opcode) {
            Some(op) => u32::from(op),
            None => return 0,
        }
    } else {
        (ctx.arg::<u64>(1) & 0xff) as u32
    };
    let Some(nr) = IOURING_SYSCALLS.get(opcode).copied() else {
        return 0;
    };
    if nr == 0 {
        return 0;
    }
    crate::syscall::judge_elsewhere(u32::from(nr - 1), &[0; ARGS], SEEN_AT_IO_URING);
    0
}

/// `io_uring_create(int fd, void *ctx, u32 sq_entries, u32 cq_entries, u32 flags)`: a ring was
/// created, judged as `io_uring_setup`.
#[raw_tracepoint(tracepoint = "io_uring_create")]
pub fn io_uring_create(ctx: RawTracePointContext) -> i32 {
    let mut args = [0u64; ARGS];
    args[0] = ctx.arg::<u64>(2) & 0xffff_ffff;
    args[1] = ctx.arg::<u64>(4) & 0xffff_ffff;
    let nr = crate::maps::IOURING_SETUP_NR.get(0).copied().unwrap_or(0);
    if nr != 0 {
        crate::syscall::judge_elsewhere(nr - 1, &args, SEEN_AT_RING_CREATE);
    }
    0
}
