//! Container identity and enrichment against a real dockerd: metadata on the first event,
//! lifecycle lines, the startup scan, `sensor containers`, and bad runtime conditions.

use std::{process::Command, time::Duration};

use integration_tests::{
    ContainerGuard, Sensor, docker, docker_output, http_get, image, require_docker, run_rm, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn api_socket(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("{}.sock", unique(name)))
        .display()
        .to_string()
}

fn exec_of(sensor: &mut Sensor, id: &str, exe: &str) -> Value {
    sensor.wait_for(WAIT, &format!("exec of {exe} in {id}"), |v| {
        v["kind"] == "exec" && v["container"]["id"] == id && v["process"]["exe"] == exe
    })
}

#[test]
fn exec_events_carry_labels_image_user_privileged_and_network() {
    let _serial = integration_tests::serial();
    require_docker();
    let net = unique("sensor-net");
    let subnet = "172.31.77.0/24";
    let _ = docker_output(&["network", "rm", &net]);
    docker(&["network", "create", "--subnet", subnet, &net]);
    struct NetGuard(String);
    impl Drop for NetGuard {
        fn drop(&mut self) {
            let _ = docker_output(&["network", "rm", &self.0]);
        }
    }
    let _net = NetGuard(net.clone());

    let mut sensor = Sensor::start(&[]);
    let name = unique("meta");
    let _c = ContainerGuard(name.clone());
    // The second exec happens after the network is up, so it must carry the IP too.
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "tier=web",
        "--label",
        "team=blue",
        "--user",
        "1000",
        "--network",
        &net,
        &image(),
        "/bin/sh",
        "-c",
        "sleep 1; /bin/true done; sleep 30",
    ]);
    let first = exec_of(&mut sensor, &id, "/bin/sh");
    let c = &first["container"];
    assert_eq!(c["enriched"], true, "first exec is complete: {first}");
    assert_eq!(c["name"], name.as_str());
    assert_eq!(c["image"], image(), "the image as given to docker run: {c}");
    assert!(
        c["image_id"].as_str().unwrap().starts_with("sha256:"),
        "{c}"
    );
    assert_eq!(c["labels"]["tier"], "web");
    assert_eq!(c["labels"]["team"], "blue");
    assert_eq!(c["user"], "1000");
    assert_eq!(c["privileged"], false);
    assert!(c["pod"].is_null());
    assert_eq!(first["process"]["uid"], 1000);

    let later = exec_of(&mut sensor, &id, "/bin/true");
    let ip = docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &id,
    ]);
    let networks = later["container"]["networks"].as_array().unwrap();
    assert!(
        networks
            .iter()
            .any(|n| n["name"] == net.as_str() && n["ip"] == ip.as_str()),
        "network {net} with ip {ip}: {later}"
    );

    let privileged = unique("priv");
    let _p = ContainerGuard(privileged.clone());
    let pid = docker(&[
        "run",
        "-d",
        "--name",
        &privileged,
        "--privileged",
        &image(),
        "sleep",
        "30",
    ]);
    let line = exec_of(&mut sensor, &pid, "/bin/sleep");
    assert_eq!(line["container"]["privileged"], true, "{line}");
}

#[test]
fn first_exec_of_every_new_container_is_complete() {
    let _serial = integration_tests::serial();
    require_docker();
    let mut sensor = Sensor::start(&[]);
    const N: usize = 20;
    let mut delays = Vec::new();
    for i in 0..N {
        let name = unique("first");
        let _g = ContainerGuard(name.clone());
        let label = format!("n={i}");
        let (out, id) = run_rm(&name, &["--label", &label], &["/bin/true"]);
        assert!(out.status.success(), "{out:?}");
        let first = sensor.wait_for(WAIT, "first exec", |v| {
            v["kind"] == "exec" && v["container"]["id"] == id.as_str()
        });
        let c = &first["container"];
        assert_eq!(
            c["enriched"],
            true,
            "container {i}: {first}\nsensor stderr:\n{}",
            sensor.stderr()
        );
        assert_eq!(c["name"], name.as_str(), "container {i}");
        assert_eq!(c["labels"]["n"], i.to_string(), "container {i}");
        assert!(c["image"].is_string(), "container {i}");
        let start = sensor.wait_for(WAIT, "start line", |v| {
            v["kind"] == "container" && v["event"] == "start" && v["container"]["id"] == id.as_str()
        });
        delays.push(
            start["metadata_ms"]
                .as_f64()
                .expect("metadata_ms on a new container's start line"),
        );
        // The start line precedes the container's first exec line.
        let lines = sensor.lines(Duration::ZERO);
        let pos = |pred: &dyn Fn(&Value) -> bool| lines.iter().position(pred).unwrap();
        assert!(
            pos(&|v| v["kind"] == "container" && v["container"]["id"] == id.as_str())
                < pos(&|v| v["kind"] == "exec" && v["container"]["id"] == id.as_str())
        );
    }
    delays.sort_by(f64::total_cmp);
    eprintln!(
        "MEASURE first exec complete: {N}/{N}; cgroup creation → metadata ready: p50 {:.2} ms, max {:.2} ms",
        delays[N / 2],
        delays[N - 1]
    );
}

