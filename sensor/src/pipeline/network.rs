//! `"kind": "network"` lines: first occurrences and kills from the kernel, summaries of the
//! repeats from `NET_SEEN`.

use std::{io, sync::atomic::Ordering::Relaxed};

use sensor_common::{
    network::{
        DIRECTION_INGRESS, NetKey, PROTO_TCP, PROTO_UDP, REASON_ADMIN, REASON_BROADCAST,
        REASON_CROSS_SEGMENT, REASON_PENDING, REASON_SOCKET, REASON_UNKNOWN,
    },
    policy::{ACTION_NONE, ENFORCED_CGROUP, Verdict},
};

use super::{Pipeline, intern};
use crate::{
    containers::Attribution,
    events::network::Network,
    output::{NetworkBody, NetworkView, ProcessRef, Sink},
    policy::{Action, network::display_addr},
};

fn protocol_name(p: u8) -> &'static str {
    match p {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        1 => "icmp",
        58 => "icmpv6",
        132 => "sctp",
        255 => "raw",
        _ => "other",
    }
}

/// The rule a network verdict comes from: the policy's `network` section, by reason.
fn rule_name(reason: u8) -> Option<&'static str> {
    match reason {
        REASON_CROSS_SEGMENT => Some("network.cross_segment"),
        REASON_UNKNOWN => Some("network.unknown"),
        REASON_SOCKET => Some("network.socket"),
        REASON_BROADCAST => Some("network.broadcast"),
        REASON_PENDING => Some("network.pending"),
        REASON_ADMIN => Some("network.admin"),
        _ => None,
    }
}

/// One flow as the line shows it, whichever source (event or summary) it came from.
struct FlowLine {
    cgroup_id: u64,
    remote: [u8; 16],
    local: [u8; 16],
    remote_port: u16,
    local_port: u16,
    protocol: u8,
    direction: u8,
    local_segments: Option<u64>,
    remote_segments: Option<u64>,
    generation: u8,
    count: u64,
}

impl<S: Sink> Pipeline<S> {
    pub(super) fn write_network(
        &mut self,
        n: &Network,
        attribution: Attribution,
    ) -> io::Result<()> {
        let container = self.container_of(attribution)?;
        let time = self.clock.rfc3339(n.header.ktime_ns);
        let flow = FlowLine {
            cgroup_id: n.header.cgroup_id,
            remote: n.remote,
            local: n.local,
            remote_port: n.remote_port,
            local_port: n.local_port,
            protocol: n.protocol,
            direction: n.direction,
            local_segments: Some(n.local_segments),
            remote_segments: Some(n.remote_segments),
            generation: n.verdict.generation,
            count: 1,
        };
        let network = self.network_view(&flow);
        let verdict = rule_name(n.reason)
            .zip(Action::from_code(n.verdict.action))
            .map(|(rule, action)| self.verdict_view(rule, action, n.verdict));
        let exe = self.exes.get(n.header.pid);
        let process = (n.header.pid != 0).then(|| ProcessRef {
            pid: n.header.pid,
            ppid: n.header.ppid,
            uid: n.header.uid,
            gid: n.header.gid,
            comm: &n.header.comm,
            exe: exe.as_deref(),
        });
        let body = NetworkBody {
            network,
            process,
            container: container.as_deref().map(crate::inventory::view),
            verdict,
            summary: false,
        };
        self.write("network", &time, body)
    }

    /// Summary lines for the flows counted since the last ones (of one cgroup, or of all).
    pub(super) fn write_network_summaries(&mut self, only_cgroup: Option<u64>) -> io::Result<()> {
        let Some(summaries) = &mut self.net_summaries else {
            return Ok(());
        };
        let deltas: Vec<(NetKey, u64)> = summaries.collect(only_cgroup);
        if deltas.is_empty() {
            return Ok(());
        }
        let time = self.clock.now_rfc3339();
        let mode = self.engine.as_ref().map(|e| e.mode());
        for (key, count) in deltas {
            let container = self.registry.container(key.cgroup_id).cloned();
            let ingress = key.direction == DIRECTION_INGRESS;
            let flow = FlowLine {
                cgroup_id: key.cgroup_id,
                remote: key.addr,
                local: [0; 16],
                remote_port: if ingress { 0 } else { key.port },
                local_port: if ingress { key.port } else { 0 },
                protocol: key.protocol,
                direction: key.direction,
                local_segments: None,
                remote_segments: None,
                generation: u8::MAX,
                count,
            };
            let network = self.network_view(&flow);
            // What the counted flows got: the same verdict as their first, not enforced
            // again here (the count is of refusals when they were refused).
            let verdict = rule_name(key.reason)
                .zip(Action::from_code(key.action))
                .filter(|_| key.action != ACTION_NONE)
                .map(|(rule, action)| {
                    let enforce = mode == Some(crate::policy::Mode::Enforce);
                    // Repeats are refusals by the hook (kills are never aggregated).
                    let v = Verdict {
                        action: key.action,
                        mode: u8::from(enforce),
                        enforced: if enforce && action >= Action::Block {
                            ENFORCED_CGROUP
                        } else {
                            0
                        },
                        ..Verdict::default()
                    };
                    let view = self.verdict_view(intern(rule), action, v);
                    let enforced = view.enforced_by.is_some();
                    self.metrics
                        .count_rule_n(rule, count - 1, enforced, !enforced);
                    view
                });
            let body = NetworkBody {
                network,
                process: None,
                container: container.as_deref().map(crate::inventory::view),
                verdict,
                summary: true,
            };
            self.metrics.network_flows.fetch_add(count, Relaxed);
            self.write("network", &time, body)?;
        }
        Ok(())
    }

    fn network_view(&self, f: &FlowLine) -> NetworkView {
        let engine = self.engine.as_ref();
        let slot = if f.generation == u8::MAX {
            engine.map_or(0, |e| e.slot())
        } else {
            f.generation
        };
        let name = |mask: u64| engine.and_then(|e| e.segment_names(slot, mask).into_iter().next());
        // Summaries carry no masks: the current ones are what the keys' flows had unless a
        // reload came in between.
        let local_mask = f
            .local_segments
            .or_else(|| engine.map(|e| e.segments_of(f.cgroup_id)));
        let remote_mask = f
            .remote_segments
            .or_else(|| engine.map(|e| e.address_segments(&f.remote)));
        let local_segment = local_mask.filter(|m| *m != 0).and_then(name);
        let remote_segment = match remote_mask {
            Some(0) | None => Some("unknown".to_owned()),
            Some(m) => name(m),
        };
        let local_addr = if f.local != [0; 16] {
            Some(f.local)
        } else {
            engine.and_then(|e| e.address_of(f.cgroup_id))
        };
        let show = |a: Option<[u8; 16]>| a.map(|a| display_addr(a).to_string());
        let ingress = f.direction == DIRECTION_INGRESS;
        let (src, dst, src_segment, dst_segment) = if ingress {
            (
                show(Some(f.remote)),
                show(local_addr),
                remote_segment,
                local_segment,
            )
        } else {
            (
                show(local_addr),
                show(Some(f.remote)),
                local_segment,
                remote_segment,
            )
        };
        NetworkView {
            protocol: protocol_name(f.protocol),
            direction: if ingress { "ingress" } else { "egress" },
            src,
            dst,
            port: if ingress { f.local_port } else { f.remote_port },
            src_port: ingress.then_some(f.remote_port).filter(|p| *p != 0),
            src_segment,
            dst_segment,
            count: f.count,
        }
    }
}
