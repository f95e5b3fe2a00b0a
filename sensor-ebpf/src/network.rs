//! Network segmentation at the cgroup socket hooks, attached once at the cgroup v2 root:
//! `connect4`/`connect6` (TCP, connected UDP), `sendmsg4`/`sendmsg6` (unconnected UDP), and a
//! `cgroup_skb` `ingress` program for new flows arriving from addresses outside any container.
//!
//! A flow is judged by the segments of both ends: the container's (`CGROUP_POLICY`), the
//! remote address's (`NET_ADDRS`: container addresses, exact; `NET_CIDRS`: segment CIDRs, LPM).
//! Same segment: allowed. Different segments: allowed only by a `NET_FLOWS` entry, else
//! `cross_segment`. Remote in no segment: `unknown`. A container in no segment is not
//! restricted. Every flow of a container is counted per (container, remote, port, protocol,
//! direction, verdict) in `NET_SEEN`: the first of each is an event.
//!
//! `block` returns 0 from the hook (the syscall fails with EPERM; the packet is dropped);
//! `kill` does that and sends SIGKILL, from the hook itself where the kernel allows a cgroup
//! program to signal, else from the syscall's exit tracepoint (`network_kill`).

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
        generated::bpf_send_signal,
    },
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, tracepoint},
    maps::lpm_trie::Key,
    programs::{SkBuffContext, SockAddrContext, SockContext, TracePointContext},
};
use sensor_common::{
    EventHeader, kind,
    network::{
        AddrKey, CidrKeyData, DIRECTION_EGRESS, DIRECTION_INGRESS, FlowKey, HOOK_ADMIN,
        HOOK_CONNECT, HOOK_INGRESS, HOOK_PACKET, HOOK_SENDMSG, HOOK_SOCKET, NetKey, NetworkConfig,
        NetworkEvent, NetworkHooks, PROTO_OTHER, PROTO_TCP, PROTO_UDP, REASON_ADMIN,
        REASON_ALLOWED, REASON_BROADCAST, REASON_CROSS_SEGMENT, REASON_PENDING, REASON_SOCKET,
        REASON_UNKNOWN, SEGMENTS_PENDING, is_broadcast, is_local, mapped_v4,
    },
    policy::{ACTION_BLOCK, ACTION_KILL, ACTION_NONE, ENFORCED_SIGNAL, MODE_ENFORCE, Verdict},
};

use crate::{
    maps::{
        CGROUP_POLICY, EVENTS, NET_ADDRS, NET_CIDRS, NET_FLOWS, NET_KILL, NET_SEEN, POLICY,
        Urgency, count_lost, submit,
    },
    task::{fill_header, offsets},
};

/// What the cgroup programs may call on this kernel, from the daemon's probes. Read-only: the
/// verifier sees the values as constants and never walks the branch a kernel would refuse.
#[unsafe(no_mangle)]
static NETWORK_HOOKS: NetworkHooks = NetworkHooks {
    signal: 0,
    task: 0,
    _pad: [0; 2],
};

const SIGKILL: u32 = 9;
/// Hook return values.
const ALLOW: i32 = 1;
const DENY: i32 = 0;

#[inline(always)]
fn hooks() -> NetworkHooks {
    // SAFETY: reading a static; volatile so the loader's values are used.
    unsafe { core::ptr::read_volatile(&NETWORK_HOOKS) }
}

/// One flow as a hook sees it.
struct Flow {
    cgroup_id: u64,
    remote: [u8; 16],
    local: [u8; 16],
    remote_port: u16,
    local_port: u16,
    protocol: u8,
    direction: u8,
    hook: u8,
}

/// The verdict on a flow and the segments behind it.
struct Judged {
    action: u8,
    reason: u8,
    generation: u8,
    enforce: bool,
    local_segments: u64,
    remote_segments: u64,
}

