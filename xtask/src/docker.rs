//! A real dockerd for the tests and benchmarks, started once per run, and the host put back as it
//! was afterwards (iptables, ip_forward, bridges, cgroup directories). A dockerd that already
//! answers is used as it is and left alone.

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::util::{output, run, succeeds};

/// Name under which the OCI runtime wrapper is registered with dockerd.
const RUNTIME_NAME: &str = "sensor-test-runc";

/// This host's bounding set lacks CAP_SYS_RESOURCE, so runc fails to apply the capability sets
/// of `--privileged` containers. The wrapper removes that one capability from the bundle's
/// config.json (and from `runc exec --process` JSON) and then runs the real runc. `RLIMITS`
/// is empty, or a jq filter dropping the rlimits too (Podman always sets RLIMIT_NOFILE to a
/// value that raising needs the same capability).
const RUNC_WRAPPER: &str = r#"#!/bin/sh
bundle=""; process=""; prev=""
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle="$a";; --process|-p) process="$a";; esac
  case "$a" in --bundle=*) bundle="${a#--bundle=}";; --process=*) process="${a#--process=}";; esac
  prev="$a"
done
drop='with_entries(.value |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end))'
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  jq "(.process.capabilities // {}) |= $drop RLIMITS(.process.rlimits)" "$bundle/config.json" > "$bundle/config.json.sensor" &&
    mv "$bundle/config.json.sensor" "$bundle/config.json"
fi
if [ -n "$process" ] && [ -f "$process" ]; then
  jq "(.capabilities // {}) |= $drop RLIMITS(.rlimits)" "$process" > "$process.sensor" && mv "$process.sensor" "$process"
fi
exec RUNC "$@"
"#;

/// Path of the OCI runtime wrapper the tests' dockerds use (see RUNC_WRAPPER).
pub fn runc_wrapper_path(workdir: &Path) -> PathBuf {
    workdir.join("runc-wrapper")
}

/// Writes the wrapper into `workdir`; `drop_rlimits` for Podman.
pub fn write_runc_wrapper(workdir: &Path, drop_rlimits: bool) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(workdir)?;
    let wrapper = runc_wrapper_path(workdir);
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("runc not found: run `cargo xtask setup`")?;
    let text = RUNC_WRAPPER.replace("RUNC", runc);
    let text = if drop_rlimits {
        text.replace("RLIMITS(", "| del(")
    } else {
        text.replace(" RLIMITS(.process.rlimits)", "")
            .replace(" RLIMITS(.rlimits)", "")
    };
    fs::write(&wrapper, text)?;
    run(Command::new("chmod").arg("+x").arg(&wrapper))?;
    Ok(wrapper)
}

pub fn answering() -> bool {
    succeeds(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]))
}

/// What dockerd changes on the host, recorded before it starts.
struct Snapshot {
    iptables: Option<String>,
    ip6tables: Option<String>,
    ip_forward: Option<String>,
    links: BTreeSet<String>,
    cgroup_dirs: BTreeSet<PathBuf>,
}

