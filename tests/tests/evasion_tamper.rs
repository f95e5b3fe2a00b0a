//! Switching the sensor off from a container: asking the kernel for the sensor's programs,
//! maps and links by id (natively and as a 32-bit call) kills the caller (refuses the call
//! where BPF LSM runs), in audit mode too; a container using its own BPF objects is not
//! touched.

use std::time::Duration;

use integration_tests::{
    ContainerGuard, Sensor, kernel_has, last_json, object_ids_of, probe, require_docker, serial,
    start_labelled, unique,
};
use serde_json::Value;

fn attack(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let (code, out, err) = integration_tests::helper_in(name, "attack", args);
    (code, format!("{out}{err}"))
}

#[test]
fn a_container_cannot_take_the_sensors_bpf_objects() {
    require_docker();
    let _serial = serial();
    let lsm = kernel_has(&probe(), "lsm");
    // The default policy, in audit mode: the guard is not a policy rule.
    let mut sensor = Sensor::start(&[]);
    let name = unique("tamper");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(
        &name,
        &unique("tamper"),
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--security-opt",
            "seccomp=unconfined",
        ],
    );
    // The control: its own program, by its id, is the container's to have.
    let (code, out) = attack(&name, &["bpf-own"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        last_json(&out)["ok"],
        true,
        "a container's own BPF objects: {out}"
    );

    let pid = sensor.pid();
    let prog = sensor.program_ids()[0].to_string();
    let map = object_ids_of(pid, "map_id")[0].to_string();
    let link = object_ids_of(pid, "link_id");
    let mut attempts = vec![
        vec!["bpf-by-id", "prog", prog.as_str()],
        vec!["bpf-by-id", "map", map.as_str()],
        vec!["bpf-by-id", "map", map.as_str(), "int80"],
        // The kernel reads an `int` command from the register's low half.
        vec!["bpf-by-id", "map", map.as_str(), "hibits"],
    ];
    let link = link.first().map(u32::to_string);
    if let Some(link) = &link {
        attempts.push(vec!["bpf-by-id", "link", link.as_str()]);
    }
    for how in &attempts {
        let (code, out) = attack(&name, how);
        if lsm {
            assert_eq!(code, Some(0), "{how:?}: {out}");
            assert_eq!(
                last_json(&out)["errno"],
                1,
                "{how:?} refused with EPERM: {out}"
            );
        } else {
            assert_eq!(code, Some(137), "{how:?}: killed by SIGKILL: {out}");
        }
    }
    let line: Value = sensor.wait_for(Duration::from_secs(20), "the tamper line", |v| {
        v["kind"] == "tamper" && v["container"]["id"] == id && v["tamper"]["object"] == "map"
    });
    assert_eq!(line["rule"], "sensor.guard", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["tamper"]["id"].to_string(), map, "{line}");
    // The sensor is still there, its programs loaded.
    assert!(!sensor.program_ids().is_empty());
}
