//! Decoder of `escape` records (`sensor_common::process`): a process of a container placed
//! outside its container's cgroup by a process of a container.

use sensor_common::{
    kind,
    process::{ESCAPE_ATTACH, ESCAPE_CLONE, EscapeEvent},
};

use super::{DecodeError, Header, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escape {
    /// The process that made the move (its container is in `cgroup_id`).
    pub header: Header,
    /// The process moved, or created in the other cgroup.
    pub moved_pid: u32,
    /// `cgroup.procs` (`attach`) or `clone3(CLONE_INTO_CGROUP)` (`clone`).
    pub via: &'static str,
    /// The moved process's container cgroup, and where it was placed.
    pub from_cgroup: u64,
    pub to_cgroup: u64,
    pub verdict: sensor_common::policy::Verdict,
}

pub fn decode(bytes: &[u8]) -> Result<Escape, DecodeError> {
    let raw: EscapeEvent = read_struct(bytes, kind::ESCAPE)?;
    Ok(Escape {
        header: Header::from(&raw.header),
        moved_pid: raw.moved_tgid,
        via: match raw.via {
            ESCAPE_ATTACH => "attach",
            ESCAPE_CLONE => "clone",
            _ => "unknown",
        },
        from_cgroup: raw.from_cgroup,
        to_cgroup: raw.to_cgroup,
        verdict: raw.verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, decode as decode_any, test_util};

    #[test]
    fn decodes_an_escape() {
        let ev = EscapeEvent {
            header: test_util::header(kind::ESCAPE, std::mem::size_of::<EscapeEvent>()),
            moved_tgid: 77,
            via: ESCAPE_CLONE,
            _pad: [0; 3],
            from_cgroup: 7,
            to_cgroup: 1,
            verdict: Default::default(),
        };
        let Event::Escape(e) = decode_any(&test_util::bytes_of(&ev)).unwrap() else {
            panic!("not an escape")
        };
        assert_eq!(
            (e.moved_pid, e.via, e.from_cgroup, e.to_cgroup),
            (77, "clone", 7, 1)
        );
    }
}