/// Segments of `addr` under `generation`: a container's address, else the CIDRs covering it.
#[inline(always)]
fn address_segments(generation: u8, addr: &[u8; 16]) -> u64 {
    let key = AddrKey {
        generation: generation as u32,
        addr: *addr,
    };
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    if let Some(mask) = unsafe { NET_ADDRS.get(key) } {
        return *mask;
    }
    cidr_segments(generation, addr)
}

#[inline(always)]
fn cidr_segments(generation: u8, addr: &[u8; 16]) -> u64 {
    let key = Key::new(
        32 + 128,
        CidrKeyData {
            generation: (generation as u32).to_be_bytes(),
            addr: *addr,
        },
    );
    NET_CIDRS.get(&key).copied().unwrap_or(0)
}

/// Whether an `allow` entry lets `from` segments reach an address of segments `to`: the
/// daemon keeps one entry per destination mask in use, so four lookups answer it (this port or
/// every port, this protocol or any).
#[inline(always)]
fn flow_allowed(generation: u8, from: u64, to: u64, protocol: u8, port: u16) -> bool {
    let mut key = FlowKey {
        generation,
        protocol,
        port,
        _pad: 0,
        to,
    };
    for (p, port) in [
        (protocol, port),
        (protocol, 0),
        (PROTO_OTHER, port),
        (PROTO_OTHER, 0),
    ] {
        key.protocol = p;
        key.port = port;
        // SAFETY: a hash map lookup with a valid key.
        if let Some(m) = unsafe { NET_FLOWS.get(key) }
            && m & from != 0
        {
            return true;
        }
    }
    false
}

/// Judges a flow from the container in `cgroup_id` (its segments `local`) to or from `remote`
/// (`from_remote`: the flow goes remote → container). `None` when the cgroup is not a
/// container: nothing to report.
#[inline(always)]
fn judge(flow: &Flow, from_remote: bool) -> Option<Judged> {
    let config = POLICY.get(0)?;
    let generation = (config.generation & 1) as u8;
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let policy = unsafe { CGROUP_POLICY.get(flow.cgroup_id) }?;
    let local = policy.segments[generation as usize];
    let net: NetworkConfig = config.network[generation as usize];
    let remote = address_segments(generation, &flow.remote);
    let mut judged = Judged {
        action: ACTION_NONE,
        reason: REASON_ALLOWED,
        generation,
        enforce: config.mode == MODE_ENFORCE,
        local_segments: local,
        remote_segments: remote,
    };
    if local == 0 {
        return Some(judged);
    }
    // Broadcast and multicast reach every segment on the link: a segmented container sends
    // them only where cross-segment traffic is allowed.
    if !from_remote && is_broadcast(&flow.remote) {
        if net.cross_segment != ACTION_NONE {
            judged.action = net.cross_segment;
            judged.reason = REASON_BROADCAST;
        }
        return Some(judged);
    }
    // Metadata not there yet: it may be in any segment, so it gets what all of them would.
    if local & SEGMENTS_PENDING != 0 {
        let action = if remote == 0 {
            net.unknown
        } else {
            net.cross_segment
        };
        if action != ACTION_NONE {
            judged.action = action;
            judged.reason = REASON_PENDING;
        }
        return Some(judged);
    }
    if local & remote != 0 {
        return Some(judged);
    }
    if remote == 0 {
        judged.action = net.unknown;
        judged.reason = if net.unknown == ACTION_NONE {
            REASON_ALLOWED
        } else {
            REASON_UNKNOWN
        };
        return Some(judged);
    }
    if net.cross_segment == ACTION_NONE {
        return Some(judged);
    }
    let (from, to, port) = if from_remote {
        (remote, local, flow.local_port)
    } else {
        (local, remote, flow.remote_port)
    };
    if flow_allowed(generation, from, to, flow.protocol, port) {
        return Some(judged);
    }
    // A datagram answering one the container was allowed to send (a DNS reply).
    if from_remote
        && flow.protocol == PROTO_UDP
        && flow_allowed(generation, local, remote, PROTO_UDP, flow.remote_port)
    {
        return Some(judged);
    }
    judged.action = net.cross_segment;
    judged.reason = REASON_CROSS_SEGMENT;
    Some(judged)
}

