//! The start of `sensor run`, step by step: load and attach, the engine and the hooks its
//! policy needs, the API, the ring buffers, the pipeline, the startup scan.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use aya::maps::{PerCpuArray, RingBuf};
use sensor_common::names::map;
use tokio::sync::mpsc;

use super::{Rings, RunOptions};
use crate::{
    containers::{
        Registry,
        enrich::{Enricher, MetaState},
    },
    events::reader::Reader,
    hooks::{Hooks, sync_hooks},
    loader,
    metrics::Metrics,
    output::JsonLines,
    pipeline::Pipeline,
    policy::engine::Engine,
};

/// The engine with the policy installed, and the programs that policy needs attached.
pub(super) fn policy_engine(
    loaded: &mut loader::Loaded,
    cgroup_root: &Path,
    source: &crate::policy::Source,
    parsed: &crate::policy::Parsed,
    mode: Option<crate::policy::Mode>,
) -> anyhow::Result<(Engine, crate::policy::engine::Loaded, Hooks)> {
    let sensor_tgid = crate::loader::kernel_tgid(&mut loaded.ebpf).unwrap_or_else(|e| {
        log::warn!("{e}; exempting the sensor by its own pid");
        std::process::id()
    });
    let installer = crate::policy::install::Installer::from_ebpf(&mut loaded.ebpf, sensor_tgid)?;
    let (engine, policy_loaded) = Engine::new(installer, source, parsed, mode)?;
    let mut hooks = Hooks {
        ingress: loader::Ingress::new(loaded.network_error.is_none().then_some(cgroup_root)),
        syscalls: loader::SyscallHooks::new(loaded.lsm_btf.take()),
        capability_checks: loaded
            .attached
            .iter()
            .any(|p| ["capable", "security_capable", "cap_capable"].contains(p)),
    };
    sync_hooks(&mut hooks, &mut loaded.ebpf, &engine);
    Ok((engine, policy_loaded, hooks))
}

/// Loads and attaches the always-on programs, with what this kernel allows (said up front).
pub(super) fn load_programs(
    opts: &RunOptions,
    features: &crate::probe::Report,
    cgroup_root: &Path,
) -> anyhow::Result<loader::Loaded> {
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
    let loaded = loader::load(&loader::LoadOptions {
        btf_path: opts.btf.clone(),
        lsm: features.ok("lsm"),
        cap_tracepoint: features.ok("tracepoint_cap_capable"),
        cap_fexit: features.ok("fentry"),
        ring_buffer_bytes: ring_bytes,
        network: features.ok("cgroup_sock_addr").then(|| {
            (
                cgroup_root.to_owned(),
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
    Ok(loaded)
}

/// Serves the API socket, and metrics on TCP if asked; returns the questions' channel and the
/// bound metrics address.
pub(super) async fn serve_api(
    opts: &RunOptions,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(mpsc::Receiver<crate::api::Request>, Option<SocketAddr>)> {
    let (api_tx, api_rx) = mpsc::channel(16);
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
    Ok((api_rx, metrics_addr))
}

pub(super) fn open_rings(loaded: &mut loader::Loaded) -> anyhow::Result<Rings> {
    let mut take = |name: &str| {
        loaded
            .ebpf
            .take_map(name)
            .with_context(|| format!("{name} map missing"))
    };
    let ring = RingBuf::try_from(take(map::EVENTS)?)?;
    let lost = PerCpuArray::try_from(take(map::LOST)?)?;
    let control = RingBuf::try_from(take(map::CONTROL)?)?;
    let reader = Reader::new(control, ring).context("polling the ring buffers")?;
    Ok(Rings { reader, lost })
}

/// The pipeline with its sink and the kernel's summary maps.
pub(super) fn assemble_pipeline(
    opts: &RunOptions,
    loaded: &mut loader::Loaded,
    registry: Registry,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Pipeline<JsonLines<Box<dyn std::io::Write>>>> {
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
    let ebpf = &mut loaded.ebpf;
    pipeline.summaries = ebpf
        .take_map(map::CAP_SEEN)
        .map(aya::maps::PerCpuHashMap::try_from)
        .transpose()?
        .map(crate::summaries::CapSummaries::new);
    pipeline.net_summaries = ebpf
        .take_map(map::NET_SEEN)
        .map(aya::maps::PerCpuHashMap::try_from)
        .transpose()?
        .map(crate::summaries::NetSummaries::new);
    pipeline.sys_summaries = ebpf
        .take_map(map::SYSCALL_COUNTS)
        .map(aya::maps::PerCpuHashMap::try_from)
        .transpose()?
        .map(crate::summaries::SysSummaries::new);
    Ok(pipeline)
}

/// Tells the kernel cgroup `cgroup` is a container's; a full map is counted by the kernel and
/// reported here, and the sensor runs on.
pub(super) fn seen<S: crate::output::Sink>(pipeline: &mut Pipeline<S>, cgroup: u64, what: &str) {
    if let Some(engine) = pipeline.engine.as_mut()
        && let Err(e) = engine.container_seen(cgroup)
    {
        log::error!("policy for {what}: {e}");
    }
}

/// The runtimes' own listings find containers whose cgroup path the walk did not recognise;
/// then every container gets its metadata (bounded) and a start line before the sensor says
/// it is ready. Returns how many containers there are.
pub(super) async fn startup_scan<S: crate::output::Sink>(
    pipeline: &mut Pipeline<S>,
    enricher: &Enricher,
    wait: Duration,
) -> anyhow::Result<usize> {
    for adopted in pipeline.registry.adopt_listed(enricher).await {
        log::info!(
            "container {} ({}) found through its runtime's listing",
            adopted.id,
            adopted.runtime.as_str()
        );
        seen(
            pipeline,
            adopted.cgroup_id,
            &format!("container {}", adopted.id),
        );
    }
    let existing: Vec<_> = pipeline.registry.containers().cloned().collect();
    let scan_deadline = tokio::time::Instant::now() + wait;
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
    Ok(existing.len())
}

/// Watches the policy file for changes (reload on SIGHUP where it cannot).
pub(super) fn watch_policy(path: &Path) -> Option<crate::policy::watch::Watcher> {
    match crate::policy::watch::Watcher::new(path) {
        Ok(w) => Some(w),
        Err(e) => {
            log::warn!(
                "not watching {} for changes ({e}); reload with SIGHUP",
                path.display()
            );
            None
        }
    }
}

/// Forwards the kernel programs' log records (aya-log) to this process's log.
pub(super) fn spawn_kernel_log(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
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
