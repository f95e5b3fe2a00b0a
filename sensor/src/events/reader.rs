//! Asynchronous reader of the `EVENTS` ring buffer.

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

pub struct Reader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl Reader {
    pub fn new(ring: RingBuf<MapData>) -> io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the RingBuf
        // (owned by this AsyncFd) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE)? };
        Ok(Self { fd })
    }

    /// Waits until the kernel signals new records. Call [`Reader::drain_now`] next.
    pub async fn wait(&mut self) -> io::Result<()> {
        let mut guard = self.fd.readable_mut().await?;
        // Clear readiness *before* draining: the kernel only wakes the consumer when a record is
        // committed at the consumer position, i.e. after the consumer caught up. Clearing after
        // draining could swallow that wakeup and stall the reader for good.
        guard.clear_ready();
        Ok(())
    }

    /// Hands every record available now to `f`, without waiting.
    pub fn drain_now(&mut self, f: impl FnMut(&[u8])) -> usize {
        drain(self.fd.get_mut(), f)
    }
}

fn drain(ring: &mut RingBuf<MapData>, mut f: impl FnMut(&[u8])) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        f(&item);
        n += 1;
    }
    n
}