fn links() -> BTreeSet<String> {
    output(Command::new("ip").args(["-o", "link", "show"]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// Top-level directories of every cgroup mount (v1 controllers and v2).
fn cgroup_dirs() -> BTreeSet<PathBuf> {
    crate::host::cgroup_mounts()
        .iter()
        .filter_map(|mount| fs::read_dir(mount).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()))
        .collect()
}

impl Snapshot {
    fn take() -> Self {
        Self {
            iptables: output(&mut Command::new("iptables-save")).ok(),
            ip6tables: output(&mut Command::new("ip6tables-save")).ok(),
            ip_forward: fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok(),
            links: links(),
            cgroup_dirs: cgroup_dirs(),
        }
    }

    fn restore(&self) {
        for (tool, save) in [("iptables", &self.iptables), ("ip6tables", &self.ip6tables)] {
            let Some(save) = save else { continue };
            for table in ["filter", "nat", "mangle", "raw"] {
                let _ = succeeds(Command::new(tool).args(["-t", table, "-F"]));
                let _ = succeeds(Command::new(tool).args(["-t", table, "-X"]));
            }
            for chain in ["INPUT", "FORWARD", "OUTPUT"] {
                let _ = succeeds(Command::new(tool).args(["-P", chain, "ACCEPT"]));
            }
            if let Ok(mut child) = Command::new(format!("{tool}-restore"))
                .stdin(Stdio::piped())
                .spawn()
            {
                if let Some(stdin) = child.stdin.as_mut() {
                    let _ = stdin.write_all(save.as_bytes());
                }
                drop(child.stdin.take());
                let _ = child.wait();
            }
        }
        if let Some(v) = &self.ip_forward {
            let _ = fs::write("/proc/sys/net/ipv4/ip_forward", v);
        }
        for link in links().difference(&self.links) {
            let _ = succeeds(Command::new("ip").args(["link", "delete", link]));
        }
        for dir in cgroup_dirs().difference(&self.cgroup_dirs) {
            remove_empty_cgroup_tree(dir);
        }
    }
}

/// rmdir a cgroup directory and its children, deepest first; busy ones stay.
pub fn remove_empty_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_empty_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The dockerd the tests use. Dropping it stops a dockerd that this run started and restores
/// the host.
pub struct TestDocker {
    started: Option<(Child, Snapshot)>,
}

impl TestDocker {
    pub fn ensure(workdir: &Path) -> anyhow::Result<Self> {
        // Tests start private dockerds with the same wrapper.
        let wrapper = write_runc_wrapper(workdir, false)?;
        if answering() {
            eprintln!("xtask: a dockerd already answers; using it and leaving it alone");
            return Ok(Self { started: None });
        }
        let snapshot = Snapshot::take();
        let log_path = workdir.join("dockerd.log");
        let log = fs::File::create(&log_path)?;
        eprintln!("xtask: starting dockerd (log: {})", log_path.display());
        let child = Command::new("dockerd")
            .arg("--add-runtime")
            .arg(format!("{RUNTIME_NAME}={}", wrapper.display()))
            .args(["--default-runtime", RUNTIME_NAME])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd (is docker.io installed? `cargo xtask setup`)")?;
        let mut this = Self {
            started: Some((child, snapshot)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answering() {
            if let Some((child, _)) = this.started.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "dockerd exited ({status}) before answering; see {}",
                    log_path.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd did not answer within 60 s; see {}",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(this)
    }

    /// Stops what this run started and restores the host.
    pub fn stop(&mut self) {
        let Some((mut child, snapshot)) = self.started.take() else {
            return;
        };
        // Containers first: a PID-1 `sleep` ignores SIGTERM and would hold dockerd 10 s each.
        if let Ok(ids) = output(Command::new("docker").args(["ps", "-aq"])) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = succeeds(Command::new("docker").args(["rm", "-f"]).args(&ids));
            }
        }
        crate::util::stop_child(&mut child, Duration::from_secs(30));
        // dockerd's own containerd exits with it; give its shims a moment to go.
        std::thread::sleep(Duration::from_millis(300));
        snapshot.restore();
        eprintln!("xtask: dockerd stopped, host network and cgroups restored");
    }
}

impl Drop for TestDocker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds `tag` from a busybox rootfs (no registry is needed), plus `extra` files copied to the
/// given paths inside the image.
pub fn build_busybox_image(
    tag: &str,
    extra: &[(&Path, &str)],
    workdir: &Path,
) -> anyhow::Result<()> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox not found: run `cargo xtask setup` (busybox-static)")?;
    // Re-importing an unchanged image only leaves dangling copies behind: skip it when the
    // image already carries the same content hash.
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&fs::read(busybox)?, &mut hasher);
    for (src, dst) in extra {
        std::hash::Hash::hash(&fs::read(src)?, &mut hasher);
        std::hash::Hash::hash(dst, &mut hasher);
    }
    let content = format!("{:016x}", std::hash::Hasher::finish(&hasher));
    let current = output(Command::new("docker").args([
        "image",
        "inspect",
        "-f",
        r#"{{index .Config.Labels "sensor.content"}}"#,
        tag,
    ]));
    if current.is_ok_and(|c| c.trim() == content) {
        eprintln!("xtask: image {tag} is up to date");
        return Ok(());
    }
    let root = workdir.join(format!("rootfs-{}", tag.replace(['/', ':'], "_")));
    let _ = fs::remove_dir_all(&root);
    for d in [
        "bin",
        "etc",
        "tmp",
        "root",
        "usr/local/bin",
        "proc",
        "sys",
        "dev",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(busybox, root.join("bin/busybox"))?;
    let applets = output(Command::new(busybox).arg("--list"))?;
    for applet in applets.split_whitespace().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    for (src, dst) in extra {
        let dst = root.join(dst.trim_start_matches('/'));
        if let Some(dir) = dst.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::copy(src, &dst).with_context(|| format!("copying {} into the image", src.display()))?;
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let status = Command::new("docker")
        .args(["import", "--change", r#"CMD ["/bin/sh"]"#])
        .args([
            "--change",
            &format!("LABEL sensor.content={content}"),
            "-",
            tag,
        ])
        .stdin(tar.stdout.context("tar stdout")?)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("docker import of {tag} failed");
    }
    let _ = fs::remove_dir_all(&root);
    eprintln!("xtask: built image {tag}");
    Ok(())
}

/// Removes Docker networks the network tests create (`sensor-<test>-<pid>-<n>`) that a test
/// run killed before its cleanup left behind: their subnets would collide with the next run's.
pub fn remove_test_networks() {
    let Ok(out) = Command::new("docker")
        .args([
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            "name=sensor-",
        ])
        .output()
    else {
        return;
    };
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        let parts: Vec<&str> = name.split('-').collect();
        let ours = parts.len() >= 4
            && parts[0] == "sensor"
            && parts[parts.len() - 1].parse::<u32>().is_ok()
            && parts[parts.len() - 2].parse::<u32>().is_ok();
        if ours {
            eprintln!("xtask: removing stale test network {name}");
            let _ = Command::new("docker")
                .args(["network", "rm", name])
                .output();
        }
    }
}