/// Counts the flow; the first of its kind (and every kill) becomes an event.
#[inline(always)]
fn record(flow: &Flow, judged: &Judged, enforced: u8, from_task: bool) {
    let key = NetKey {
        cgroup_id: flow.cgroup_id,
        addr: flow.remote,
        port: if flow.direction == DIRECTION_INGRESS {
            flow.local_port
        } else {
            flow.remote_port
        },
        protocol: flow.protocol,
        direction: flow.direction,
        action: judged.action,
        reason: judged.reason,
        _pad: [0; 2],
    };
    if enforced == 0 || judged.action != ACTION_KILL {
        match NET_SEEN.get_ptr_mut(key) {
            Some(count) => {
                // SAFETY: this CPU's slot of a per-CPU value; no other program touches it now.
                unsafe { *count += 1 };
                return;
            }
            None => {
                if NET_SEEN.insert(key, 1, 0).is_err() {
                    count_lost(kind::NETWORK_UNAGGREGATED);
                }
            }
        }
    }
    emit(flow, judged, enforced, from_task);
}

#[inline(always)]
fn emit(flow: &Flow, judged: &Judged, enforced: u8, from_task: bool) {
    let Some(mut entry) = EVENTS.reserve::<NetworkEvent>(0) else {
        count_lost(kind::NETWORK);
        return;
    };
    // SAFETY: the reservation is exclusively ours until submit; every field is written.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_flow_header(&mut event.header, flow.cgroup_id, from_task);
    event.remote = flow.remote;
    event.local = flow.local;
    event.remote_port = flow.remote_port;
    event.local_port = flow.local_port;
    event.protocol = flow.protocol;
    event.direction = flow.direction;
    event.reason = judged.reason;
    event.hook = flow.hook;
    event.local_segments = judged.local_segments;
    event.remote_segments = judged.remote_segments;
    event.verdict = Verdict {
        rule: 0,
        ruleset: 0,
        allow_violated: 0,
        action: judged.action,
        enforced,
        generation: judged.generation,
        mode: u8::from(judged.enforce),
    };
    let urgency = if judged.action != ACTION_NONE {
        Urgency::Now
    } else {
        Urgency::Batch
    };
    submit(entry, urgency);
}

/// The header of a network event: the whole task where the kernel lets this program type read
/// it, else what every kernel allows (cgroup, uid, gid, pid); nothing of a task on ingress.
#[inline(always)]
fn fill_flow_header(header: &mut EventHeader, cgroup_id: u64, from_task: bool) {
    let size = core::mem::size_of::<NetworkEvent>();
    if from_task && hooks().task != 0 {
        fill_header(header, kind::NETWORK, size, &offsets());
        return;
    }
    *header = EventHeader::zeroed();
    header.kind = kind::NETWORK;
    header.size = size as u32;
    // SAFETY: the helper has no preconditions.
    header.ktime_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.cgroup_id = cgroup_id;
    if from_task {
        let uid_gid = bpf_get_current_uid_gid();
        header.uid = uid_gid as u32;
        header.gid = (uid_gid >> 32) as u32;
    }
}

/// Applies a socket hook's verdict: 1 lets the operation go on, 0 fails it with EPERM.
#[inline(always)]
fn enforce_at_socket(flow: &Flow, judged: &Judged) -> i32 {
    if !judged.enforce || judged.action < ACTION_BLOCK {
        record(flow, judged, 0, true);
        return ALLOW;
    }
    let mut enforced = 0;
    if judged.action == ACTION_KILL {
        if hooks().signal != 0 {
            // SAFETY: the helper signals the current task; no memory is involved.
            if unsafe { bpf_send_signal(SIGKILL) } == 0 {
                enforced = ENFORCED_SIGNAL;
            }
        } else {
            // The syscall's exit tracepoint kills (`network_kill`).
            let pid_tgid = bpf_get_current_pid_tgid();
            if NET_KILL.insert(pid_tgid, 1, 0).is_ok() {
                enforced = ENFORCED_SIGNAL;
            }
        }
    }
    // Refused: EPERM (reported as the block it is when no kill happened).
    let mut shown = Judged { ..*judged };
    if enforced == 0 {
        shown.action = ACTION_BLOCK;
    }
    record(
        flow,
        &shown,
        if enforced == 0 { BLOCKED } else { enforced },
        true,
    );
    DENY
}

