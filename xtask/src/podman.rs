//! A real Podman for the tests: its own storage, run root and temporary directory under
//! `target/xtask/podman`, the cgroupfs manager (no systemd here), runc through a wrapper, and
//! its Docker-compatible API service (`podman system service`) on a test socket, the way a
//! host with Podman exposes `/run/podman/podman.sock`.
//!
//! The tests run the same `podman` (a script with these options) from
//! `SENSOR_TEST_PODMAN`, and the sensor reads the service from `SENSOR_TEST_PODMAN_SOCKET`.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::util;

pub struct TestPodman {
    dir: PathBuf,
    service: Option<Child>,
}

impl TestPodman {
    pub fn start(workdir: &Path) -> anyhow::Result<Self> {
        if Command::new("podman").arg("--version").output().is_err() {
            bail!("podman not found: run `cargo xtask setup`");
        }
        fs::create_dir_all(workdir)?;
        let mut podman = Self {
            dir: workdir.to_owned(),
            service: None,
        };
        podman.write_script()?;
        let _ = fs::remove_file(podman.socket());
        let log = fs::File::create(workdir.join("service.log"))?;
        let child = Command::new(podman.script())
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", podman.socket().display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting podman system service")?;
        podman.service = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !podman.socket().exists() {
            if Instant::now() > deadline {
                bail!(
                    "podman system service: no socket after 20 s; see {}",
                    workdir.join("service.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "xtask: podman {} API on {}",
            util::output(Command::new("podman").args(["--version"]))?.trim(),
            podman.socket().display()
        );
        Ok(podman)
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    /// `podman` with this instance's options.
    pub fn script(&self) -> PathBuf {
        self.dir.join("podman")
    }

    /// The script, with runc through the tests' wrapper (which, for Podman, also drops the
    /// rlimits it always sets: raising RLIMIT_NOFILE needs CAP_SYS_RESOURCE, absent here).
    fn write_script(&self) -> anyhow::Result<()> {
        let wrapper = crate::docker::write_runc_wrapper(&self.dir, true)?;
        let d = self.dir.display();
        let text = format!(
            "#!/bin/sh\nexec podman --root {d}/root --runroot {d}/run --tmpdir {d}/tmp \
             --cgroup-manager cgroupfs --events-backend file --storage-driver overlay \
             --runtime {} \"$@\"\n",
            wrapper.display()
        );
        fs::write(self.script(), text)?;
        fs::set_permissions(self.script(), fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// Copies images from dockerd (`docker save | podman load`).
    pub fn import_from_docker(&self, tags: &[&str]) -> anyhow::Result<()> {
        for tag in tags {
            let save = Command::new("docker")
                .args(["save", tag])
                .stdout(Stdio::piped())
                .spawn()?;
            let status = Command::new(self.script())
                .args(["load", "--quiet"])
                .stdin(save.stdout.context("docker save stdout")?)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("podman load of {tag} failed");
            }
        }
        Ok(())
    }

    /// Removes every container, stops the service, unmounts and removes the storage.
    pub fn stop(&mut self) {
        let _ = Command::new(self.script())
            .args(["rm", "--all", "--force", "--time", "0"])
            .output();
        if let Some(mut child) = self.service.take() {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        let _ = Command::new(self.script())
            .args(["system", "reset", "--force"])
            .output();
        for sub in ["root", "run", "tmp"] {
            let dir = self.dir.join(sub);
            let _ = Command::new("umount").args(["-R", "-l"]).arg(&dir).output();
            let _ = fs::remove_dir_all(&dir);
        }
        // The cgroupfs manager leaves its parent behind in every hierarchy.
        for mount in crate::host::cgroup_mounts() {
            crate::docker::remove_empty_cgroup_tree(&mount.join("libpod_parent"));
        }
        eprintln!("xtask: podman stopped, its containers and storage removed");
    }
}

impl Drop for TestPodman {
    fn drop(&mut self) {
        if self.service.is_some() {
            self.stop();
        }
    }
}
