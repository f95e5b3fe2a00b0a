//! A containerd of the tests' own, with its CRI plugin serving Kubernetes' runtime API on a
//! socket in the work directory: pods run on it the way the kubelet runs them, so the sensor's
//! CRI client and pod attribution are tested against the real thing.
//!
//! It shares nothing with a containerd the host may run (`/run/containerd/containerd.sock`) or
//! dockerd's (`/var/run/docker/containerd/containerd.sock`): its own config, root, state, runc
//! root and sockets, all under the work directory. Two things are global by containerd's design:
//! the shims' sockets in `/run/containerd/s/` (named by a hash that includes our socket path, and
//! removed by each shim as it exits) and the cgroups of the pods, which live where the tests'
//! `cgroup_parent` puts them (`/kubepods/...`).
//!
//! What this host needs (see shared/ENVIRONMENT.md), and how the config gives it:
//! - no CAP_SYS_RESOURCE in the bounding set: runc goes through the caller's wrapper that
//!   deletes that capability from OCI configs, and `restrict_oom_score_adj` keeps containerd from
//!   asking for the sandbox's `oom_score_adj = -998` (lowering it needs CAP_SYS_RESOURCE; runc's
//!   init fails with "failed to update /proc/self/oom_score_adj: Permission denied");
//! - no systemd: the cgroupfs driver (`SystemdCgroup = false`);
//! - no registry: the sandbox (pause) image is built here from busybox and imported, like the
//!   test images, from docker-archive tarballs;
//! - no CNI plugins: the tests run host-network pods only; CNI config loading fails at startup,
//!   which only matters for pods with their own network namespace.