/// `Verdict::enforced` for a refused operation: the hook itself refused it.
const BLOCKED: u8 = sensor_common::policy::ENFORCED_CGROUP;

#[inline(always)]
fn socket_protocol(ctx: &SockAddrContext) -> u8 {
    // SAFETY: the context pointer is the kernel's; field reads are rewritten by the verifier.
    let protocol = unsafe { (*ctx.sock_addr).protocol };
    match protocol as u8 {
        PROTO_TCP => PROTO_TCP,
        PROTO_UDP => PROTO_UDP,
        _ => PROTO_OTHER,
    }
}

#[inline(always)]
fn on_sock_addr(ctx: &SockAddrContext, v6: bool, hook: u8) -> i32 {
    // SAFETY: the context pointer is the kernel's; field reads are rewritten by the verifier.
    let sa = unsafe { &*ctx.sock_addr };
    let remote = if v6 {
        ipv6_bytes(&sa.user_ip6)
    } else {
        mapped_v4(sa.user_ip4)
    };
    if is_local(&remote) {
        return ALLOW;
    }
    let local = if hook == HOOK_SENDMSG {
        if v6 {
            ipv6_bytes(&sa.msg_src_ip6)
        } else if sa.msg_src_ip4 != 0 {
            mapped_v4(sa.msg_src_ip4)
        } else {
            [0; 16]
        }
    } else {
        [0; 16]
    };
    let flow = Flow {
        cgroup_id: crate::process::subject_cgroup_sock(),
        remote,
        local,
        remote_port: u16::from_be(sa.user_port as u16),
        local_port: 0,
        protocol: socket_protocol(ctx),
        direction: DIRECTION_EGRESS,
        hook,
    };
    match judge(&flow, false) {
        Some(judged) => enforce_at_socket(&flow, &judged),
        None => ALLOW,
    }
}

#[inline(always)]
fn ipv6_bytes(words: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = words[i].to_ne_bytes();
        out[i * 4] = b[0];
        out[i * 4 + 1] = b[1];
        out[i * 4 + 2] = b[2];
        out[i * 4 + 3] = b[3];
        i += 1;
    }
    out
}

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, false, HOOK_CONNECT)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, true, HOOK_CONNECT)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, false, HOOK_SENDMSG)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, true, HOOK_SENDMSG)
}

/// At ingress, an IPv6 packet whose extension headers could not be followed to its transport
/// header (not an IANA protocol number in use here).
const PROTO_UNPARSED: u8 = 255;

/// IPv6 extension headers a packet may carry before its transport header, up to 6 of them:
/// hop-by-hop (0), routing (43), fragment (44), authentication (51), destination options
/// (60). Returns the transport protocol and where its header starts, or `PROTO_UNPARSED`.
#[inline(always)]
fn past_extension_headers(ctx: &SkBuffContext, first: u8) -> (u8, usize) {
    let mut next = first;
    let mut offset = 40usize;
    let mut i = 0;
    while i < 6 {
        let len = match next {
            0 | 43 | 60 | 51 | 44 => match ctx.load::<[u8; 2]>(offset) {
                Ok(h) => {
                    let len = match next {
                        44 => 8,
                        51 => (h[1] as usize + 2) * 4,
                        _ => (h[1] as usize + 1) * 8,
                    };
                    next = h[0];
                    len
                }
                Err(_) => return (PROTO_UNPARSED, 0),
            },
            _ => return (next, offset),
        };
        offset += len;
        i += 1;
    }
    match next {
        0 | 43 | 44 | 51 | 60 => (PROTO_UNPARSED, 0),
        _ => (next, offset),
    }
}

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// New flows arriving at a segmented container (a TCP SYN, or any UDP datagram), judged by the
/// segments of both ends: what crosses segments without an `allow` entry is dropped, whether
/// it comes from a CIDR segment or from a container whose connect named another address.
#[cgroup_skb(ingress)]
pub fn ingress(ctx: SkBuffContext) -> i32 {
    on_ingress(&ctx).unwrap_or(ALLOW)
}

