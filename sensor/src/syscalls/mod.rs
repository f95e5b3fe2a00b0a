//! Syscall and capability facts, read by the policy compiler, the event decoder and the loader
//! alike: names and numbers per architecture (`syscall_table`), the i386 table and its
//! translation to native calls (`compat_table`), the operations of io_uring (`iouring_table`),
//! the families of syscalls that do one operation and the capability names (`names`), and the
//! argument layouts (`args`).

pub mod args;
pub mod compat_table;
pub mod iouring_table;
pub mod names;
pub mod syscall_table;
