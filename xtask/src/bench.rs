//! `cargo xtask bench`: each workload runs in a real container with the sensor not loaded and
//! loaded, interleaved over rounds (the order alternates to cancel drift); the report is the
//! ratio loaded/unloaded of the workload's time per operation: median, min and max. It reports,
//! it does not gate.
//!
//! Then one more loaded pass with the kernel's BPF statistics on (`kernel.bpf_stats_enabled`,
//! which costs two clock reads per program run, so it is kept out of the ratios): the time the
//! kernel spent in each of the sensor's programs during each workload, per run of the program
//! and per operation of the workload.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::{docker, host, setup, util};

const IMAGE: &str = "local/sensor-bench:latest";

/// In a workload's arguments: replaced by the server container's `IP:PORT`.
const SERVER: &str = "{server}";
/// The port the server container's `workload tcp-server` listens on.
const SERVER_PORT: u16 = 9000;

struct Workload {
    name: &'static str,
    /// Arguments of `/usr/local/bin/workload` in the bench container; [`SERVER`] in one is
    /// replaced at run time.
    args: &'static [&'static str],
    /// Run as a host process instead (outside any container).
    host: bool,
    /// The policy the loaded sensor runs.
    policy: Policy,
}

/// What the loaded sensor enforces during a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// The embedded default policy (audit): no network segments.
    Default,
    /// [`SEGMENTED_POLICY`]: the bench containers in two segments with an allowed flow
    /// between them, a CIDR segment (so the ingress program is attached), enforce mode: every
    /// connect and every packet into a container is judged.
    Segmented,
}

