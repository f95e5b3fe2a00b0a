//! Counters of the daemon, exported in the Prometheus text format on `--metrics-addr`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use sensor_common::kind;

use crate::containers::enrich::Endpoint;

const KINDS: usize = kind::COUNT as usize;

#[derive(Default)]
pub struct Metrics {
    /// Records read from the ring buffer, per kind.
    pub events: [AtomicU64; KINDS],
    /// Records the kernel could not put on the ring buffer (it was full), per kind: the sum over
    /// CPUs of the kernel's `LOST` counters, refreshed every second.
    pub lost: [AtomicU64; KINDS],
    /// Records that did not decode (unknown kind, wrong size).
    pub decode_errors: AtomicU64,
    /// Events whose cgroup id matched no known cgroup.
    pub unresolved_cgroups: AtomicU64,
    /// Containers currently known.
    pub containers: AtomicU64,
    /// JSON lines written.
    pub lines: AtomicU64,
    /// First events of new containers that went out before their metadata arrived.
    pub metadata_late: AtomicU64,
    /// Capability checks of containers reported in summaries (beyond each first event).
    pub capability_checks: AtomicU64,
    /// Network flows of containers reported in summaries (beyond each first event).
    pub network_flows: AtomicU64,
    /// Runtime API endpoints, for their health.
    pub runtimes: OnceLock<Vec<Arc<Endpoint>>>,
    /// Verdicts per policy rule name.
    pub rules: Mutex<BTreeMap<String, RuleCounters>>,
}

/// Per-rule counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    pub violations: u64,
    /// The kernel blocked or killed.
    pub enforced: u64,
    /// Reported only (audit mode, or an `audit` rule).
    pub audited: u64,
}

impl Metrics {
    pub fn lost_total(&self) -> u64 {
        self.lost.iter().map(|c| c.load(Relaxed)).sum()
    }

    fn per_runtime(&self, value: impl Fn(&Endpoint) -> u64) -> Vec<(String, u64)> {
        self.runtimes
            .get()
            .map(|eps| {
                eps.iter()
                    .map(|e| (format!("{{runtime=\"{}\"}}", e.name()), value(e)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Counts one verdict of rule `name`.
    pub fn count_rule(&self, name: &str, enforced: bool, audited: bool) {
        self.count_rule_n(name, 1, enforced, audited);
    }

    /// `n` violations of rule `name` at once (a summary line).
    pub fn count_rule_n(&self, name: &str, n: u64, enforced: bool, audited: bool) {
        if n == 0 {
            return;
        }
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let c = rules.entry(name.to_owned()).or_default();
        c.violations += n;
        c.enforced += n * u64::from(enforced);
        c.audited += n * u64::from(audited);
    }

    fn per_rule(&self, value: impl Fn(&RuleCounters) -> u64) -> Vec<(String, u64)> {
        let rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules
            .iter()
            .map(|(name, c)| {
                (
                    format!(
                        "{{rule=\"{}\"}}",
                        name.replace('\\', "\\\\").replace('"', "\\\"")
                    ),
                    value(c),
                )
            })
            .collect()
    }

    pub fn render(&self) -> String {
        let per_kind = |counters: &[AtomicU64; KINDS]| -> Vec<(String, u64)> {
            (1..KINDS)
                .map(|k| {
                    (
                        format!("{{kind=\"{}\"}}", kind::name(k as u32)),
                        counters[k].load(Relaxed),
                    )
                })
                .collect()
        };
        let one = |c: &AtomicU64| vec![(String::new(), c.load(Relaxed))];
        let families = [
            (
                "sensor_events_total",
                "counter",
                "Kernel events read, by kind.",
                per_kind(&self.events),
            ),
            (
                "sensor_lost_events_total",
                "counter",
                "Kernel events dropped because the ring buffer was full, by kind.",
                per_kind(&self.lost),
            ),
            (
                "sensor_decode_errors_total",
                "counter",
                "Ring-buffer records that could not be decoded.",
                one(&self.decode_errors),
            ),
            (
                "sensor_unresolved_cgroups_total",
                "counter",
                "Events whose cgroup id matched no known cgroup.",
                one(&self.unresolved_cgroups),
            ),
            (
                "sensor_containers",
                "gauge",
                "Containers currently known.",
                one(&self.containers),
            ),
            (
                "sensor_output_lines_total",
                "counter",
                "JSON lines written.",
                one(&self.lines),
            ),
            (
                "sensor_metadata_late_total",
                "counter",
                "First events of new containers written before their metadata arrived.",
                one(&self.metadata_late),
            ),
            (
                "sensor_capability_checks_summarised_total",
                "counter",
                "Repeated capability checks counted in the kernel and reported in summaries.",
                one(&self.capability_checks),
            ),
            (
                "sensor_network_flows_summarised_total",
                "counter",
                "Repeated network flows counted in the kernel and reported in summaries.",
                one(&self.network_flows),
            ),
            (
                "sensor_enrichment_errors_total",
                "counter",
                "Failed runtime API calls, by runtime.",
                self.per_runtime(|e| e.errors.load(Relaxed)),
            ),
            (
                "sensor_policy_violations_total",
                "counter",
                "Operations that violated a policy rule, by rule.",
                self.per_rule(|c| c.violations),
            ),
            (
                "sensor_policy_enforced_total",
                "counter",
                "Violations the kernel blocked or killed, by rule.",
                self.per_rule(|c| c.enforced),
            ),
            (
                "sensor_policy_audited_total",
                "counter",
                "Violations only reported (audit mode or audit rules), by rule.",
                self.per_rule(|c| c.audited),
            ),
            (
                "sensor_enrichment_degraded",
                "gauge",
                "1 while a runtime's API fails (events keep container ids but lack metadata).",
                self.per_runtime(|e| u64::from(e.degraded.load(Relaxed))),
            ),
        ];
        let mut out = String::new();
        for (name, ty, help, samples) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.lost[kind::EXEC as usize].store(3, Relaxed);
        m.events[kind::EXEC as usize].store(10, Relaxed);
        let text = m.render();
        assert!(
            text.contains("sensor_lost_events_total{kind=\"exec\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("sensor_events_total{kind=\"exec\"} 10"),
            "{text}"
        );
        assert!(text.contains("sensor_decode_errors_total 0"));
        assert_eq!(m.lost_total(), 3);
    }
}