#[test]
fn lifecycle_lines_for_start_and_stop() {
    let _serial = integration_tests::serial();
    require_docker();
    let mut sensor = Sensor::start(&[]);
    let name = unique("life");
    let _g = ContainerGuard(name.clone());
    let id = docker(&["run", "-d", "--name", &name, &image(), "sleep", "30"]);
    let start = sensor.wait_for(WAIT, "start", |v| {
        v["kind"] == "container" && v["event"] == "start" && v["container"]["id"] == id.as_str()
    });
    assert_eq!(start["container"]["name"], name.as_str());
    assert!(start["at_startup"].is_null(), "a new container: {start}");
    docker(&["rm", "-f", &name]);
    let stop = sensor.wait_for(WAIT, "stop", |v| {
        v["kind"] == "container" && v["event"] == "stop" && v["container"]["id"] == id.as_str()
    });
    assert_eq!(stop["container"]["name"], name.as_str());
}

#[test]
fn startup_scan_finds_running_containers_with_metadata() {
    let _serial = integration_tests::serial();
    require_docker();
    let name = unique("early");
    let _g = ContainerGuard(name.clone());
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "early=yes",
        &image(),
        "sleep",
        "60",
    ]);
    let mut sensor = Sensor::start(&[]);
    // Announced before the ready line, with its metadata.
    let lines = sensor.lines(Duration::ZERO).to_vec();
    let ready = lines.iter().position(|v| v["event"] == "ready").unwrap();
    let start = lines
        .iter()
        .position(|v| v["kind"] == "container" && v["container"]["id"] == id.as_str())
        .expect("start line for the running container");
    assert!(start < ready, "found before ready");
    assert_eq!(lines[start]["at_startup"], true);
    assert_eq!(lines[start]["container"]["labels"]["early"], "yes");
    docker(&["exec", &name, "/bin/ls"]);
    let exec = exec_of(&mut sensor, &id, "/bin/ls");
    assert_eq!(exec["container"]["name"], name.as_str());
}

#[test]
fn sensor_containers_lists_what_the_sensor_sees() {
    let _serial = integration_tests::serial();
    require_docker();
    let socket = api_socket("list");
    let _sensor = Sensor::start(&["--api-socket", &socket]);
    let name = unique("listed");
    let _g = ContainerGuard(name.clone());
    let id = docker(&["run", "-d", "--name", &name, &image(), "sleep", "60"]);
    let mut found = None;
    for _ in 0..50 {
        let out = Command::new(integration_tests::sensor_bin())
            .args(["containers", "--json", "--api-socket", &socket])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "answered by the running sensor: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        found = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .cloned();
        if found.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let c = found.expect("the container is listed");
    assert_eq!(c["name"], name.as_str());
    assert_eq!(c["runtime"], "docker");
    assert!(c["cgroup_id"].as_u64().unwrap() > 0);
    let text = Command::new(integration_tests::sensor_bin())
        .args(["containers", "--api-socket", &socket])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    // Columns are as wide as their widest value (cgroup ids grow with the host's uptime).
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header[..2], ["CGROUP", "RUNTIME"], "{text}");
    assert!(text.contains(&name) && text.contains(&id[..12]), "{text}");
}

