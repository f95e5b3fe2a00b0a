//! `sensor run`: load, attach, then read events until SIGINT or SIGTERM.
//!
//! Stages: kernel programs → ring buffer (`events::reader`) → decode (`events`) → attribute to a
//! container (`containers`) → JSON lines (`output`), with counters in `metrics`.

use sensor_common::names::map;
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use tokio::sync::mpsc;

use crate::{
    containers::{
        Registry,
        enrich::{Enricher, MetaState, Sockets},
    },
    events::{self, Event, reader::Reader},
    kernel::preflight,
    loader,
    metrics::Metrics,
    output::{JsonLines, Sink as _},
    pipeline::Pipeline,
    policy::engine::Engine,
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
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

    // Which hooks this kernel allows decides what each rule action can do; say it up front.
    let features = crate::probe::run(&opts.btf);
    for e in &features.enforcement {
        log::info!(
            "{}: block → {} (via {}), kill → {} (via {})",
            e.control,
            e.block,
            e.block_via,
            e.kill,
            e.kill_via
        );
    }
    let ring_bytes = opts
        .ring_buffer_mib
        .checked_mul(1024 * 1024)
        .filter(|b| b.is_power_of_two())
        .context("--ring-buffer-mib must be a power of two between 1 and 2048")?;
    let mut loaded = loader::load(&loader::LoadOptions {
        btf_path: opts.btf.clone(),
        lsm: features.ok("lsm"),
        cap_tracepoint: features.ok("tracepoint_cap_capable"),
        cap_fexit: features.ok("fentry"),
        ring_buffer_bytes: ring_bytes,
        network: features.ok("cgroup_sock_addr").then(|| {
            (
                cgroup_root.clone(),
                sensor_common::network::NetworkHooks {
                    signal: u8::from(features.ok("send_signal_cgroup_sock_addr")),
                    task: u8::from(features.ok("task_helpers_cgroup_sock_addr")),
                    _pad: [0; 2],
                },
            )
        }),
    })?;
    if let Some(why) = &loaded.network_error {
        log::warn!("network segmentation is off: {why}");
    }
    if !loaded.missing_offsets.is_empty() {
        log::warn!(
            "this kernel's BTF lacks {}: the fields they feed stay empty",
            loaded.missing_offsets.join(", ")
        );
    }

    let pin_base = PathBuf::from(preflight::BPFFS).join("sensor");
    let pin_dir = pin_base.join(std::process::id().to_string());
    loader::remove_pins(&pin_base, None);
    loader::pin_maps(&loaded.ebpf, &pin_dir, &[map::LOST])?;

    // Rare diagnostics of the kernel programs (aya-log), into this log.
    match aya_log::EbpfLogger::init(&mut loaded.ebpf) {
        Ok(logger) => spawn_kernel_log(logger),
        Err(e) => log::debug!("kernel program logs unavailable: {e}"),
    }

    let sensor_tgid = crate::loader::kernel_tgid(&mut loaded.ebpf).unwrap_or_else(|e| {
        log::warn!("{e}; exempting the sensor by its own pid");
        std::process::id()
    });
    let installer = crate::policy::install::Installer::from_ebpf(&mut loaded.ebpf, sensor_tgid)?;
    let (engine, policy_loaded) = Engine::new(installer, &source, &parsed, opts.mode)?;
    let mut hooks = Hooks {
        ingress: loader::Ingress::new(
            loaded
                .network_error
                .is_none()
                .then_some(cgroup_root.as_path()),
        ),
        syscalls: loader::SyscallHooks::new(loaded.lsm_btf.take()),
        capability_checks: loaded
            .attached
            .iter()
            .any(|p| ["capable", "security_capable", "cap_capable"].contains(p)),
    };
    sync_hooks(&mut hooks, &mut loaded.ebpf, &engine);

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
    let (restored_tx, mut restored_rx) = mpsc::unbounded_channel();
    enricher.spawn_health_checks(restored_tx);

    // Programs are attached: every cgroup created from now on is reported, so the walk cannot
    // miss one. The walk starts metadata fetches for the containers it finds.
    let (fetched_tx, mut fetched_rx) = mpsc::unbounded_channel();
    let registry = Registry::scan(
        &cgroup_root,
        opts.containerd_namespaces.clone(),
        enricher.clone(),
        fetched_tx,
    );

    let (api_tx, mut api_rx) = mpsc::channel(16);
    crate::api::serve_unix(&opts.api_socket, metrics.clone(), api_tx.clone())
        .await
        .with_context(|| format!("serving the API on {}", opts.api_socket.display()))?;
    let metrics_addr = match opts.metrics_addr {
        Some(addr) => Some(
            crate::api::serve_tcp(addr, metrics.clone(), api_tx.clone())
                .await
                .with_context(|| format!("serving metrics on {addr}"))?,
        ),
        None => None,
    };
    drop(api_tx);

    let ring = RingBuf::try_from(
        loaded
            .ebpf
            .take_map(map::EVENTS)
            .context("EVENTS map missing")?,
    )?;
    let lost_map: PerCpuArray<MapData, u64> = PerCpuArray::try_from(
        loaded
            .ebpf
            .take_map(map::LOST)
            .context("LOST map missing")?,
    )?;
    let control = RingBuf::try_from(
        loaded
            .ebpf
            .take_map(map::CONTROL)
            .context("CONTROL map missing")?,
    )?;
    let mut reader = Reader::new(control, ring).context("polling the ring buffers")?;
    let cap_seen = loaded
        .ebpf
        .take_map(map::CAP_SEEN)
        .map(aya::maps::PerCpuHashMap::try_from)
        .transpose()?;

    let sink: Box<dyn std::io::Write> = match &opts.output {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening --output {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut pipeline = Pipeline::new(
        registry,
        JsonLines::new(sink),
        metrics.clone(),
        opts.metadata_wait,
    );
    pipeline.update_container_gauge();
    pipeline.summaries = cap_seen.map(crate::summaries::CapSummaries::new);
    pipeline.net_summaries = loaded
        .ebpf
        .take_map(map::NET_SEEN)
        .map(aya::maps::PerCpuHashMap::try_from)
        .transpose()?
        .map(crate::summaries::NetSummaries::new);
    pipeline.sys_summaries = loaded
        .ebpf
        .take_map(map::SYSCALL_COUNTS)
        .map(aya::maps::PerCpuHashMap::try_from)
        .transpose()?
        .map(crate::summaries::SysSummaries::new);
    // Containers found by the walk are containers for the kernel from now on (host rules stop
    // applying to them); their rules follow with their metadata.
    pipeline.engine = Some(engine);
    let found: Vec<u64> = pipeline
        .registry
        .containers()
        .map(|c| c.cgroup_id)
        .collect();
    if let Some(engine) = pipeline.engine.as_mut() {
        for cgroup in found {
            // A full map is counted by the kernel and reported here; the sensor runs on.
            if let Err(e) = engine.container_seen(cgroup) {
                log::error!("policy for the container in cgroup {cgroup}: {e}");
            }
        }
    }
    pipeline.policy_loaded(&source, &parsed, &policy_loaded)?;

    // Startup scan: the runtimes' own listings find containers whose cgroup path the walk did
    // not recognise (a custom --cgroup-parent); then every container gets its metadata
    // (bounded) and a start line before the sensor says it is ready.
    for adopted in pipeline.registry.adopt_listed(&enricher).await {
        log::info!(
            "container {} ({}) found through its runtime's listing",
            adopted.id,
            adopted.runtime.as_str()
        );
        if let Some(engine) = pipeline.engine.as_mut()
            && let Err(e) = engine.container_seen(adopted.cgroup_id)
        {
            log::error!("policy for container {}: {e}", adopted.id);
        }
    }
    let existing: Vec<_> = pipeline.registry.containers().cloned().collect();
    let scan_deadline = tokio::time::Instant::now() + opts.metadata_wait;
    for c in &existing {
        let mut rx = c.meta.subscribe();
        // Ready from the runtime's on-disk state first, then complete from its API: the
        // addresses network rules judge by come with the second.
        let _ = tokio::time::timeout_at(
            scan_deadline,
            rx.wait_for(|s| match s {
                MetaState::Pending => false,
                MetaState::Ready { metadata, .. } => !metadata.from_disk,
                MetaState::Unavailable(_) | MetaState::Unknown(_) => true,
            }),
        )
        .await;
    }
    for c in &existing {
        pipeline.fetched(c.cgroup_id)?;
    }

    let kernel = crate::kernel::release();
    let container_count = existing.len();
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

    // Reload when the policy file changes (and on SIGHUP).
    let mut watcher = match &opts.policy {
        Some(path) => match crate::policy::watch::Watcher::new(path) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!(
                    "not watching {} for changes ({e}); reload with SIGHUP",
                    path.display()
                );
                None
            }
        },
        None => None,
    };
    let mut last_hash = source.hash();
    let mut reload_at: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reconciled_lost = 0;
    let mut summary = tokio::time::interval(opts.summary_interval);
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = tokio::time::interval(opts.batch);
    batch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_lost = 0;
    let mut ticks: u64 = 0;
    let mut records = Vec::new();
    let stop = loop {
        let drain = tokio::select! {
            ready = reader.wait() => { ready.context("polling the ring buffer")?; true }
            _ = batch.tick() => {
                pipeline.expire().context("writing events")?;
                true
            }
            _ = summary.tick() => {
                // Events first, so that a check's first event precedes its summary.
                drain_into(&mut reader, &mut records, &metrics);
                for event in records.drain(..) {
                    pipeline.handle(event).context("writing events")?;
                }
                pipeline.write_summaries(None).context("writing events")?;
                pipeline.sink.flush().context("writing events")?;
                false
            }
            Some(cgroup_id) = fetched_rx.recv() => {
                pipeline.fetched(cgroup_id).context("writing events")?;
                true
            }
            Some(()) = restored_rx.recv() => {
                pipeline.registry.refetch_unavailable();
                false
            }
            Some(request) = api_rx.recv() => {
                match request {
                    crate::api::Request::Containers(reply) => {
                        let _ = reply.send(pipeline.containers_json().to_string());
                    }
                }
                false
            }
            _ = sighup.recv() => {
                reload(&mut pipeline, opts.policy.as_deref(), &mut last_hash, true)?;
                if let Some(e) = &pipeline.engine {
                    sync_hooks(&mut hooks, &mut loaded.ebpf, e);
                }
                false
            }
            Some(changed) = async {
                match watcher.as_mut() {
                    Some(w) => Some(w.changed().await),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = changed {
                    log::warn!("policy watch failed ({e}); reload with SIGHUP");
                    watcher = None;
                } else {
                    // Let the writer finish (editors write in several steps): reload once
                    // things are quiet, without blocking event handling meanwhile.
                    reload_at = Some(tokio::time::Instant::now() + Duration::from_millis(100));
                }
                false
            }
            _ = async {
                match reload_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                reload_at = None;
                reload(&mut pipeline, opts.policy.as_deref(), &mut last_hash, false)?;
                if let Some(e) = &pipeline.engine {
                    sync_hooks(&mut hooks, &mut loaded.ebpf, e);
                }
                false
            }
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(60) {
                    pipeline.clock.refresh();
                }
                let lost = refresh_lost(&lost_map, &metrics);
                // A lost cgroup_mkdir leaves a kernel entry the daemon does not know: looked
                // at every 30 s, and within 5 s of a loss (not every second of a storm).
                if ticks.is_multiple_of(30) || (lost > reconciled_lost && ticks.is_multiple_of(5)) {
                    pipeline.reconcile_cgroups();
                    reconciled_lost = lost;
                }
                if lost > reported_lost {
                    log::warn!(
                        "{} events lost because the ring buffer was full ({lost} since start); raise --ring-buffer-mib",
                        lost - reported_lost
                    );
                    reported_lost = lost;
                }
                false
            }
        };
        if drain {
            drain_into(&mut reader, &mut records, &metrics);
            for event in records.drain(..) {
                pipeline.handle(event).context("writing events")?;
            }
            pipeline.sink.flush().context("writing events")?;
        }
    };

    // Events already in the buffer are still reported before detaching.
    drain_into(&mut reader, &mut records, &metrics);
    for event in records.drain(..) {
        pipeline.handle(event).context("writing events")?;
    }
    pipeline.release_all().context("writing events")?;
    pipeline.write_summaries(None).context("writing events")?;
    let lost = refresh_lost(&lost_map, &metrics);
    drop(reader);
    drop(lost_map);
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

/// Forwards the kernel programs' log records (aya-log) to this process's log.
fn spawn_kernel_log(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    // SAFETY: the logger owns its ring-buffer fd, open and unchanged for its lifetime, which
    // the AsyncFd takes over.
    let fd = match unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    } {
        Ok(fd) => fd,
        Err(e) => {
            log::debug!("kernel program logs unavailable: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        let mut fd = fd;
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.clear_ready();
            guard.get_inner_mut().flush();
        }
    });
}

