//! Kernel-facing tests that need no container runtime: they run on the host (`tests/kernel.rs`)
//! and, unchanged, inside every QEMU guest kernel (`src/bin/guest.rs`, `cargo xtask vmtest`).
//! Containers are stood in for by cgroups named exactly as the runtimes name theirs; the kernel
//! programs and the daemon cannot tell the difference.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

use crate::{
    Sensor, kernel_has,
    net::{LoopbackAddrs, workload_bin},
    probe, program_exists, unique,
};

/// What a kernel test concluded, when it did not panic.
pub enum Outcome {
    Pass,
    /// The test could not run here; the reason is printed.
    Skip(String),
}

pub type KernelTest = fn() -> Outcome;

/// Every kernel-facing test, by name. Later controls add theirs here.
pub const TESTS: &[(&str, KernelTest)] = &[
    ("probe_matches_kernel", probe_matches_kernel),
    (
        "exec_attribution_by_cgroup_layout",
        exec_attribution_by_cgroup_layout,
    ),
    ("programs_unloaded_on_sigterm", programs_unloaded_on_sigterm),
    (
        "exec_kill_before_the_image_runs",
        exec_kill_before_the_image_runs,
    ),
    (
        "exec_block_refuses_with_eperm",
        exec_block_refuses_with_eperm,
    ),
    (
        "capability_kill_names_the_syscall",
        capability_kill_names_the_syscall,
    ),
    (
        "capability_block_refuses_with_eperm",
        capability_block_refuses_with_eperm,
    ),
    (
        "quiet_capability_probes_are_not_uses",
        quiet_capability_probes_are_not_uses,
    ),
    (
        "network_block_refuses_with_eperm",
        network_block_refuses_with_eperm,
    ),
    (
        "network_kill_kills_the_caller",
        network_kill_kills_the_caller,
    ),
    (
        "syscall_block_refuses_mount_with_eperm",
        syscall_block_refuses_mount_with_eperm,
    ),
    ("syscall_kill_at_entry", syscall_kill_at_entry),
    (
        "the_sensors_objects_are_guarded",
        the_sensors_objects_are_guarded,
    ),
    (
        "the_sensors_process_is_guarded",
        the_sensors_process_is_guarded,
    ),
    (
        "segmented_containers_cannot_go_around_the_hooks",
        segmented_containers_cannot_go_around_the_hooks,
    ),
    (
        "a_container_cgroup_is_judged_from_its_creation",
        a_container_cgroup_is_judged_from_its_creation,
    ),
    (
        "a_containers_sub_cgroups_are_judged_by_its_rules",
        a_containers_sub_cgroups_are_judged_by_its_rules,
    ),
];

/// Marker lines around the probe JSON on a guest console, for the host to collect.
pub const PROBE_BEGIN: &str = "===SENSOR-PROBE-JSON-BEGIN===";
pub const PROBE_END: &str = "===SENSOR-PROBE-JSON-END===";

fn in_guest() -> bool {
    std::env::var_os("SENSOR_GUEST").is_some()
}

/// The probe's answers agree with what the kernel exposes, and the minimum the sensor needs is
/// there.
pub fn probe_matches_kernel() -> Outcome {
    let p = probe();
    if in_guest() {
        println!(
            "{PROBE_BEGIN}\n{}\n{PROBE_END}",
            serde_json::to_string(&p).unwrap()
        );
    }
    for feature in [
        "ring_buffer",
        "raw_tracepoint",
        "send_signal_tracing",
        "cgroup_sock_addr",
    ] {
        assert!(
            kernel_has(&p, feature),
            "every supported kernel has {feature}: {p:#}"
        );
    }
    let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir());
    if let Some(tracefs) = tracefs {
        let present = tracefs.join("events/capability/cap_capable").is_dir();
        assert_eq!(
            kernel_has(&p, "tracepoint_cap_capable"),
            present,
            "probe agrees with tracefs about capability:cap_capable: {p:#}"
        );
    }
    let lsm_active = fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|l| l.split(',').any(|x| x.trim() == "bpf"));
    if !lsm_active {
        assert!(
            !kernel_has(&p, "lsm"),
            "no bpf LSM active, yet the probe says LSM works: {p:#}"
        );
    }
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let bpf_lsm_booted = cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("lsm="))
        .is_some_and(|l| l.split(',').any(|x| x == "bpf"));
    if in_guest() && !bpf_lsm_booted {
        // The guest booted without BPF LSM on purpose: the fallbacks must be found.
        assert!(!lsm_active, "lsm= without bpf, yet bpf is active");
        assert!(
            kernel_has(&p, "fentry"),
            "trampolines work in the guests: {p:#}"
        );
        let cap = p["enforcement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["control"] == "capability")
            .unwrap();
        assert_eq!(cap["kill_via"], "fexit/security_capable", "{p:#}");
        assert_eq!(cap["block"], "kill", "{p:#}");
    } else if in_guest() {
        // Guests boot with lsm=...,bpf on kernels built with CONFIG_BPF_LSM: the strongest
        // enforcement must be found there.
        assert!(lsm_active, "guest booted without the bpf LSM");
        assert!(
            kernel_has(&p, "lsm"),
            "BPF LSM must load in the guest: {p:#}"
        );
        let exec = p["enforcement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["control"] == "exec")
            .unwrap();
        assert_eq!(exec["block"], "block", "{p:#}");
    }
    Outcome::Pass
}

/// The cgroup v2 mount, as the sensor finds it.
pub fn cgroup_v2_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            (right.starts_with("cgroup2 ") && f.get(3) == Some(&"/")).then(|| PathBuf::from(f[4]))
        })
        .expect("a cgroup v2 mount")
}

