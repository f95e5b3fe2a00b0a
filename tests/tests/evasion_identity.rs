//! Ways around container identity, tried from inside real containers: leaving one's cgroup,
//! cgroups named like another container, a runtime that places processes with
//! `clone3(CLONE_INTO_CGROUP)`, a container whose metadata never arrives, and a full ring
//! buffer, a container created while the daemon reads nothing. The policy follows the
//! process; what cannot be decided fails closed.

use std::time::Duration;

use integration_tests::{
    ContainerGuard, Sensor, cgroup_dir_of, container_pid, docker_output, exec_in, last_json,
    policy_file, require_docker, start_labelled, unique,
};

const WAIT: Duration = Duration::from_secs(20);

fn rules(tier: &str, extra: &str) -> String {
    format!(
        "  - name: no-cat\n    containers: {{ labels: {{ tier: {tier} }} }}\n    exec: {{ deny: [\"/bin/cat\"] }}\n    action: kill\n{extra}"
    )
}

/// What a privileged container's root does first: mount the cgroup v2 hierarchy (the whole
/// of it, where the container shares the host's cgroup namespace). Returns the mount point.
fn v2_in_container(name: &str) -> String {
    let (code, out, err) = exec_in(
        name,
        &[
            "sh",
            "-c",
            "mkdir -p /tmp/cg2 && mount -t cgroup2 none /tmp/cg2 && ls /tmp/cg2/cgroup.procs",
        ],
    );
    assert_eq!(code, Some(0), "mounting cgroup2 in {name}: {out}{err}");
    "/tmp/cg2".to_owned()
}

#[test]
fn a_process_that_leaves_its_cgroup_keeps_its_policy_and_is_reported() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("escape");
    let p = policy_file(
        "enforce",
        &rules(
            &tier,
            &format!(
                "  - name: no-escape\n    containers: {{ labels: {{ tier: {tier} }} }}\n    escape: deny\n    action: audit\n"
            ),
        ),
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("escape");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &["--privileged"]);
    let root = v2_in_container(&name);
    // Into the root cgroup, then a denied program: still this container's rules.
    let script = format!(
        "echo $$ > {root}/cgroup.procs && grep 0:: /proc/self/cgroup && /bin/cat /etc/passwd"
    );
    let (code, out, _) = exec_in(&name, &["sh", "-c", &script]);
    assert!(
        out.contains("0::/\n"),
        "the shell moved to the root cgroup: {out}"
    );
    assert_eq!(code, Some(137), "cat killed after the move: {out}");
    let line = sensor.wait_for(WAIT, "the escape line", |v| {
        v["kind"] == "escape" && v["container"]["id"] == id
    });
    assert_eq!(line["rule"], "no-escape", "{line}");
    assert_eq!(line["escape"]["via"], "attach", "{line}");
    assert_eq!(line["escape"]["to_path"], "/", "{line}");
    let exec = sensor.wait_for(WAIT, "the cat after the move", |v| {
        v["kind"] == "exec" && v["process"]["exe"] == "/bin/cat" && v["container"]["id"] == id
    });
    assert_eq!(exec["enforced"], true, "{exec}");
}

#[test]
fn escape_kill_stops_the_process_that_moves() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("escape-kill");
    let p = policy_file(
        "enforce",
        &format!(
            "  - name: no-escape\n    containers: {{ labels: {{ tier: {tier} }} }}\n    escape: deny\n    action: kill\n"
        ),
    );
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("escape-kill");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &["--privileged"]);
    let root = v2_in_container(&name);
    let (code, out, _) = exec_in(
        &name,
        &[
            "sh",
            "-c",
            &format!("echo $$ > {root}/cgroup.procs; echo moved"),
        ],
    );
    assert_eq!(code, Some(137), "{out}");
    assert!(!out.contains("moved"), "{out}");
    // Control: moving within its own cgroup tree is not an escape.
    let own = exec_in(&name, &["sh", "-c", "grep 0:: /proc/self/cgroup"]).1;
    let own = own.trim().trim_start_matches("0::").to_owned();
    let sub = format!("{root}{own}/sub");
    let (code, out, _) = exec_in(
        &name,
        &[
            "sh",
            "-c",
            &format!("mkdir -p {sub} && echo $$ > {sub}/cgroup.procs; echo moved"),
        ],
    );
    assert_eq!((code, out.contains("moved")), (Some(0), true), "{out}");
}

