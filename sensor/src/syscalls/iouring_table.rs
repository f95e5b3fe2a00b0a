//! io_uring operations and the syscalls they do (`IORING_OP_*` of include/uapi/linux/io_uring.h,
//! up to 6.18): a syscall rule covers a request doing the same. Operations without a syscall
//! of their own (NOP, timeouts, buffers, `MSG_RING`, `URING_CMD`) are not listed.

pub const OPS: &[(u8, &str)] = &[
    (1, "readv"),
    (2, "writev"),
    (3, "fsync"),
    (4, "pread64"),
    (5, "pwrite64"),
    (6, "poll"),
    (8, "sync_file_range"),
    (9, "sendmsg"),
    (10, "recvmsg"),
    (13, "accept4"),
    (16, "connect"),
    (17, "fallocate"),
    (18, "openat"),
    (19, "close"),
    (21, "statx"),
    (22, "read"),
    (23, "write"),
    (24, "fadvise64"),
    (25, "madvise"),
    (26, "sendto"),
    (27, "recvfrom"),
    (28, "openat2"),
    (29, "epoll_ctl"),
    (30, "splice"),
    (33, "tee"),
    (34, "shutdown"),
    (35, "renameat2"),
    (36, "unlinkat"),
    (37, "mkdirat"),
    (38, "symlinkat"),
    (39, "linkat"),
    (41, "fsetxattr"),
    (42, "setxattr"),
    (43, "fgetxattr"),
    (44, "getxattr"),
    (45, "socket"),
    (47, "sendto"),
    (48, "sendmsg"),
    (49, "read"),
    (50, "waitid"),
    (51, "futex"),
    (52, "futex"),
    (53, "futex_waitv"),
    (55, "ftruncate"),
    (56, "bind"),
    (57, "listen"),
    (59, "epoll_wait"),
    (60, "preadv"),
    (61, "pwritev"),
    (62, "pipe2"),
];

/// (opcode, 1 + native syscall number) for `IOURING_SYSCALLS`.
pub fn entries() -> Vec<(u32, u16)> {
    let arch = super::names::Arch::native();
    OPS.iter()
        .filter_map(|(op, name)| {
            Some((
                u32::from(*op),
                super::names::syscall(arch, name)? as u16 + 1,
            ))
        })
        .collect()
}
