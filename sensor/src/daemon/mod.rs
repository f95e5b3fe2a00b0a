//! `sensor run`: load, attach, then read events until SIGINT or SIGTERM.
//!
//! Stages: kernel programs → ring buffer (`events::reader`) → decode (`events`) → attribute to a
//! container (`containers`) → JSON lines (`output`), with counters in `metrics`. `start` holds
//! the steps of the start; this file the loop, one small method per arm, and the shutdown.

mod start;

use sensor_common::names::map;
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray};
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use tokio::sync::mpsc;

use crate::{
    containers::{
        Registry,
        enrich::{Enricher, Sockets},
    },
    events::{self, Event, reader::Reader},
    hooks::{Hooks, sync_hooks},
    kernel::preflight,
    loader,
    metrics::Metrics,
    output::{JsonLines, Sink as _},
    pipeline::Pipeline,
};
use start::{
    assemble_pipeline, load_programs, open_rings, policy_engine, seen, serve_api, spawn_kernel_log,
    startup_scan, watch_policy,
};

pub struct RunOptions {
    pub btf: PathBuf,
    pub ring_buffer_mib: u32,
    /// Longest time a routine event waits in the kernel buffer before the daemon reads it.
    pub batch: Duration,
    pub metrics_addr: Option<SocketAddr>,
    pub output: Option<PathBuf>,
    pub containerd_namespaces: Vec<String>,
    /// Runtime API sockets used for metadata.
    pub sockets: Sockets,
    /// Bound on each runtime API call.
    pub runtime_timeout: Duration,
    /// Bound on a container's metadata fetch, and on how long its first event waits for it.
    pub metadata_wait: Duration,
    /// The daemon's own API (`sensor containers`, `/metrics`).
    pub api_socket: PathBuf,
    /// Policy file; `None` runs the embedded default policy.
    pub policy: Option<PathBuf>,
    /// `--mode`: overrides the policy file's mode.
    pub mode: Option<crate::policy::Mode>,
    /// How often repeated capability checks are summarised.
    pub summary_interval: Duration,
}

/// Body of `"kind": "sensor"` lines.
#[derive(Serialize)]
struct SensorBody<'a> {
    event: &'static str,
    version: &'static str,
    kernel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    programs: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    containers: Option<usize>,
    /// What each rule action does on this kernel (from the startup feature probe).
    #[serde(skip_serializing_if = "Option::is_none")]
    enforcement: Option<&'a [crate::probe::Enforcement]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lost_events: Option<u64>,
}

/// Sums the kernel's per-CPU lost counters into `metrics`; returns the new total.
fn refresh_lost(map: &PerCpuArray<MapData, u64>, metrics: &Metrics) -> u64 {
    for k in 0..sensor_common::kind::COUNT {
        if let Ok(values) = map.get(&k, 0) {
            metrics.lost[k as usize].store(values.iter().sum(), Relaxed);
        }
    }
    metrics.lost_total()
}

pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    // A policy that does not parse is refused before anything is loaded.
    let source = match &opts.policy {
        Some(path) => crate::policy::Source::read(path)
            .with_context(|| format!("reading --policy {}", path.display()))?,
        None => crate::policy::Source::default_policy(),
    };
    let parsed = crate::policy::parse_source(&source)?;
    for w in &parsed.warnings {
        log::warn!("{}:{w}", source.origin);
    }
    preflight::require_root()?;
    preflight::require_kernel_version()?;
    preflight::require_btf(&opts.btf)?;
    preflight::require_bpffs()?;
    let cgroup_root = preflight::require_cgroup_v2()?;
    preflight::raise_memlock();
    preflight::ensure_pseudo_filesystems();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(opts, cgroup_root, source, parsed))
}

async fn run_async(
    opts: RunOptions,
    cgroup_root: PathBuf,
    source: crate::policy::Source,
    parsed: crate::policy::Parsed,
) -> anyhow::Result<()> {
    // Signal handlers first: SIGHUP's and SIGTERM's default actions would end the process
    // without detaching anything, and a signal may come right after the ready line.
    let mut signals = Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        hup: signal(SignalKind::hangup())?,
    };
    let mut running = Running::start(opts, cgroup_root, source, parsed).await?;
    let stop = running.run(&mut signals).await?;
    running.shutdown(stop)
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// The kernel's ring buffers and counters of lost records, read by the daemon.
struct Rings {
    reader: Reader,
    lost: PerCpuArray<MapData, u64>,
}

