//! Harness for the integration tests: start the real sensor binary, read its JSON lines, drive
//! real containers with the docker CLI. Tests panic with context instead of returning errors,
//! and a test that cannot run here says why on stderr.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod kernel_suite;
pub mod net;

/// The sensor binary: `SENSOR_BIN` (set by `cargo xtask test`), else next to this test binary.
pub fn sensor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SENSOR_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> → target/<profile>/sensor
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("sensor"))
        .expect("target layout");
    assert!(
        bin.exists(),
        "sensor binary not found at {}: run the tests with `cargo xtask test`, or set SENSOR_BIN",
        bin.display()
    );
    bin
}

/// Image with busybox that the containers of the tests run (built by `cargo xtask test`).
pub fn image() -> String {
    std::env::var("SENSOR_TEST_IMAGE").unwrap_or_else(|_| "local/busybox:latest".into())
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "integration tests load eBPF programs: run them as root with `cargo xtask test`"
    );
}

/// Fails (never skips) when dockerd is not there: `cargo xtask test` starts one.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "dockerd does not answer: run the integration tests with `cargo xtask test`, which starts one"
    );
}

/// Runs `docker ARGS`, panicking with its stderr on failure; returns trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    checked("docker", args)
}

pub fn docker_output(args: &[&str]) -> Output {
    output("docker", args)
}

/// Runs `PROGRAM ARGS`, panicking with its stderr on failure; returns trimmed stdout.
pub fn checked(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let program = program.as_ref();
    let out = output(program, args);
    assert!(
        out.status.success(),
        "{} {} failed: {}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn output(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// `docker run --rm --name NAME --cidfile … OPTS IMAGE CMD…`: the run's output and the
/// container's full id (empty if it never got one).
pub fn run_rm(name: &str, opts: &[&str], cmd: &[&str]) -> (Output, String) {
    let cid = std::env::temp_dir().join(format!("{name}.cid"));
    let image = image();
    let cid_arg = cid.display().to_string();
    let mut args = vec!["run", "--rm", "--name", name, "--cidfile", &cid_arg];
    args.extend_from_slice(opts);
    args.push(&image);
    args.extend_from_slice(cmd);
    let out = docker_output(&args);
    let id = std::fs::read_to_string(&cid).unwrap_or_default();
    let _ = std::fs::remove_file(&cid);
    (out, id)
}

/// `GET path` on a TCP address; the whole response, status line included.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics address");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A unique name for containers and markers of one test.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes, when dropped, the cgroup directory `0` (a path below the hierarchies' roots, such
/// as a `--cgroup-parent`) in every mounted cgroup hierarchy: dockerd leaves a parent behind.
pub struct CgroupParentGuard(pub String);

impl Drop for CgroupParentGuard {
    fn drop(&mut self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for line in mountinfo.lines().filter(|l| l.contains(" - cgroup")) {
            if let Some(mp) = line.split_whitespace().nth(4) {
                let _ = std::fs::remove_dir(format!("{mp}{}", self.0));
            }
        }
    }
}

/// Removes a container when dropped, so a failing test does not leave it running.
pub struct ContainerGuard(pub String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.0]);
    }
}

/// A running `sensor run`, its stdout parsed as JSON lines.
pub struct Sensor {
    child: Child,
    lines: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    pub ready: Value,
}

