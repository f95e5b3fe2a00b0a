//! The CRI client against a real containerd CRI plugin (`cargo xtask test` starts one on its own
//! socket and passes it in SENSOR_TEST_CONTAINERD_SOCKET): pods run the way the kubelet runs
//! them, in the host network, under `/kubepods/besteffort/pod<uid>` (cgroupfs driver).

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use integration_tests::{Sensor, image, require_root};
use sensor::containers::{
    Runtime,
    cri::CriClient,
    cri_admin::{ContainerConfig, PodSandboxConfig},
};

const WAIT: Duration = Duration::from_secs(20);

/// Fails (never skips) when the variable is unset: `cargo xtask test` sets it.
fn containerd_socket() -> PathBuf {
    let socket = std::env::var_os("SENSOR_TEST_CONTAINERD_SOCKET").unwrap_or_else(|| {
        panic!(
            "SENSOR_TEST_CONTAINERD_SOCKET is unset: run the integration tests with \
             `cargo xtask test`, which starts a containerd with its CRI plugin"
        )
    });
    PathBuf::from(socket)
}

fn client() -> CriClient {
    // Generous: creating a pod (snapshot, shim, runc) takes a second or two on a busy CI box.
    CriClient::new(
        containerd_socket(),
        Runtime::Containerd,
        Duration::from_secs(30),
    )
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("reading a kernel uuid")
        .trim()
        .to_owned()
}

/// Mount points of the cgroup hierarchies: (v2 mount, every mount).
fn cgroup_mounts() -> (PathBuf, Vec<PathBuf>) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut v2 = None;
    let mut all = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split_whitespace().next().unwrap_or("");
        let Some(mount) = left.split_whitespace().nth(4) else {
            continue;
        };
        if fstype == "cgroup2" {
            v2 = Some(PathBuf::from(mount));
        }
        if fstype == "cgroup" || fstype == "cgroup2" {
            all.push(PathBuf::from(mount));
        }
    }
    (v2.expect("a cgroup v2 mount"), all)
}

/// A pod run through CRI; stopped and removed on drop, with the pod cgroup directories that
/// the runtime leaves (the kubelet would remove them).
struct Pod {
    client: CriClient,
    id: String,
    uid: String,
    name: String,
    config: PodSandboxConfig,
}

impl Pod {
    fn cgroup_parent(uid: &str) -> String {
        format!("/kubepods/besteffort/pod{uid}")
    }

    fn run(name: &str) -> Self {
        let client = client();
        let uid = uuid();
        let config = PodSandboxConfig::host_network(
            name,
            "default",
            &uid,
            &Self::cgroup_parent(&uid),
            BTreeMap::from([("app".to_owned(), "demo".to_owned())]),
        );
        let id = block_on(client.run_pod_sandbox(config.clone()))
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"));
        Self {
            client,
            id,
            uid,
            name: name.to_owned(),
            config,
        }
    }

    /// Creates and starts container `name` running `command` from the test image.
    fn start_container(&self, name: &str, command: &[&str]) -> String {
        let config = ContainerConfig::new(name, &image(), command);
        block_on(async {
            let id = self
                .client
                .create_container(&self.id, config, self.config.clone())
                .await
                .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"));
            self.client
                .start_container(&id)
                .await
                .unwrap_or_else(|e| panic!("StartContainer {name} ({id}): {e}"));
            id
        })
    }

    fn container_cgroup(&self, v2: &Path, id: &str) -> PathBuf {
        v2.join(Self::cgroup_parent(&self.uid).trim_start_matches('/'))
            .join(id)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let result = block_on(async {
            self.client.stop_pod_sandbox(&self.id).await?;
            self.client.remove_pod_sandbox(&self.id).await
        });
        if let Err(e) = result {
            eprintln!("removing pod {} ({}): {e}", self.name, self.id);
        }
        let (_, mounts) = cgroup_mounts();
        let parent = Self::cgroup_parent(&self.uid);
        for mount in mounts {
            let _ = std::fs::remove_dir(mount.join(parent.trim_start_matches('/')));
        }
    }
}

