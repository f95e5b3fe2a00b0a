//! `cargo xtask test`: unit tests, then integration tests as root against a real dockerd.

use crate::{containerd, docker, host, podman, setup, util};

/// Image every integration test runs its containers from.
pub const BUSYBOX_IMAGE: &str = "local/busybox:latest";

pub fn test(filter: Option<&str>) -> anyhow::Result<()> {
    if !util::is_root() {
        anyhow::bail!(
            "integration tests load eBPF programs and start dockerd: run as root (sudo cargo xtask test)"
        );
    }
    setup::ensure()?;
    host::ensure_bpffs()?;

    util::run(util::cargo().args([
        "test",
        "--workspace",
        "--exclude",
        "integration-tests",
        "--exclude",
        "sensor-ebpf",
    ]))?;

    // The release build: what users run, and what the guests run.
    let sensor = crate::build_sensor(true)?;
    let workdir = util::target_dir().join("xtask");
    let mut dockerd = docker::TestDocker::ensure(&workdir.join("docker"))?;
    // A real containerd with its CRI plugin, for the Kubernetes-pod tests.
    let mut cri: Option<containerd::TestContainerd> = None;
    let mut pod: Option<podman::TestPodman> = None;
    docker::remove_test_networks();
    let result = (|| {
        // The workload binary rides along for tests that need a tight loop of syscalls.
        let bins = crate::bench::build_static_test_bins()?;
        // A script and the host's dynamic loader, for the tests of how scripts and `ld.so
        // PROGRAM` are judged.
        let script = workdir.join("script.sh");
        std::fs::create_dir_all(&workdir)?;
        std::fs::write(&script, "#!/bin/sh\necho ran\n")?;
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let loader = std::path::Path::new("/lib64/ld-linux-x86-64.so.2");
        docker::build_busybox_image(
            BUSYBOX_IMAGE,
            &[
                (&bins.workload, "/usr/local/bin/workload"),
                (&bins.attack, "/usr/local/bin/attack"),
                (&script, "/etc/script.sh"),
                (loader, "/lib64/ld-linux-x86-64.so.2"),
            ],
            &workdir,
        )?;
        let c = cri.insert(containerd::TestContainerd::start(
            &workdir.join("containerd"),
            &docker::runc_wrapper_path(&workdir.join("docker")),
        )?);
        c.import_from_docker(&[BUSYBOX_IMAGE])?;
        // A real Podman with its API service, for the Podman tests.
        let p = pod.insert(podman::TestPodman::start(&workdir.join("podman"))?);
        p.import_from_docker(&[BUSYBOX_IMAGE])?;
        let mut cmd = util::cargo();
        cmd.args([
            "test",
            "--package",
            "integration-tests",
            "--",
            "--nocapture",
        ])
        .env("SENSOR_BIN", &sensor)
        .env("SENSOR_TEST_IMAGE", BUSYBOX_IMAGE)
        .env(
            "SENSOR_TEST_RUNC_WRAPPER",
            docker::runc_wrapper_path(&workdir.join("docker")),
        )
        .env("SENSOR_TEST_CONTAINERD_SOCKET", c.socket())
        .env("SENSOR_TEST_PODMAN", p.script())
        .env("SENSOR_TEST_PODMAN_SOCKET", p.socket())
        .env("SENSOR_TEST_ATTACK", &bins.attack)
        .env("SENSOR_TEST_WORKLOAD", &bins.workload);
        if let Some(f) = filter {
            cmd.arg(f);
        }
        util::run(&mut cmd)
    })();
    // containerd first: its pods run through the wrapper dockerd's directory holds.
    drop(cri);
    drop(pod);
    dockerd.stop();
    result
}
