//! `sensor run`: load, attach, then read events until SIGINT or SIGTERM.
//!
//! Stages: kernel programs → ring buffer (`events::reader`) → decode (`events`) → attribute to a
//! container (`containers`) → JSON lines (`output`), with counters in `metrics`.

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

use crate::{
    containers::{Attribution, Registry},
    events::{self, Event, reader::Reader},
    kernel::preflight,
    loader,
    metrics::Metrics,
    output::{ExecBody, JsonLines, Line, Process, Sink, time::Clock},
};

pub struct RunOptions {
    pub btf: PathBuf,
    pub ring_buffer_mib: u32,
    /// Longest time a routine event waits in the kernel buffer before the daemon reads it.
    pub batch: Duration,
    pub metrics_addr: Option<SocketAddr>,
    pub output: Option<PathBuf>,
    pub containerd_namespaces: Vec<String>,
}

/// Body of `"kind": "sensor"` lines.
#[derive(Serialize)]
struct SensorBody<'a> {
    event: &'static str,
    version: &'static str,
    kernel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    programs: Option<&'a [&'static str]>,
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

/// Everything after the ring buffer: decode, attribute, write.
struct Pipeline<S: Sink> {
    registry: Registry,
    clock: Clock,
    sink: S,
    metrics: Arc<Metrics>,
}

impl<S: Sink> Pipeline<S> {
    fn handle(&mut self, record: &[u8]) -> std::io::Result<()> {
        let event = match events::decode(record) {
            Ok(e) => e,
            Err(e) => {
                self.metrics.decode_errors.fetch_add(1, Relaxed);
                log::warn!("dropping a ring-buffer record: {e}");
                return Ok(());
            }
        };
        match event {
            Event::Exec(exec) => {
                self.metrics.events[sensor_common::kind::EXEC as usize].fetch_add(1, Relaxed);
                let attribution = self.registry.lookup(exec.header.cgroup_id);
                let container = match &attribution {
                    Attribution::Container(c) => Some(c.as_ref()),
                    Attribution::Host => None,
                    Attribution::Unknown => {
                        self.metrics.unresolved_cgroups.fetch_add(1, Relaxed);
                        None
                    }
                };
                let time = self.clock.rfc3339(exec.header.ktime_ns);
                let line = Line {
                    time: &time,
                    kind: "exec",
                    body: ExecBody {
                        process: Process {
                            pid: exec.header.pid,
                            ppid: exec.header.ppid,
                            uid: exec.header.uid,
                            gid: exec.header.gid,
                            comm: &exec.header.comm,
                            exe: &exec.filename,
                            args: &exec.args,
                        },
                        container,
                        truncated: exec.truncated,
                    },
                };
                self.sink.write_line(&line)?;
                self.metrics.lines.fetch_add(1, Relaxed);
            }
            Event::CgroupMkdir(c) => {
                self.metrics.events[sensor_common::kind::CGROUP_MKDIR as usize]
                    .fetch_add(1, Relaxed);
                if let Some(container) = self.registry.cgroup_created(c.id, c.path) {
                    log::debug!(
                        "container {} ({}) cgroup {}",
                        container.id,
                        container.runtime.as_str(),
                        c.id
                    );
                }
                self.update_container_gauge();
            }
            Event::CgroupRmdir(c) => {
                self.metrics.events[sensor_common::kind::CGROUP_RMDIR as usize]
                    .fetch_add(1, Relaxed);
                self.registry.cgroup_removed(c.id);
                self.update_container_gauge();
            }
        }
        Ok(())
    }

    fn update_container_gauge(&self) {
        self.metrics
            .containers
            .store(self.registry.containers().count() as u64, Relaxed);
    }

    fn sensor_line(&mut self, body: SensorBody<'_>) -> std::io::Result<()> {
        let time = self.clock.now_rfc3339();
        self.sink.write_line(&Line {
            time: &time,
            kind: "sensor",
            body,
        })?;
        self.sink.flush()
    }
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
    runtime.block_on(run_async(opts, cgroup_root))
}

async fn run_async(opts: RunOptions, cgroup_root: PathBuf) -> anyhow::Result<()> {
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
        ring_buffer_bytes: ring_bytes,
    })?;
    if !loaded.missing_offsets.is_empty() {
        log::warn!(
            "this kernel's BTF lacks {}: the fields they feed stay empty",
            loaded.missing_offsets.join(", ")
        );
    }

    let pin_base = PathBuf::from(preflight::BPFFS).join("sensor");
    let pin_dir = pin_base.join(std::process::id().to_string());
    loader::remove_pins(&pin_base, None);
    loader::pin_maps(&loaded.ebpf, &pin_dir, &["LOST"])?;

    // Programs are attached: every cgroup created from now on is reported, so the walk cannot
    // miss one.
    let registry = Registry::scan(&cgroup_root, opts.containerd_namespaces.clone());
    let metrics = Arc::new(Metrics::default());
    let metrics_addr = match opts.metrics_addr {
        Some(addr) => Some(
            crate::metrics::serve(addr, metrics.clone())
                .await
                .with_context(|| format!("serving metrics on {addr}"))?,
        ),
        None => None,
    };

    let ring = RingBuf::try_from(
        loaded
            .ebpf
            .take_map("EVENTS")
            .context("EVENTS map missing")?,
    )?;
    let lost_map: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(loaded.ebpf.take_map("LOST").context("LOST map missing")?)?;
    let mut reader = Reader::new(ring).context("polling the ring buffer")?;

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
    let mut pipeline = Pipeline {
        registry,
        clock: Clock::new(),
        sink: JsonLines::new(sink),
        metrics: metrics.clone(),
    };
    pipeline.update_container_gauge();

    let kernel = crate::kernel::release();
    let container_count = pipeline.registry.containers().count();
    log::info!(
        "sensor ready: kernel {kernel}, programs {}, {} cgroups ({} containers) under {}{}",
        loaded.attached.join(", "),
        pipeline.registry.len(),
        container_count,
        cgroup_root.display(),
        metrics_addr
            .map(|a| format!(", metrics on http://{a}/metrics"))
            .unwrap_or_default()
    );
    pipeline.sensor_line(SensorBody {
        event: "ready",
        version: env!("CARGO_PKG_VERSION"),
        kernel: &kernel,
        programs: Some(&loaded.attached),
        containers: Some(container_count),
        enforcement: Some(&features.enforcement),
        metrics: metrics_addr.map(|a| a.to_string()),
        lost_events: None,
    })?;

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut batch = tokio::time::interval(opts.batch);
    batch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_lost = 0;
    let mut ticks: u64 = 0;
    let mut io_result = Ok(());
    let stop = loop {
        let woken = tokio::select! {
            ready = reader.wait() => { ready.context("polling the ring buffer")?; true }
            _ = batch.tick() => true,
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(60) {
                    pipeline.clock.refresh();
                }
                let lost = refresh_lost(&lost_map, &metrics);
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
        if woken {
            let n = reader.drain_now(|r| {
                if io_result.is_ok() {
                    io_result = pipeline.handle(r);
                }
            });
            io_result
                .as_ref()
                .map_err(|e| anyhow::anyhow!("writing events: {e}"))?;
            if n > 0 {
                pipeline.sink.flush().context("writing events")?;
            }
        }
    };

    // Events already in the buffer are still reported before detaching.
    reader.drain_now(|r| {
        if io_result.is_ok() {
            io_result = pipeline.handle(r);
        }
    });
    let lost = refresh_lost(&lost_map, &metrics);
    drop(reader);
    drop(lost_map);
    drop(loaded);
    loader::remove_pins(&pin_base, Some(&pin_dir));
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