#[test]
fn a_cgroup_named_like_another_container_changes_nothing() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("lookalike");
    let p = policy_file("enforce", &rules(&tier, ""));
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    // A victim container without rules, and an attacker who names a cgroup after it.
    let victim = unique("victim");
    let _gv = ContainerGuard(victim.clone());
    let victim_id = start_labelled(&victim, "nobody", &[]);
    let name = unique("lookalike");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &["--privileged"]);
    let root = v2_in_container(&name);
    let own = exec_in(&name, &["sh", "-c", "grep 0:: /proc/self/cgroup"]).1;
    let own = own.trim().trim_start_matches("0::").to_owned();
    let fake = format!("{root}{own}/docker-{victim_id}.scope");
    let script =
        format!("mkdir -p {fake} && echo $$ > {fake}/cgroup.procs && /bin/cat /etc/passwd");
    let (code, out, _) = exec_in(&name, &["sh", "-c", &script]);
    assert_eq!(code, Some(137), "{out}");
    let exec = sensor.wait_for(WAIT, "the cat", |v| {
        v["kind"] == "exec" && v["process"]["exe"] == "/bin/cat"
    });
    assert_eq!(
        exec["container"]["id"], id,
        "attributed to its own container: {exec}"
    );
}

#[test]
fn a_runtime_placing_a_process_with_clone_into_cgroup_is_exempt_until_it_execs() {
    require_docker();
    let _serial = integration_tests::serial();
    let attack =
        std::env::var("SENSOR_TEST_ATTACK").expect("SENSOR_TEST_ATTACK (cargo xtask test)");
    let workload =
        std::env::var("SENSOR_TEST_WORKLOAD").expect("SENSOR_TEST_WORKLOAD (cargo xtask test)");
    let tier = unique("clone3");
    let p = policy_file(
        "enforce",
        &format!(
            "  - name: no-admin\n    containers: {{ labels: {{ tier: {tier} }} }}\n    capabilities: {{ deny: [SYS_ADMIN] }}\n    action: kill\n"
        ),
    );
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("clone3");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &[]);
    let dir = cgroup_dir_of(container_pid(&name));
    // A host process (a runtime) creates a child in the container's cgroup; the child's setup
    // uses CAP_SYS_ADMIN (not the container's doing), then it execs the container's program,
    // which does the same (the container's doing).
    let out = std::process::Command::new(&attack)
        .args([
            "clone-into-cgroup",
            dir.to_str().unwrap(),
            &workload,
            "syscall",
            "setns",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"mode\":\"setup-unshare\",\"ok\":true"),
        "the setup was not judged: {stdout}"
    );
    let report = last_json(&stdout);
    assert_eq!(
        report["child_signal"], 9,
        "the program after exec was: {stdout}"
    );
}

#[test]
fn a_container_whose_metadata_never_comes_is_judged_by_every_rule() {
    require_docker();
    let _serial = integration_tests::serial();
    // The sensor cannot ask Docker (no socket, no data root): no container's labels are known.
    let p = policy_file("enforce", &rules("web", ""));
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap(), "--docker-socket", ""]);
    let name = unique("unknown");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, "not-web", &[]);
    assert_eq!(exec_in(&name, &["/bin/true"]).0, Some(0), "control");
    assert_eq!(exec_in(&name, &["/bin/cat", "/etc/passwd"]).0, Some(137));
}