#[inline(always)]
fn on_ingress(ctx: &SkBuffContext) -> Option<i32> {
    // Cheap exits first: every packet of the host comes through here. Without a CIDR segment
    // under a deny there is nothing to judge.
    let config = POLICY.get(0)?;
    let generation = (config.generation & 1) as usize;
    if config.network[generation].ingress == 0 {
        return None;
    }
    // Then the packet itself, before any lookup: most packets are not the first of a flow (a
    // TCP segment other than a SYN) or come from the host's own loopback. The IP version is
    // the packet's: the socket's family says AF_INET6 for IPv4 arriving at a dual-stack
    // socket.
    //
    // Fastest path, read in place: an IPv4 packet without IP options whose TCP segment is not
    // a SYN, or from loopback, leaves without a copy (the packet's first 40 bytes are in the
    // linear part, as the kernel keeps them at this hook).
    let skb = ctx.as_ptr() as *const aya_ebpf::bindings::__sk_buff;
    // SAFETY: the context is the kernel's `__sk_buff`; reading its packet bounds.
    let (data, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    if data + 40 <= end {
        // SAFETY: the 40 bytes at `data` are in the packet: checked just above (and by the
        // verifier).
        let (version_ihl, protocol, src0, flags) = unsafe {
            (
                *(data as *const u8),
                *((data + 9) as *const u8),
                *((data + 12) as *const u8),
                *((data + 33) as *const u8),
            )
        };
        if version_ihl == 0x45
            && (src0 == 127
                || (protocol == PROTO_TCP && (flags & TCP_SYN == 0 || flags & TCP_ACK != 0)))
        {
            return None;
        }
    }
    // Otherwise fixed-size copies (what the verifier accepts on every kernel): the IP
    // header's first 20 bytes (all of IPv4's without options; IPv6's next 20 after them),
    // then the transport header's first 14 (ports, TCP flags).
    let ip: [u8; 20] = ctx.load(0).ok()?;
    let (protocol, l4, remote, local) = match ip[0] >> 4 {
        4 => {
            let src = u32::from_ne_bytes([ip[12], ip[13], ip[14], ip[15]]);
            let dst = u32::from_ne_bytes([ip[16], ip[17], ip[18], ip[19]]);
            (
                ip[9],
                ((ip[0] & 0x0f) as usize) * 4,
                mapped_v4(src),
                mapped_v4(dst),
            )
        }
        6 => {
            let rest: [u8; 20] = ctx.load(20).ok()?;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[..12].copy_from_slice(&ip[8..20]);
            src[12..].copy_from_slice(&rest[..4]);
            dst.copy_from_slice(&rest[4..20]);
            let (protocol, l4) = past_extension_headers(ctx, ip[6]);
            (protocol, l4, src, dst)
        }
        _ => return None,
    };
    let mut l4hdr = [0u8; 14];
    let protocol = match protocol {
        // Extension headers beyond what is followed, or unreadable: no ports, judged as a
        // new flow by its addresses (fail closed: only an `allow` without ports covers it).
        PROTO_UNPARSED => PROTO_UNPARSED,
        PROTO_TCP => {
            l4hdr = ctx.load(l4).ok()?;
            let flags = l4hdr[13];
            if flags & TCP_SYN == 0 || flags & TCP_ACK != 0 {
                return None;
            }
            PROTO_TCP
        }
        PROTO_UDP => {
            let ports: [u8; 4] = ctx.load(l4).ok()?;
            l4hdr[..4].copy_from_slice(&ports);
            PROTO_UDP
        }
        _ => return None,
    };
    if is_local(&remote) {
        return None;
    }
    let cgroup_id = socket_owner(ctx);
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let policy = unsafe { CGROUP_POLICY.get(cgroup_id) }?;
    if policy.segments[generation] == 0 {
        return None;
    }
    // From another container too: its connect judged the address it asked for, and a flow
    // that arrives here across segments came another way (a port published on the host, a
    // Kubernetes service, any DNAT, a subnet broadcast).
    let ports = [l4hdr[0], l4hdr[1], l4hdr[2], l4hdr[3]];
    let flow = Flow {
        cgroup_id,
        remote,
        local,
        remote_port: u16::from_be_bytes([ports[0], ports[1]]),
        local_port: u16::from_be_bytes([ports[2], ports[3]]),
        protocol,
        direction: DIRECTION_INGRESS,
        hook: HOOK_INGRESS,
    };
    let judged = judge(&flow, true)?;
    // Inbound from addresses in no segment is the host firewall's business, not `unknown`'s;
    // a pending container is judged as if segmented (`judge`).
    if judged.reason != REASON_CROSS_SEGMENT
        && !(judged.reason == REASON_PENDING && judged.remote_segments != 0)
    {
        return None;
    }
    if judged.enforce && judged.action >= ACTION_BLOCK {
        let shown = Judged {
            action: ACTION_BLOCK,
            ..judged
        };
        record(&flow, &shown, BLOCKED, false);
        return Some(DENY);
    }
    record(&flow, &judged, 0, false);
    None
}

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;

/// `cgroup/sock_create`, at the root: an IP socket the segment hooks cannot judge (raw IP,
/// ICMP datagrams, SCTP, anything but TCP and UDP) created in a segmented container where
/// segmentation denies something. Such a socket reaches any address without a connect or a
/// UDP send the hooks see, so it is refused (EPERM) under `block` and `kill`.
#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    // SAFETY: the context pointer is the kernel's; field reads are rewritten by the verifier.
    let (family, ty, protocol) = unsafe {
        let sk = &*ctx.sock;
        (sk.family, sk.type_, sk.protocol)
    };
    if family != AF_INET && family != AF_INET6 {
        return ALLOW;
    }
    let judged_by_hooks = (ty == SOCK_STREAM && (protocol == 0 || protocol == PROTO_TCP as u32))
        || (ty == SOCK_DGRAM && (protocol == 0 || protocol == PROTO_UDP as u32));
    if judged_by_hooks {
        return ALLOW;
    }
    match unjudged_socket(
        crate::process::subject_cgroup_sock(),
        protocol as u8,
        HOOK_SOCKET,
        REASON_SOCKET,
    ) {
        Some(true) => DENY,
        _ => ALLOW,
    }
}