use std::{
    collections::BTreeSet,
    ffi::CString,
    fs,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::util::{output, run, succeeds};

/// The image every pod's sandbox runs (`sandbox_image`), built by [`TestContainerd::import_images`].
pub const SANDBOX_IMAGE: &str = "local/pause:latest";

/// containerd namespace of the CRI plugin: images must be imported there to be seen by pods.
const CRI_NAMESPACE: &str = "k8s.io";

/// Unix socket paths are limited to 108 bytes (`sun_path`), NUL included; containerd also opens
/// `<socket>.ttrpc`.
const MAX_SOCKET_PATH: usize = 100;

/// The containerd the CRI tests use. Dropping it stops it and removes what it left.
pub struct TestContainerd {
    workdir: PathBuf,
    child: Option<Child>,
    /// Every cgroup directory (all hierarchies) before containerd started. Of what is new at
    /// the end, the pods' part is removed (see [`is_pod_cgroup`]); other new directories belong
    /// to whoever else runs containers meanwhile (the tests' dockerd) and are left alone.
    cgroups_before: BTreeSet<CgroupDir>,
}

impl TestContainerd {
    /// Starts `containerd` on a generated config under `workdir` (root, state, runc root, gRPC
    /// socket `<workdir>/containerd.sock`) with runc run through `runc_wrapper`, and waits until
    /// it answers. State a previous run left behind (killed before it could clean up) is torn
    /// down first.
    pub fn start(workdir: &Path, runc_wrapper: &Path) -> anyhow::Result<Self> {
        if !succeeds(Command::new("containerd").arg("--version")) {
            bail!(
                "containerd not found: run `cargo xtask setup` (docker.io brings it), or \
                 `apt-get install -y --no-install-recommends containerd`"
            );
        }
        if !runc_wrapper.is_file() {
            bail!(
                "OCI runtime wrapper {} does not exist",
                runc_wrapper.display()
            );
        }
        fs::create_dir_all(workdir)?;
        let workdir = workdir
            .canonicalize()
            .with_context(|| format!("resolving {}", workdir.display()))?;
        let socket = workdir.join("containerd.sock");
        if socket.as_os_str().len() + ".ttrpc".len() > MAX_SOCKET_PATH {
            bail!(
                "{} is too long for a unix socket path: use a shorter work directory",
                socket.display()
            );
        }
        if socket.exists()
            && succeeds(
                Command::new("ctr")
                    .arg("--address")
                    .arg(&socket)
                    .arg("version"),
            )
        {
            bail!(
                "a containerd already answers on {}: another test run uses this work directory",
                socket.display()
            );
        }
        let _ = fs::remove_file(workdir.join("containerd.log"));
        let mut this = Self {
            workdir,
            child: None,
            cgroups_before: cgroup_dirs(),
        };
        if this.workdir.join("state").exists() {
            eprintln!("xtask: containerd state of an earlier run found; cleaning it up first");
            // On the old root and state, containerd reconnects to the shims still running, so
            // the normal teardown can stop their containers.
            this.write_config(runc_wrapper)?;
            match this.spawn() {
                Ok(()) => this.stop(),
                Err(e) => {
                    eprintln!(
                        "xtask: could not restart the old containerd ({e:#}); removing its files"
                    );
                    this.remove_files();
                }
            }
            this.cgroups_before = cgroup_dirs();
        }
        this.write_config(runc_wrapper)?;
        this.spawn()?;
        Ok(this)
    }

    pub fn socket(&self) -> PathBuf {
        self.workdir.join("containerd.sock")
    }

    fn config_path(&self) -> PathBuf {
        self.workdir.join("config.toml")
    }

    fn log_path(&self) -> PathBuf {
        self.workdir.join("containerd.log")
    }

    fn write_config(&self, runc_wrapper: &Path) -> anyhow::Result<()> {
        let dir = &self.workdir;
        let cni = dir.join("cni");
        fs::create_dir_all(cni.join("bin"))?;
        fs::create_dir_all(cni.join("conf"))?;
        let wrapper = runc_wrapper
            .canonicalize()
            .with_context(|| format!("resolving {}", runc_wrapper.display()))?;
        // Paths are written as TOML basic strings: quote and backslash need escaping.
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let config = format!(
            r#"version = 2
root = {root}
state = {state}
# Plugins that cannot work here without setup of their own only add errors to the log.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.opt",
]

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  # A random port: another containerd's streaming server may hold the default 10010.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # Keeps the sandbox's oom_score_adj at or above containerd's own: lowering it needs
  # CAP_SYS_RESOURCE, which this host's bounding set lacks.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = {wrapper}
        SystemdCgroup = false
        Root = {runc_root}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
"#,
            root = q(&dir.join("root")),
            state = q(&dir.join("state")),
            socket = q(&self.socket()),
            ttrpc = q(&dir.join("containerd.sock.ttrpc")),
            sandbox = SANDBOX_IMAGE,
            wrapper = q(&wrapper),
            runc_root = q(&dir.join("runc")),
            cni_bin = q(&cni.join("bin")),
            cni_conf = q(&cni.join("conf")),
        );
        fs::write(self.config_path(), config)?;
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        // Appended to: a run that first cleans up after an earlier one starts containerd twice.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        eprintln!(
            "xtask: starting containerd on {} (log: {})",
            self.socket().display(),
            self.log_path().display()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // `ctr version` answers once the gRPC server is up; the CRI plugin registers on the
            // same server before it starts serving.
            if self.socket().exists() && succeeds(&mut self.ctr(&["version"])) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "containerd exited ({status}) before answering; see {}",
                    self.log_path().display()
                );
            }
            if Instant::now() > deadline {
                self.stop();
                bail!(
                    "containerd did not answer within 30 s; see {}",
                    self.log_path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ctr --address <socket> ARGS`.
    fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(self.socket()).args(args);
        cmd
    }

    /// Imports docker-archive tarballs (as `docker save` writes them) into the CRI namespace,
    /// after building and importing the sandbox image. Images keep their names, normalized:
    /// `local/busybox:latest` becomes `docker.io/local/busybox:latest`, which is what CRI
    /// resolves `local/busybox:latest` to.
    pub fn import_images(&self, archives: &[&Path]) -> anyhow::Result<()> {
        let images = self.workdir.join("images");
        fs::create_dir_all(&images)?;
        let pause = images.join("pause.tar");
        build_pause_archive(&images, &pause)?;
        for archive in std::iter::once(pause.as_path()).chain(archives.iter().copied()) {
            let path = archive
                .to_str()
                .with_context(|| format!("{} is not UTF-8", archive.display()))?;
            run(&mut self.ctr(&["-n", CRI_NAMESPACE, "images", "import", path]))?;
        }
        Ok(())
    }

    /// `docker save`s each of `tags` from the running dockerd and imports it.
    pub fn import_from_docker(&self, tags: &[&str]) -> anyhow::Result<()> {
        let images = self.workdir.join("images");
        fs::create_dir_all(&images)?;
        let mut archives = Vec::new();
        for tag in tags {
            let archive = images.join(format!("{}.tar", tag.replace(['/', ':'], "_")));
            run(Command::new("docker")
                .args(["save", "-o"])
                .arg(&archive)
                .arg(tag))?;
            archives.push(archive);
        }
        let archives: Vec<&Path> = archives.iter().map(PathBuf::as_path).collect();
        self.import_images(&archives)
    }

    /// Ids of the tasks (sandboxes and containers) containerd runs or ran, from its state
    /// directory: one directory per task and namespace.
    fn task_ids(&self) -> BTreeSet<String> {
        let tasks = self.workdir.join("state/io.containerd.runtime.v2.task");
        let mut ids = BTreeSet::new();
        for ns in fs::read_dir(tasks).into_iter().flatten().flatten() {
            for task in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                ids.insert(task.file_name().to_string_lossy().into_owned());
            }
        }
        ids
    }

    /// Kills and deletes every task through containerd, so that the shims stop the containers,
    /// unmount their root filesystems, remove their cgroups and exit.
    fn remove_tasks(&self) {
        let namespaces = output(&mut self.ctr(&["namespaces", "ls", "-q"])).unwrap_or_default();
        for ns in namespaces.split_whitespace() {
            let tasks = output(&mut self.ctr(&["-n", ns, "tasks", "ls", "-q"])).unwrap_or_default();
            for id in tasks.split_whitespace() {
                // `-f` kills a running task before deleting it.
                if let Err(e) = output(&mut self.ctr(&["-n", ns, "tasks", "rm", "-f", id])) {
                    eprintln!("xtask: containerd could not delete task {ns}/{id}: {e:#}");
                }
            }
            let containers =
                output(&mut self.ctr(&["-n", ns, "containers", "ls", "-q"])).unwrap_or_default();
            for id in containers.split_whitespace() {
                let _ = succeeds(&mut self.ctr(&["-n", ns, "containers", "rm", id]));
            }
        }
    }

    /// Shims of this containerd that outlived it (they are started detached by design): found
    /// by the `-address <our socket>` on their command line, killed by pid.
    fn kill_leftover_shims(&self) {
        let socket = self.socket();
        let socket = socket.as_os_str().as_bytes();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_ours = args
                .first()
                .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                && args
                    .windows(2)
                    .any(|w| w[0] == b"-address" && w[1] == socket);
            if is_ours {
                eprintln!("xtask: killing leftover containerd shim {pid}");
                // SAFETY: kill(2) on a pid read from /proc, whose command line names our
                // socket: a shim our containerd started. No memory is involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Stops containerd and everything it started, and removes its files, mounts and the
    /// cgroups made for its pods. Safe to call twice.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let ids = self.task_ids();
        if matches!(child.try_wait(), Ok(None)) {
            self.remove_tasks();
        }
        crate::util::stop_child(&mut child, Duration::from_secs(10));
        self.kill_leftover_shims();
        let now = cgroup_dirs();
        let mut ours: BTreeSet<CgroupDir> = now
            .difference(&self.cgroups_before)
            .filter(|d| is_pod_cgroup(d, &ids))
            .cloned()
            .collect();
        // The pod cgroup (`<cgroup_parent>/<task id>`'s parent) of a task that was already
        // running when this containerd started, that is, one an earlier run left behind.
        ours.extend(
            now.iter()
                .filter(|d| {
                    d.below
                        .file_name()
                        .is_some_and(|n| ids.contains(&*n.to_string_lossy()))
                })
                .filter_map(CgroupDir::parent),
        );
        // Containers whose shim was gone before their task could be deleted: their processes
        // are still in the cgroups named by their ids (v2 only has cgroup.kill; killing there
        // empties the v1 twins too).
        for dir in &ours {
            let path = dir.path();
            let named_by_task = path
                .file_name()
                .is_some_and(|n| ids.contains(&*n.to_string_lossy()));
            if named_by_task && path.join("cgroup.kill").exists() {
                let _ = fs::write(path.join("cgroup.kill"), "1");
            }
        }
        self.remove_files();
        // `/kubepods` itself and its QoS levels outlive every pod: when an earlier run died
        // before removing them they are not new now, but still ours unless a kubelet owns them.
        if !kubelet_running() {
            ours.extend(
                now.iter()
                    .filter(|d| d.below.starts_with("kubepods"))
                    .cloned(),
            );
        }
        // Deepest first, so that parents are empty when their turn comes; busy ones stay.
        let mut ours: Vec<CgroupDir> = ours.into_iter().collect();
        ours.sort_by_key(|d| std::cmp::Reverse(d.below.components().count()));
        for dir in ours {
            remove_cgroup(&dir.path());
        }
        eprintln!("xtask: containerd stopped, its containers, mounts and cgroups removed");
    }

    /// Unmounts whatever is still mounted under the work directory (sandbox /dev/shm, root
    /// filesystems) and deletes root, state and runc root. Config, log and images stay for a
    /// post-mortem.
    fn remove_files(&self) {
        unmount_under(&self.workdir);
        for dir in ["root", "state", "runc"] {
            let path = self.workdir.join(dir);
            if path.exists()
                && let Err(e) = fs::remove_dir_all(&path)
            {
                eprintln!("xtask: could not remove {}: {e}", path.display());
            }
        }
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Mount points under `dir`, deepest first, from /proc/self/mountinfo (octal escapes decoded).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(crate::host::unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir) && m != dir)
        .collect();
    // Deepest first; a path mounted twice stays twice, one unmount per layer.
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unmount_under(dir: &Path) {
    for mount in mounts_under(dir) {
        let Ok(path) = CString::new(mount.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: umount2 reads the NUL-terminated path, which outlives the call. MNT_DETACH
        // so that a mount still in use by a dying process does not block the teardown.
        let rc = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        let error = std::io::Error::last_os_error();
        // EINVAL: no longer a mount point (a parent's lazy unmount took it along).
        if rc != 0 && error.raw_os_error() != Some(libc::EINVAL) {
            eprintln!("xtask: could not unmount {}: {error}", mount.display());
        }
    }
}

/// A directory of a cgroup hierarchy: its mount point and its path below it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CgroupDir {
    mount: PathBuf,
    below: PathBuf,
}

impl CgroupDir {
    fn path(&self) -> PathBuf {
        self.mount.join(&self.below)
    }

    /// The parent directory, unless that is the hierarchy's root.
    fn parent(&self) -> Option<Self> {
        let below = self.below.parent()?;
        (!below.as_os_str().is_empty()).then(|| Self {
            mount: self.mount.clone(),
            below: below.to_owned(),
        })
    }
}

/// Whether a cgroup directory that appeared while containerd ran was made for its pods: under
/// `/kubepods` (the parent the CRI tests give their pods, as the kubelet's cgroupfs driver
/// does), or named by one of its tasks (a pod with another parent) or below one.
fn is_pod_cgroup(dir: &CgroupDir, task_ids: &BTreeSet<String>) -> bool {
    dir.below.starts_with("kubepods")
        || dir
            .below
            .components()
            .any(|c| task_ids.contains(&*c.as_os_str().to_string_lossy()))
}

/// Whether a kubelet runs here, which would own `/kubepods`.
fn kubelet_running() -> bool {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            fs::read_to_string(e.path().join("comm")).is_ok_and(|comm| comm.trim() == "kubelet")
        })
}

/// Every directory of every cgroup hierarchy (v1 controllers and v2).
fn cgroup_dirs() -> BTreeSet<CgroupDir> {
    let mut out = BTreeSet::new();
    for mount in crate::host::cgroup_mounts() {
        walk_dirs(&mount, Path::new(""), &mut out);
    }
    out
}

fn walk_dirs(mount: &Path, below: &Path, out: &mut BTreeSet<CgroupDir>) {
    for entry in fs::read_dir(mount.join(below))
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let below = below.join(entry.file_name());
            walk_dirs(mount, &below, out);
            out.insert(CgroupDir {
                mount: mount.to_owned(),
                below,
            });
        }
    }
}

/// rmdir a cgroup directory whose children are already gone; a busy one stays (and says so
/// only when it still holds processes, which would be a leak worth knowing about).
fn remove_cgroup(dir: &Path) {
    if fs::remove_dir(dir).is_err() && dir.exists() {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            eprintln!(
                "xtask: cgroup {} still holds processes {}",
                dir.display(),
                procs.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
}

fn sha256_hex(path: &Path) -> anyhow::Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    out.split_whitespace()
        .next()
        .filter(|h| h.len() == 64)
        .map(str::to_owned)
        .with_context(|| format!("sha256sum {}: unexpected output {out:?}", path.display()))
}

/// Writes a docker-archive (`docker save` format, which `ctr images import` reads) of the
/// single-layer image `tag` made of `rootfs`, running `cmd`.
pub fn build_image_archive(
    rootfs: &Path,
    tag: &str,
    cmd: &[&str],
    out: &Path,
) -> anyhow::Result<()> {
    let staging = out.with_extension("staging");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    let layer = staging.join("layer.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("."))?;
    let diff_id = sha256_hex(&layer)?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created_by": "cargo xtask"}],
    });
    let config_tmp = staging.join("config.json");
    fs::write(&config_tmp, serde_json::to_vec(&config)?)?;
    let config_name = format!("{}.json", sha256_hex(&config_tmp)?);
    fs::rename(&config_tmp, staging.join(&config_name))?;
    fs::create_dir_all(staging.join(&diff_id))?;
    fs::rename(&layer, staging.join(&diff_id).join("layer.tar"))?;
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": [format!("{diff_id}/layer.tar")],
    }]);
    fs::write(
        staging.join("manifest.json"),
        serde_json::to_vec(&manifest)?,
    )?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&staging)
        .arg("-cf")
        .arg(out)
        .arg("."))?;
    fs::remove_dir_all(&staging)?;
    Ok(())
}

/// The sandbox image: one static busybox sleeping as the pod's PID-1 placeholder. containerd
/// stops sandboxes with SIGKILL, so it needs no signal handling.
fn build_pause_archive(workdir: &Path, out: &Path) -> anyhow::Result<()> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox not found: run `cargo xtask setup` (busybox-static)")?;
    let rootfs = workdir.join("pause-rootfs");
    let _ = fs::remove_dir_all(&rootfs);
    fs::create_dir_all(rootfs.join("bin"))?;
    fs::create_dir_all(rootfs.join("etc"))?;
    fs::copy(busybox, rootfs.join("bin/busybox"))?;
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/busybox\n",
    )?;
    fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    build_image_archive(
        &rootfs,
        SANDBOX_IMAGE,
        &["/bin/busybox", "sleep", "2147483647"],
        out,
    )?;
    fs::remove_dir_all(&rootfs)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cgroups_are_told_from_others() {
        let ids = BTreeSet::from(["abc".to_owned()]);
        let dir = |below: &str| CgroupDir {
            mount: "/sys/fs/cgroup/unified".into(),
            below: below.into(),
        };
        assert!(is_pod_cgroup(&dir("kubepods"), &ids));
        assert!(is_pod_cgroup(&dir("kubepods/besteffort/pod1/abc"), &ids));
        assert!(is_pod_cgroup(&dir("custom/abc"), &ids));
        assert!(!is_pod_cgroup(&dir("docker/abcd"), &ids));
        assert!(
            !is_pod_cgroup(&dir("kubepodsx"), &ids),
            "components, not prefixes"
        );
        assert_eq!(
            dir("a/b").path(),
            PathBuf::from("/sys/fs/cgroup/unified/a/b")
        );
        assert_eq!(dir("a/b").parent(), Some(dir("a")));
        assert_eq!(dir("a").parent(), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(
            crate::host::unescape_mountinfo(r"/a\040b/c\134d"),
            r"/a b/c\d"
        );
        assert_eq!(crate::host::unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(
            crate::host::unescape_mountinfo(r"/trailing\04"),
            r"/trailing\04"
        );
    }
}