#[test]
fn a_container_created_while_the_daemon_reads_nothing_is_a_container_from_its_first_instruction() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("unread");
    let p = policy_file("enforce", &rules(&tier, ""));
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("unread");
    let _g = ContainerGuard(name.clone());
    // The daemon reads no event from here on: only what the kernel does at the cgroup's
    // creation can make the new cgroup a container's (before, it was the host's until the
    // daemon read that creation, and host rules do not deny cat).
    // SAFETY: signalling the sensor child this test started.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGSTOP) };
    let started = std::panic::catch_unwind(|| {
        start_labelled(&name, "not-web", &[]);
        (
            exec_in(&name, &["/bin/true"]).0,
            exec_in(&name, &["/bin/cat", "/etc/passwd"]).0,
        )
    });
    // SAFETY: as above.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGCONT) };
    let (control, cat) = started.expect("the container ran");
    assert_eq!(control, Some(0), "control: a program no rule denies");
    assert_eq!(
        cat,
        Some(137),
        "pending: every rule applies (no-cat selects tier={tier}; this one's labels are not read yet)"
    );
    // Once its metadata is read, its own rules: no-cat does not select it.
    sensor.wait_for(WAIT, "the container's start line", |v| {
        v["kind"] == "container" && v["event"] == "start" && v["container"]["name"] == name
    });
    assert_eq!(exec_in(&name, &["/bin/cat", "/etc/passwd"]).0, Some(0));
}

/// Docker's `--cgroup-parent` with the cgroupfs driver puts a container's cgroup at
/// `<parent>/<id>`, under a parent no runtime uses by default: a container from its cgroup's
/// creation, with its own rules once Docker confirms it (before, the daemon took it for a host
/// cgroup and the container ran as the host: its cat exited 0 and no `start` line came).
#[test]
fn a_container_under_a_custom_cgroup_parent_is_judged_as_a_container() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("parent");
    let p = policy_file("enforce", &rules(&tier, ""));
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let parent = format!("/{}", unique("sensor-parent"));
    // Dropped last: the parent, once the container is gone.
    let _parent = integration_tests::CgroupParentGuard(parent.clone());
    let name = unique("parent");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &["--cgroup-parent", &parent]);
    let dir = cgroup_dir_of(container_pid(&name));
    assert!(
        dir.starts_with(integration_tests::cgroup2_root().join(&parent[1..])),
        "the container's cgroup is under {parent}: {}",
        dir.display()
    );
    assert_eq!(exec_in(&name, &["/bin/true"]).0, Some(0), "control");
    assert_eq!(exec_in(&name, &["/bin/cat", "/etc/passwd"]).0, Some(137));
    sensor.wait_for(WAIT, "the container's start line", |v| {
        v["kind"] == "container" && v["event"] == "start" && v["container"]["name"] == name
    });
    sensor.wait_for(WAIT, "the kill, naming the container and the rule", |v| {
        v["kind"] == "exec" && v["container"]["name"] == name && v["rule"] == "no-cat"
    });
}