/// What the daemon's loop reads from besides the kernel: finished metadata fetches, runtimes
/// that answer again, and the API's questions.
struct Inbox {
    fetched: mpsc::UnboundedReceiver<u64>,
    restored: mpsc::UnboundedReceiver<()>,
    api: mpsc::Receiver<crate::api::Request>,
}

/// The policy file's watch and when the next reload is due.
struct PolicyWatch {
    watcher: Option<crate::policy::watch::Watcher>,
    last_hash: String,
    reload_at: Option<tokio::time::Instant>,
}

/// Counters of the one-second tick.
#[derive(Default)]
struct TickState {
    ticks: u64,
    reconciled_lost: u64,
    reported_lost: u64,
}

/// A started sensor: programs attached, pipeline assembled, ready line written.
struct Running {
    opts: RunOptions,
    loaded: loader::Loaded,
    hooks: Hooks,
    pipeline: Pipeline<JsonLines<Box<dyn std::io::Write>>>,
    metrics: Arc<Metrics>,
    rings: Rings,
    inbox: Inbox,
    watch: PolicyWatch,
    tick: TickState,
    records: Vec<Event>,
    pin_base: PathBuf,
    pin_dir: PathBuf,
    kernel: String,
}

impl Running {
    /// Probe, load and attach, the engine with the policy, enrichment, the API, the sinks, the
    /// startup scan; then the ready line.
    async fn start(
        opts: RunOptions,
        cgroup_root: PathBuf,
        source: crate::policy::Source,
        parsed: crate::policy::Parsed,
    ) -> anyhow::Result<Self> {
        let features = crate::probe::run(&opts.btf);
        let mut loaded = load_programs(&opts, &features, &cgroup_root)?;
        let pin_base = PathBuf::from(preflight::BPFFS).join("sensor");
        let pin_dir = pin_base.join(std::process::id().to_string());
        loader::remove_pins(&pin_base, None);
        loader::pin_maps(&loaded.ebpf, &pin_dir, &[map::LOST])?;
        // Rare diagnostics of the kernel programs (aya-log), into this log.
        match aya_log::EbpfLogger::init(&mut loaded.ebpf) {
            Ok(logger) => spawn_kernel_log(logger),
            Err(e) => log::debug!("kernel program logs unavailable: {e}"),
        }

        let (engine, policy_loaded, hooks) =
            policy_engine(&mut loaded, &cgroup_root, &source, &parsed, opts.mode)?;
        let metrics = Arc::new(Metrics::default());
        let enricher = Arc::new(Enricher::new(
            &opts.sockets,
            opts.runtime_timeout,
            opts.metadata_wait,
        ));
        let _ = metrics.runtimes.set(
            enricher
                .endpoints
                .iter()
                .map(|e| e.health.clone())
                .collect(),
        );
        enricher.announce().await;
        let (restored_tx, restored) = mpsc::unbounded_channel();
        enricher.spawn_health_checks(restored_tx);

        // Programs are attached: every cgroup created from now on is reported, so the walk
        // cannot miss one. The walk starts metadata fetches for the containers it finds.
        let (fetched_tx, fetched) = mpsc::unbounded_channel();
        let registry = Registry::scan(
            &cgroup_root,
            opts.containerd_namespaces.clone(),
            enricher.clone(),
            fetched_tx,
        );
        let (api, metrics_addr) = serve_api(&opts, &metrics).await?;
        let rings = open_rings(&mut loaded)?;
        let mut pipeline = assemble_pipeline(&opts, &mut loaded, registry, &metrics)?;
        // Containers found by the walk are containers for the kernel from now on (host rules
        // stop applying to them); their rules follow with their metadata.
        pipeline.engine = Some(engine);
        let found: Vec<u64> = pipeline
            .registry
            .containers()
            .map(|c| c.cgroup_id)
            .collect();
        for cgroup in found {
            seen(
                &mut pipeline,
                cgroup,
                &format!("the container in cgroup {cgroup}"),
            );
        }
        pipeline.policy_loaded(&source, &parsed, &policy_loaded)?;
        let container_count = startup_scan(&mut pipeline, &enricher, opts.metadata_wait).await?;

        let kernel = crate::kernel::release();
        let programs = hooks.programs(&loaded.attached);
        log::info!(
            "sensor ready: kernel {kernel}, programs {}, {} cgroups ({} containers) under {}, API on {}{}",
            programs.join(", "),
            pipeline.registry.len(),
            container_count,
            cgroup_root.display(),
            opts.api_socket.display(),
            metrics_addr
                .map(|a| format!(", metrics on http://{a}/metrics"))
                .unwrap_or_default()
        );
        pipeline.sensor_line(SensorBody {
            event: "ready",
            version: env!("CARGO_PKG_VERSION"),
            kernel: &kernel,
            programs: Some(&programs),
            containers: Some(container_count),
            enforcement: Some(&features.enforcement),
            metrics: metrics_addr.map(|a| a.to_string()),
            lost_events: None,
        })?;
        let watch = PolicyWatch {
            watcher: opts.policy.as_deref().and_then(watch_policy),
            last_hash: source.hash(),
            reload_at: None,
        };
        Ok(Self {
            opts,
            loaded,
            hooks,
            pipeline,
            metrics,
            rings,
            inbox: Inbox {
                fetched,
                restored,
                api,
            },
            watch,
            tick: TickState::default(),
            records: Vec::new(),
            pin_base,
            pin_dir,
            kernel,
        })
    }

