//! Podman containers against a real Podman: `cargo xtask test` runs one with its own storage
//! and its Docker-compatible API service on a test socket (SENSOR_TEST_PODMAN is its `podman`,
//! SENSOR_TEST_PODMAN_SOCKET the socket), the way a host exposes `/run/podman/podman.sock`.
//! Containers run under the cgroupfs manager (`/libpod_parent/libpod-<id>`).

use std::{path::PathBuf, process::Command, time::Duration};

use integration_tests::{Sensor, checked, image, require_root, unique};

const WAIT: Duration = Duration::from_secs(30);

/// Fails (never skips) when the variable is unset: `cargo xtask test` sets it.
fn env_path(var: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(var).unwrap_or_else(|| {
        panic!(
            "{var} is unset: run the integration tests with `cargo xtask test`, which starts a \
             Podman with its API service"
        )
    }))
}

/// Runs this run's `podman ARGS` (see `integration_tests::checked`).
fn podman(args: &[&str]) -> String {
    checked(env_path("SENSOR_TEST_PODMAN"), args)
}

/// Removes a Podman container when dropped.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new(env_path("SENSOR_TEST_PODMAN"))
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

#[test]
fn podman_containers_are_found_at_startup_and_complete_on_their_first_exec() {
    let _serial = integration_tests::serial();
    require_root();
    let socket = env_path("SENSOR_TEST_PODMAN_SOCKET");
    let image = image();
    // Running before the sensor starts: the startup scan finds it and asks the API.
    let early = unique("sensor-pm-early");
    let _early_guard = Guard(early.clone());
    let early_id = podman(&[
        "run",
        "-d",
        "--name",
        &early,
        "--label",
        "team=early",
        "--network",
        "none",
        &image,
        "sleep",
        "1000",
    ]);
    let mut sensor = Sensor::start(&["--podman-socket", socket.to_str().unwrap()]);
    let start = sensor.wait_for(WAIT, "the early container's start line", |v| {
        v["kind"] == "container" && v["event"] == "start" && v["container"]["id"] == early_id
    });
    assert_eq!(start["at_startup"], true, "{start}");
    let c = &start["container"];
    assert_eq!(c["runtime"], "podman", "{start}");
    assert_eq!(c["name"], early, "{start}");
    assert_eq!(c["labels"]["team"], "early", "{start}");
    assert_eq!(c["enriched"], true, "{start}");

    // A new container: its first exec already names it.
    let name = unique("sensor-pm-new");
    let _guard = Guard(name.clone());
    let cidfile = std::env::temp_dir().join(format!("{name}.cid"));
    // Not `--rm`: a container removed before the API answers could not be named at all (a
    // race with the runtime, not what this test is about); an exited one still can.
    podman(&[
        "run",
        "--cidfile",
        cidfile.to_str().unwrap(),
        "--name",
        &name,
        "--label",
        "team=new",
        "--network",
        "none",
        &image,
        "/bin/true",
    ]);
    let id = std::fs::read_to_string(&cidfile).expect("cidfile");
    let _ = std::fs::remove_file(&cidfile);
    let exec = sensor.wait_for(WAIT, "the new container's exec of /bin/true", |v| {
        v["kind"] == "exec"
            && v["container"]["id"] == id.trim()
            && v["process"]["exe"] == "/bin/true"
    });
    let c = &exec["container"];
    assert_eq!(c["runtime"], "podman", "{exec}");
    assert_eq!(
        c["name"],
        name,
        "{exec}\nsensor stderr:\n{}",
        sensor.stderr()
    );
    assert_eq!(c["labels"]["team"], "new", "{exec}");
    assert_eq!(c["enriched"], true, "{exec}");
    assert!(
        c["image"].as_str().is_some_and(|i| i.contains("busybox")),
        "image as Podman reports it: {exec}"
    );
    assert!(
        c["image_id"].as_str().is_some_and(|i| !i.is_empty()),
        "{exec}"
    );

    // `podman exec` into the early one is attributed to it.
    podman(&["exec", &early, "/bin/true"]);
    let exec = sensor.wait_for(WAIT, "the podman exec", |v| {
        v["kind"] == "exec"
            && v["container"]["id"] == early_id
            && v["process"]["exe"] == "/bin/true"
    });
    assert_eq!(exec["container"]["name"], early, "{exec}");
}
