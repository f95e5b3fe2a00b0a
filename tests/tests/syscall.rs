//! Syscall rules against real containers: `unshare -U`, `mount -t tmpfs`, `setns` and `bpf()`
//! in a selected container are reported with decoded arguments (audit) or killed at entry
//! (enforce, kill); the same calls on the host or in an unselected container are untouched;
//! the runtime's own mounts while it sets a container up are not the container's.

use std::{path::PathBuf, time::Duration};

use integration_tests::{
    ContainerGuard, Sensor, docker, docker_output, image, net::workload_bin, require_docker, unique,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const CALLS: [&str; 4] = ["unshare", "mount", "setns", "bpf"];

fn policy(mode: &str, tier: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("sys-policy")));
    std::fs::write(
        &path,
        format!(
            "version: 1\nmode: {mode}\nrules:\n  - name: no-escapes\n    containers: {{ labels: {{ tier: {tier} }} }}\n    syscalls: {{ deny: [unshare, mount, setns, bpf] }}\n    action: kill\n"
        ),
    )
    .unwrap();
    path
}

/// A long-running container, labelled `tier` when given; seccomp off and SYS_ADMIN added so
/// that the calls reach the kernel's syscall entry (Docker's seccomp profile would refuse
/// them before any tracepoint sees them).
fn start(name: &str, tier: Option<&str>) -> String {
    let label = tier.map(|t| format!("tier={t}"));
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--security-opt",
        "seccomp=unconfined",
        "--cap-add",
        "SYS_ADMIN",
    ];
    if let Some(l) = &label {
        args.extend(["--label", l.as_str()]);
    }
    let image = image();
    args.extend([image.as_str(), "sleep", "300"]);
    docker(&args)
}

/// `workload syscall NAME` in the container: its exit code and JSON line.
fn call_in(name: &str, call: &str) -> (Option<i32>, Option<Value>) {
    let out = docker_output(&["exec", name, "/usr/local/bin/workload", "syscall", call]);
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok());
    (out.status.code(), line)
}

fn syscall_line(sensor: &mut Sensor, id: &str, call: &str) -> Value {
    sensor.wait_for(WAIT, &format!("{call} from {id}"), |v| {
        v["kind"] == "syscall" && v["container"]["id"] == id && v["syscall"]["name"] == call
    })
}

fn expected_args(call: &str) -> Value {
    match call {
        "unshare" => json!({"flags": ["CLONE_NEWUSER"]}),
        "mount" => {
            json!({"source": "none", "target": "/mnt", "fstype": "tmpfs", "flags": ["MS_NOSUID"]})
        }
        "setns" => json!({"nstype": ["CLONE_NEWUTS"]}),
        "bpf" => json!({"cmd": "BPF_MAP_CREATE"}),
        _ => unreachable!(),
    }
}

/// The calls on the host (the test process's child): never reported, never killed.
fn host_calls_untouched(sensor: &mut Sensor) {
    let dir = std::env::temp_dir().join(unique("host-mnt"));
    for call in CALLS {
        let child = std::process::Command::new(workload_bin())
            .args(["syscall", call, dir.to_str().unwrap()])
            .output()
            .expect("workload on the host");
        assert_eq!(child.status.code(), Some(0), "host {call}: {child:?}");
    }
    // The sensor saw nothing of them (host processes have no rules).
    let reported: Vec<&Value> = sensor
        .lines(Duration::from_millis(500))
        .iter()
        .filter(|v| v["kind"] == "syscall" && v["container"].is_null())
        .collect();
    assert!(reported.is_empty(), "host syscalls reported: {reported:?}");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn audit_reports_escape_syscalls_with_decoded_arguments() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("sys-audit");
    let p = policy("audit", &tier);
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("sys-audit");
    let other = unique("sys-other");
    let _g = (ContainerGuard(name.clone()), ContainerGuard(other.clone()));
    let id = start(&name, Some(&tier));
    let other_id = start(&other, None);
    for call in CALLS {
        let (code, out) = call_in(&name, call);
        assert_eq!(code, Some(0), "{call} ran to the end under audit: {out:?}");
        let line = syscall_line(&mut sensor, &id, call);
        assert_eq!(line["rule"], "no-escapes", "{line}");
        assert_eq!(line["action"], "audit", "{line}");
        assert_eq!(line["would"], "kill", "{line}");
        assert_eq!(line["process"]["comm"], "workload", "{line}");
        for (k, v) in expected_args(call).as_object().unwrap() {
            assert_eq!(&line["syscall"]["args"][k], v, "{call} {k}: {line}");
        }
        let (code, _) = call_in(&other, call);
        assert_eq!(code, Some(0), "{call} in the unselected container");
    }
    let lines = sensor.lines(Duration::from_millis(500)).to_vec();
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|v| v["kind"] == "syscall" && v["container"]["id"] == id.as_str())
        .collect();
    // runc mounted, pivoted and unshared for this container before its first exec: none of
    // that is the container's; only the four calls above are.
    assert_eq!(ours.len(), 4, "exactly the workload's calls: {ours:#?}");
    assert!(
        !lines
            .iter()
            .any(|v| v["kind"] == "syscall" && v["container"]["id"] == other_id.as_str()),
        "unselected container reported"
    );
    host_calls_untouched(&mut sensor);
}

#[test]
fn enforce_kill_kills_each_escape_syscall_at_entry() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("sys-kill");
    let p = policy("enforce", &tier);
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("sys-kill");
    let other = unique("sys-spared");
    let _g = (ContainerGuard(name.clone()), ContainerGuard(other.clone()));
    let id = start(&name, Some(&tier));
    start(&other, None);
    for call in CALLS {
        let (code, out) = call_in(&name, call);
        assert_eq!(code, Some(137), "{call} killed (SIGKILL): {out:?}");
        assert!(out.is_none(), "{call} printed nothing: it died in the call");
        let line = syscall_line(&mut sensor, &id, call);
        assert_eq!(line["action"], "kill", "{line}");
        assert_eq!(line["enforced"], true, "{line}");
        assert_eq!(line["enforced_by"], "signal", "{line}");
        let (code, out) = call_in(&other, call);
        assert_eq!(code, Some(0), "{call} in the unselected container: {out:?}");
    }
    host_calls_untouched(&mut sensor);
    // The container itself lives on: only the calling process died.
    let state = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(state.trim(), "true");
}

#[test]
fn unknown_syscall_name_is_a_policy_error_with_a_hint() {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("sys-bad")));
    std::fs::write(
        &path,
        "version: 1\nrules:\n  - name: typo\n    syscalls: { deny: [mount, unshar] }\n    action: kill\n",
    )
    .unwrap();
    let out = std::process::Command::new(integration_tests::sensor_bin())
        .args(["policy", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:4:")) && stderr.contains("unknown syscall `unshar`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unshare"),
        "suggests the right name: {stderr}"
    );
}
