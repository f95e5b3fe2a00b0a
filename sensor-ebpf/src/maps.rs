//! Every map of the kernel side. The daemon opens them by these names (`sensor/src/loader.rs`).

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use sensor_common::kind;

/// All events, every kind, in order of reservation. Sized by the daemon at load time
/// (`--ring-buffer-mib`); this default only applies when it does not.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Events that could not be reserved on `EVENTS` because it was full, per kind. The daemon
/// exports them; nothing is dropped without being counted here.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(kind::COUNT, 0);

/// Counts one event of `kind` that could not be emitted.
#[inline(always)]
pub fn count_lost(kind: u32) {
    if let Some(counter) = LOST.get_ptr_mut(kind) {
        // SAFETY: the pointer comes from a successful per-CPU array lookup, so it points at this
        // CPU's slot, which no other program can touch while this one runs (no preemption of a
        // BPF program by another on the same CPU for these program types).
        unsafe { *counter += 1 };
    }
}
