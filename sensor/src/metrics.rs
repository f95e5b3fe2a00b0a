//! Counters of the daemon, exported in the Prometheus text format (0.0.4) on `--metrics-addr`
//! and the API socket.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _, prometheus_text},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use sensor_common::kind;

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
    /// The runtime API endpoints' health.
    pub runtimes: OnceLock<Vec<Arc<RuntimeHealth>>>,
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

    /// Every family in the Prometheus text format (`prometheus-client` encodes, and escapes
    /// label values: a rule name is the policy author's text).
    pub fn render(self: &Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(self.clone())));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// One runtime API endpoint's health (`containers::enrich` keeps it, `/metrics` reads it).
#[derive(Debug)]
pub struct RuntimeHealth {
    pub runtime: &'static str,
    /// Set while calls fail; cleared by a successful call or health check.
    pub degraded: AtomicBool,
    /// Failed calls.
    pub errors: AtomicU64,
}

impl RuntimeHealth {
    pub fn new(runtime: &'static str) -> Self {
        Self {
            runtime,
            degraded: AtomicBool::new(false),
            errors: AtomicU64::new(0),
        }
    }
}

/// Reads the counters at each scrape.
struct Exposition(Arc<Metrics>);

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exposition")
    }
}

/// One family: its samples, each a label set (empty for none) and a value.
fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value as i64).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for Exposition {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let m = &*self.0;
        let per_kind = |counters: &[AtomicU64; KINDS]| {
            (1..KINDS)
                .map(|k| ([("kind", kind::name(k as u32))], counters[k].load(Relaxed)))
                .collect::<Vec<_>>()
        };
        let one = |c: &AtomicU64| [(NO_LABELS, c.load(Relaxed))];
        let runtimes = m.runtimes.get().map(Vec::as_slice).unwrap_or_default();
        let per_runtime = |value: fn(&RuntimeHealth) -> u64| {
            runtimes
                .iter()
                .map(move |h| ([("runtime", h.runtime)], value(h)))
        };
        let rules = m.rules.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let per_rule = |value: fn(&RuleCounters) -> u64| {
            rules
                .iter()
                .map(move |(name, c)| ([("rule", name.as_str())], value(c)))
        };
        // Counter names are given without `_total`: the encoder appends it to each sample.
        family(
            &mut e,
            "sensor_events",
            "Kernel events read, by kind.",
            Counter,
            per_kind(&m.events),
        )?;
        family(
            &mut e,
            "sensor_lost_events",
            "Kernel events dropped because the ring buffer was full, by kind.",
            Counter,
            per_kind(&m.lost),
        )?;
        family(
            &mut e,
            "sensor_decode_errors",
            "Ring-buffer records that could not be decoded.",
            Counter,
            one(&m.decode_errors),
        )?;
        family(
            &mut e,
            "sensor_unresolved_cgroups",
            "Events whose cgroup id matched no known cgroup.",
            Counter,
            one(&m.unresolved_cgroups),
        )?;
        family(
            &mut e,
            "sensor_containers",
            "Containers currently known.",
            Gauge,
            one(&m.containers),
        )?;
        family(
            &mut e,
            "sensor_output_lines",
            "JSON lines written.",
            Counter,
            one(&m.lines),
        )?;
        family(
            &mut e,
            "sensor_metadata_late",
            "First events of new containers written before their metadata arrived.",
            Counter,
            one(&m.metadata_late),
        )?;
        family(
            &mut e,
            "sensor_capability_checks_summarised",
            "Repeated capability checks counted in the kernel and reported in summaries.",
            Counter,
            one(&m.capability_checks),
        )?;
        family(
            &mut e,
            "sensor_network_flows_summarised",
            "Repeated network flows counted in the kernel and reported in summaries.",
            Counter,
            one(&m.network_flows),
        )?;
        family(
            &mut e,
            "sensor_enrichment_errors",
            "Failed runtime API calls, by runtime.",
            Counter,
            per_runtime(|h| h.errors.load(Relaxed)),
        )?;
        family(
            &mut e,
            "sensor_policy_violations",
            "Operations that violated a policy rule, by rule.",
            Counter,
            per_rule(|c| c.violations),
        )?;
        family(
            &mut e,
            "sensor_policy_enforced",
            "Violations the kernel blocked or killed, by rule.",
            Counter,
            per_rule(|c| c.enforced),
        )?;
        family(
            &mut e,
            "sensor_policy_audited",
            "Violations only reported (audit mode or audit rules), by rule.",
            Counter,
            per_rule(|c| c.audited),
        )?;
        family(
            &mut e,
            "sensor_enrichment_degraded",
            "1 while a runtime's API fails (events keep container ids but lack metadata).",
            Gauge,
            per_runtime(|h| u64::from(h.degraded.load(Relaxed))),
        )
    }
}

/// The label set of a family without labels.
const NO_LABELS: [(&str, &str); 0] = [];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Arc::new(Metrics::default());
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
        assert!(text.contains("sensor_decode_errors_total 0"), "{text}");
        assert!(text.contains("# TYPE sensor_containers gauge"), "{text}");
        assert!(
            text.contains("# TYPE sensor_events_total counter"),
            "{text}"
        );
        assert_eq!(m.lost_total(), 3);
    }

    /// A rule name is the policy author's text: a newline, a quote or a backslash in it is
    /// escaped, so each sample stays one line that parses (`promtool check metrics` checks it
    /// on a running sensor in the integration tests).
    #[test]
    fn a_rule_name_cannot_break_the_exposition() {
        let m = Arc::new(Metrics::default());
        m.count_rule("evil\n# TYPE x counter\nx_total 1\n\"}\\", true, false);
        let text = m.render();
        assert!(
            text.contains(
                "sensor_policy_violations_total{rule=\"evil\\n# TYPE x counter\\nx_total 1\\n\\\"}\\\\\"} 1\n"
            ),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("x_total")), "{text}");
    }
}