/// The segmented policy; `{client}` and `{server}` are the bench containers' names. The CIDR
/// segment holds documentation addresses no packet of the bench goes to.
const SEGMENTED_POLICY: &str = "version: 1
mode: enforce
segments:
  - name: client
    containers: { name: \"{client}\" }
  - name: server
    containers: { name: \"{server}\" }
  - name: outside
    cidrs: [\"198.51.100.0/24\", \"2001:db8:100::/64\"]
network:
  cross_segment: deny
  unknown: allow
  action: block
  allow:
    - { from: client, to: server, ports: [9000], protocol: tcp }
rules: []
";

impl Workload {
    fn needs_server(&self) -> bool {
        self.args.iter().any(|a| a.contains(SERVER))
    }

    /// The arguments with [`SERVER`] filled in.
    fn args(&self, server: Option<&str>) -> anyhow::Result<Vec<String>> {
        self.args
            .iter()
            .map(|a| match (a.contains(SERVER), server) {
                (false, _) => Ok(a.to_string()),
                (true, Some(s)) => Ok(a.replace(SERVER, s)),
                (true, None) => bail!("workload {} needs the server container", self.name),
            })
            .collect()
    }
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "getpid",
        args: &["getpid", "3000000"],
        host: false,
        policy: Policy::Default,
    },
    Workload {
        name: "fork_exec",
        args: &["fork-exec", "2000", "/bin/true"],
        host: false,
        policy: Policy::Default,
    },
    // TCP connect+close to a listener in the same container (loopback).
    Workload {
        name: "connect_loopback",
        args: &["connect-loopback", "50000"],
        host: false,
        policy: Policy::Default,
    },
    // TCP connect+close from the bench container to the server container (bridge network).
    Workload {
        name: "connect_cross",
        args: &["connect", "50000", SERVER],
        host: false,
        policy: Policy::Default,
    },
    // The same two under a policy that segments the bench containers: the price of judging
    // each connect (allowed by an `allow` entry) and each packet into a container.
    Workload {
        name: "connect_loopback_segmented",
        args: &["connect-loopback", "50000"],
        host: false,
        policy: Policy::Segmented,
    },
    Workload {
        name: "connect_cross_segmented",
        args: &["connect", "50000", SERVER],
        host: false,
        policy: Policy::Segmented,
    },
    // Loopback connects of a host process: what attaching the network programs once at the
    // cgroup root (instead of to each container's cgroup) costs processes in no container.
    Workload {
        name: "connect_loopback_host",
        args: &["connect-loopback", "50000"],
        host: true,
        policy: Policy::Default,
    },
    // A syscall no rule names, from a host process: no seccomp filter there, so this shows
    // the whole cost of the kernel's syscall-tracepoint path being on (a container already
    // takes that path for seccomp).
    Workload {
        name: "getpid_host",
        args: &["getpid", "3000000"],
        host: true,
        policy: Policy::Default,
    },
    // A syscall the default policy names (`setns`, judged at its CAP_SYS_ADMIN check) made by
    // a process no rule applies to: the price of a hooked but allowed call.
    Workload {
        name: "setns_hooked_host",
        args: &["syscall-loop", "1000000", "setns"],
        host: true,
        policy: Policy::Default,
    },
];

fn selected(filter: Option<&str>) -> Vec<&'static Workload> {
    WORKLOADS
        .iter()
        .filter(|w| filter.is_none_or(|f| w.name.contains(f)))
        .collect()
}

/// The test crate's binaries that run inside containers and guests, built statically so that
/// they need no libc there.
pub struct StaticBins {
    pub workload: PathBuf,
    pub attack: PathBuf,
    pub guest: PathBuf,
}

pub fn build_static_test_bins() -> anyhow::Result<StaticBins> {
    let target = "x86_64-unknown-linux-gnu";
    util::run(
        util::cargo()
            .args([
                "build",
                "--release",
                "--package",
                "integration-tests",
                "--bins",
                "--target",
                target,
            ])
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    let dir = util::target_dir().join(target).join("release");
    Ok(StaticBins {
        workload: dir.join("workload"),
        attack: dir.join("attack"),
        guest: dir.join("guest"),
    })
}

/// The sensor's resident memory in KiB (VmRSS).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS missing")
}

/// Memory of a running sensor over `cycles` container start/stop cycles: RSS after each tenth,
/// and the containers it still tracks at the end (should be none of the finished ones).
fn churn_memory(sensor: &Path, cycles: usize) -> anyhow::Result<()> {
    let s = Sensor::start(sensor, None)?;
    let pid = s.0.id();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut samples = vec![(0usize, rss_kib(pid)?)];
    let started = Instant::now();
    for i in 1..=cycles {
        util::output(Command::new("docker").args([
            "run",
            "--rm",
            "--label",
            "churn=1",
            IMAGE,
            "/bin/true",
        ]))?;
        if i % (cycles / 10).max(1) == 0 || i == cycles {
            samples.push((i, rss_kib(pid)?));
            eprintln!(
                "xtask: churn {i}/{cycles}: sensor RSS {} KiB",
                samples.last().unwrap().1
            );
        }
    }
    let tracked = util::output(Command::new(sensor).args([
        "containers",
        "--json",
        "--api-socket",
        &s.api_socket(),
    ]))?;
    let tracked: serde_json::Value = serde_json::from_str(&tracked)?;
    let still = tracked
        .as_array()
        .map(|a| a.iter().filter(|c| c["labels"]["churn"] == "1").count())
        .unwrap_or(0);
    let first = samples[1].1;
    let last = samples.last().unwrap().1;
    println!(
        "churn: {cycles} containers in {:.0} s; sensor RSS {} KiB at start, {first} KiB after {}, {last} KiB after {cycles}; finished containers still tracked: {still}",
        started.elapsed().as_secs_f64(),
        samples[0].1,
        samples[1].0
    );
    let dir = util::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("churn.json"),
        serde_json::to_string_pretty(&json!({
            "cycles": cycles,
            "rss_kib": samples.iter().map(|(i, r)| json!({"after": i, "rss_kib": r})).collect::<Vec<_>>(),
            "finished_containers_still_tracked": still,
        }))?,
    )?;
    Ok(())
}

