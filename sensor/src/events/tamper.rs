//! Decoder of `tamper` records (`sensor_common::process::TamperEvent`): a process of a
//! container asked for a descriptor of one of the sensor's own BPF objects.

use sensor_common::{
    kind,
    process::{
        OBJECT_BTF, OBJECT_LINK, OBJECT_MAP, OBJECT_PROG, OBJECT_SIGNAL, OBJECT_TRACE, TamperEvent,
    },
};

use super::{DecodeError, Header, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tamper {
    pub header: Header,
    /// `prog`, `map`, `link`, `btf` (and `id` is the object's id), `signal` (the signal
    /// number) or `ptrace` (the access mode).
    pub object: &'static str,
    pub id: u32,
    pub verdict: sensor_common::policy::Verdict,
}

pub fn decode(bytes: &[u8]) -> Result<Tamper, DecodeError> {
    let raw: TamperEvent = read_struct(bytes, kind::TAMPER)?;
    Ok(Tamper {
        header: Header::from(&raw.header),
        object: match raw.object {
            OBJECT_PROG => "prog",
            OBJECT_MAP => "map",
            OBJECT_LINK => "link",
            OBJECT_BTF => "btf",
            OBJECT_SIGNAL => "signal",
            OBJECT_TRACE => "ptrace",
            _ => "unknown",
        },
        id: raw.id,
        verdict: raw.verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, decode as decode_any, test_util};

    #[test]
    fn decodes_a_tamper_attempt() {
        let ev = TamperEvent {
            header: test_util::header(kind::TAMPER, std::mem::size_of::<TamperEvent>()),
            object: OBJECT_MAP,
            _pad: [0; 3],
            id: 42,
            verdict: Default::default(),
        };
        let Event::Tamper(t) = decode_any(&test_util::bytes_of(&ev)).unwrap() else {
            panic!("not a tamper event")
        };
        assert_eq!((t.object, t.id), ("map", 42));
    }
}