/// The other side of judging a cgroup by its name at creation: a host cgroup named like a
/// container (a bare id, as under a custom `--cgroup-parent`), which Docker does not know, is
/// the host's again once the daemon asked, and so is a child created before the daemon read it.
#[test]
fn a_host_cgroup_named_like_a_container_is_the_hosts_once_the_daemon_reads_it() {
    require_docker();
    let _serial = integration_tests::serial();
    let root = integration_tests::cgroup2_root();
    let p = policy_file(
        "enforce",
        "  - name: no-cat-anywhere\n    containers: {}\n    exec: { deny: [\"/bin/cat\"] }\n    action: kill\n",
    );
    let sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    // A bare 64-hex name: a container's under /docker or a pod, or under any other parent
    // when Docker knows it; this one it does not.
    let dir = root.join(format!(
        "{:064x}",
        u128::from(std::process::id()) << 64 | 0xc0ffee
    ));
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let cat_in_it = |dir: &std::path::Path| {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec /bin/cat /etc/hostname",
            dir.display()
        );
        std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    };
    // SAFETY: signalling the sensor child this test started.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGSTOP) };
    std::fs::create_dir(&dir).unwrap();
    let _remove = Remove(dir.clone());
    let child = dir.join("child");
    std::fs::create_dir(&child).unwrap();
    let _remove_child = Remove(child.clone());
    let pending = cat_in_it(&dir);
    let pending_child = cat_in_it(&child);
    // SAFETY: as above.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGCONT) };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        (pending.signal(), pending_child.signal()),
        (Some(9), Some(9)),
        "before the daemon read them, they are a pending container: every container rule applies"
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = cat_in_it(&child);
        if status.success() && cat_in_it(&dir).success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still judged as a container {WAIT:?} after the daemon read it: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_full_ring_buffer_loses_events_not_enforcement() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("flood");
    let p = policy_file("enforce", &rules(&tier, ""));
    let sensor = Sensor::start(&[
        "--policy",
        p.to_str().unwrap(),
        "--ring-buffer-mib",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = sensor.ready["metrics"]
        .as_str()
        .expect("metrics address")
        .to_owned();
    let name = unique("flood");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &[]);
    // The daemon stops reading: every exec on the host fills the ring (about 2 KiB each).
    // SAFETY: signalling the sensor child this test started.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGSTOP) };
    for _ in 0..1500 {
        let _ = std::process::Command::new("/bin/true").status();
    }
    let (code, _, _) = exec_in(&name, &["/bin/cat", "/etc/passwd"]);
    // SAFETY: as above.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGCONT) };
    assert_eq!(
        code,
        Some(137),
        "killed although its event could not be queued"
    );
    let metrics = integration_tests::http_get(&addr, "/metrics");
    let lost: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sensor_lost_events_total{kind=\"exec\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exec loss counter: {metrics}"));
    assert!(
        lost > 0.0,
        "the flood lost events, and they are counted: {lost}"
    );
    let _ = docker_output(&["rm", "-f", &name]);
}