/// A running sensor, writing its events to /dev/null.
struct Sensor(Child, String);

impl Sensor {
    fn api_socket(&self) -> String {
        self.1.clone()
    }

    fn start(bin: &Path, policy: Option<&Path>) -> anyhow::Result<Self> {
        let socket = format!("/run/sensor/bench-{}.sock", std::process::id());
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--output", "/dev/null", "--api-socket", &socket]);
        if let Some(policy) = policy {
            cmd.arg("--policy").arg(policy);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("sensor stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("sensor ready") => break,
                Some(Ok(_)) => {}
                _ => bail!("sensor exited before it was ready"),
            }
        }
        // Keep draining stderr so the sensor never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self(child, socket))
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Where workloads run: the bench container, or the host with the same binary.
struct Target<'a> {
    container: &'a str,
    workload: &'a Path,
    /// The file of [`SEGMENTED_POLICY`] for these containers.
    segmented_policy: &'a Path,
}

fn measure(target: &Target<'_>, server: Option<&str>, w: &Workload) -> anyhow::Result<f64> {
    Ok(measure_ops(target, server, w)?.0)
}

/// (ns per operation, operations) of one run of `w`.
fn measure_ops(
    target: &Target<'_>,
    server: Option<&str>,
    w: &Workload,
) -> anyhow::Result<(f64, u64)> {
    let mut cmd = if w.host {
        Command::new(target.workload)
    } else {
        let mut c = Command::new("docker");
        c.args(["exec", target.container, "/usr/local/bin/workload"]);
        c
    };
    let out = util::output(cmd.args(w.args(server)?))?;
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).with_context(|| format!("workload output {out:?}"))?;
    Ok((
        v["ns_per_op"].as_f64().context("ns_per_op missing")?,
        v["ops"].as_u64().context("ops missing")?,
    ))
}

/// Run time and run count of each BPF program process `pid` holds, by program id, from its
/// fdinfo (the kernel counts while `kernel.bpf_stats_enabled` is 1).
fn prog_stats(pid: u32) -> anyhow::Result<BTreeMap<u32, (u64, u64)>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(ns), Some(cnt)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
        {
            out.insert(id as u32, (ns, cnt));
        }
    }
    Ok(out)
}

/// A program's name, as bpftool shows it.
fn prog_name(id: u32) -> String {
    util::output(Command::new("bpftool").args(["prog", "show", "id", &id.to_string(), "--json"]))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("prog {id}"))
}

/// Sets `kernel.bpf_stats_enabled` while alive; restores what it was.
struct BpfStats(String);