/// `unjudged_socket` for the current task in a tracing or LSM program (a capability check):
/// whether the operation must not happen.
#[inline(always)]
fn refused_for_task(hook: u8, reason: u8) -> bool {
    unjudged_socket(crate::process::subject_cgroup(), 0, hook, reason) == Some(true)
}

/// Something no segment hook can judge (a socket of another kind; CAP_NET_ADMIN, unless the
/// policy says `net_admin: allow`), in the current (segmented) container: `Some(true)` when it must be refused, `Some(false)` when
/// only reported, `None` when no rule applies.
#[inline(always)]
fn unjudged_socket(cgroup_id: u64, protocol: u8, hook: u8, reason: u8) -> Option<bool> {
    let config = POLICY.get(0)?;
    let generation = (config.generation & 1) as usize;
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let policy = unsafe { CGROUP_POLICY.get(cgroup_id) }?;
    let local = policy.segments[generation];
    let net = config.network[generation];
    let action = if net.cross_segment > net.unknown {
        net.cross_segment
    } else {
        net.unknown
    };
    if local == 0 || action == ACTION_NONE || (reason == REASON_ADMIN && net.net_admin == 0) {
        return None;
    }
    let flow = Flow {
        cgroup_id,
        remote: [0; 16],
        local: [0; 16],
        remote_port: 0,
        local_port: 0,
        protocol,
        direction: DIRECTION_EGRESS,
        hook,
    };
    let enforce = config.mode == MODE_ENFORCE;
    let judged = Judged {
        action: if enforce && action >= ACTION_BLOCK {
            ACTION_BLOCK
        } else {
            action
        },
        reason,
        generation: generation as u8,
        enforce,
        local_segments: local,
        remote_segments: 0,
    };
    let refuse = enforce && action >= ACTION_BLOCK;
    record(
        &flow,
        &judged,
        if refuse { BLOCKED } else { 0 },
        hooks().task != 0,
    );
    Some(refuse)
}