impl Sensor {
    /// Starts `sensor run ARGS` and waits for its `ready` line. Each sensor gets its own API
    /// socket unless ARGS name one, so that tests can run side by side.
    pub fn start(args: &[&str]) -> Self {
        require_root();
        let mut cmd = Command::new(sensor_bin());
        cmd.arg("run").args(args);
        if !args.contains(&"--api-socket") {
            cmd.arg("--api-socket")
                .arg(std::env::temp_dir().join(format!("{}.sock", unique("sensor-api"))));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the sensor");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("sensor wrote a line that is not JSON ({e}): {line}")
                });
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut sensor = Self {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
            ready: Value::Null,
        };
        sensor.ready = sensor.wait_for(Duration::from_secs(60), "the sensor's ready line", |v| {
            v["kind"] == "sensor" && v["event"] == "ready"
        });
        sensor
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first line (already seen or arriving within `timeout`) matching `pred`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = std::fs::write(
                        std::env::temp_dir().join(format!("sensor-seen-{}.jsonl", self.child.id())),
                        self.seen
                            .iter()
                            .map(|v| v.to_string() + "\n")
                            .collect::<String>(),
                    );
                    panic!(
                        "no line for {what} within {timeout:?}; {} lines seen, the last:\n{}\nsensor stderr:\n{}",
                        self.seen.len(),
                        self.seen
                            .iter()
                            .rev()
                            .take(8)
                            .rev()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join("\n"),
                        self.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "sensor exited while waiting for {what}; status {:?}; stderr:\n{}",
                    self.child.try_wait(),
                    self.stderr()
                ),
            }
        }
    }

    /// Every line received so far (after waiting `settle` for stragglers).
    pub fn lines(&mut self, settle: Duration) -> &[Value] {
        let deadline = Instant::now() + settle;
        while let Ok(v) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v);
        }
        &self.seen
    }

    /// Sends `signal` and waits for exit (bounded); returns the exit status.
    pub fn stop_with(&mut self, signal: i32) -> ExitStatus {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Collect what it wrote before exiting.
                while let Ok(v) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(v);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sensor did not exit within 30 s of signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ids of the BPF programs this sensor holds, from its fd table (`prog_id` in fdinfo).
    pub fn program_ids(&self) -> Vec<u32> {
        program_ids_of(self.child.id())
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// BPF program ids referenced by the fds of process `pid` (program and link fds).
pub fn program_ids_of(pid: u32) -> Vec<u32> {
    object_ids_of(pid, "prog_id")
}

/// The ids named `key` (`prog_id`, `map_id`, `link_id`) in the fdinfo of process `pid`'s fds.
pub fn object_ids_of(pid: u32, key: &str) -> Vec<u32> {
    let mut ids = Vec::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    let prefix = format!("{key}:");
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text.lines() {
            if let Some(Ok(id)) = line.strip_prefix(&prefix).map(|id| id.trim().parse()) {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whether the kernel still has a BPF program with this id (BPF_PROG_GET_FD_BY_ID).
pub fn program_exists(id: u32) -> bool {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    // union bpf_attr for *_GET_FD_BY_ID: { u32 prog_id; u32 next_id; u32 open_flags; }
    let attr: [u32; 4] = [id, 0, 0, 0];
    // SAFETY: the attr buffer is valid for its size; the call returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd >= 0 {
        // SAFETY: closing the fd the kernel just gave us.
        unsafe { libc::close(fd as i32) };
        return true;
    }
    let err = std::io::Error::last_os_error();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOENT),
        "BPF_PROG_GET_FD_BY_ID {id}: {err}"
    );
    false
}

/// `sensor probe --json`, parsed.
pub fn probe() -> Value {
    let out = Command::new(sensor_bin())
        .args(["probe", "--json"])
        .output()
        .expect("sensor probe");
    assert!(
        out.status.success(),
        "sensor probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

/// Whether `sensor probe` found check `name` working on this kernel.
pub fn kernel_has(probe: &Value, name: &str) -> bool {
    probe["checks"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["name"] == name && c["ok"] == true))
}

/// Prints why a test does not run its body here and returns true when it should skip.
pub fn skip_unless(probe: &Value, feature: &str, test: &str) -> bool {
    if kernel_has(probe, feature) {
        return false;
    }
    let detail = probe["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == feature))
        .map(|c| c["detail"].as_str().unwrap_or("").to_owned())
        .unwrap_or_else(|| "not probed".into());
    eprintln!(
        "SKIPPED {test}: this kernel lacks {feature} ({detail}); the QEMU guest suite covers it"
    );
    true
}

/// A second dockerd of the test's own (own socket, data root, exec root, containerd; no bridge,
/// no iptables), so that a test can stop and restart it without disturbing the shared one.
pub struct PrivateDockerd {
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateDockerd {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("sensor-pd"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Self { dir, child: None };
        let bridge = d.bridge();
        let ok = Command::new("ip")
            .args(["link", "add", &bridge, "type", "bridge"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "creating bridge {bridge}");
        d.start_again();
        // Same image as the shared daemon's.
        let mut save = Command::new("docker")
            .args(["save", &image()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let status = Command::new("docker")
            .args(["-H", &d.host(), "load", "-q"])
            .stdin(save.stdout.take().expect("stdout"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            save.wait().is_ok_and(|s| s.success()),
            "docker save of the test image"
        );
        assert!(
            status.success(),
            "loading the test image into the private dockerd"
        );
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Interface names are at most 15 bytes.
    fn bridge(&self) -> String {
        format!("spd{}", std::process::id() % 1_000_000_000)
    }

    /// Starts (again) on the same data root.
    pub fn start_again(&mut self) {
        let wrapper = std::env::var("SENSOR_TEST_RUNC_WRAPPER").expect(
            "SENSOR_TEST_RUNC_WRAPPER is unset: run the integration tests with `cargo xtask test`",
        );
        let log = std::fs::File::create(self.dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["-H", &self.host()])
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            // `--bridge none` would make dockerd delete the shared daemon's docker0: give it a
            // bridge of its own instead.
            .args([
                "--bridge",
                &self.bridge(),
                "--iptables=false",
                "--ip-masq=false",
            ])
            .arg("--add-runtime")
            .arg(format!("sensor-test-runc={wrapper}"))
            .args(["--default-runtime", "sensor-test-runc"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Command::new("docker")
            .args(["-H", &self.host(), "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "private dockerd did not answer; see {}",
                self.dir.join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker run -d --network none OPTS IMAGE CMD...` on this daemon; returns the id.
    pub fn run(&self, opts: &[&str], cmd: &[&str]) -> String {
        let host = self.host();
        let mut args = vec!["-H", &host, "run", "-d", "--network", "none"];
        args.extend_from_slice(opts);
        let image = image();
        args.push(&image);
        args.extend_from_slice(cmd);
        docker(&args)
    }

    /// Stops the daemon (its containers with it).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let host = self.host();
        if let Ok(ids) = Command::new("docker")
            .args(["-H", &host, "ps", "-aq"])
            .output()
        {
            let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["-H", &host, "rm", "-f"];
                args.extend(ids);
                let _ = docker_output(&args);
            }
        }
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("exec"))
            .output();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge()])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a policy file with `rules` (YAML, each rule indented two spaces under `rules:`)
/// under `mode`; returns its path.
pub fn policy_file(mode: &str, rules: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("policy")));
    std::fs::write(&path, format!("version: 1\nmode: {mode}\nrules:\n{rules}")).unwrap();
    path
}

/// `docker exec NAME CMD…`: exit code, stdout and stderr.
pub fn exec_in(name: &str, cmd: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["exec", name];
    args.extend_from_slice(cmd);
    let out = docker_output(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `/usr/local/bin/HELPER ARGS…` (`attack`, `workload`) in container `name`: exit code,
/// stdout, stderr.
pub fn helper_in(name: &str, helper: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let path = format!("/usr/local/bin/{helper}");
    let mut cmd = vec![path.as_str()];
    cmd.extend_from_slice(args);
    exec_in(name, &cmd)
}

/// Starts `sleep 300` in a container labelled `tier=TIER` with extra docker `opts`; its id.
pub fn start_labelled(name: &str, tier: &str, opts: &[&str]) -> String {
    let label = format!("tier={tier}");
    let image = image();
    let mut args = vec!["run", "-d", "--name", name, "--label", &label];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[&image, "sleep", "300"]);
    docker(&args)
}

/// The cgroup v2 directory of process `pid`, from `/proc/PID/cgroup` and the v2 mount.
pub fn cgroup_dir_of(pid: u32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/PID/cgroup");
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    cgroup2_root().join(rel.trim_start_matches('/'))
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `…/unified` on hybrid hosts).
pub fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            post.starts_with("cgroup2 ")
                .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))
                .flatten()
        })
        .expect("a cgroup2 mount")
}

/// The host pid of a container's first process.
pub fn container_pid(name: &str) -> u32 {
    docker(&["inspect", "-f", "{{.State.Pid}}", name])
        .parse()
        .expect("a pid")
}

/// The JSON line a workload or attack helper printed last on stdout.
pub fn last_json(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in: {stdout}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Serialises the tests of one test binary that take it: a sensor judges every container of
/// the host, and under enforce a container it has no metadata for yet is judged by all its
/// rules (fail closed), so two enforcing sensors side by side can kill each other's test
/// containers while they start.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Docker socket that holds every connection until the returned flag is set, then relays it
/// to the real one: the runtime slow to answer for as long as a test wants (or for good).
pub fn held_docker_socket(path: &std::path::Path) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::{
        os::unix::net::{UnixListener, UnixStream},
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering::Relaxed},
        },
    };
    let answer = Arc::new(AtomicBool::new(false));
    let listener = UnixListener::bind(path).unwrap();
    let flag = answer.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { break };
            let flag = flag.clone();
            std::thread::spawn(move || {
                while !flag.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let Ok(server) = UnixStream::connect("/var/run/docker.sock") else {
                    return;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    answer
}
