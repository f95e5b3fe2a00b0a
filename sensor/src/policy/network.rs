//! Segments and network rules → the kernel's network maps (`NET_ADDRS`, `NET_CIDRS`,
//! `NET_FLOWS`, `PolicyConfig::network`). Pure: no kernel, no I/O.
//!
//! Segment `i` of the policy is bit `i` of every mask. A container's mask is the segments whose
//! selector matches it; an address's mask is its container's segments and those of every CIDR
//! covering it. The CIDR trie returns only the longest match, so each CIDR's mask is folded
//! over the shorter CIDRs that cover it. IPv4 lives in the IPv4-mapped IPv6 space throughout.

use std::net::{IpAddr, Ipv6Addr};

use sensor_common::{
    network::{
        CidrKeyData, FlowKey, NetworkConfig, PROTO_OTHER, PROTO_TCP, PROTO_UDP, REASON_ALLOWED,
        REASON_CROSS_SEGMENT, REASON_PENDING, REASON_UNKNOWN, SEGMENTS_PENDING,
    },
    policy::ACTION_NONE,
};

use super::{
    compile::Subject,
    model::{Cidr, Policy, Protocol, Selector, Stance},
};

/// The network part of one policy generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkPlan {
    pub names: Vec<String>,
    selectors: Vec<Option<Selector>>,
    /// (CIDR in mapped form: address, prefix bits) → own segment bit.
    cidrs: Vec<([u8; 16], u8, u64)>,
    pub config: NetworkConfig,
    /// Allowed flows: (to segment, protocol, port) → segments allowed from.
    flows: Vec<((u8, u8, u16), u64)>,
}

/// `addr` in the 16-byte form the kernel uses (IPv4 mapped).
pub fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address for display: mapped IPv4 as plain IPv4.
pub fn display_addr(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn cidr_bytes(c: &Cidr) -> ([u8; 16], u8) {
    match c.addr {
        IpAddr::V4(_) => (addr_bytes(c.addr), 96 + c.prefix),
        IpAddr::V6(_) => (addr_bytes(c.addr), c.prefix),
    }
}

/// Whether `addr` falls in `net`/`bits`.
fn covers(net: &[u8; 16], bits: u8, addr: &[u8; 16]) -> bool {
    let a = u128::from_be_bytes(*net);
    let b = u128::from_be_bytes(*addr);
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(bits))
    };
    a & mask == b & mask
}

fn action_code(stance: Stance, action: super::Action) -> u8 {
    match stance {
        Stance::Allow => ACTION_NONE,
        Stance::Deny => action.code(),
    }
}

impl NetworkPlan {
    pub fn new(policy: &Policy) -> Self {
        let mut plan = Self {
            names: policy.segments.iter().map(|s| s.name.clone()).collect(),
            selectors: policy.segments.iter().map(|s| s.selector.clone()).collect(),
            ..Self::default()
        };
        for (i, s) in policy.segments.iter().enumerate() {
            for c in &s.cidrs {
                let (addr, bits) = cidr_bytes(c);
                plan.cidrs.push((addr, bits, 1u64 << i));
            }
        }
        let Some(net) = &policy.network else {
            return plan;
        };
        let cross_segment = action_code(net.cross_segment, net.action);
        plan.config = NetworkConfig {
            cross_segment,
            unknown: action_code(net.unknown, net.action),
            // Inbound flows are judged whenever segments are denied something: from a CIDR
            // segment, and from containers whose connect named another address (a published
            // port, a service address, any DNAT, a subnet broadcast).
            ingress: u8::from(net.inbound && cross_segment != ACTION_NONE),
            net_admin: u8::from(net.net_admin == Stance::Deny),
        };
        let index = |name: &str| plan.names.iter().position(|n| n == name);
        let mut flows: std::collections::BTreeMap<(u8, u8, u16), u64> = Default::default();
        for f in &net.allow {
            let (Some(from), Some(to)) = (index(&f.from), index(&f.to)) else {
                continue;
            };
            let protocols: &[u8] = match f.protocol {
                Protocol::Tcp => &[PROTO_TCP],
                Protocol::Udp => &[PROTO_UDP],
                Protocol::Any => &[PROTO_OTHER],
            };
            let ports: Vec<u16> = if f.ports.is_empty() {
                vec![0]
            } else {
                f.ports.clone()
            };
            for &p in protocols {
                for &port in &ports {
                    *flows.entry((to as u8, p, port)).or_default() |= 1u64 << from;
                }
            }
        }
        plan.flows = flows.into_iter().collect();
        plan
    }

