//! Decoder of `cgroup_mkdir` / `cgroup_rmdir` records (`sensor_common::cgroup`).

use sensor_common::cgroup::CgroupEvent;

use super::{DecodeError, Header, c_string, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub header: Header,
    pub id: u64,
    pub level: u32,
    /// Path relative to the v2 root, starting with `/`.
    pub path: String,
    /// The parent cgroup's id (`cgroup_mkdir` only).
    pub parent: u64,
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
        parent: raw.parent,
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
                flags: 0,
                _pad: 0,
                parent: 7,
                path: [0; PATH_LEN],
            };
            ev.path[..11].copy_from_slice(b"/docker/abc");
            let decoded = decode_any(&test_util::bytes_of(&ev)).unwrap();
            let c = match (&decoded, rmdir) {
                (Event::CgroupMkdir(c), false) | (Event::CgroupRmdir(c), true) => c,
                _ => panic!("wrong variant {decoded:?}"),
            };
            assert_eq!(
                (c.id, c.level, c.path.as_str(), c.parent),
                (4242, 2, "/docker/abc", 7)
            );
        }
    }
}