const AF_PACKET: u32 = 17;
const SOCK_PACKET: u32 = 10;
const AF_XDP: u32 = 44;

/// The socket options CAP_NET_RAW grants that change what a packet says about its sender or
/// how the host treats it: `IP_TRANSPARENT`/`IPV6_TRANSPARENT` (send from any address: another
/// container's), `SO_MARK` (5.17+: the fwmark that mesh and firewall policies trust), IPv6
/// hop-by-hop and destination options (extension headers). Judged as CAP_NET_ADMIN is
/// (`network.admin`); `SO_BINDTODEVICE` and the rest are not.
#[inline(always)]
fn rewrites_packets(level: u32, option: u32) -> bool {
    const SOL_IP: u32 = 0;
    const SOL_SOCKET: u32 = 1;
    const SOL_IPV6: u32 = 41;
    matches!(
        (level, option),
        (SOL_IP, 19) | (SOL_SOCKET, 36) | (SOL_IPV6, 6 | 54 | 55 | 59 | 75)
    )
}

/// Packet and XDP sockets bypass the IP stack and every cgroup hook; creating one checks
/// CAP_NET_RAW, and the capability programs ask here: in a segmented container where
/// segmentation denies something, the socket is refused (EPERM, where the check is seen by
/// BPF LSM) or its creator killed (elsewhere). A CAP_NET_RAW check whose socket family cannot
/// be read — in an io_uring request (`IORING_OP_SOCKET`), a 32-bit `socketcall`, outside any
/// known syscall — is taken for one (fail closed). Global (verified once, on its own); 1 when
/// the socket must not be created.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn network_packet_socket(cap: u64, syscall: u64) -> i64 {
    if cap as u32 != crate::nr::CAP_NET_RAW {
        return 0;
    }
    let nr = syscall as i32;
    if nr == crate::nr::SETSOCKOPT {
        let args = crate::task::syscall_args(&offsets());
        return i64::from(
            rewrites_packets(args[1] as u32, args[2] as u32)
                && refused_for_task(HOOK_ADMIN, REASON_ADMIN),
        );
    }
    // The same options as ancillary data of one send (IPV6_HOPOPTS, IPV6_DSTOPTS, SO_MARK
    // cmsgs): a segmented container's sockets that send are TCP and UDP ones, whose sends ask
    // CAP_NET_RAW for nothing else.
    if crate::nr::SENDS.contains(&nr) {
        return i64::from(refused_for_task(HOOK_ADMIN, REASON_ADMIN));
    }
    let creates = if nr == crate::nr::SOCKET {
        let args = crate::task::syscall_args(&offsets());
        // `socket(AF_INET, SOCK_PACKET, …)`, the obsolete spelling, is made AF_PACKET by the
        // kernel (the type without its SOCK_NONBLOCK/SOCK_CLOEXEC flags).
        // `int` arguments: the kernel uses their low 32 bits, whatever the register's upper half.
        let (family, ty) = (args[0] as u32, args[1] as u32);
        family == AF_PACKET || family == AF_XDP || (family == 2 && ty & 0xf == SOCK_PACKET)
    } else {
        nr < 0
            || nr == crate::nr::IO_URING_ENTER
            || nr as u32 == sensor_common::syscall::NR_COMPAT_ONLY
    };
    if !creates {
        return 0;
    }
    i64::from(refused_for_task(HOOK_PACKET, REASON_SOCKET))
}