    /// Segments of a container (0 for the host or a container no segment selects). A
    /// catch-all segment (`containers: {}`) holds only the containers no other segment selects:
    /// otherwise every container would share it, and tiers added beside it would separate
    /// nothing.
    pub fn segments_of(&self, subject: &Subject<'_>) -> u64 {
        if subject.pending {
            return self.pending_segments();
        }
        if subject.runtime.is_none() {
            return 0;
        }
        let mask = |catch_all: bool| {
            self.selectors
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    s.as_ref()
                        .is_some_and(|s| s.is_catch_all() == catch_all && s.matches(subject))
                })
                .fold(0, |m, (i, _)| m | (1u64 << i))
        };
        match mask(false) {
            0 => mask(true),
            specific => specific,
        }
    }

    /// The mask of a container whose metadata has not arrived: 0 when no segment selects
    /// containers (it will be in none), the catch-all's when that is the only one (it will be
    /// in it), else `SEGMENTS_PENDING` (it may be in any).
    pub fn pending_segments(&self) -> u64 {
        let selecting = || {
            self.selectors
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i, s.as_ref()?)))
        };
        if selecting().next().is_none() {
            0
        } else if selecting().all(|(_, s)| s.is_catch_all()) {
            selecting().fold(0, |m, (i, _)| m | (1u64 << i))
        } else {
            SEGMENTS_PENDING
        }
    }

    /// Segments of the CIDRs covering `addr`.
    pub fn cidr_segments(&self, addr: &[u8; 16]) -> u64 {
        self.cidrs
            .iter()
            .filter(|(net, bits, _)| covers(net, *bits, addr))
            .fold(0, |m, (_, _, bit)| m | bit)
    }

    /// The trie entries for generation `slot`: (prefix_len, data, folded mask).
    pub fn cidr_entries(&self, slot: usize) -> Vec<(u32, CidrKeyData, u64)> {
        self.cidrs
            .iter()
            .map(|(net, bits, _)| {
                // Zero the host bits so that equal networks written differently are one key.
                let host = if *bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(*bits))
                };
                let addr = (u128::from_be_bytes(*net) & host).to_be_bytes();
                (
                    32 + u32::from(*bits),
                    CidrKeyData {
                        generation: (slot as u32).to_be_bytes(),
                        addr,
                    },
                    self.cidrs
                        .iter()
                        .filter(|(n, b, _)| b <= bits && covers(n, *b, &addr))
                        .fold(0, |m, (_, _, bit)| m | bit),
                )
            })
            .collect()
    }

    /// Flow entries for generation `slot` towards addresses whose segment mask is `to`: one
    /// per (protocol, port), allowing the union of what the allow entries of each of its
    /// segments allow.
    pub fn flow_entries(&self, slot: usize, to: u64) -> Vec<(FlowKey, u64)> {
        let mut by: std::collections::BTreeMap<(u8, u16), u64> = Default::default();
        for ((seg, protocol, port), from) in &self.flows {
            if to & (1u64 << seg) != 0 {
                *by.entry((*protocol, *port)).or_default() |= from;
            }
        }
        by.into_iter()
            .map(|((protocol, port), from)| {
                (
                    FlowKey {
                        generation: slot as u8,
                        protocol,
                        port,
                        _pad: 0,
                        to,
                    },
                    from,
                )
            })
            .collect()
    }

    /// Segment masks addresses can have under this plan without any container: the CIDRs'.
    pub fn cidr_masks(&self) -> std::collections::BTreeSet<u64> {
        self.cidr_entries(0)
            .into_iter()
            .map(|(_, _, m)| m)
            .collect()
    }

    /// Segment names of a mask, in policy order.
    pub fn names_of(&self, mask: u64) -> Vec<&str> {
        if mask & SEGMENTS_PENDING != 0 {
            return vec!["pending"];
        }
        self.names
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1u64 << i) != 0)
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// What the kernel decides for a flow from segments `from` to segments `to`: (action,
    /// reason). The same logic as `sensor-ebpf/src/network.rs::judge`, for tests and tools.
    pub fn evaluate(&self, from: u64, to: u64, protocol: u8, port: u16) -> (u8, u8) {
        if from & SEGMENTS_PENDING != 0 {
            let action = if to == 0 {
                self.config.unknown
            } else {
                self.config.cross_segment
            };
            let reason = if action == ACTION_NONE {
                REASON_ALLOWED
            } else {
                REASON_PENDING
            };
            return (action, reason);
        }
        if from == 0 || from & to != 0 {
            return (ACTION_NONE, REASON_ALLOWED);
        }
        if to == 0 {
            let reason = if self.config.unknown == ACTION_NONE {
                REASON_ALLOWED
            } else {
                REASON_UNKNOWN
            };
            return (self.config.unknown, reason);
        }
        if self.config.cross_segment == ACTION_NONE {
            return (ACTION_NONE, REASON_ALLOWED);
        }
        let allowed = self.flows.iter().any(|((seg, p, pt), m)| {
            to & (1u64 << seg) != 0
                && m & from != 0
                && (*p == protocol || *p == PROTO_OTHER)
                && (*pt == port || *pt == 0)
        });
        if allowed {
            (ACTION_NONE, REASON_ALLOWED)
        } else {
            (self.config.cross_segment, REASON_CROSS_SEGMENT)
        }
    }
}

