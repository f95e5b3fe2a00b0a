//! Decoder of `cgroup_mkdir` / `cgroup_rmdir` records (`sensor_common::cgroup`).

use sensor_common::cgroup::{CgroupEvent, FLAG_PENDING};

use super::{DecodeError, Header, c_string, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub header: Header,
    pub id: u64,
    pub level: u32,
    /// Path relative to the v2 root, starting with `/`.
    pub path: String,
    /// The kernel made this new cgroup a pending container by its name (`FLAG_PENDING`).
    pub pending: bool,
}

pub fn decode(bytes: &[u8]) -> Result<Cgroup, DecodeError> {
    let header: sensor_common::EventHeader = read_struct(bytes, 0)?;
    let raw: CgroupEvent = read_struct(bytes, header.kind)?;
    let len = (raw.path_len as usize).min(raw.path.len());
    Ok(Cgroup {
        header: Header::from(&raw.header),
        id: raw.id,
        level: raw.level,
        path: c_string(&raw.path[..len]),
        pending: raw.flags & FLAG_PENDING != 0,
    })
}

#[cfg(test)]
mod tests {
    use sensor_common::{cgroup::PATH_LEN, kind};

    use super::*;
    use crate::events::{Event, decode as decode_any, test_util};

    #[test]
    fn decodes_mkdir_and_rmdir() {
        for (k, rmdir) in [(kind::CGROUP_MKDIR, false), (kind::CGROUP_RMDIR, true)] {
            let mut ev = CgroupEvent {
                header: test_util::header(k, std::mem::size_of::<CgroupEvent>()),
                id: 4242,
                level: 2,
                path_len: 11,
                flags: FLAG_PENDING,
                _pad: 0,
                path: [0; PATH_LEN],
            };
            ev.path[..11].copy_from_slice(b"/docker/abc");
            let decoded = decode_any(&test_util::bytes_of(&ev)).unwrap();
            let c = match (&decoded, rmdir) {
                (Event::CgroupMkdir(c), false) | (Event::CgroupRmdir(c), true) => c,
                _ => panic!("wrong variant {decoded:?}"),
            };
            assert_eq!(
                (c.id, c.level, c.path.as_str(), c.pending),
                (4242, 2, "/docker/abc", true)
            );
        }
    }
}
