//! Network segmentation (`sensor-ebpf/src/network.rs`: `connect4`, `connect6`, `sendmsg4`,
//! `sendmsg6` at the root cgroup, `cgroup_skb` `ingress`, and the syscall-exit tracepoints that
//! kill where a cgroup program may not signal).
//!
//! Addresses are 16 bytes everywhere: IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so that an
//! IPv4 CIDR also covers what an IPv6 socket sends to a mapped address.

use crate::{EventHeader, policy::Verdict};

/// Segments a policy can define: one bit each in a `u64` mask, the top bit being
/// `SEGMENTS_PENDING`.
pub const MAX_SEGMENTS: usize = 63;

/// The mask of a container whose metadata has not arrived, in a policy whose segments select
/// containers: it may belong to any segment, so it is held to what segmentation allows from
/// none of them (fail closed, as every other rule judges a pending container).
pub const SEGMENTS_PENDING: u64 = 1 << 63;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
/// Any other protocol (ICMP datagram sockets, ...): only `protocol: any` flows cover it.
pub const PROTO_OTHER: u8 = 0;

pub const DIRECTION_EGRESS: u8 = 0;
pub const DIRECTION_INGRESS: u8 = 1;

/// Why a flow got its verdict.
pub const REASON_ALLOWED: u8 = 0;
/// Between two different segments and no `allow` entry covers it.
pub const REASON_CROSS_SEGMENT: u8 = 1;
/// To (or from) an address in no segment.
pub const REASON_UNKNOWN: u8 = 2;
/// A socket the segment hooks cannot judge (raw IP, ICMP datagram, SCTP, packet, XDP),
/// created in a segmented container: it could reach any segment.
pub const REASON_SOCKET: u8 = 3;
/// To a broadcast or multicast address from a segmented container: it reaches every segment
/// on the link.
pub const REASON_BROADCAST: u8 = 4;
/// From (or to) a container whose metadata has not arrived (`SEGMENTS_PENDING`): denied what
/// any segment it may turn out to be in would deny — every address of a segment under
/// `cross_segment: deny`, every other address under `unknown: deny`.
pub const REASON_PENDING: u8 = 5;
/// CAP_NET_ADMIN used in a segmented container: it rewrites, tunnels or redirects packets after
/// the segment hooks judged them (nftables DNAT, GRE and other tunnels, `tc`), so it is
/// refused where segmentation denies something; so are the socket options of CAP_NET_RAW that
/// change what a packet says (`IP_TRANSPARENT`, `SO_MARK`, IPv6 hop-by-hop and destination
/// options).
pub const REASON_ADMIN: u8 = 6;

/// Where the hook saw the flow.
pub const HOOK_CONNECT: u8 = 1;
pub const HOOK_SENDMSG: u8 = 2;
pub const HOOK_INGRESS: u8 = 3;
/// `cgroup/sock_create`: an IP socket being created.
pub const HOOK_SOCKET: u8 = 4;
/// The CAP_NET_RAW check of `socket(AF_PACKET)` or `socket(AF_XDP)`.
pub const HOOK_PACKET: u8 = 5;
/// A CAP_NET_ADMIN check, or CAP_NET_RAW's in `setsockopt`.
pub const HOOK_ADMIN: u8 = 6;

/// The network part of one policy generation, in `PolicyConfig::network`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    /// `ACTION_*` for cross-segment flows no `allow` entry covers; `ACTION_NONE` = allowed.
    pub cross_segment: u8,
    /// `ACTION_*` for flows to addresses in no segment; `ACTION_NONE` = allowed.
    pub unknown: u8,
    /// 1 when inbound flows are judged (cross-segment traffic is denied and `inbound` is not
    /// `ignore`): otherwise the ingress program leaves every packet at its first map read.
    pub ingress: u8,
    /// 1 under `net_admin: deny`: CAP_NET_ADMIN is refused in segmented containers where
    /// segmentation denies something (`cross_segment` or `unknown`).
    pub net_admin: u8,
}

const _: () = assert!(core::mem::size_of::<NetworkConfig>() == 4);

/// `NET_ADDRS` key: a container's address under one generation. The value is the segment mask
/// of the address (its container's segments and those of every CIDR that covers it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub generation: u32,
    pub addr: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<AddrKey>() == 20);

/// Data of the `NET_CIDRS` LPM trie key (`prefix_len` = 32 + the CIDR's bits, 96 more for an
/// IPv4 CIDR in its mapped form): the generation, always matched whole, then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CidrKeyData {
    /// Big-endian, so that the trie compares it first.
    pub generation: [u8; 4],
    pub addr: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<CidrKeyData>() == 20);

/// `NET_FLOWS` key: flows allowed *to* an address whose segment mask is `to` (the exact mask
/// the kernel found for it, so that one lookup covers every segment in it) on `port` (0 =
/// every port) over `protocol` (`PROTO_*`; `PROTO_OTHER` = any protocol). The value is the
/// mask of the segments they are allowed *from*.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub generation: u8,
    pub protocol: u8,
    pub port: u16,
    pub _pad: u32,
    pub to: u64,
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 16);