/// A container with a writable cgroupfs creates more cgroups than `CGROUP_POLICY` holds:
/// 64,000 below its own cgroup and 2,000 named like containers at the hierarchy's root. None
/// of them takes an entry (a container's sub-cgroups are judged through its own entry; only
/// the host makes a cgroup a container), so a container started afterwards is judged by its
/// rules, and the attacker's processes in its sub-cgroups by its own.
#[test]
fn cgroups_a_container_creates_cannot_crowd_out_new_containers() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("crowd");
    let p = policy_file("enforce", &rules(&tier, ""));
    let mut sensor = Sensor::start(&[
        "--policy",
        p.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = sensor.ready["metrics"]
        .as_str()
        .expect("metrics address")
        .to_owned();
    let attacker = unique("crowd");
    let _ga = ContainerGuard(attacker.clone());
    start_labelled(&attacker, &tier, &["--privileged"]);
    let root = v2_in_container(&attacker);
    let own = exec_in(&attacker, &["sh", "-c", "grep 0:: /proc/self/cgroup"]).1;
    let own = own.trim().trim_start_matches("0::").to_owned();
    // The root-level lookalikes are removed from the host whatever the test's outcome.
    struct Lookalikes(std::path::PathBuf, u32);
    impl Drop for Lookalikes {
        fn drop(&mut self) {
            for i in 1..=2000u32 {
                let _ = std::fs::remove_dir(
                    self.0
                        .join(format!("docker-{:032x}{:032x}.scope", self.1, i)),
                );
            }
        }
    }
    let _lookalikes = Lookalikes(integration_tests::cgroup2_root(), std::process::id());
    let fill = format!(
        "cd {root}{own} && seq 1 64000 | xargs mkdir && \
         cd {root} && for i in $(seq 1 2000); do printf 'docker-%032x%032x.scope\\n' {pid} $i; done | xargs mkdir && \
         ls -d {root}{own}/*/ | wc -l",
        pid = std::process::id()
    );
    let (code, out, err) = exec_in(&attacker, &["sh", "-c", &fill]);
    let cleanup = format!(
        "cd {root}{own} && seq 1 64000 | xargs rmdir; \
         cd {root} && for i in $(seq 1 2000); do printf 'docker-%032x%032x.scope\\n' {pid} $i; done | xargs rmdir",
        pid = std::process::id()
    );
    let _rm = scopeguard(attacker.clone(), cleanup);
    assert_eq!(code, Some(0), "creating the cgroups: {out}{err}");
    assert!(
        out.trim().parse::<u32>().unwrap_or(0) >= 64000,
        "64,000 sub-cgroups exist: {out}"
    );
    // A container started now is judged by its rules from its first exec.
    let victim = unique("crowded");
    let _gv = ContainerGuard(victim.clone());
    start_labelled(&victim, &tier, &[]);
    assert_eq!(
        exec_in(&victim, &["/bin/cat", "/etc/passwd"]).0,
        Some(137),
        "a container started after the flood of cgroups is judged by its rules"
    );
    // The attacker in one of its sub-cgroups: its own rules still.
    let script = format!("echo $$ > {root}{own}/777/cgroup.procs && /bin/cat /etc/passwd");
    assert_eq!(exec_in(&attacker, &["sh", "-c", &script]).0, Some(137));
    sensor.wait_for(WAIT, "the victim's cat", |v| {
        v["kind"] == "exec" && v["process"]["exe"] == "/bin/cat" && v["container"]["name"] == victim
    });
    let metrics = integration_tests::http_get(&addr, "/metrics");
    let untracked = metrics
        .lines()
        .find(|l| l.starts_with("sensor_lost_events_total{kind=\"cgroup_untracked\"}"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("0")
        .to_owned();
    assert_eq!(untracked, "0", "no cgroup went without an entry: {metrics}");
}

/// Runs `script` in container `name` when dropped (removing what the test created in it).
fn scopeguard(name: String, script: String) -> impl Drop {
    struct Guard(String, String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = exec_in(&self.0, &["sh", "-c", &self.1]);
        }
    }
    Guard(name, script)
}

/// A container's processes moved out of its cgroup (each move an `escape`), and then its cgroup
/// removed: they are still the container's, judged by every rule while its cgroup is gone —
/// not the host's (before, removing the cgroup removed the entry their identity named).
#[test]
fn processes_that_outlive_their_containers_cgroup_are_not_the_hosts() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("orphan");
    let p = policy_file(
        "enforce",
        &rules(
            &tier,
            &format!(
                "  - name: no-escape\n    containers: {{ labels: {{ tier: {tier} }} }}\n    escape: deny\n    action: audit\n"
            ),
        ),
    );
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("orphan");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &["--privileged"]);
    let root = v2_in_container(&name);
    let own = exec_in(&name, &["sh", "-c", "grep 0:: /proc/self/cgroup"]).1;
    let own = own.trim().trim_start_matches("0::").to_owned();
    let script = format!(
        "for p in $(ls /proc | grep '^[0-9]*$'); do echo $p > {root}/cgroup.procs 2>/dev/null; done; \
         echo left: $(cat {root}{own}/cgroup.procs) self: $(grep 0:: /proc/$$/cgroup); \
         rmdir {root}{own} 2>&1; i=0; while [ -d {root}{own} ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
         [ -d {root}{own} ] && echo cgroup still there; grep 0:: /proc/self/cgroup; sleep 1; /bin/cat /etc/passwd"
    );
    let (code, out, err) = exec_in(&name, &["sh", "-c", &script]);
    assert!(!out.contains("still there"), "the cgroup went: {out}{err}");
    assert_eq!(
        code,
        Some(137),
        "its process, outside any container cgroup, is still judged as the container's: {out}{err}"
    );
    let _ = docker_output(&["rm", "-f", &name]);
}