    /// Reads events until SIGTERM or SIGINT; returns which.
    async fn run(&mut self, signals: &mut Signals) -> anyhow::Result<&'static str> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut summary = tokio::time::interval(self.opts.summary_interval);
        summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = tokio::time::interval(self.opts.batch);
        batch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let drain = tokio::select! {
                ready = self.rings.reader.wait() => {
                    ready.context("polling the ring buffer")?;
                    true
                }
                _ = batch.tick() => {
                    self.pipeline.expire().context("writing events")?;
                    true
                }
                _ = summary.tick() => { self.summarise()?; false }
                Some(cgroup_id) = self.inbox.fetched.recv() => {
                    self.pipeline.fetched(cgroup_id).context("writing events")?;
                    true
                }
                Some(()) = self.inbox.restored.recv() => {
                    self.pipeline.registry.refetch_unavailable();
                    false
                }
                Some(request) = self.inbox.api.recv() => { self.answer(request); false }
                _ = signals.hup.recv() => { self.reload(true)?; false }
                Some(changed) = async {
                    match self.watch.watcher.as_mut() {
                        Some(w) => Some(w.changed().await),
                        None => std::future::pending().await,
                    }
                } => { self.policy_changed(changed); false }
                _ = async {
                    match self.watch.reload_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.watch.reload_at = None;
                    self.reload(false)?;
                    false
                }
                _ = signals.term.recv() => return Ok("SIGTERM"),
                _ = signals.int.recv() => return Ok("SIGINT"),
                _ = tick.tick() => { self.second(); false }
            };
            if drain {
                self.drain()?;
                self.pipeline.sink.flush().context("writing events")?;
            }
        }
    }

    /// Decodes and handles every record available now.
    fn drain(&mut self) -> anyhow::Result<()> {
        drain_into(&mut self.rings.reader, &mut self.records, &self.metrics);
        for event in self.records.drain(..) {
            self.pipeline.handle(event).context("writing events")?;
        }
        Ok(())
    }

    /// Summaries of repeated operations; events first, so that a check's first event precedes
    /// its summary.
    fn summarise(&mut self) -> anyhow::Result<()> {
        self.drain()?;
        self.pipeline
            .write_summaries(None)
            .context("writing events")?;
        self.pipeline.sink.flush().context("writing events")?;
        Ok(())
    }

    fn answer(&mut self, request: crate::api::Request) {
        match request {
            crate::api::Request::Containers(reply) => {
                let _ = reply.send(self.pipeline.containers_json().to_string());
            }
        }
    }

    fn policy_changed(&mut self, changed: std::io::Result<()>) {
        if let Err(e) = changed {
            log::warn!("policy watch failed ({e}); reload with SIGHUP");
            self.watch.watcher = None;
        } else {
            // Let the writer finish (editors write in several steps): reload once things are
            // quiet, without blocking event handling meanwhile.
            self.watch.reload_at = Some(tokio::time::Instant::now() + Duration::from_millis(100));
        }
    }

    /// Reloads the policy (`force`: SIGHUP, even if unchanged), then attaches what it needs.
    fn reload(&mut self, force: bool) -> anyhow::Result<()> {
        reload(
            &mut self.pipeline,
            self.opts.policy.as_deref(),
            &mut self.watch.last_hash,
            force,
        )?;
        if let Some(e) = &self.pipeline.engine {
            sync_hooks(&mut self.hooks, &mut self.loaded.ebpf, e);
        }
        Ok(())
    }

    /// Once a second: the clock's offset, lost records, and the kernel's cgroup entries.
    fn second(&mut self) {
        let t = &mut self.tick;
        t.ticks += 1;
        if t.ticks.is_multiple_of(60) {
            self.pipeline.clock.refresh();
        }
        let lost = refresh_lost(&self.rings.lost, &self.metrics);
        // A lost cgroup_mkdir leaves a kernel entry the daemon does not know: looked at every
        // 30 s, and within 5 s of a loss (not every second of a storm).
        if t.ticks.is_multiple_of(30) || (lost > t.reconciled_lost && t.ticks.is_multiple_of(5)) {
            self.pipeline.reconcile_cgroups();
            t.reconciled_lost = lost;
        }
        if lost > t.reported_lost {
            log::warn!(
                "{} events lost because the ring buffer was full ({lost} since start); raise --ring-buffer-mib",
                lost - t.reported_lost
            );
            t.reported_lost = lost;
        }
    }

    /// Reports what is still in the buffers, detaches everything, writes the stopped line.
    fn shutdown(mut self, stop: &str) -> anyhow::Result<()> {
        self.drain()?;
        self.pipeline.release_all().context("writing events")?;
        self.pipeline
            .write_summaries(None)
            .context("writing events")?;
        let lost = refresh_lost(&self.rings.lost, &self.metrics);
        let Self {
            opts,
            loaded,
            mut pipeline,
            rings,
            pin_base,
            pin_dir,
            kernel,
            ..
        } = self;
        drop(rings);
        drop(loaded);
        loader::remove_pins(&pin_base, Some(&pin_dir));
        let _ = std::fs::remove_file(&opts.api_socket);
        log::info!("{stop}: programs detached, {lost} events lost in total");
        pipeline.sensor_line(SensorBody {
            event: "stopped",
            version: env!("CARGO_PKG_VERSION"),
            kernel: &kernel,
            programs: None,
            containers: None,
            enforcement: None,
            metrics: None,
            lost_events: Some(lost),
        })?;
        Ok(())
    }
}

