//! Network fixtures the tests create and remove: Docker networks, a network namespace wired
//! to a Docker bridge (an outside host with addresses of the test's choosing), extra loopback
//! addresses, and the `workload` binary that connects and sends.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU8, Ordering},
    time::Duration,
};

use serde_json::Value;

/// The static `workload` binary: `/bin/workload` in the QEMU guests, else next to the tests.
pub fn workload_bin() -> PathBuf {
    helper_bin("workload", "SENSOR_TEST_WORKLOAD")
}

/// The `attack` helper binary (`SENSOR_TEST_ATTACK`, `/bin/attack` in the guests, or next to
/// the test binary).
pub fn attack_bin() -> PathBuf {
    helper_bin("attack", "SENSOR_TEST_ATTACK")
}

fn helper_bin(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let guest = PathBuf::from("/bin").join(name);
    if std::env::var_os("SENSOR_GUEST").is_some() && guest.exists() {
        return guest;
    }
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(name))
        .expect("target layout");
    assert!(bin.exists(), "{name} binary not found at {}", bin.display());
    bin
}

/// One JSON line of `workload` output.
pub fn parse_workload(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no workload JSON in {stdout:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A distinct number per fixture of this test process (subnets, interface names).
pub fn fixture_number() -> u8 {
    static N: AtomicU8 = AtomicU8::new(0);
    // SENSOR_TEST_NET_N pins the subnet, to reproduce an address-dependent failure.
    if let Some(n) = std::env::var("SENSOR_TEST_NET_N")
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
    {
        return n.wrapping_add(N.fetch_add(1, Ordering::Relaxed));
    }
    let pid = std::process::id();
    // 1..=240: eight per process, never 0 (`.max(1)` here once gave two fixtures of one
    // process the same subnet when pid % 30 == 0).
    ((pid % 30) as u8) * 8 + N.fetch_add(1, Ordering::Relaxed) % 8 + 1
}

/// A Docker bridge network with an IPv4 and an IPv6 subnet (`10.213.N.0/24`,
/// `fd00:213:N::/64`); containers get addresses from the lower half, the upper half is left
/// for a `NetNs`. Removed on drop.
pub struct DockerNetwork {
    pub name: String,
    pub n: u8,
}

impl DockerNetwork {
    pub fn create(name: &str) -> Self {
        let n = fixture_number();
        let v4 = format!("10.213.{n}.0/24");
        let v4_range = format!("10.213.{n}.0/25");
        let v6 = format!("fd00:213:{n}::/64");
        let v6_range = format!("fd00:213:{n}::/80");
        let _ = crate::docker_output(&["network", "rm", name]);
        remove_stale_masquerade("iptables", &v4);
        remove_stale_masquerade("ip6tables", &v6);
        eprintln!("network {name}: {v4} {v6}");
        crate::docker(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &v4,
            "--ip-range",
            &v4_range,
            "--subnet",
            &v6,
            "--ip-range",
            &v6_range,
            name,
        ]);
        Self {
            name: name.to_owned(),
            n,
        }
    }

    /// The Linux bridge behind the network.
    pub fn bridge(&self) -> String {
        let id = crate::docker(&["network", "inspect", "-f", "{{.Id}}", &self.name]);
        format!("br-{}", &id[..12])
    }
}

impl Drop for DockerNetwork {
    fn drop(&mut self) {
        // Containers still attached (their guards may drop later) would make `network rm`
        // fail and leak the network and its subnet: remove them first.
        let attached = crate::docker_output(&[
            "network",
            "inspect",
            "-f",
            "{{range $id, $c := .Containers}}{{$id}} {{end}}",
            &self.name,
        ]);
        for id in String::from_utf8_lossy(&attached.stdout).split_whitespace() {
            let _ = crate::docker_output(&["rm", "-f", id]);
        }
        let out = crate::docker_output(&["network", "rm", &self.name]);
        if !out.status.success() {
            eprintln!(
                "warning: docker network rm {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// Removes `MASQUERADE` rules for `subnet` left by a dockerd that died with a network of it
/// (`-s SUBNET ! -o br-OLD`): with `br-OLD` gone they match every packet from the subnet
/// bridged through the host, so an outside host on that subnet would reach a container from
/// the gateway's address instead of its own (what an inbound CIDR rule judges).
fn remove_stale_masquerade(iptables: &str, subnet: &str) {
    let Ok(out) = Command::new(iptables)
        .args(["-t", "nat", "-S", "POSTROUTING"])
        .output()
    else {
        return;
    };
    for rule in String::from_utf8_lossy(&out.stdout).lines() {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let Some((&"-A", spec)) = words.split_first() else {
            continue;
        };
        if !words.windows(2).any(|w| w == ["-s", subnet]) {
            continue;
        }
        let Some(bridge) = words
            .windows(2)
            .find(|w| w[0] == "-o" && w[1].starts_with("br-"))
            .map(|w| w[1])
        else {
            continue;
        };
        if std::path::Path::new("/sys/class/net").join(bridge).exists() {
            continue;
        }
        eprintln!("removing a stale {iptables} rule of a dead Docker network: {rule}");
        run(iptables, &[&["-t", "nat", "-D"][..], spec].concat());
    }
}

/// A container's IPv4 and IPv6 addresses on `network`.
pub fn container_addrs(container: &str, network: &str) -> (String, String) {
    let f = |field: &str| {
        crate::docker(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").{field}}}}}"),
            container,
        ])
    };
    (f("IPAddress"), f("GlobalIPv6Address"))
}

/// A network namespace plugged into a Docker bridge by a veth pair: a host outside every
/// container, at `10.213.N.200` and `fd00:213:N::c8`. Removed on drop.
pub struct NetNs {
    pub name: String,
    pub v4: String,
    pub v6: String,
    host_if: String,
    servers: Vec<Child>,
}

impl NetNs {
    pub fn on(network: &DockerNetwork) -> Self {
        let n = network.n;
        let name = format!("sensor-test-{n}");
        let (host_if, ns_if) = (format!("vsh{n}"), format!("vsn{n}"));
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Self {
            name: name.clone(),
            v4: format!("10.213.{n}.200"),
            v6: format!("fd00:213:{n}::c8"),
            host_if: host_if.clone(),
            servers: Vec::new(),
        };
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
        );
        run("ip", &["link", "set", &ns_if, "netns", &name]);
        run(
            "ip",
            &["link", "set", &host_if, "master", &network.bridge()],
        );
        run("ip", &["link", "set", &host_if, "up"]);
        let inside = format!(
            "ip link set lo up && ip link set {ns_if} up && ip addr add {}/24 dev {ns_if} && \
             ip -6 addr add {}/64 dev {ns_if} nodad && ip route add default via 10.213.{n}.1",
            ns.v4, ns.v6
        );
        run("ip", &["netns", "exec", &name, "sh", "-c", &inside]);
        ns
    }

    /// Runs `workload ARGS` in the namespace; its JSON.
    pub fn workload(&self, args: &[&str]) -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(workload_bin())
            .args(args)
            .output()
            .expect("ip netns exec");
        parse_workload(&String::from_utf8_lossy(&out.stdout))
    }

    /// A TCP server on `port` in the namespace (both families), until drop.
    pub fn serve(&mut self, port: u16) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(workload_bin())
            .args(["tcp-server", &port.to_string(), "::"])
            .stdout(Stdio::null())
            .spawn()
            .expect("tcp-server in the namespace");
        self.servers.push(child);
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// Extra addresses on `lo`, for tests without Docker (the QEMU guests): traffic to them
/// never leaves the machine. Removed on drop.
pub struct LoopbackAddrs {
    pub v4: String,
    pub v6: String,
    servers: Vec<Child>,
}

impl LoopbackAddrs {
    pub fn add() -> Self {
        let n = fixture_number();
        let a = Self {
            v4: format!("10.214.{n}.1"),
            v6: format!("fd00:214:{n}::1"),
            servers: Vec::new(),
        };
        run("ip", &["link", "set", "lo", "up"]);
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", a.v4), "dev", "lo"])
            .output();
        run("ip", &["addr", "add", &format!("{}/32", a.v4), "dev", "lo"]);
        let _ = Command::new("ip")
            .args(["-6", "addr", "add", &format!("{}/128", a.v6), "dev", "lo"])
            .output();
        a
    }

    /// A TCP server on both addresses' `port` (dual stack), until drop.
    pub fn serve(&mut self, port: u16) {
        let child = Command::new(workload_bin())
            .args(["tcp-server", &port.to_string(), "::"])
            .stdout(Stdio::null())
            .spawn()
            .expect("tcp-server");
        self.servers.push(child);
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for LoopbackAddrs {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.v4), "dev", "lo"])
            .output();
        let _ = Command::new("ip")
            .args([
                "-6",
                "addr",
                "del",
                &format!("{}/128", self.v6),
                "dev",
                "lo",
            ])
            .output();
    }
}