/// A cgroup created for a test; removes what it created (deepest first) when dropped.
pub struct TestCgroup {
    pub rel: String,
    created: Vec<PathBuf>,
}

impl TestCgroup {
    pub fn create(rel: &str) -> Self {
        let root = cgroup_v2_root();
        let mut created = Vec::new();
        let mut path = root.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            path.push(part);
            if !path.exists() {
                fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
                created.push(path.clone());
            }
        }
        Self {
            rel: rel.to_owned(),
            created,
        }
    }

    pub fn path(&self) -> PathBuf {
        cgroup_v2_root().join(self.rel.trim_start_matches('/'))
    }

    /// Runs `PROGRAM ARGS...` (exec'd) as a process that first moves itself into this cgroup;
    /// returns its exit status and stdout.
    pub fn exec(&self, program: &str, args: &str) -> (std::process::ExitStatus, String) {
        let procs = self.path().join("cgroup.procs");
        let out = Command::new("/bin/sh")
            .args([
                "-c",
                &format!("echo $$ > {} && exec {program} {args}", procs.display()),
            ])
            .output()
            .expect("sh");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs a shell `script` in this cgroup; returns its exit status and stdout.
    pub fn run(&self, script: &str) -> (std::process::ExitStatus, String) {
        let procs = self.path().join("cgroup.procs");
        let out = Command::new("/bin/sh")
            .args(["-c", &format!("echo $$ > {} && {script}", procs.display())])
            .output()
            .expect("sh");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs `/bin/echo ARGS...` as a process that first moves itself into this cgroup.
    pub fn exec_echo(&self, marker: &str) {
        let procs = self.path().join("cgroup.procs");
        let status = Command::new("/bin/sh")
            .args([
                "-c",
                &format!("echo $$ > {} && exec /bin/echo {marker}", procs.display()),
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("sh");
        assert!(status.success(), "moving into {} and exec", self.rel);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            // The echo has exited; the kernel may still be reaping it for a moment.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn hex64(seed: &str) -> String {
    // Distinct per test run and per layout; only needs to look like a container id.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for i in 0..4u64 {
        for b in seed.bytes().chain(i.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn exec_line(sensor: &mut Sensor, marker: &str) -> Value {
    sensor.wait_for(Duration::from_secs(30), marker, |v| {
        v["kind"] == "exec"
            && v["process"]["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == marker))
    })
}

/// A process exec'd in a cgroup laid out like each runtime's is attributed to that runtime's
/// container, with the pod UID for Kubernetes layouts; host cgroups give `null`.
pub fn exec_attribution_by_cgroup_layout() -> Outcome {
    let tag = unique("layout");
    let uid = "0f5e6b1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b";
    let uid_ = uid.replace('-', "_");
    let id = |n: &str| hex64(&format!("{tag}-{n}"));
    // (cgroup path, runtime, container id, pod uid)
    let layouts: Vec<(String, &str, String, Option<&str>)> = vec![
        (
            format!("/docker/{}", id("docker")),
            "docker",
            id("docker"),
            None,
        ),
        (
            format!("/system.slice/docker-{}.scope", id("docker-systemd")),
            "docker",
            id("docker-systemd"),
            None,
        ),
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{}.scope",
                id("cri")
            ),
            "containerd",
            id("cri"),
            Some(uid),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{}.scope",
                id("crio")
            ),
            "cri-o",
            id("crio"),
            Some(uid),
        ),
        (
            format!("/machine.slice/libpod-{}.scope", id("podman")),
            "podman",
            id("podman"),
            None,
        ),
        (format!("/default/{tag}"), "containerd", tag.clone(), None),
    ];
    // One container exists before the sensor starts: the startup walk must find it.
    let early_id = id("early");
    let early = TestCgroup::create(&format!("/docker/{early_id}"));
    let mut sensor = Sensor::start(&[]);
    for (path, runtime, cid, pod) in &layouts {
        let cg = TestCgroup::create(path);
        let marker = format!("{tag}-{runtime}-{}", &cid[..8.min(cid.len())]);
        cg.exec_echo(&marker);
        let line = exec_line(&mut sensor, &marker);
        let c = &line["container"];
        assert_eq!(c["id"], cid.as_str(), "{path}: {line}");
        assert_eq!(c["runtime"], *runtime, "{path}: {line}");
        match pod {
            Some(uid) => assert_eq!(c["pod"]["uid"], *uid, "{path}: {line}"),
            None => assert!(c["pod"].is_null(), "{path}: {line}"),
        }
    }
    let marker = format!("{tag}-early");
    early.exec_echo(&marker);
    let line = exec_line(&mut sensor, &marker);
    assert_eq!(
        line["container"]["id"],
        early_id.as_str(),
        "container found by the startup walk: {line}"
    );

    let host = TestCgroup::create(&format!("/{tag}-host"));
    let marker = format!("{tag}-host");
    host.exec_echo(&marker);
    let line = exec_line(&mut sensor, &marker);
    assert!(
        line["container"].is_null(),
        "a plain cgroup is the host: {line}"
    );
    Outcome::Pass
}

/// After `signal`, every program the sensor loaded is gone, its pins are removed, and its last
/// line reports the lost-event total.
pub fn detaches_on(signal: i32) {
    let mut sensor = Sensor::start(&[]);
    let ids = sensor.program_ids();
    assert!(ids.len() >= 3, "programs held while running: {ids:?}");
    assert!(ids.iter().all(|id| program_exists(*id)), "{ids:?}");
    let status = sensor.stop_with(signal);
    assert!(status.success(), "clean exit on signal {signal}: {status}");
    // The kernel frees programs after an RCU grace period once the last reference is closed:
    // allow it a moment (seconds under emulation).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut left: Vec<u32> = ids;
    while !left.is_empty() && std::time::Instant::now() < deadline {
        left.retain(|id| program_exists(*id));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        left.is_empty(),
        "still loaded 10 s after signal {signal}: {left:?}"
    );
    let stopped = sensor.wait_for(Duration::from_secs(1), "the stopped line", |v| {
        v["kind"] == "sensor" && v["event"] == "stopped"
    });
    assert_eq!(stopped["lost_events"], 0, "{stopped}");
    let pins = Path::new("/sys/fs/bpf/sensor").join(sensor.pid().to_string());
    assert!(!pins.exists(), "pins removed: {}", pins.display());
}

/// SIGTERM (what Kubernetes and Docker send) detaches and unloads everything.
pub fn programs_unloaded_on_sigterm() -> Outcome {
    detaches_on(libc::SIGTERM);
    Outcome::Pass
}

/// Writes a one-rule policy (`name`, `body`, `action`) for every container, enforce mode, and
/// starts a sensor on it (no runtime to ask: the rule needs no metadata).
fn policy_sensor(name: &str, body: &str, action: &str) -> (Sensor, PathBuf) {
    let policy = std::env::temp_dir().join(format!("{}.yaml", unique("policy")));
    fs::write(
        &policy,
        format!("version: 1\nmode: enforce\nrules:\n  - name: {name}\n    {body}\n    action: {action}\n"),
    )
    .unwrap();
    let sensor = Sensor::start(&["--policy", policy.to_str().unwrap(), "--docker-socket", ""]);
    (sensor, policy)
}

fn echo_policy_sensor(action: &str) -> (Sensor, PathBuf) {
    policy_sensor("no-echo", "exec: { deny: [\"/bin/echo\"] }", action)
}

/// A skip where BPF LSM is not usable, saying why and what the kernel gets instead
/// (`without`).
fn lsm_skip(p: &Value, without: &str) -> Option<Outcome> {
    if kernel_has(p, "lsm") {
        return None;
    }
    let why = p["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "lsm"))
        .and_then(|c| c["detail"].as_str())
        .unwrap_or("not probed")
        .to_owned();
    Some(Outcome::Skip(format!(
        "BPF LSM is not usable on this kernel ({why}): {without}; the QEMU guests prove this path"
    )))
}

/// A scratch mount point, unmounted (if anything got mounted) and removed on drop.
struct MountPoint(PathBuf);

impl MountPoint {
    fn new() -> Self {
        let p = std::env::temp_dir().join(unique("mnt"));
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
        let _ = fs::remove_dir(&self.0);
    }
}

fn cap_line(sensor: &mut Sensor, container: &str, cap: &str) -> Value {
    sensor.wait_for(
        Duration::from_secs(30),
        &format!("{cap} in the container"),
        |v| {
            v["kind"] == "capability"
                && v["container"]["id"] == container
                && v["capability"]["name"] == cap
                && !v["rule"].is_null()
        },
    )
}

/// `action: kill` on a denied capability kills the process at its use and names the syscall
/// in progress (read from the task's saved registers: this checks the layout on each kernel).
pub fn capability_kill_names_the_syscall() -> Outcome {
    let (mut sensor, policy) =
        policy_sensor("no-admin", "capabilities: { deny: [SYS_ADMIN] }", "kill");
    let tag = unique("capkill");
    let cg = ready_container(&mut sensor, &tag);
    let mnt = MountPoint::new();
    let (status, stdout) = cg.run(&format!(
        "mount -t tmpfs none {}; echo mount=$?",
        mnt.0.display()
    ));
    assert!(status.success(), "the shell lives: {status:?}");
    assert!(stdout.contains("mount=137"), "mount killed: {stdout:?}");
    let line = cap_line(&mut sensor, &hex64(&tag), "CAP_SYS_ADMIN");
    assert_eq!(line["syscall"], "mount", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["enforced_by"], "signal", "{line}");
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// Where BPF LSM runs, `action: block` makes the check fail: mount gets EPERM and the process
/// that called it lives on.
pub fn capability_block_refuses_with_eperm() -> Outcome {
    if let Some(skip) = lsm_skip(&probe(), "block falls back to kill here") {
        return skip;
    }
    let (mut sensor, policy) =
        policy_sensor("no-admin", "capabilities: { deny: [SYS_ADMIN] }", "block");
    let tag = unique("capblock");
    let cg = ready_container(&mut sensor, &tag);
    let mnt = MountPoint::new();
    let (status, stdout) = cg.run(&format!(
        "mount -t tmpfs none {} 2>&1; echo mount=$?",
        mnt.0.display()
    ));
    assert!(status.success(), "the shell lives: {status:?}");
    assert!(
        !stdout.contains("mount=0") && !stdout.contains("mount=137"),
        "refused, not killed: {stdout:?}"
    );
    assert!(
        stdout.to_lowercase().contains("permission") || stdout.contains("not permitted"),
        "EPERM: {stdout:?}"
    );
    let line = cap_line(&mut sensor, &hex64(&tag), "CAP_SYS_ADMIN");
    assert_eq!(line["syscall"], "mount", "{line}");
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced_by"], "lsm", "{line}");
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// The kernel asks for capabilities it does not need ("may I show this?"): SYS_PTRACE when
/// root reads another user's /proc/<pid>/stat (`ps`), SYS_ADMIN on every mmap, brk and fork
/// of a root process (memory accounting). Under a rule that kills both, the work still runs:
/// such checks are reported as quiet, never as uses.
pub fn quiet_capability_probes_are_not_uses() -> Outcome {
    let (mut sensor, policy) = policy_sensor(
        "no-admin",
        "capabilities: { deny: [SYS_ADMIN, SYS_PTRACE] }",
        "kill",
    );
    let tag = unique("quiet");
    let id = hex64(&tag);
    let cg = ready_container(&mut sensor, &tag);
    // A process of another user, whose /proc/<pid>/stat the container's root reads.
    let mut other = Command::new("sleep")
        .arg("30")
        .uid(65534)
        .gid(65534)
        .spawn()
        .expect("sleep as nobody");
    let (status, stdout) = cg.run(&format!(
        "cat /proc/{}/stat >/dev/null; echo stat=$?; head -c 20000000 /dev/zero | wc -c; echo done",
        other.id()
    ));
    let _ = other.kill();
    let _ = other.wait();
    assert!(status.success(), "{status:?}");
    assert!(
        stdout.contains("stat=0") && stdout.contains("20000000") && stdout.contains("done"),
        "the work ran: {stdout:?}"
    );
    let quiet = sensor.wait_for(Duration::from_secs(30), "a quiet SYS_PTRACE check", |v| {
        v["kind"] == "capability"
            && v["container"]["id"] == id.as_str()
            && v["capability"]["name"] == "CAP_SYS_PTRACE"
            && v["capability"]["quiet"] == true
    });
    assert!(
        quiet["rule"].is_null(),
        "quiet checks are not violations: {quiet}"
    );
    let violations: Vec<Value> = sensor
        .lines(Duration::from_millis(300))
        .iter()
        .filter(|v| {
            v["kind"] == "capability" && v["container"]["id"] == id.as_str() && !v["rule"].is_null()
        })
        .cloned()
        .collect();
    assert!(
        violations.is_empty(),
        "no capability was used: {violations:?}"
    );
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// A sensor whose policy puts every container in segment `inner` and the test's loopback
/// addresses in segment `outer`, with cross-segment traffic denied by `action`.
fn segment_sensor(addrs: &LoopbackAddrs, action: &str) -> (Sensor, PathBuf) {
    let policy = std::env::temp_dir().join(format!("{}.yaml", unique("policy")));
    fs::write(
        &policy,
        format!(
            "version: 1\nmode: enforce\nsegments:\n  - name: inner\n    containers: {{}}\n  \
             - name: outer\n    cidrs: [\"{}/32\", \"{}/128\"]\nnetwork:\n  cross_segment: deny\n  \
             action: {action}\nrules: []\n",
            addrs.v4, addrs.v6
        ),
    )
    .unwrap();
    let sensor = Sensor::start(&["--policy", policy.to_str().unwrap(), "--docker-socket", ""]);
    (sensor, policy)
}

/// Runs `workload ARGS` in cgroup `cg`: its JSON, and the shell's view of its exit.
fn workload_in(cg: &TestCgroup, args: &str) -> (Value, String) {
    let (_, stdout) = cg.run(&format!(
        "{} {args}; echo exit=$?",
        workload_bin().display()
    ));
    let exit = stdout
        .lines()
        .find_map(|l| l.strip_prefix("exit="))
        .unwrap_or("?")
        .to_owned();
    let json = if exit == "0" {
        crate::net::parse_workload(&stdout)
    } else {
        Value::Null
    };
    (json, exit)
}

/// `action: block` on cross-segment traffic: TCP connect (IPv4, IPv6, IPv4-mapped IPv6) and
/// unconnected UDP sendto from a container to an address of another segment fail with EPERM
/// at once, at the cgroup socket hooks; the same connect outside any container works.
pub fn network_block_refuses_with_eperm() -> Outcome {
    let mut addrs = LoopbackAddrs::add();
    addrs.serve(7100);
    let (mut sensor, policy) = segment_sensor(&addrs, "block");
    let tag = unique("netblock");
    let cg = ready_container(&mut sensor, &tag);
    let targets = [
        format!("tcp-connect {}:7100", addrs.v4),
        format!("tcp-connect [{}]:7100", addrs.v6),
        format!("tcp-connect [::ffff:{}]:7100", addrs.v4),
        format!("udp-send {}:7101", addrs.v4),
        format!("udp-send [{}]:7101", addrs.v6),
    ];
    for t in &targets {
        let (out, exit) = workload_in(&cg, t);
        assert_eq!(exit, "0", "{t}: the process lives");
        assert_eq!(out["ok"], false, "{t}: refused: {out}");
        assert_eq!(out["errno"], 1, "{t}: EPERM: {out}");
        if let Some(ms) = out["ms"].as_f64() {
            assert!(ms < 500.0, "{t}: refused at once, not timed out: {out}");
        }
    }
    // The host is in no segment: the same connect goes through.
    let host = Command::new(workload_bin())
        .args(["tcp-connect", &format!("{}:7100", addrs.v4)])
        .output()
        .expect("workload");
    let host = crate::net::parse_workload(&String::from_utf8_lossy(&host.stdout));
    assert_eq!(host["ok"], true, "from the host: {host}");
    let line = sensor.wait_for(Duration::from_secs(30), "the refused connect", |v| {
        v["kind"] == "network"
            && v["container"]["id"] == hex64(&tag).as_str()
            && v["network"]["protocol"] == "tcp"
            && v["network"]["dst"] == addrs.v6.as_str()
    });
    assert_eq!(line["network"]["dst_segment"], "outer", "{line}");
    assert_eq!(line["network"]["src_segment"], "inner", "{line}");
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced_by"], "cgroup", "{line}");
    assert_eq!(line["rule"], "network.cross_segment", "{line}");
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// `action: kill` on cross-segment traffic: the connecting process dies of SIGKILL — from
/// the cgroup hook where the kernel lets it signal, else from the syscall's exit tracepoint.
pub fn network_kill_kills_the_caller() -> Outcome {
    let mut addrs = LoopbackAddrs::add();
    addrs.serve(7200);
    let (mut sensor, policy) = segment_sensor(&addrs, "kill");
    let tag = unique("netkill");
    let cg = ready_container(&mut sensor, &tag);
    for t in [
        format!("tcp-connect {}:7200", addrs.v4),
        format!("udp-send [{}]:7201", addrs.v6),
    ] {
        let (_, exit) = workload_in(&cg, &t);
        assert_eq!(exit, "137", "{t}: killed by SIGKILL");
    }
    let line = sensor.wait_for(Duration::from_secs(30), "the kill", |v| {
        v["kind"] == "network"
            && v["container"]["id"] == hex64(&tag).as_str()
            && v["network"]["protocol"] == "udp"
    });
    assert_eq!(line["action"], "kill", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["enforced_by"], "signal", "{line}");
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// A container cgroup whose start line (hence its rules) the sensor has written.
fn ready_container(sensor: &mut Sensor, tag: &str) -> TestCgroup {
    let id = hex64(tag);
    let cg = TestCgroup::create(&format!("/docker/{id}"));
    sensor.wait_for(Duration::from_secs(30), "the container's start line", |v| {
        v["kind"] == "container" && v["container"]["id"] == id.as_str()
    });
    cg
}

/// Where BPF LSM runs, `action: block` refuses the exec itself: execve fails with EPERM and
/// the process that called it lives on.
pub fn exec_block_refuses_with_eperm() -> Outcome {
    if let Some(skip) = lsm_skip(&probe(), "block falls back to kill here") {
        return skip;
    }
    let (mut sensor, policy) = echo_policy_sensor("block");
    let tag = unique("block");
    let cg = ready_container(&mut sensor, &tag);
    let (status, stdout) = cg.run(&format!("/bin/echo {tag}; echo survived=$?"));
    assert!(status.success(), "the shell lives on: {status:?}");
    assert!(!stdout.contains(&tag), "echo never ran: {stdout:?}");
    assert!(
        stdout.contains("survived=126"),
        "execve failed (EPERM → 126): {stdout:?}"
    );
    let line = sensor.wait_for(Duration::from_secs(30), "the blocked exec", |v| {
        v["kind"] == "exec"
            && v["rule"] == "no-echo"
            && v["container"]["id"] == hex64(&tag).as_str()
    });
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["enforced_by"], "lsm", "{line}");
    assert_eq!(line["process"]["exe"], "/bin/echo", "{line}");
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// An exec rule with `action: kill` in enforce mode kills the process at exec, before the new
/// image runs any of its code; the host, not selected, is untouched.
pub fn exec_kill_before_the_image_runs() -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let (mut sensor, policy) = echo_policy_sensor("kill");
    let tag = unique("kill");
    let cg = ready_container(&mut sensor, &tag);
    let (status, stdout) = cg.exec("/bin/echo", &tag);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "killed by SIGKILL: {status:?}"
    );
    assert!(stdout.is_empty(), "echo never ran its code: {stdout:?}");
    let line = exec_line(&mut sensor, &tag);
    assert_eq!(line["rule"], "no-echo", "{line}");
    assert_eq!(line["action"], "kill", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["enforced_by"], "signal", "{line}");
    // The host is outside every container selector.
    let out = Command::new("/bin/echo").arg(&tag).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&tag));
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// A cgroup named like a runtime's container is a (pending) container from its creation, by
/// the kernel alone: with the daemon stopped, a process in it is judged by every rule, even
/// one whose selector its metadata would not match (the host's rules, before, until the daemon
/// read the creation).
pub fn a_container_cgroup_is_judged_from_its_creation() -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let (sensor, policy) = policy_sensor(
        "no-echo",
        "containers: { labels: { tier: nobody-has-this } }\n    exec: { deny: [\"/bin/echo\"] }",
        "kill",
    );
    let tag = unique("creation");
    // SAFETY: signalling the sensor child this test started.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGSTOP) };
    let cg = TestCgroup::create(&format!("/system.slice/docker-{}.scope", hex64(&tag)));
    let (status, stdout) = cg.exec("/bin/echo", &tag);
    // SAFETY: as above.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGCONT) };
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "a pending container is judged by every rule: {status:?} {stdout:?}"
    );
    // The host is no container.
    let out = Command::new("/bin/echo").arg(&tag).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&tag));
    drop(cg);
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// A container's sub-cgroups have no entry of their own: they are judged through its own, the
/// kernel walking the sub-cgroup's ancestors (ids before 6.1, pointers since). A process moved
/// into one three levels down is killed by the container's rule; so is one that was in a
/// sub-cgroup before the sensor started (no identity of its own: judged by its cgroup alone).
pub fn a_containers_sub_cgroups_are_judged_by_its_rules() -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let tag = unique("subcg");
    let id = hex64(&tag);
    let early = TestCgroup::create(&format!("/docker/{id}/early"));
    let go = std::env::temp_dir().join(&tag);
    let mut waiting = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {}/cgroup.procs && while [ ! -e {} ]; do sleep 0.1; done; exec /bin/echo {tag}",
                early.path().display(),
                go.display()
            ),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sh");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(early.path().join("cgroup.procs"))
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the shell moved into {}",
            early.rel
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut sensor, policy) = echo_policy_sensor("kill");
    sensor.wait_for(Duration::from_secs(30), "the container's start line", |v| {
        v["kind"] == "container" && v["container"]["id"] == id.as_str()
    });
    let deep = TestCgroup::create(&format!("/docker/{id}/a/b/c"));
    let (status, stdout) = deep.exec("/bin/echo", &tag);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "moved into a sub-cgroup three levels down: {status:?} {stdout:?}"
    );
    fs::write(&go, "").unwrap();
    let status = waiting.wait().expect("the waiting shell");
    let _ = fs::remove_file(&go);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "in a sub-cgroup since before the sensor started: {status:?}"
    );
    let line = exec_line(&mut sensor, &tag);
    assert_eq!(line["rule"], "no-echo", "{line}");
    assert_eq!(line["container"]["id"], id.as_str(), "{line}");
    // The host is no container.
    let out = Command::new("/bin/echo").arg(&tag).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&tag));
    drop(deep);
    drop(early);
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

