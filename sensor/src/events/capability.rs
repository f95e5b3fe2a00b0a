//! Decoder of capability records (`sensor_common::capability`).

use sensor_common::{capability::CapabilityEvent, kind, policy::Verdict};

use super::{DecodeError, Header, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    pub header: Header,
    pub cap: u32,
    /// Syscall number in progress, -1 outside a syscall.
    pub syscall: i32,
    pub granted: bool,
    pub quiet: bool,
    /// `sensor_common::capability::SOURCE_*`.
    pub source: u8,
    pub verdict: Verdict,
}

pub fn decode(bytes: &[u8]) -> Result<Capability, DecodeError> {
    let raw: CapabilityEvent = read_struct(bytes, kind::CAPABILITY)?;
    Ok(Capability {
        header: Header::from(&raw.header),
        cap: raw.cap,
        syscall: raw.syscall,
        granted: raw.granted != 0,
        quiet: raw.quiet != 0,
        source: raw.source,
        verdict: raw.verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, decode as decode_any, test_util};

    #[test]
    fn decodes_a_check() {
        let ev = CapabilityEvent {
            header: test_util::header(kind::CAPABILITY, std::mem::size_of::<CapabilityEvent>()),
            cap: 21,
            syscall: 165,
            granted: 1,
            quiet: 0,
            source: 2,
            _pad: [0; 5],
            verdict: Verdict {
                rule: 3,
                action: 3,
                ..Verdict::default()
            },
        };
        let Event::Capability(c) = decode_any(&test_util::bytes_of(&ev)).unwrap() else {
            panic!("kind")
        };
        assert_eq!(
            (c.cap, c.syscall, c.granted, c.quiet),
            (21, 165, true, false)
        );
        assert_eq!(c.verdict.rule, 3);
    }
}
