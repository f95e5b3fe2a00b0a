//! Decoder of network records (`sensor_common::network`).

use sensor_common::{kind, network::NetworkEvent, policy::Verdict};

use super::{DecodeError, Header, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// On ingress only the cgroup (the receiving socket's) and the time are set.
    pub header: Header,
    pub remote: [u8; 16],
    /// All zero when the hook did not know it.
    pub local: [u8; 16],
    pub remote_port: u16,
    pub local_port: u16,
    /// `sensor_common::network::PROTO_*`.
    pub protocol: u8,
    /// `DIRECTION_*`.
    pub direction: u8,
    /// `REASON_*`.
    pub reason: u8,
    /// `HOOK_*`.
    pub hook: u8,
    pub local_segments: u64,
    pub remote_segments: u64,
    pub verdict: Verdict,
}

pub fn decode(bytes: &[u8]) -> Result<Network, DecodeError> {
    let raw: NetworkEvent = read_struct(bytes, kind::NETWORK)?;
    Ok(Network {
        header: Header::from(&raw.header),
        remote: raw.remote,
        local: raw.local,
        remote_port: raw.remote_port,
        local_port: raw.local_port,
        protocol: raw.protocol,
        direction: raw.direction,
        reason: raw.reason,
        hook: raw.hook,
        local_segments: raw.local_segments,
        remote_segments: raw.remote_segments,
        verdict: raw.verdict,
    })
}

#[cfg(test)]
mod tests {
    use sensor_common::network::{DIRECTION_EGRESS, HOOK_CONNECT, PROTO_TCP, mapped_v4};

    use super::*;
    use crate::events::{Event, decode as decode_any, test_util};

    #[test]
    fn decodes_a_flow() {
        let ev = NetworkEvent {
            header: test_util::header(kind::NETWORK, std::mem::size_of::<NetworkEvent>()),
            remote: mapped_v4(u32::from_ne_bytes([10, 0, 0, 5])),
            local: [0; 16],
            remote_port: 5432,
            local_port: 0,
            protocol: PROTO_TCP,
            direction: DIRECTION_EGRESS,
            reason: 1,
            hook: HOOK_CONNECT,
            local_segments: 1,
            remote_segments: 4,
            verdict: Verdict {
                action: 2,
                enforced: 3,
                ..Verdict::default()
            },
        };
        let Event::Network(n) = decode_any(&test_util::bytes_of(&ev)).unwrap() else {
            panic!("kind")
        };
        assert_eq!(
            (
                n.remote_port,
                n.protocol,
                n.local_segments,
                n.remote_segments
            ),
            (5432, PROTO_TCP, 1, 4)
        );
        assert_eq!(&n.remote[12..], &[10, 0, 0, 5]);
        assert_eq!(n.verdict.enforced, 3);
    }
}