#[test]
fn missing_runtime_socket_keeps_container_ids() {
    let _serial = integration_tests::serial();
    require_docker();
    let mut sensor = Sensor::start(&[
        "--docker-socket",
        "/nonexistent/docker.sock",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let name = unique("nosock");
    let _g = ContainerGuard(name.clone());
    let id = docker(&["run", "-d", "--name", &name, &image(), "sleep", "30"]);
    let line = exec_of(&mut sensor, &id, "/bin/sleep");
    assert_eq!(line["container"]["runtime"], "docker");
    assert_eq!(line["container"]["enriched"], false, "{line}");
    let metrics = http_get(sensor.ready["metrics"].as_str().unwrap(), "/metrics");
    assert!(
        metrics.contains("sensor_enrichment_degraded{runtime=\"docker\"} 1"),
        "{metrics}"
    );
    assert!(
        sensor.stderr().contains("enrichment from docker degraded"),
        "{}",
        sensor.stderr()
    );
}

#[test]
fn hanging_runtime_socket_costs_a_bounded_wait() {
    let _serial = integration_tests::serial();
    require_docker();
    // A socket that accepts connections and never answers.
    let path = std::env::temp_dir().join(format!("{}.sock", unique("hang")));
    let _never = integration_tests::held_docker_socket(&path);
    let mut sensor = Sensor::start(&[
        "--docker-socket",
        path.to_str().unwrap(),
        "--runtime-timeout-ms",
        "300",
        "--metadata-wait-ms",
        "1000",
    ]);
    let name = unique("hang");
    let _g = ContainerGuard(name.clone());
    let started = std::time::Instant::now();
    let id = docker(&["run", "-d", "--name", &name, &image(), "sleep", "30"]);
    let line = exec_of(&mut sensor, &id, "/bin/sleep");
    assert_eq!(line["container"]["enriched"], false);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded: {:?}",
        started.elapsed()
    );
    // Host events keep flowing.
    let marker = unique("after-hang");
    Command::new("/bin/echo").arg(&marker).output().unwrap();
    sensor.wait_for(WAIT, "a host exec after the hang", |v| {
        v["process"]["args"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == marker.as_str()))
    });
    let _ = std::fs::remove_file(&path);
}

#[test]
fn enrichment_resumes_after_dockerd_restarts() {
    let _serial = integration_tests::serial();
    require_docker();
    let private = integration_tests::PrivateDockerd::start();
    let mut sensor = Sensor::start(&[
        "--docker-socket",
        private.socket().to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let a = private.run(&["--label", "phase=before"], &["sleep", "30"]);
    let line = exec_of(&mut sensor, &a, "/bin/sleep");
    assert_eq!(line["container"]["labels"]["phase"], "before", "{line}");

    let mut private = private;
    private.stop();
    // While it is down: a container cgroup appears whose runtime cannot be asked. Its events
    // keep the id, and the sensor says enrichment is degraded.
    let ghost = integration_tests::kernel_suite::TestCgroup::create(&format!(
        "/docker/{}",
        "d".repeat(48) + &format!("{:016x}", std::process::id())
    ));
    let marker = unique("ghost");
    ghost.exec_echo(&marker);
    let line = sensor.wait_for(WAIT, "exec in the ghost container", |v| {
        v["process"]["args"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == marker.as_str()))
    });
    assert_eq!(line["container"]["enriched"], false);
    let metrics = http_get(sensor.ready["metrics"].as_str().unwrap(), "/metrics");
    assert!(
        metrics.contains("sensor_enrichment_degraded{runtime=\"docker\"} 1"),
        "{metrics}"
    );

    private.start_again();
    let b = private.run(&["--label", "phase=after"], &["sleep", "30"]);
    let line = exec_of(&mut sensor, &b, "/bin/sleep");
    assert_eq!(
        line["container"]["enriched"], true,
        "enrichment resumed without a restart: {line}"
    );
    assert_eq!(line["container"]["labels"]["phase"], "after");
    assert!(
        sensor.stderr().contains("enrichment from docker at"),
        "restored: {}",
        sensor.stderr()
    );
}

#[test]
fn the_startup_walk_finds_a_container_with_a_custom_cgroup_parent() {
    let _serial = integration_tests::serial();
    require_docker();
    let parent = format!("/{}", unique("sensor-parent"));
    let name = unique("custom");
    // Dropped last: the parent, once the container is gone.
    let _parent = integration_tests::CgroupParentGuard(parent.clone());
    let _g = ContainerGuard(name.clone());
    // `/<parent>/<id>`: a bare id under a parent no runtime uses by default, which the
    // startup walk takes for Docker's and Docker confirms.
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--cgroup-parent",
        &parent,
        &image(),
        "sleep",
        "60",
    ]);
    let mut sensor = Sensor::start(&[]);
    assert!(
        !sensor
            .stderr()
            .contains("found through its runtime's listing"),
        "the walk found it, not Docker's listing: {}",
        sensor.stderr()
    );
    docker(&["exec", &name, "/bin/ls"]);
    let line = exec_of(&mut sensor, &id, "/bin/ls");
    assert_eq!(line["container"]["name"], name.as_str(), "{line}");
}
