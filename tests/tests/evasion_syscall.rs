//! Ways around syscall and capability rules, tried from inside real containers: 32-bit
//! syscalls, io_uring, other syscalls doing the same operation, repetition under audit, and a
//! child sharing its parent's file table.

use std::time::Duration;

use integration_tests::{
    ContainerGuard, Sensor, exec_in, last_json, policy_file, require_docker, serial,
    start_labelled, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn rule(tier: &str, name: &str, body: &str, action: &str) -> String {
    format!(
        "  - name: {name}\n    containers: {{ labels: {{ tier: {tier} }} }}\n    {body}\n    action: {action}\n"
    )
}

/// A container where the calls reach the kernel (Docker's seccomp profile refuses most of
/// them first) and may use SYS_ADMIN.
fn start(name: &str, tier: &str) -> String {
    start_labelled(
        name,
        tier,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "--cap-add",
            "SYS_ADMIN",
        ],
    )
}

fn attack(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let (code, out, _) = integration_tests::helper_in(name, "attack", args);
    (code, out)
}

fn syscall_line(sensor: &mut Sensor, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    sensor.wait_for(WAIT, what, |v| {
        v["kind"] == "syscall" && v["container"]["id"] == id && pred(v)
    })
}

#[test]
fn a_32bit_syscall_is_judged_as_what_it_does() {
    require_docker();
    let _serial = serial();
    let tier = unique("int80");
    let p = policy_file(
        "enforce",
        &format!(
            "{}{}",
            rule(
                &tier,
                "no-ns",
                "syscalls: { deny: [unshare, mount, bpf] }",
                "kill"
            ),
            rule(
                &tier,
                "no-clock",
                "syscalls: { deny: [settimeofday] }",
                "kill"
            )
        ),
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("int80");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    // i386 164 is setresuid; on x86_64 164 is settimeofday, which a rule kills: the 32-bit
    // call must not be taken for it.
    let (code, out) = attack(&name, &["int80", "setresuid16"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(last_json(&out)["ok"], true, "{out}");
    assert_eq!(attack(&name, &["int80", "getpid"]).0, Some(0));
    // Judged at entry (unshare), at the capability check (mount, bpf).
    for call in ["unshare", "mount", "bpf"] {
        let (code, out) = attack(&name, &["int80", call]);
        assert_eq!(code, Some(137), "32-bit {call}: {out}");
        let line = syscall_line(&mut sensor, &id, call, |v| v["syscall"]["name"] == call);
        assert_eq!(line["syscall"]["compat"], true, "{line}");
        assert_eq!(line["rule"], "no-ns", "{line}");
    }
}

#[test]
fn the_other_syscalls_of_an_operation_are_covered() {
    require_docker();
    let _serial = serial();
    let tier = unique("family");
    let p = policy_file(
        "enforce",
        &rule(
            &tier,
            "no-ops",
            "syscalls: { deny: [mount, unshare, ptrace] }",
            "kill",
        ),
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("family");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    // The new mount API.
    assert_eq!(attack(&name, &["fsopen"]).0, Some(137), "fsopen");
    assert_eq!(
        attack(&name, &["open-tree", "/etc"]).0,
        Some(137),
        "open_tree clone"
    );
    let line = syscall_line(&mut sensor, &id, "fsopen", |v| {
        v["syscall"]["name"] == "fsopen"
    });
    assert_eq!(line["rule"], "no-ops", "{line}");
    // A clone that creates a namespace is an unshare: the caller dies, and the child at its
    // first judged operation (setting the hostname of its new namespace).
    let (code, out) = attack(&name, &["clone-newuts"]);
    assert_eq!(code, Some(137), "{out}");
    assert!(
        !out.contains("\"ok\":true"),
        "the child set its hostname: {out}"
    );
    let line = syscall_line(&mut sensor, &id, "a namespace clone", |v| {
        v["syscall"]["seen_at"] == "fork"
    });
    assert_eq!(line["syscall"]["name"], "unshare", "{line}");
    // Reading another process's memory is a ptrace.
    assert_eq!(attack(&name, &["vm-read"]).0, Some(137), "process_vm_readv");
}

#[test]
fn io_uring_is_judged_by_the_capabilities_and_syscalls_it_uses() {
    require_docker();
    let _serial = serial();
    let tier = unique("uring");
    let p = policy_file(
        "enforce",
        &format!(
            "{}{}",
            rule(
                &tier,
                "no-override",
                "capabilities: { deny: [DAC_OVERRIDE] }",
                "kill"
            ),
            rule(&tier, "no-links", "syscalls: { deny: [symlinkat] }", "kill")
        ),
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("uring");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &["--security-opt", "seccomp=unconfined"]);
    // A file only DAC_OVERRIDE opens for root.
    let (code, _, _) = exec_in(
        &name,
        &[
            "sh",
            "-c",
            "echo secret > /tmp/s && chown 65534 /tmp/s && chmod 000 /tmp/s",
        ],
    );
    assert_eq!(code, Some(0));
    // Opened through a ring, with credentials registered before the process dropped the
    // capability: the ring's use of it is the process's.
    let (code, out) = attack(&name, &["iouring-open", "/tmp/s"]);
    assert_eq!(code, Some(137), "{out}");
    let line = sensor.wait_for(WAIT, "the DAC_OVERRIDE use", |v| {
        v["kind"] == "capability"
            && v["container"]["id"] == id
            && v["capability"]["name"] == "CAP_DAC_OVERRIDE"
            && v["enforced"] == true
    });
    assert_eq!(line["capability"]["quiet"], false, "{line}");
    // A symlinkat done by a ring request.
    let (code, out) = attack(&name, &["iouring-symlink", "/etc/passwd", "/tmp/l"]);
    assert_eq!(code, Some(137), "{out}");
    let line = syscall_line(&mut sensor, &id, "the ring's symlinkat", |v| {
        v["syscall"]["seen_at"] == "io_uring"
    });
    assert_eq!(line["syscall"]["name"], "symlinkat", "{line}");
    assert_eq!(
        exec_in(&name, &["ls", "/tmp/l"]).0,
        Some(1),
        "no link was made"
    );
}

#[test]
fn creating_a_ring_is_reported_without_a_syscall_hook() {
    require_docker();
    let _serial = serial();
    let tier = unique("ring");
    let p = policy_file(
        "audit",
        &rule(
            &tier,
            "no-rings",
            "syscalls: { deny: [io_uring_setup] }",
            "kill",
        ),
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let programs = sensor.ready["programs"].to_string();
    assert!(
        !programs.contains("sys_enter"),
        "no syscall tracepoint for io_uring_setup: {programs}"
    );
    let name = unique("ring");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &["--security-opt", "seccomp=unconfined"]);
    let (code, out) = attack(&name, &["iouring-symlink", "/etc/passwd", "/tmp/l"]);
    assert_eq!(code, Some(0), "audit: {out}");
    let line = syscall_line(&mut sensor, &id, "the ring", |v| {
        v["syscall"]["name"] == "io_uring_setup"
    });
    assert_eq!(line["syscall"]["seen_at"], "io_uring_create", "{line}");
    assert_eq!(line["would"], "kill", "{line}");
}

#[test]
fn repeated_calls_under_audit_are_counted_not_lost() {
    require_docker();
    let _serial = serial();
    let tier = unique("repeat");
    let p = policy_file(
        "audit",
        &rule(
            &tier,
            "count-me",
            "syscalls: { deny: [setns, unshare] }",
            "kill",
        ),
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap(), "--summary-interval-s", "1"]);
    let name = unique("repeat");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    const N: u64 = 2000;
    for call in ["setns", "unshare"] {
        let (code, _, _) = exec_in(
            &name,
            &[
                "/usr/local/bin/workload",
                "syscall-loop",
                &N.to_string(),
                call,
            ],
        );
        assert_eq!(code, Some(0), "audit only");
    }
    // One event per kind, then summaries: together they count every call.
    std::thread::sleep(Duration::from_secs(3));
    let total = |sensor: &mut Sensor, call: &str| -> u64 {
        sensor
            .lines(Duration::from_millis(200))
            .iter()
            .filter(|v| {
                v["kind"] == "syscall" && v["container"]["id"] == id && v["syscall"]["name"] == call
            })
            .map(|v| v["syscall"]["count"].as_u64().unwrap_or(1))
            .sum()
    };
    // unshare is judged at its entry: exactly once per call.
    assert_eq!(total(&mut sensor, "unshare"), N, "unshare calls");
    // setns at its capability checks: at least once per call (it checks twice).
    let setns = total(&mut sensor, "setns");
    assert!((N..=2 * N).contains(&setns), "setns calls counted: {setns}");
}

#[test]
fn a_child_sharing_the_file_table_does_not_leave_its_result_behind() {
    require_docker();
    let _serial = serial();
    let tier = unique("files");
    let p = policy_file(
        "enforce",
        &rule(
            &tier,
            "no-memfd",
            "syscalls: { deny: [memfd_create] }",
            "kill",
        ),
    );
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("files");
    let _g = ContainerGuard(name.clone());
    start(&name, &tier);
    // The child is killed at memfd_create's entry; the call still completes, and the memfd
    // lands in the shared table. The parent, which holds it, dies at its next judged
    // operation: here, executing something.
    let (code, out) = attack(&name, &["clone-files", "memfd"]);
    let report = last_json(&out);
    assert_eq!(report["child_killed"], true, "{out}");
    assert!(
        report["parent_holds"].to_string().contains("memfd"),
        "{out}"
    );
    assert_eq!(code, Some(137), "the parent's exec: {out}");
}