fn syscall_line(sensor: &mut Sensor, tag: &str, name: &str) -> Value {
    sensor.wait_for(Duration::from_secs(30), &format!("the {name} call"), |v| {
        v["kind"] == "syscall"
            && v["container"]["id"] == hex64(tag).as_str()
            && v["syscall"]["name"] == name
    })
}

/// `action: block` on mount: where BPF LSM runs the call fails with EPERM (refused at
/// `sb_mount` or at its CAP_SYS_ADMIN check) and the process lives on; without BPF LSM, block
/// falls back to kill, which the event says.
pub fn syscall_block_refuses_mount_with_eperm() -> Outcome {
    let lsm = kernel_has(&probe(), "lsm");
    let (mut sensor, policy) = policy_sensor("no-mount", "syscalls: { deny: [mount] }", "block");
    let tag = unique("mount");
    let cg = ready_container(&mut sensor, &tag);
    let mnt = MountPoint::new();
    let target = mnt.0.display().to_string();
    let (out, exit) = workload_in(&cg, &format!("syscall mount {target}"));
    let line = syscall_line(&mut sensor, &tag, "mount");
    assert_eq!(line["rule"], "no-mount", "{line}");
    assert_eq!(line["syscall"]["args"]["target"], target.as_str(), "{line}");
    assert_eq!(line["syscall"]["args"]["fstype"], "tmpfs", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    if lsm {
        assert_eq!(exit, "0", "the process lives: {out}");
        assert_eq!(out["ok"], false, "mount refused: {out}");
        assert_eq!(out["errno"], 1, "EPERM: {out}");
        assert_eq!(line["enforced_by"], "lsm", "{line}");
        // Refused at sb_mount, or at the CAP_SYS_ADMIN check if that comes first.
        let at = &line["syscall"]["seen_at"];
        assert!(at == "lsm_hook" || at == "capability_check", "{line}");
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains(&target), "nothing mounted: {mounts}");
    } else {
        assert_eq!(exit, "137", "block falls back to kill without BPF LSM");
        assert_eq!(line["enforced_by"], "signal", "{line}");
    }
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// `action: kill` on an unprivileged syscall (`unshare`): its own tracepoint is attached
/// and the caller dies at entry, with the flags decoded; the host is untouched.
pub fn syscall_kill_at_entry() -> Outcome {
    let (mut sensor, policy) = policy_sensor("no-unshare", "syscalls: { deny: [unshare] }", "kill");
    let tag = unique("unshare");
    let cg = ready_container(&mut sensor, &tag);
    let (out, exit) = workload_in(&cg, "syscall unshare");
    assert_eq!(exit, "137", "killed: {out}");
    let line = syscall_line(&mut sensor, &tag, "unshare");
    assert_eq!(line["syscall"]["seen_at"], "entry", "{line}");
    assert_eq!(
        line["syscall"]["args"]["flags"],
        serde_json::json!(["CLONE_NEWUSER"]),
        "{line}"
    );
    assert_eq!(line["enforced_by"], "signal", "{line}");
    let host = Command::new(workload_bin())
        .args(["syscall", "unshare"])
        .output()
        .unwrap();
    assert_eq!(host.status.code(), Some(0), "the host is not selected");
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// A process of a container asking for the sensor's map by id (natively and as a 32-bit
/// call): the call fails with EPERM where BPF LSM runs (refused at its CAP_SYS_ADMIN check),
/// the caller is killed elsewhere — under the default policy in audit mode, since the guard is
/// not a policy rule. Its own program, by id, it gets.
pub fn the_sensors_objects_are_guarded() -> Outcome {
    let lsm = kernel_has(&probe(), "lsm");
    let mut sensor = Sensor::start(&["--docker-socket", ""]);
    let tag = unique("guard");
    let cg = ready_container(&mut sensor, &tag);
    let attack = crate::net::attack_bin();
    let attack = attack.to_str().unwrap();
    let (status, stdout) = cg.exec(attack, "bpf-own");
    assert!(
        status.success() && stdout.contains("\"ok\":true"),
        "its own program: {status:?} {stdout}"
    );
    let map = crate::object_ids_of(sensor.pid(), "map_id")[0];
    for how in ["", " int80"] {
        let (status, stdout) = cg.exec(attack, &format!("bpf-by-id map {map}{how}"));
        refused_or_killed(lsm, status, &stdout, &format!("bpf-by-id{how}"));
    }
    // By path: the counters the sensor pins. No capability check guards BPF_OBJ_GET; the
    // `bpf_map` LSM hook does, for every bpffs mount a container could reach.
    let pin = format!("/sys/fs/bpf/sensor/{}/LOST", sensor.pid());
    assert!(std::path::Path::new(&pin).exists(), "{pin} is pinned");
    let (status, stdout) = cg.exec(attack, &format!("bpf-pin {pin}"));
    if lsm {
        assert!(
            status.success() && stdout.contains("\"ok\":false,\"errno\":1"),
            "BPF_OBJ_GET of {pin} refused with EPERM: {status:?} {stdout}"
        );
    } else {
        eprintln!("note: without BPF LSM BPF_OBJ_GET of a pin is not guarded (README): {stdout}");
    }
    let line = sensor.wait_for(Duration::from_secs(30), "the tamper line", |v| {
        v["kind"] == "tamper" && v["container"]["id"] == hex64(&tag).as_str()
    });
    assert_eq!(line["rule"], "sensor.guard", "{line}");
    assert_eq!(
        line["enforced_by"],
        if lsm { "lsm" } else { "signal" },
        "{line}"
    );
    Outcome::Pass
}

/// What an `attack` helper run under enforcement shows: where BPF LSM runs the operation was
/// refused (it reports EPERM and exits normally), elsewhere its process died of SIGKILL.
fn refused_or_killed(lsm: bool, status: std::process::ExitStatus, stdout: &str, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    if lsm {
        assert!(
            status.success() && stdout.contains("\"errno\":1"),
            "{what}: refused with EPERM: {status:?} {stdout}"
        );
    } else {
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{what}: killed: {stdout}"
        );
    }
}

/// What no segment hook sees, in a segmented container: a packet socket (its CAP_NET_RAW
/// check) and CAP_NET_ADMIN (which rewrites, tunnels or redirects packets after the hooks) are
/// refused with EPERM where BPF LSM runs, their caller killed elsewhere. The host, in no
/// segment, does both.
pub fn segmented_containers_cannot_go_around_the_hooks() -> Outcome {
    let lsm = kernel_has(&probe(), "lsm");
    let addrs = LoopbackAddrs::add();
    let (mut sensor, policy) = segment_sensor(&addrs, "block");
    let tag = unique("around");
    let cg = ready_container(&mut sensor, &tag);
    let attack = crate::net::attack_bin();
    let attack = attack.to_str().unwrap();
    for (what, args, rule) in [
        ("a packet socket", "socket packet", "network.socket"),
        ("CAP_NET_ADMIN", "net-admin", "network.admin"),
        ("IP_TRANSPARENT", "ip-transparent", "network.admin"),
        ("an XDP program load", "bpf-xdp", "network.admin"),
    ] {
        let host = Command::new(attack)
            .args(args.split(' '))
            .output()
            .expect("attack");
        let host = String::from_utf8_lossy(&host.stdout);
        assert!(host.contains("\"ok\":true"), "{what} from the host: {host}");
        let (status, stdout) = cg.exec(attack, args);
        refused_or_killed(lsm, status, &stdout, what);
        let line = sensor.wait_for(Duration::from_secs(30), rule, |v| {
            v["kind"] == "network"
                && v["container"]["id"] == hex64(&tag).as_str()
                && v["rule"] == rule
        });
        assert_eq!(line["enforced"], true, "{line}");
        assert_eq!(line["network"]["src_segment"], "inner", "{line}");
    }
    let _ = fs::remove_file(&policy);
    Outcome::Pass
}

/// Where BPF LSM runs, a process of a container that can see the sensor (the host's PID
/// namespace, as in the guests) can neither signal it nor attach to it: `kill` and opening
/// `/proc/<pid>/mem` fail with EPERM and the sensor runs on. The host (the test itself) may.
pub fn the_sensors_process_is_guarded() -> Outcome {
    if let Some(skip) = lsm_skip(
        &probe(),
        "no hook can refuse a signal or a ptrace attach to the sensor here",
    ) {
        return skip;
    }
    let mut sensor = Sensor::start(&["--docker-socket", ""]);
    let tag = unique("guardproc");
    let cg = ready_container(&mut sensor, &tag);
    let pid = sensor.pid();
    let (_, kill_out) = cg.run(&format!("kill -TERM {pid}; echo kill=$?"));
    let attack = crate::net::attack_bin();
    let (status, mem_out) = cg.exec(attack.to_str().unwrap(), &format!("open /proc/{pid}/mem"));
    let lines = sensor.lines(Duration::from_secs(3)).to_vec();
    let tamper: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "tamper").collect();
    let all = format!("kill: {kill_out} mem: {status:?} {mem_out} tamper: {tamper:?}");
    assert!(kill_out.contains("kill=1"), "kill refused: {all}");
    assert!(
        status.success() && mem_out.contains("\"errno\":1"),
        "/proc/<sensor>/mem refused with EPERM: {all}"
    );
    for object in ["signal", "ptrace"] {
        let line = tamper
            .iter()
            .find(|v| {
                v["container"]["id"] == hex64(&tag).as_str() && v["tamper"]["object"] == object
            })
            .unwrap_or_else(|| panic!("no {object} line: {all}"));
        assert_eq!(line["rule"], "sensor.guard", "{line}");
        assert_eq!(line["enforced_by"], "lsm", "{line}");
    }
    // Still running, still answering.
    assert!(!sensor.program_ids().is_empty(), "the sensor runs on");
    Outcome::Pass
}
