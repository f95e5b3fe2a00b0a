//! Kernel programs of the sensor. Entry points live in one file per hook family; the daemon
//! finds each program by its function name, which is also the kernel hook's name.
#![no_std]
#![no_main]

mod capability;
mod cgroup;
mod exec;
mod iouring;
mod maps;
mod network;
mod nr;
mod policy;
mod probe;
mod process;
mod syscall;
mod task;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program from which a panic is reachable, so this never runs.
    loop {}
}

/// The kernel refuses programs that use GPL-only helpers (bpf_probe_read_kernel,
/// bpf_send_signal, ...) without a GPL-compatible license.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