/// Programs attached only while the policy in force needs them.
struct Hooks {
    ingress: loader::Ingress,
    syscalls: loader::SyscallHooks,
    /// A capability program runs: privileged syscalls are judged at their capability check.
    capability_checks: bool,
}

impl Hooks {
    /// Every program attached now: those attached at startup, then the ones the policy in
    /// force needs (the ingress program, `sys_enter` per syscall, syscall LSM hooks).
    fn programs(&self, at_startup: &[&'static str]) -> Vec<String> {
        let mut all: Vec<String> = at_startup.iter().map(|p| p.to_string()).collect();
        if self.ingress.attached() {
            all.push("ingress".into());
        }
        all.extend(
            self.syscalls
                .attached()
                .map(|s| format!("sys_enter_{}", loader::tracepoint_name(s))),
        );
        all.extend(self.syscalls.lsm_attached().map(|h| h.to_string()));
        all
    }
}

/// Attaches what the policy in force needs, detaches what it no longer does; the sensor's
/// objects (links included) are then guarded from containers.
fn sync_hooks(hooks: &mut Hooks, ebpf: &mut aya::Ebpf, engine: &crate::policy::engine::Engine) {
    attach_for_policy(hooks, ebpf, engine);
    match loader::guard_own_objects(ebpf) {
        Ok(n) => log::debug!("{n} BPF objects of the sensor guarded from containers"),
        Err(e) => log::error!("the sensor's BPF objects cannot be guarded from containers: {e}"),
    }
}

fn attach_for_policy(
    hooks: &mut Hooks,
    ebpf: &mut aya::Ebpf,
    engine: &crate::policy::engine::Engine,
) {
    sync_ingress(&mut hooks.ingress, ebpf, engine.needs_ingress());
    let wanted = engine.hooked_syscalls();
    let before: Vec<&str> = hooks.syscalls.attached().copied().collect();
    match hooks.syscalls.set(ebpf, wanted, hooks.capability_checks) {
        Ok(failed) => {
            let tracing =
                crate::kernel::tracefs::root().is_some_and(|r| r.join("events/syscalls").is_dir());
            for (name, e) in failed {
                if tracing {
                    // The kernel was built without it (no modules, no kexec): the syscall
                    // fails with ENOSYS, there is nothing to enforce.
                    log::info!(
                        "syscall `{name}` is not in this kernel (no syscalls:sys_enter_{name}): its rules have nothing to judge"
                    );
                } else {
                    log::error!(
                        "syscall rules on `{name}` cannot be enforced: this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS) or tracefs is not mounted ({e})"
                    );
                }
            }
        }
        Err(e) => log::error!("syscall rules cannot be enforced: {e}"),
    }
    if let Err(e) = hooks.syscalls.set_lsm(ebpf, &engine.enforced_syscalls()) {
        log::error!("syscall LSM hooks: {e}; `block` kills instead");
    }
    let refused_by_lsm = hooks.syscalls.refused_by_lsm();
    let now: Vec<&str> = hooks.syscalls.attached().copied().collect();
    if now != before {
        let (refused, killed): (Vec<&str>, Vec<&str>) =
            now.iter().partition(|n| refused_by_lsm.contains(n));
        log::info!(
            "syscall tracepoints attached for [{}]; `block` there refuses with EPERM (BPF LSM): [{}], kills at entry: [{}]",
            now.join(", "),
            refused.join(", "),
            killed.join(", ")
        );
    }
    let at_check: Vec<&str> = wanted
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !now.contains(n) && loader::AT_CAPABILITY_CHECK.contains(n))
        .collect();
    if !at_check.is_empty() && hooks.capability_checks {
        log::info!(
            "syscalls judged at their capability check (no tracepoint): [{}]; `block` refuses the check with EPERM where BPF LSM runs, kills elsewhere",
            at_check.join(", ")
        );
    }
}

/// Attaches the ingress program while the policy needs it, detaches it when not.
fn sync_ingress(ingress: &mut loader::Ingress, ebpf: &mut aya::Ebpf, needed: bool) {
    let was = ingress.attached();
    match ingress.set(ebpf, needed) {
        // Unchanged, or nothing to attach (network segmentation is off, said at startup).
        Ok(()) if ingress.attached() == was => {}
        Ok(()) => log::info!(
            "ingress program {}",
            if ingress.attached() {
                "attached: the policy judges inbound flows from CIDR segments"
            } else {
                "detached: no CIDR segment under a deny whose inbound flows are judged"
            }
        ),
        Err(e) => log::error!("inbound flows cannot be judged: {e}"),
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
