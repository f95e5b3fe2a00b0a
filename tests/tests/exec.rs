//! The first slice: every program executed inside a container is reported, attributed to it.

use std::{process::Command, time::Duration};

use integration_tests::{ContainerGuard, Sensor, docker, image, require_docker, run_rm, unique};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn container_exec_names_the_container() {
    let _serial = integration_tests::serial();
    require_docker();
    let mut sensor = Sensor::start(&[]);
    let name = unique("exec-true");
    let _guard = ContainerGuard(name.clone());
    let (out, id) = run_rm(&name, &[], &["/bin/true"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(id.len(), 64, "docker wrote a full id: {id}");

    let line = sensor.wait_for(WAIT, "the exec of /bin/true in the container", |v| {
        v["kind"] == "exec" && v["container"]["id"] == id.as_str()
    });
    assert_eq!(line["process"]["exe"], "/bin/true", "{line}");
    assert_eq!(line["container"]["runtime"], "docker", "{line}");
    assert_eq!(line["process"]["args"][0], "/bin/true", "{line}");
    assert!(line["process"]["pid"].as_u64().unwrap() > 1);
    assert!(
        line["process"]["ppid"].as_u64().unwrap() > 0,
        "ppid resolved from BTF: {line}"
    );
    let time = line["time"].as_str().unwrap();
    assert!(
        time.len() == 30 && time.ends_with('Z'),
        "RFC 3339 with ns: {time}"
    );
}

#[test]
fn host_exec_has_no_container() {
    let _serial = integration_tests::serial();
    let mut sensor = Sensor::start(&[]);
    let marker = unique("host-marker");
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("/bin/echo {marker} >/dev/null")])
        .status()
        .unwrap();
    assert!(status.success());
    let line = sensor.wait_for(WAIT, "the host echo", |v| {
        v["kind"] == "exec"
            && v["process"]["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == marker.as_str()))
    });
    assert!(
        line["container"].is_null(),
        "host process attributed to a container: {line}"
    );
    assert_eq!(line["process"]["exe"], "/bin/echo");
    assert_eq!(line["process"]["uid"], 0);
}

#[test]
fn exec_in_a_container_started_before_the_sensor() {
    let _serial = integration_tests::serial();
    require_docker();
    let name = unique("before");
    let _guard = ContainerGuard(name.clone());
    let id = docker(&["run", "-d", "--name", &name, &image(), "sleep", "300"]);
    let mut sensor = Sensor::start(&[]);
    assert!(
        sensor.ready["containers"].as_u64().unwrap() >= 1,
        "startup scan found it: {}",
        sensor.ready
    );
    docker(&["exec", &name, "/bin/ls", "/"]);
    let line = sensor.wait_for(WAIT, "the exec in the pre-existing container", |v| {
        v["kind"] == "exec"
            && v["process"]["exe"] == "/bin/ls"
            && v["container"]["id"] == id.as_str()
    });
    assert_eq!(line["container"]["runtime"], "docker");
}

#[test]
fn every_exec_of_a_busy_container_is_reported_in_order() {
    let _serial = integration_tests::serial();
    require_docker();
    let mut sensor = Sensor::start(&[]);
    let name = unique("burst");
    let _guard = ContainerGuard(name.clone());
    // 200 execs of distinct argv inside one container.
    docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        &image(),
        "/bin/sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do /bin/true $i; i=$((i+1)); done",
    ]);
    sensor.wait_for(WAIT, "the last exec of the burst", |v| {
        v["kind"] == "exec" && v["process"]["args"] == serde_json::json!(["/bin/true", "199"])
    });
    let seen: Vec<u64> = sensor
        .lines(Duration::from_millis(200))
        .iter()
        .filter(|v| {
            v["kind"] == "exec" && v["process"]["exe"] == "/bin/true" && !v["container"].is_null()
        })
        .filter_map(|v| {
            v["process"]["args"][1]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .collect();
    let expected: Vec<u64> = (0..200).collect();
    assert_eq!(seen, expected, "all 200 execs, in order");
}