/// Re-reads the policy file and loads it when it changed (`force`: SIGHUP, load anyway).
fn reload<S: crate::output::Sink>(
    pipeline: &mut Pipeline<S>,
    path: Option<&std::path::Path>,
    last_hash: &mut String,
    force: bool,
) -> anyhow::Result<()> {
    let source = match path {
        Some(path) => match crate::policy::Source::read(path) {
            Ok(s) => s,
            Err(e) => {
                log::error!(
                    "policy {} unreadable ({e}); the current policy stays",
                    path.display()
                );
                return Ok(());
            }
        },
        None => crate::policy::Source::default_policy(),
    };
    if !force && source.hash() == *last_hash {
        return Ok(());
    }
    *last_hash = source.hash();
    pipeline.reload(&source).context("writing events")?;
    pipeline.sink.flush().context("writing events")?;
    Ok(())
}

/// Decodes every record available now into `out`; records that do not decode are counted.
fn drain_into(reader: &mut Reader, out: &mut Vec<Event>, metrics: &Metrics) {
    let first = out.len();
    reader.drain_now(|record| match events::decode(record) {
        Ok(e) => out.push(e),
        Err(e) => {
            metrics.decode_errors.fetch_add(1, Relaxed);
            log::warn!("dropping a ring-buffer record: {e}");
        }
    });
    // Two rings: put the batch back in kernel order, so that a container's last events come
    // before its cgroup's removal.
    out[first..].sort_by_key(|e| e.header().ktime_ns);
}
