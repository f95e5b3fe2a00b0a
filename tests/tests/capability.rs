//! Capability control and posture against real containers: a use of a denied capability is
//! killed (enforce) or reported with `would` (audit); quiet probes and refused checks never
//! kill; repeated checks are counted exactly; posture findings at start.

use std::{path::PathBuf, time::Duration};

use integration_tests::{
    ContainerGuard, Sensor, docker, docker_output, http_get, image, require_docker, run_rm, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn policy(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("cap-policy")));
    std::fs::write(&path, text).unwrap();
    path
}

fn deny_policy(mode: &str, tier: &str, caps: &str) -> PathBuf {
    policy(&format!(
        "version: 1\nmode: {mode}\nrules:\n  - name: no-caps\n    containers: {{ labels: {{ tier: {tier} }} }}\n    capabilities: {{ deny: [{caps}] }}\n    action: kill\n"
    ))
}

fn cap_line(sensor: &mut Sensor, id: &str, cap: &str, syscall: &str) -> Value {
    sensor.wait_for(WAIT, &format!("{cap} in {syscall}"), |v| {
        v["kind"] == "capability"
            && v["container"]["id"] == id
            && v["capability"]["name"] == cap
            && v["syscall"] == syscall
            && v["summary"].is_null()
    })
}

/// A shell that lists files, reads /proc, allocates memory, then mounts.
const WORK_THEN_MOUNT: &str = "ls / >/dev/null; cat /proc/1/stat >/dev/null; head -c 20000000 /dev/zero | wc -c; mount -t tmpfs none /tmp; echo mount=$?";

#[test]
fn sys_admin_use_is_killed_but_holding_it_is_not() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("admin");
    let p = deny_policy("enforce", &tier, "SYS_ADMIN");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("admin");
    let _g = ContainerGuard(name.clone());
    let label = format!("tier={tier}");
    let (out, id) = run_rm(
        &name,
        &["--cap-add", "SYS_ADMIN", "--label", &label],
        &["sh", "-c", WORK_THEN_MOUNT],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the shell survives: {out:?}");
    assert!(stdout.contains("20000000"), "the memory work ran: {stdout}");
    assert!(stdout.contains("mount=137"), "mount was killed: {stdout}");
    let line = cap_line(&mut sensor, &id, "CAP_SYS_ADMIN", "mount");
    assert_eq!(line["capability"]["granted"], true, "{line}");
    assert_eq!(line["rule"], "no-caps", "{line}");
    assert_eq!(line["action"], "kill", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["enforced_by"], "signal", "{line}");
    // The shell's quiet checks (memory accounting) were seen and were not violations.
    let lines = sensor.lines(Duration::from_millis(200)).to_vec();
    let quiet_killed = lines.iter().any(|v| {
        v["kind"] == "capability"
            && v["container"]["id"] == id.as_str()
            && v["capability"]["quiet"] == true
            && !v["rule"].is_null()
    });
    assert!(!quiet_killed, "a quiet probe named a rule");
}

#[test]
fn audit_reports_would_kill_and_the_mount_succeeds() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("audit-admin");
    let p = deny_policy("audit", &tier, "SYS_ADMIN");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("audit-admin");
    let _g = ContainerGuard(name.clone());
    let label = format!("tier={tier}");
    let (out, id) = run_rm(
        &name,
        &["--cap-add", "SYS_ADMIN", "--label", &label],
        &["sh", "-c", WORK_THEN_MOUNT],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mount=0"),
        "{out:?}"
    );
    let line = cap_line(&mut sensor, &id, "CAP_SYS_ADMIN", "mount");
    assert_eq!(line["action"], "audit", "{line}");
    assert_eq!(line["would"], "kill", "{line}");
}

#[test]
fn net_raw_ping_is_killed() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("raw");
    let p = deny_policy("enforce", &tier, "NET_RAW");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("ping");
    let _g = ContainerGuard(name.clone());
    let label = format!("tier={tier}");
    let (out, id) = run_rm(
        &name,
        &["--label", &label],
        &["ping", "-c", "1", "-W", "1", "127.0.0.1"],
    );
    assert_eq!(
        out.status.code(),
        Some(137),
        "ping killed at its raw socket: {out:?}"
    );
    let line = cap_line(&mut sensor, &id, "CAP_NET_RAW", "socket");
    assert_eq!(line["enforced"], true, "{line}");
}

#[test]
fn unprivileged_proc_reads_are_never_killed() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("ptrace");
    let p = deny_policy("enforce", &tier, "SYS_PTRACE, SYS_ADMIN");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("procs");
    let _g = ContainerGuard(name.clone());
    let label = format!("tier={tier}");
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &label,
        &image(),
        "sleep",
        "300",
    ]);
    // uid 1000 reading root's /proc entries: refused SYS_PTRACE checks, never a use.
    let out = docker_output(&[
        "exec",
        "--user",
        "1000",
        &name,
        "sh",
        "-c",
        "cat /proc/1/environ >/dev/null 2>&1; ls -l /proc/1/fd >/dev/null 2>&1; ps >/dev/null; cat /proc/1/stat >/dev/null; echo alive",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "alive",
        "{out:?}"
    );
    let refused = sensor.wait_for(WAIT, "a refused SYS_PTRACE check", |v| {
        v["kind"] == "capability"
            && v["container"]["id"] == id.as_str()
            && v["capability"]["name"] == "CAP_SYS_PTRACE"
    });
    assert_eq!(refused["capability"]["granted"], false, "{refused}");
    assert!(
        refused["rule"].is_null(),
        "a refusal is an attempt, not a violation: {refused}"
    );
}

