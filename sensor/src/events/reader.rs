//! Asynchronous reader of the ring buffers: `CONTROL` (cgroups, escapes: what the daemon must
//! act on at once, on a ring of its own so that a flood of the others never crowds it out)
//! and `EVENTS` (everything else).

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

pub struct Reader {
    control: AsyncFd<RingBuf<MapData>>,
    events: AsyncFd<RingBuf<MapData>>,
}

impl Reader {
    pub fn new(control: RingBuf<MapData>, events: RingBuf<MapData>) -> io::Result<Self> {
        Ok(Self {
            control: register(control)?,
            events: register(events)?,
        })
    }

    /// Waits until the kernel signals new records on either ring. Call [`Reader::drain_now`]
    /// next.
    pub async fn wait(&mut self) -> io::Result<()> {
        // Clear readiness *before* draining: the kernel only wakes the consumer when a record is
        // committed at the consumer position, i.e. after the consumer caught up. Clearing after
        // draining could swallow that wakeup and stall the reader for good.
        tokio::select! {
            guard = self.control.readable_mut() => guard?.clear_ready(),
            guard = self.events.readable_mut() => guard?.clear_ready(),
        }
        Ok(())
    }

    /// Hands every record available now to `f`, control records first, without waiting.
    pub fn drain_now(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        drain(self.control.get_mut(), &mut f) + drain(self.events.get_mut(), &mut f)
    }
}

fn register(ring: RingBuf<MapData>) -> io::Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the RingBuf
    // (owned by the AsyncFd) is dropped.
    unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

fn drain(ring: &mut RingBuf<MapData>, f: &mut impl FnMut(&[u8])) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        f(&item);
        n += 1;
    }
    n
}