/// A container's addresses from its runtime metadata.
pub fn container_addresses(m: &crate::identity::metadata::Metadata) -> Vec<[u8; 16]> {
    let mut out: Vec<[u8; 16]> = m
        .networks
        .iter()
        .flat_map(|n| [n.ip.as_deref(), n.ipv6.as_deref()])
        .flatten()
        .filter_map(|s| s.split('/').next()?.parse::<IpAddr>().ok())
        .filter(|a| !a.is_unspecified())
        .map(addr_bytes)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use sensor_common::policy::{ACTION_BLOCK, ACTION_KILL};

    use super::*;
    use crate::{identity::Runtime, policy::parse::parse};

    const POLICY: &str = r#"
version: 1
mode: enforce
segments:
  - name: web
    containers: { labels: { tier: web } }
  - name: api
    containers: { labels: { tier: api } }
  - name: db
    containers: { labels: { tier: db } }
    cidrs: ["10.20.0.0/16"]
  - name: dns
    cidrs: ["10.20.5.0/24", "fd00:53::/64"]
network:
  cross_segment: deny
  unknown: deny
  action: block
  allow:
    - { from: web, to: api, ports: [8080], protocol: tcp }
    - { from: api, to: db, ports: [5432] }
    - { from: web, to: dns }
rules: []
"#;

    fn plan() -> NetworkPlan {
        NetworkPlan::new(&parse(POLICY).unwrap().policy)
    }

    fn subject(labels: &std::collections::BTreeMap<String, String>) -> Subject<'_> {
        Subject {
            runtime: Some(Runtime::Docker),
            labels: Some(labels),
            ..Subject::default()
        }
    }

    fn ip(s: &str) -> [u8; 16] {
        addr_bytes(s.parse().unwrap())
    }

    #[test]
    fn segments_of_containers_and_addresses() {
        let p = plan();
        let web = [("tier".to_string(), "web".to_string())].into();
        assert_eq!(p.segments_of(&subject(&web)), 0b0001);
        let none = Default::default();
        assert_eq!(p.segments_of(&subject(&none)), 0);
        assert_eq!(p.segments_of(&Subject::host()), 0);
        assert_eq!(p.cidr_segments(&ip("10.20.5.9")), 0b1100);
        assert_eq!(p.cidr_segments(&ip("10.20.6.9")), 0b0100);
        assert_eq!(p.cidr_segments(&ip("10.21.0.1")), 0);
        // An IPv4-mapped IPv6 destination is the IPv4 address.
        assert_eq!(p.cidr_segments(&ip("::ffff:10.20.1.1")), 0b0100);
        assert_eq!(p.cidr_segments(&ip("fd00:53::1")), 0b1000);
        assert_eq!(p.names_of(0b1100), ["db", "dns"]);
    }

    #[test]
    fn a_container_whose_metadata_is_pending_gets_what_every_segment_denies() {
        let p = plan();
        assert_eq!(p.pending_segments(), SEGMENTS_PENDING);
        let pending = p.pending_segments();
        // To any segment: cross_segment's action, even where an `allow` entry exists (it is
        // not known to be from `web`).
        assert_eq!(
            p.evaluate(pending, 0b0010, PROTO_TCP, 8080),
            (ACTION_BLOCK, REASON_PENDING)
        );
        assert_eq!(
            p.evaluate(pending, 0b0100, PROTO_TCP, 5432),
            (ACTION_BLOCK, REASON_PENDING)
        );
        // To no segment: unknown's.
        assert_eq!(
            p.evaluate(pending, 0, PROTO_UDP, 53),
            (ACTION_BLOCK, REASON_PENDING)
        );
        assert_eq!(p.names_of(pending), ["pending"]);
        // Metadata that never comes (the runtime could not be asked) is pending for good.
        assert_eq!(p.segments_of(&Subject::pending()), SEGMENTS_PENDING);
        // Only `cross_segment` denied: addresses in no segment stay reachable.
        let text = "version: 1\nsegments:\n  - name: web\n    containers: { labels: { tier: web } }\n\
                    network:\n  cross_segment: deny\nrules: []\n";
        let p = NetworkPlan::new(&parse(text).unwrap().policy);
        assert_eq!(
            p.evaluate(p.pending_segments(), 0, PROTO_TCP, 80),
            (ACTION_NONE, REASON_ALLOWED)
        );
        // Segments of CIDRs only: no container is ever segmented, nor is a pending one.
        let text = "version: 1\nsegments:\n  - name: ext\n    cidrs: [\"192.0.2.0/24\"]\n\
                    network:\n  cross_segment: deny\nrules: []\n";
        let p = NetworkPlan::new(&parse(text).unwrap().policy);
        assert_eq!(p.pending_segments(), 0);
        // A catch-all alone (the default policy): every container is in it, pending or not.
        let p = NetworkPlan::new(&parse(crate::policy::DEFAULT).unwrap().policy);
        assert_eq!(p.pending_segments(), 0b01);
    }

    #[test]
    fn a_docker_network_selects_a_segment() {
        let text = "version: 1\nsegments:\n  - name: backend\n    containers: { network: backend-net }\n  \
                    - name: ext\n    cidrs: [\"192.0.2.0/24\"]\nnetwork:\n  cross_segment: deny\nrules: []\n";
        let p = NetworkPlan::new(&parse(text).unwrap().policy);
        let on = |networks: Vec<&'static str>| Subject {
            runtime: Some(Runtime::Docker),
            networks,
            ..Subject::default()
        };
        assert_eq!(p.segments_of(&on(vec!["backend-net"])), 0b01);
        assert_eq!(p.segments_of(&on(vec!["bridge", "backend-net"])), 0b01);
        assert_eq!(p.segments_of(&on(vec!["backend"])), 0, "the exact name");
        assert_eq!(p.segments_of(&on(vec![])), 0);
    }

    #[test]
    fn a_catch_all_segment_holds_only_what_no_other_segment_selects() {
        let text = "version: 1\nsegments:\n  - name: containers\n    containers: {}\n  \
                    - name: web\n    containers: { labels: { tier: web } }\n  \
                    - name: db\n    containers: { labels: { tier: db } }\n\
                    network:\n  cross_segment: deny\nrules: []\n";
        let parsed = parse(text).unwrap();
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let p = NetworkPlan::new(&parsed.policy);
        let web = [("tier".to_string(), "web".to_string())].into();
        let db = [("tier".to_string(), "db".to_string())].into();
        let other = Default::default();
        assert_eq!(
            p.segments_of(&subject(&web)),
            0b010,
            "web only, not the catch-all"
        );
        assert_eq!(p.segments_of(&subject(&db)), 0b100);
        assert_eq!(
            p.segments_of(&subject(&other)),
            0b001,
            "the rest: the catch-all"
        );
        // web and db now share nothing: a flow between them crosses segments.
        assert_eq!(
            p.evaluate(0b010, 0b100, PROTO_TCP, 5432).1,
            REASON_CROSS_SEGMENT
        );
    }

    #[test]
    fn policy_check_warns_where_a_segment_separates_nothing() {
        let text = "version: 1\nsegments:\n  - name: app\n    containers: { labels: { app: shop } }\n  \
                    - name: web\n    containers: { labels: { app: shop, tier: web } }\n  \
                    - name: all\n    containers: {}\n  - name: rest\n    containers: {}\n\
                    network:\n  cross_segment: deny\nrules: []\n";
        let warnings = parse(text).unwrap().warnings;
        let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].contains("segment `web` selects is in segment `app`")
                && text[0].starts_with("5:"),
            "{text:?}"
        );
        assert!(
            text[1].contains("`all` and `rest` both select every container"),
            "{text:?}"
        );
    }

    #[test]
    fn trie_entries_are_folded_over_shorter_cidrs() {
        let p = plan();
        let entries = p.cidr_entries(1);
        let dns = entries
            .iter()
            .find(|(len, d, _)| *len == 32 + 96 + 24 && d.addr == ip("10.20.5.0"))
            .unwrap();
        assert_eq!(dns.1.generation, [0, 0, 0, 1]);
        assert_eq!(dns.2, 0b1100, "the /24 also carries the /16 it lies in");
        let v6 = entries.iter().find(|(len, _, _)| *len == 32 + 64).unwrap();
        assert_eq!(v6.2, 0b1000);
    }

    #[test]
    fn flows_follow_the_policy() {
        let p = plan();
        let (web, api, db, dns) = (1, 2, 4, 8);
        assert_eq!(p.evaluate(web, api, PROTO_TCP, 8080).0, ACTION_NONE);
        assert_eq!(
            p.evaluate(web, api, PROTO_TCP, 8081),
            (ACTION_BLOCK, REASON_CROSS_SEGMENT)
        );
        assert_eq!(p.evaluate(web, api, PROTO_UDP, 8080).0, ACTION_BLOCK);
        assert_eq!(p.evaluate(api, db, PROTO_UDP, 5432).0, ACTION_NONE);
        assert_eq!(p.evaluate(web, db, PROTO_TCP, 5432).0, ACTION_BLOCK);
        assert_eq!(p.evaluate(web, dns, PROTO_UDP, 53).0, ACTION_NONE);
        assert_eq!(p.evaluate(web, web, PROTO_TCP, 1).0, ACTION_NONE);
        assert_eq!(
            p.evaluate(web, 0, PROTO_TCP, 443),
            (ACTION_BLOCK, REASON_UNKNOWN)
        );
        assert_eq!(
            p.evaluate(0, db, PROTO_TCP, 1).0,
            ACTION_NONE,
            "unsegmented"
        );
        // One entry per (protocol, port) towards an address of the given mask.
        let to_api = p.flow_entries(1, api);
        assert_eq!(to_api.len(), 1);
        assert_eq!(
            (
                to_api[0].0.generation,
                to_api[0].0.protocol,
                to_api[0].0.port
            ),
            (1, PROTO_TCP, 8080)
        );
        assert_eq!((to_api[0].0.to, to_api[0].1), (api, web));
        // An address in db and dns: the allow entries of both, merged.
        let to_both = p.flow_entries(0, db | dns);
        assert_eq!(to_both.len(), 2, "{to_both:?}");
        assert!(
            to_both
                .iter()
                .any(|(k, m)| k.port == 5432 && k.protocol == PROTO_OTHER && *m == api)
        );
        assert!(
            to_both
                .iter()
                .any(|(k, m)| k.port == 0 && k.protocol == PROTO_OTHER && *m == web)
        );
        assert_eq!(
            p.cidr_masks().into_iter().collect::<Vec<_>>(),
            vec![db, dns, db | dns]
        );
    }

    #[test]
    fn kill_and_allow_stances() {
        let text = POLICY
            .replace("action: block", "action: kill")
            .replace("unknown: deny", "unknown: allow");
        let p = NetworkPlan::new(&parse(&text).unwrap().policy);
        assert_eq!(p.config.cross_segment, ACTION_KILL);
        assert_eq!(p.config.unknown, ACTION_NONE);
        assert_eq!(
            p.config.ingress, 1,
            "segments under a deny: ingress is judged"
        );
        assert_eq!(
            p.evaluate(1, 0, PROTO_TCP, 1),
            (ACTION_NONE, REASON_ALLOWED)
        );
        let no_cidrs = POLICY
            .replace("    cidrs: [\"10.20.0.0/16\"]\n", "")
            .replace(
                "  - name: dns\n    cidrs: [\"10.20.5.0/24\", \"fd00:53::/64\"]\n",
                "",
            )
            .replace("    - { from: web, to: dns }\n", "");
        let p = NetworkPlan::new(&parse(&no_cidrs).unwrap().policy);
        assert_eq!(
            p.config.ingress, 1,
            "without a CIDR segment, flows between containers are judged where they arrive"
        );
        let egress_only = text.replace("  action: kill\n", "  action: kill\n  inbound: ignore\n");
        let p = NetworkPlan::new(&parse(&egress_only).unwrap().policy);
        assert_eq!(p.config.ingress, 0, "inbound: ignore");
        assert_eq!(
            p.config.cross_segment, ACTION_KILL,
            "egress is still judged"
        );
    }

    #[test]
    fn net_admin_is_refused_in_segments_unless_allowed() {
        assert_eq!(plan().config.net_admin, 1, "deny by default");
        let text = POLICY.replace("  action: block\n", "  action: block\n  net_admin: allow\n");
        let p = NetworkPlan::new(&parse(&text).unwrap().policy);
        assert_eq!(p.config.net_admin, 0);
        let bad = POLICY.replace("  action: block\n", "  action: block\n  net_admin: maybe\n");
        assert!(parse(&bad).is_err(), "a clear error for another word");
    }

    #[test]
    fn addresses_of_a_container() {
        use crate::identity::metadata::{Metadata, Network};
        let m = Metadata {
            networks: vec![
                Network {
                    name: "a".into(),
                    ip: Some("172.18.0.2".into()),
                    ipv6: Some("fd00::2".into()),
                },
                Network {
                    name: "b".into(),
                    ip: Some(String::new()),
                    ipv6: None,
                },
            ],
            ..Metadata::default()
        };
        // Sorted as bytes: the mapped IPv4 (::ffff:…) first.
        assert_eq!(
            container_addresses(&m),
            vec![ip("172.18.0.2"), ip("fd00::2")]
        );
    }
}