#[test]
fn cri_version_and_container_list() {
    let client = client();
    let version = block_on(client.version()).expect("CRI Version");
    assert!(
        version.starts_with("containerd ") && version.ends_with("(CRI v1)"),
        "{version}"
    );
    block_on(client.list_container_ids()).expect("CRI ListContainers");
}

#[test]
fn cri_metadata_of_a_pod_container() {
    require_root();
    let (v2, _) = cgroup_mounts();
    let pod = Pod::run("cri-meta");
    let id = pod.start_container("web", &["sleep", "300"]);
    assert_eq!(id.len(), 64, "full container id: {id}");

    let cgroup = pod.container_cgroup(&v2, &id);
    assert!(
        cgroup.is_dir(),
        "container cgroup {} is missing",
        cgroup.display()
    );

    let client = client();
    let ids = block_on(client.list_container_ids()).expect("ListContainers");
    assert!(ids.contains(&id), "{id} not listed in {ids:?}");

    let m = block_on(client.metadata(&id))
        .expect("metadata")
        .expect("containerd knows the container");
    assert_eq!(m.name.as_deref(), Some("web"));
    let img = m.image.clone().unwrap_or_default();
    assert!(
        img == image() || img == format!("docker.io/{}", image()),
        "image {img:?} is the test image {}",
        image()
    );
    assert!(
        m.image_id
            .as_deref()
            .is_some_and(|i| i.starts_with("sha256:")),
        "{m:?}"
    );
    assert_eq!(m.privileged, Some(false), "{m:?}");
    assert_eq!(m.user.as_deref(), Some("0:0"), "{m:?}");
    let pid = m.pid.expect("pid of a running container");
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert!(
        proc_cgroup.contains(&id),
        "pid {pid} is the container's: {proc_cgroup}"
    );
    let p = m.pod.as_ref().expect("pod metadata");
    assert_eq!(p.name, pod.name);
    assert_eq!(p.namespace, "default");
    assert_eq!(p.uid, pod.uid);
    assert_eq!(p.labels.get("app").map(String::as_str), Some("demo"));

    // The sandbox (pause container) is described as the pod's.
    let s = block_on(client.metadata(&pod.id))
        .expect("sandbox metadata")
        .expect("containerd knows the sandbox");
    assert_eq!(s.name, Some(format!("{}/sandbox", pod.name)));
    assert_eq!(
        s.pod.as_ref().map(|p| p.uid.as_str()),
        Some(pod.uid.as_str())
    );
    assert!(s.pid.is_some(), "{s:?}");

    let unknown = "0".repeat(64);
    assert_eq!(block_on(client.metadata(&unknown)).expect("metadata"), None);

    drop(pod);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cgroup.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!cgroup.exists(), "{} outlived its pod", cgroup.display());
    assert_eq!(block_on(client.metadata(&id)).expect("metadata"), None);
}

#[test]
fn cri_exec_event_carries_pod_metadata() {
    let _serial = integration_tests::serial();
    let socket = containerd_socket();
    let mut sensor = Sensor::start(&["--containerd-socket", &socket.display().to_string()]);
    let pod = Pod::run("cri-exec");
    // The marker exec comes after the start, while the sensor already knows the container.
    let id = pod.start_container(
        "marker",
        &["sh", "-c", "sleep 2; exec /bin/true cri-marker"],
    );
    let line = sensor.wait_for(WAIT, "the exec of the marker in the pod", |v| {
        v["kind"] == "exec"
            && v["container"]["id"] == id.as_str()
            && v["process"]["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "cri-marker"))
    });
    let c = &line["container"];
    assert_eq!(c["name"], "marker", "{line}");
    let img = c["image"].as_str().unwrap_or_default();
    assert!(
        img == image() || img == format!("docker.io/{}", image()),
        "{line}"
    );
    assert_eq!(c["pod"]["name"], pod.name.as_str(), "{line}");
    assert_eq!(c["pod"]["namespace"], "default", "{line}");
    assert_eq!(c["pod"]["uid"], pod.uid.as_str(), "{line}");
    assert_eq!(c["pod"]["labels"]["app"], "demo", "{line}");
}