/// CAP_NET_ADMIN in a segmented container where segmentation denies something: with it, a
/// process rewrites its packets after the segment hooks judged them (an nftables DNAT in its
/// network namespace), wraps them for another address (a GRE, IPIP or WireGuard tunnel) or
/// redirects them (`tc`). Refused (EPERM, where the check is seen by BPF LSM) or its user
/// killed (elsewhere), rule `network.admin`. Global (verified once, on its own); 1 when the
/// operation must not happen.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn network_admin(cap: u64) -> i64 {
    if cap as u32 != crate::nr::CAP_NET_ADMIN {
        return 0;
    }
    i64::from(refused_for_task(HOOK_ADMIN, REASON_ADMIN))
}

/// CAP_SYS_ADMIN granted to `bpf(BPF_PROG_LOAD)` in a segmented container where
/// segmentation denies something: it loads programs that see and rewrite the container's
/// packets after the segment hooks (XDP and tc programs, attached to its interfaces through
/// `bpf_link`, need CAP_NET_ADMIN *or* CAP_SYS_ADMIN), so the load is judged as CAP_NET_ADMIN
/// is (`network.admin`, and `net_admin: allow` opts out). The program type is not read — the
/// caller could rewrite it after the kernel copied it — so any load so privileged is. Global
/// (verified once, on its own); 1 when the load must not happen.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn network_bpf_load(cap: u64, syscall: u64) -> i64 {
    const BPF_PROG_LOAD: u32 = 5;
    if cap as u32 != crate::nr::CAP_SYS_ADMIN || syscall as i32 != crate::nr::BPF {
        return 0;
    }
    // `cmd` is an `int`: the kernel reads the low 32 bits of the register.
    if crate::task::syscall_args(&offsets())[0] as u32 != BPF_PROG_LOAD {
        return 0;
    }
    i64::from(refused_for_task(HOOK_ADMIN, REASON_ADMIN))
}

/// Where a cgroup program may not signal: the connect, sendto, sendmsg or sendmmsg that a
/// `kill` verdict refused kills its caller on the way out (the syscall has already failed
/// with EPERM, so nothing was sent).
#[tracepoint]
pub fn network_kill(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a hash map lookup with a valid key.
    if unsafe { NET_KILL.get(pid_tgid) }.is_some() {
        let _ = NET_KILL.remove(pid_tgid);
        // SAFETY: the helper signals the current task; no memory is involved.
        unsafe { bpf_send_signal(SIGKILL) };
    }
    0
}

/// The cgroup whose entry judges the socket of packet `ctx`: its cgroup (where the socket was
/// made) when that has an entry, else its outermost ancestor that has one (down to
/// `MAX_CONTAINER_LEVEL`: a socket made in a container's sub-cgroup is the container's), else
/// its own, the host's (`policy::policy_owner`, for a socket).
#[inline(always)]
fn socket_owner(ctx: &SkBuffContext) -> u64 {
    let skb = ctx.as_ptr() as *mut _;
    // SAFETY: the helpers read the context's socket cgroup; no memory is involved.
    let id = unsafe { aya_ebpf::helpers::bpf_skb_cgroup_id(skb) };
    if crate::policy::has_entry(id) {
        return id;
    }
    // SAFETY: as above; 0 past the socket cgroup's own level.
    crate::policy::outermost_with_entry(id, |level| unsafe {
        aya_ebpf::helpers::bpf_skb_ancestor_cgroup_id(skb, level as i32)
    })
    .unwrap_or(id)
}
