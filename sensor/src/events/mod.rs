//! Ring-buffer records → typed events. Decoders take `&[u8]` and never touch the kernel, so
//! they are unit-tested with hand-made records.

pub mod capability;
pub mod cgroup;
pub mod escape;
pub mod exec;
pub mod network;
pub mod reader;
pub mod syscall;
pub mod tamper;

use std::fmt;

use sensor_common::{EventHeader, kind};

/// The fields every event carries (decoded `EventHeader`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    /// The task ran outside its container's cgroup (moved, or in a sub-cgroup of it).
    pub moved: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Exec(exec::Exec),
    CgroupMkdir(cgroup::Cgroup),
    CgroupRmdir(cgroup::Cgroup),
    Capability(capability::Capability),
    Network(network::Network),
    Syscall(syscall::Syscall),
    Escape(escape::Escape),
    Tamper(tamper::Tamper),
}

impl Event {
    pub fn header(&self) -> &Header {
        match self {
            Self::Exec(e) => &e.header,
            Self::CgroupMkdir(c) | Self::CgroupRmdir(c) => &c.header,
            Self::Capability(c) => &c.header,
            Self::Network(n) => &n.header,
            Self::Syscall(s) => &s.header,
            Self::Escape(e) => &e.header,
            Self::Tamper(t) => &t.header,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its kind's struct, or than the size it claims.
    Truncated {
        kind: u32,
        len: usize,
        want: usize,
    },
    UnknownKind(u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { kind, len, want } => {
                write!(
                    f,
                    "{} record of {len} bytes, expected {want}",
                    kind::name(*kind)
                )
            }
            Self::UnknownKind(k) => write!(f, "record of unknown kind {k}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Copies a `T` out of the front of `bytes`.
pub(crate) fn read_struct<T: aya::Pod>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    let want = std::mem::size_of::<T>();
    if bytes.len() < want {
        return Err(DecodeError::Truncated {
            kind,
            len: bytes.len(),
            want,
        });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes and T is Pod (any bit pattern is a
    // valid value); read_unaligned makes no alignment assumption.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Bytes up to the first NUL (or all of them), as UTF-8 with invalid sequences replaced.
pub(crate) fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl From<&EventHeader> for Header {
    fn from(h: &EventHeader) -> Self {
        Self {
            ktime_ns: h.ktime_ns,
            cgroup_id: h.cgroup_id,
            pid: h.pid,
            tid: h.tid,
            ppid: h.ppid,
            uid: h.uid,
            gid: h.gid,
            comm: c_string(&h.comm),
            moved: h.flags & sensor_common::process::HEADER_MOVED != 0,
        }
    }
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read_struct(bytes, 0)?;
    match header.kind {
        kind::EXEC => exec::decode(bytes).map(Event::Exec),
        kind::CGROUP_MKDIR => cgroup::decode(bytes).map(Event::CgroupMkdir),
        kind::CGROUP_RMDIR => cgroup::decode(bytes).map(Event::CgroupRmdir),
        kind::CAPABILITY => capability::decode(bytes).map(Event::Capability),
        kind::NETWORK => network::decode(bytes).map(Event::Network),
        kind::SYSCALL => syscall::decode(bytes).map(Event::Syscall),
        kind::ESCAPE => escape::decode(bytes).map(Event::Escape),
        kind::TAMPER => tamper::decode(bytes).map(Event::Tamper),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use sensor_common::EventHeader;

    /// A header as the kernel would write it.
    pub fn header(kind: u32, size: usize) -> EventHeader {
        let mut h = EventHeader::zeroed();
        h.kind = kind;
        h.size = size as u32;
        h.ktime_ns = 42;
        h.cgroup_id = 7;
        h.pid = 100;
        h.tid = 101;
        h.ppid = 1;
        h.uid = 1000;
        h.gid = 1000;
        h.comm[..4].copy_from_slice(b"true");
        h
    }

    /// The raw bytes of a Pod value, as the ring buffer delivers them.
    pub fn bytes_of<T: aya::Pod>(v: &T) -> Vec<u8> {
        // SAFETY: T is Pod: plain bytes without padding.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(matches!(
            decode(&[1, 0, 0]),
            Err(DecodeError::Truncated { .. })
        ));
        let h = test_util::header(99, 64);
        assert_eq!(
            decode(&test_util::bytes_of(&h)),
            Err(DecodeError::UnknownKind(99))
        );
        // An exec header without its payload.
        let h = test_util::header(kind::EXEC, 64);
        assert!(matches!(
            decode(&test_util::bytes_of(&h)),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_string(b"abc\0def"), "abc");
        assert_eq!(c_string(b"abc"), "abc");
        assert_eq!(c_string(b"\xffa\0"), "\u{fffd}a");
    }
}