/// `NET_SEEN` key: one aggregate per container, remote address, port, protocol, direction and
/// verdict. The first of each is an event; repeats are counted for the daemon's summaries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetKey {
    pub cgroup_id: u64,
    pub addr: [u8; 16],
    pub port: u16,
    pub protocol: u8,
    pub direction: u8,
    /// `ACTION_*` of the verdict (`ACTION_NONE` when allowed).
    pub action: u8,
    pub reason: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<NetKey>() == 32);

/// A flow seen for the first time, or an enforced kill (never aggregated).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NetworkEvent {
    /// On ingress the task fields are empty (the packet is not any process's doing) and the
    /// cgroup is the receiving socket's.
    pub header: EventHeader,
    /// The other end: destination on egress, source on ingress.
    pub remote: [u8; 16],
    /// This end when the hook knows it (sendmsg with a source, ingress), else zero.
    pub local: [u8; 16],
    pub remote_port: u16,
    pub local_port: u16,
    pub protocol: u8,
    pub direction: u8,
    pub reason: u8,
    pub hook: u8,
    /// Segment masks of the container's side and of the remote address.
    pub local_segments: u64,
    pub remote_segments: u64,
    pub verdict: Verdict,
}

const _: () =
    assert!(core::mem::size_of::<NetworkEvent>() == core::mem::size_of::<EventHeader>() + 72);

/// What the cgroup socket programs may do on this kernel (set by the daemon from its probes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkHooks {
    /// `bpf_send_signal` is allowed in cgroup sock_addr programs (newer kernels); otherwise a
    /// kill is left to the syscall-exit tracepoints through `NET_KILL`.
    pub signal: u8,
    /// The task helpers (pid, comm, current task) are allowed there: events name the process.
    pub task: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<NetworkHooks>() == 4);

/// `a.b.c.d` as `::ffff:a.b.c.d`, from the network-order `u32` the kernel hands over.
#[inline(always)]
pub const fn mapped_v4(be: u32) -> [u8; 16] {
    let b = be.to_ne_bytes();
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3],
    ]
}

/// Addresses that never leave the host's own stack for another segment: loopback
/// (127.0.0.0/8, ::1, mapped 127/8) and the unspecified address (a connect to it is local).
#[inline(always)]
pub fn is_local(addr: &[u8; 16]) -> bool {
    let mut zeros10 = true;
    let mut i = 0;
    while i < 10 {
        zeros10 &= addr[i] == 0;
        i += 1;
    }
    if !zeros10 {
        return false;
    }
    let (a, b) = (addr[10], addr[11]);
    if a == 0xff && b == 0xff {
        // mapped IPv4: 127/8 or 0.0.0.0
        return addr[12] == 127 || (addr[12] | addr[13] | addr[14] | addr[15]) == 0;
    }
    if a == 0 && b == 0 && addr[12] == 0 && addr[13] == 0 && addr[14] == 0 {
        // ::1 or ::
        return addr[15] <= 1;
    }
    false
}

/// Broadcast and multicast destinations: 255.255.255.255, 224.0.0.0/4, ff00::/8.
#[inline(always)]
pub fn is_broadcast(addr: &[u8; 16]) -> bool {
    if addr[0] == 0xff {
        return true;
    }
    let mut zeros10 = true;
    let mut i = 0;
    while i < 10 {
        zeros10 &= addr[i] == 0;
        i += 1;
    }
    if !(zeros10 && addr[10] == 0xff && addr[11] == 0xff) {
        return false;
    }
    (addr[12] & 0xf0) == 0xe0 || (addr[12] & addr[13] & addr[14] & addr[15]) == 0xff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_and_locality() {
        let a = mapped_v4(u32::from_ne_bytes([10, 1, 2, 3]));
        assert_eq!(&a[10..], &[0xff, 0xff, 10, 1, 2, 3]);
        assert!(!is_local(&a));
        assert!(is_local(&mapped_v4(u32::from_ne_bytes([127, 0, 0, 11]))));
        assert!(is_local(&mapped_v4(0)));
        let mut v6 = [0u8; 16];
        assert!(is_local(&v6));
        v6[15] = 1;
        assert!(is_local(&v6));
        v6[15] = 2;
        assert!(!is_local(&v6));
        let mut fd = [0u8; 16];
        fd[0] = 0xfd;
        fd[15] = 1;
        assert!(!is_local(&fd));
        assert!(is_broadcast(&mapped_v4(u32::from_ne_bytes([
            255, 255, 255, 255
        ]))));
        assert!(is_broadcast(&mapped_v4(u32::from_ne_bytes([
            224, 0, 0, 251
        ]))));
        assert!(!is_broadcast(&mapped_v4(u32::from_ne_bytes([
            10, 0, 0, 255
        ]))));
        let mut mc = [0u8; 16];
        mc[0] = 0xff;
        mc[1] = 0x02;
        assert!(is_broadcast(&mc));
        assert!(!is_broadcast(&fd));
    }
}