impl BpfStats {
    const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> anyhow::Result<Self> {
        let was = std::fs::read_to_string(Self::PATH).context(Self::PATH)?;
        std::fs::write(Self::PATH, "1").context(Self::PATH)?;
        Ok(Self(was.trim().to_owned()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

/// The kernel-cost pass: each workload once more under its loaded policy with BPF statistics
/// on; per workload, each program that ran: runs per operation, ns per run, ns per operation.
fn kernel_cost(
    sensor: &Path,
    target: &Target<'_>,
    server: Option<&str>,
    workloads: &[&'static Workload],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let _stats = BpfStats::enable()?;
    let mut names = BTreeMap::new();
    let mut report = Vec::new();
    println!("\nkernel cost (bpf_stats): programs that ran during each workload");
    println!(
        "{:<28} {:<18} {:>12} {:>10} {:>10}",
        "workload", "program", "runs/op", "ns/run", "ns/op"
    );
    for policy in [Policy::Default, Policy::Segmented] {
        let mine: Vec<_> = workloads.iter().filter(|w| w.policy == policy).collect();
        if mine.is_empty() {
            continue;
        }
        let running = match policy {
            Policy::Default => Sensor::start(sensor, None)?,
            Policy::Segmented => Sensor::start(sensor, Some(target.segmented_policy))?,
        };
        let pid = running.0.id();
        for w in mine {
            let before = prog_stats(pid)?;
            let (_, ops) = measure_ops(target, server, w)?;
            let after = prog_stats(pid)?;
            let mut programs = Vec::new();
            let mut total = 0.0;
            for (id, (ns, cnt)) in &after {
                let (ns0, cnt0) = before.get(id).copied().unwrap_or((0, 0));
                let (dns, dcnt) = (ns.saturating_sub(ns0), cnt.saturating_sub(cnt0));
                if dcnt == 0 {
                    continue;
                }
                let name = names.entry(*id).or_insert_with(|| prog_name(*id)).clone();
                let per_op = dns as f64 / ops.max(1) as f64;
                total += per_op;
                println!(
                    "{:<28} {:<18} {:>12.3} {:>10.1} {:>10.1}",
                    w.name,
                    name,
                    dcnt as f64 / ops.max(1) as f64,
                    dns as f64 / dcnt as f64,
                    per_op
                );
                programs.push(json!({
                    "program": name,
                    "runs": dcnt,
                    "run_time_ns": dns,
                    "ns_per_run": dns as f64 / dcnt as f64,
                    "ns_per_op": per_op,
                }));
            }
            println!(
                "{:<28} {:<18} {:>12} {:>10} {:>10.1}",
                w.name, "(all)", "", "", total
            );
            report.push(json!({
                "workload": w.name,
                "ops": ops,
                "kernel_ns_per_op": total,
                "programs": programs,
            }));
        }
    }
    Ok(report)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn bench(rounds: usize, filter: Option<&str>, churn: usize) -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("benchmarks load eBPF programs and start dockerd: run as root");
    }
    setup::ensure()?;
    host::ensure_bpffs()?;
    let sensor = crate::build_sensor(true)?;
    let workload = build_static_test_bins()?.workload;
    let workdir = util::target_dir().join("xtask");
    let mut dockerd = docker::TestDocker::ensure(&workdir.join("docker"))?;
    let container = format!("sensor-bench-{}", std::process::id());
    let server_container = format!("sensor-bench-server-{}", std::process::id());
    let result = (|| {
        docker::build_busybox_image(IMAGE, &[(&workload, "/usr/local/bin/workload")], &workdir)?;
        util::output(
            Command::new("docker")
                .args(["run", "-d", "--name", &container, IMAGE, "sleep", "1000000"]),
        )?;
        if churn > 0 {
            return churn_memory(&sensor, churn);
        }
        let server = if selected(filter).iter().any(|w| w.needs_server()) {
            Some(start_server(&server_container)?)
        } else {
            None
        };
        let segmented_policy = workdir.join("bench-segmented-policy.yaml");
        std::fs::write(
            &segmented_policy,
            SEGMENTED_POLICY
                .replace("{client}", &container)
                .replace("{server}", &server_container),
        )?;
        run_rounds(
            &sensor,
            &Target {
                container: &container,
                workload: &workload,
                segmented_policy: &segmented_policy,
            },
            server.as_deref(),
            rounds.max(1),
            filter,
        )
    })();
    let _ = util::output(Command::new("docker").args(["rm", "-f", &container]));
    let _ = util::output(Command::new("docker").args(["rm", "-f", &server_container]));
    dockerd.stop();
    result
}

/// Starts the server container (`workload tcp-server`) and returns its `IP:PORT` once it
/// listens.
fn start_server(name: &str) -> anyhow::Result<String> {
    let port = SERVER_PORT.to_string();
    util::output(Command::new("docker").args([
        "run",
        "-d",
        "--name",
        name,
        IMAGE,
        "/usr/local/bin/workload",
        "tcp-server",
        &port,
    ]))?;
    let ip = util::output(Command::new("docker").args([
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        name,
    ]))?;
    let ip = ip.trim();
    if ip.is_empty() {
        bail!("server container {name} has no IP address");
    }
    // The server prints its JSON line once it listens.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let logs = util::output(Command::new("docker").args(["logs", name]))?;
        if logs.contains("\"listening\"") {
            break;
        }
        if Instant::now() > deadline {
            bail!("server container {name} not listening after 10 s: {logs:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let server = format!("{ip}:{port}");
    eprintln!("xtask: bench server container listening on {server}");
    Ok(server)
}

fn run_rounds(
    sensor: &Path,
    target: &Target<'_>,
    server: Option<&str>,
    rounds: usize,
    filter: Option<&str>,
) -> anyhow::Result<()> {
    let workloads = selected(filter);
    if workloads.is_empty() {
        bail!("no workload matches {filter:?}");
    }
    for w in &workloads {
        measure(target, server, w)?; // warm-up: page cache, CPU frequency
    }
    let mut unloaded = vec![Vec::new(); workloads.len()];
    let mut loaded = vec![Vec::new(); workloads.len()];
    let started = Instant::now();
    // Not loaded, then loaded with each policy the workloads need; reversed every other round.
    let mut states = vec![None, Some(Policy::Default), Some(Policy::Segmented)];
    states.retain(|s| s.is_none() || workloads.iter().any(|w| Some(w.policy) == *s));
    for round in 0..rounds {
        let mut order = states.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for state in order {
            let _sensor = match state {
                None => None,
                Some(Policy::Default) => Some(Sensor::start(sensor, None)?),
                Some(Policy::Segmented) => {
                    Some(Sensor::start(sensor, Some(target.segmented_policy))?)
                }
            };
            for (i, w) in workloads.iter().enumerate() {
                if state.is_some_and(|p| p != w.policy) {
                    continue;
                }
                let ns = measure(target, server, w)?;
                if state.is_some() {
                    loaded[i].push(ns)
                } else {
                    unloaded[i].push(ns)
                }
            }
        }
        eprintln!("xtask: bench round {}/{rounds} done", round + 1);
    }
    let mut report = Vec::new();
    let width = WORKLOADS.iter().map(|w| w.name.len()).max().unwrap_or(0);
    println!(
        "{:<width$} {:>14} {:>14} {:>8} {:>8} {:>8}",
        "workload", "unloaded ns/op", "loaded ns/op", "median", "min", "max"
    );
    for (i, w) in workloads.iter().enumerate() {
        let mut ratios: Vec<f64> = loaded[i]
            .iter()
            .zip(&unloaded[i])
            .map(|(l, u)| l / u)
            .collect();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(0.0, f64::max);
        let med = median(&mut ratios);
        let (mu, ml) = (
            median(&mut unloaded[i].clone()),
            median(&mut loaded[i].clone()),
        );
        println!(
            "{:<width$} {mu:>14.1} {ml:>14.1} {med:>8.3} {min:>8.3} {max:>8.3}",
            w.name
        );
        report.push(json!({
            "workload": w.name,
            "args": w.args(server)?,
            "policy": format!("{:?}", w.policy).to_lowercase(),
            "unit": "ns/op",
            "unloaded": unloaded[i],
            "loaded": loaded[i],
            "median_ratio": med,
            "min_ratio": min,
            "max_ratio": max,
        }));
    }
    let cost = kernel_cost(sensor, target, server, &workloads)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let doc = json!({
        "kernel_cost": cost,
        "unix_time": secs,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "rounds": rounds,
        "ratio": "loaded / unloaded time per operation (1.00 = no overhead)",
        "duration_s": started.elapsed().as_secs_f64(),
        "workloads": report,
    });
    let dir = util::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(&doc)?;
    std::fs::write(dir.join(format!("bench-{secs}.json")), &text)?;
    std::fs::write(dir.join("latest.json"), &text)?;
    println!("written: {}", dir.join("latest.json").display());
    Ok(())
}