#[test]
fn a_capability_flood_is_counted_exactly_without_loss() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("flood");
    let p = deny_policy("audit", &tier, "SETUID");
    let mut sensor = Sensor::start(&[
        "--policy",
        p.to_str().unwrap(),
        "--summary-interval-s",
        "2",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let name = unique("flood");
    let _g = ContainerGuard(name.clone());
    let label = format!("tier={tier}");
    let (out, id) = run_rm(
        &name,
        &["--label", &label],
        &["/usr/local/bin/workload", "setuid-loop", "10"],
    );
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("workload JSON");
    let calls = report["ops"].as_u64().unwrap();
    assert!(calls > 100_000, "a real flood: {calls} calls");
    // The container's cgroup goes with it: its last counts are summarised then.
    sensor.wait_for(WAIT, "the stop line", |v| {
        v["kind"] == "container" && v["event"] == "stop" && v["container"]["id"] == id.as_str()
    });
    let lines: Vec<Value> = sensor
        .lines(Duration::from_millis(500))
        .iter()
        .filter(|v| {
            v["kind"] == "capability"
                && v["container"]["id"] == id.as_str()
                && v["capability"]["name"] == "CAP_SETUID"
                && v["syscall"] == "setuid"
                && v["capability"]["granted"] == true
        })
        .cloned()
        .collect();
    let counted: u64 = lines
        .iter()
        .map(|v| v["capability"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        counted,
        calls,
        "every check counted once: {} lines: {lines:#?}",
        lines.len()
    );
    assert!(
        lines.len() <= 10,
        "bounded: {} lines for {calls} checks",
        lines.len()
    );
    assert!(
        lines
            .iter()
            .all(|v| v["rule"] == "no-caps" && v["would"] == "kill"),
        "{lines:?}"
    );
    let metrics = http_get(sensor.ready["metrics"].as_str().unwrap(), "/metrics");
    for kind in ["capability", "capability_unaggregated"] {
        assert!(
            metrics.contains(&format!("sensor_lost_events_total{{kind=\"{kind}\"}} 0")),
            "{metrics}"
        );
    }
    eprintln!(
        "MEASURE capability flood: {calls} checks in 10 s → {} lines, 0 lost",
        lines.len()
    );
}

#[test]
fn posture_findings_at_start_and_kill_of_a_privileged_container() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("posture");
    let p = policy(&format!(
        "version: 1\nmode: enforce\nrules:\n  - name: no-admin\n    containers: {{ labels: {{ tier: {tier} }} }}\n    capabilities: {{ deny: [SYS_ADMIN] }}\n    action: kill\n  - name: posture\n    containers: {{ labels: {{ tier: {tier} }} }}\n    posture: {{ root_user: deny, images: {{ allow: [\"docker.io/library/*\"] }} }}\n    action: audit\n  - name: no-privileged\n    containers: {{ labels: {{ tier: {tier} }} }}\n    posture: {{ privileged: deny }}\n    action: kill\n"
    ));
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let label = format!("tier={tier}");
    let findings_of = |sensor: &mut Sensor, id: &str| -> Vec<String> {
        sensor.wait_for(WAIT, "a finding", |v| {
            v["kind"] == "posture" && v["container"]["id"] == id
        });
        sensor
            .lines(Duration::from_millis(300))
            .iter()
            .filter(|v| v["kind"] == "posture" && v["container"]["id"] == id)
            .map(|v| {
                format!(
                    "{}:{}",
                    v["finding"].as_str().unwrap(),
                    v["rule"].as_str().unwrap()
                )
            })
            .collect()
    };
    // Root (the image default), an image outside the allow list, the docker socket, SYS_ADMIN.
    let name = unique("post");
    let _g = ContainerGuard(name.clone());
    let (_, id) = run_rm(
        &name,
        &[
            "--label",
            &label,
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
        ],
        &["true"],
    );
    let found = findings_of(&mut sensor, &id);
    for want in [
        "root_user:posture",
        "image_not_allowed:posture",
        "capability_held:no-admin",
    ] {
        assert!(found.contains(&want.to_owned()), "{want} in {found:?}");
    }
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("runtime_socket_mounted")),
        "{found:?}"
    );

    // A privileged container under `kill`: its first process never runs.
    let name = unique("priv");
    let _g2 = ContainerGuard(name.clone());
    let (out, id) = run_rm(
        &name,
        &["--label", &label, "--privileged"],
        &["echo", "should-not-print"],
    );
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(findings_of(&mut sensor, &id).contains(&"privileged:no-privileged".to_owned()));
    let killed = sensor.wait_for(WAIT, "the killed first exec", |v| {
        v["kind"] == "exec" && v["container"]["id"] == id.as_str() && v["rule"] == "no-privileged"
    });
    assert_eq!(killed["enforced"], true, "{killed}");

    // --user 0 explicitly.
    let name = unique("root");
    let _g3 = ContainerGuard(name.clone());
    let (_, id) = run_rm(&name, &["--label", &label, "--user", "0"], &["true"]);
    assert!(findings_of(&mut sensor, &id).contains(&"root_user:posture".to_owned()));
}
