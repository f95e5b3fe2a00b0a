//! Network segmentation against real containers on real Docker networks: cross-segment
//! connects and sends fail with EPERM at once, allowed flows go through, CIDR segments cover
//! an outside host (a network namespace on the Docker bridge) both ways, a reload takes effect
//! on the next connect, and `kill` kills the caller.

use std::{path::PathBuf, time::Duration};

use integration_tests::{
    ContainerGuard, Sensor, docker, image,
    net::{DockerNetwork, NetNs, container_addrs, parse_workload},
    require_docker, require_root, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Three containers — web, api (TCP 8080), db (TCP 5432) — on one Docker network, each
/// labelled with its role for this test only.
struct Tiers {
    net: DockerNetwork,
    tag: String,
    _guards: Vec<ContainerGuard>,
}

impl Tiers {
    fn start(tag: &str) -> Self {
        let net = DockerNetwork::create(&format!("sensor-{tag}"));
        let mut guards = Vec::new();
        for (role, port) in [("web", 9999), ("api", 8080), ("db", 5432)] {
            let name = format!("{tag}-{role}");
            let label = format!("seg={role}-{tag}");
            let port = port.to_string();
            let image = image();
            docker(&[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                &net.name,
                "--label",
                &label,
                &image,
                "/usr/local/bin/workload",
                "tcp-server",
                &port,
                "::",
            ]);
            guards.push(ContainerGuard(name));
        }
        Self {
            net,
            tag: tag.to_owned(),
            _guards: guards,
        }
    }

    fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    /// (IPv4, IPv6) of a role's container.
    fn addrs(&self, role: &str) -> (String, String) {
        container_addrs(&self.name(role), &self.net.name)
    }

    /// `workload ARGS` in a role's container; its JSON.
    fn workload(&self, role: &str, args: &[&str]) -> Value {
        let name = self.name(role);
        let mut cmd = vec!["exec", name.as_str(), "/usr/local/bin/workload"];
        cmd.extend_from_slice(args);
        parse_workload(&docker(&cmd))
    }

    fn segments(&self) -> String {
        let t = &self.tag;
        format!(
            "segments:\n  - name: web\n    containers: {{ labels: {{ seg: web-{t} }} }}\n  \
             - name: api\n    containers: {{ labels: {{ seg: api-{t} }} }}\n  \
             - name: db\n    containers: {{ labels: {{ seg: db-{t} }} }}\n"
        )
    }
}

fn write_policy(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const THREE_TIER_ALLOW: &str = "  allow:\n    - { from: web, to: api, ports: [8080], protocol: tcp }\n    - { from: api, to: db, ports: [5432] }\n";

fn three_tier_policy(t: &Tiers, mode: &str, action: &str) -> String {
    format!(
        "version: 1\nmode: {mode}\n{}network:\n  cross_segment: deny\n  action: {action}\n{THREE_TIER_ALLOW}rules: []\n",
        t.segments()
    )
}

/// The sensor starts after the containers: its startup scan knows their addresses before it
/// says it is ready.
fn sensor_on(policy: &std::path::Path) -> Sensor {
    Sensor::start(&["--policy", policy.to_str().unwrap()])
}

fn refused(out: &Value, what: &str) {
    assert_eq!(out["ok"], false, "{what}: refused: {out}");
    assert_eq!(out["errno"], 1, "{what}: EPERM: {out}");
    assert!(
        out["ms"].as_f64().is_none_or(|ms| ms < 100.0),
        "{what}: refused at once, not after a timeout: {out}"
    );
}

fn connected(out: &Value, what: &str) {
    assert_eq!(out["ok"], true, "{what}: connects: {out}");
}

fn flow_line(sensor: &mut Sensor, src: &str, dst: &str, port: u16) -> Value {
    sensor.wait_for(WAIT, &format!("the {src} → {dst}:{port} flow"), |v| {
        v["kind"] == "network"
            && v["network"]["src_segment"] == src
            && v["network"]["dst_segment"] == dst
            && v["network"]["port"] == port
    })
}

#[test]
fn only_the_allowed_flows_between_segments_connect() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("tiers"));
    let policy = write_policy(&t.tag, &three_tier_policy(&t, "enforce", "block"));
    let mut sensor = sensor_on(&policy);
    let (api, _) = t.addrs("api");
    let (db, _) = t.addrs("db");
    let (web, _) = t.addrs("web");
    connected(
        &t.workload("web", &["tcp-connect", &format!("{api}:8080")]),
        "web → api:8080",
    );
    connected(
        &t.workload("api", &["tcp-connect", &format!("{db}:5432")]),
        "api → db:5432",
    );
    refused(
        &t.workload("web", &["tcp-connect", &format!("{db}:5432")]),
        "web → db:5432",
    );
    refused(
        &t.workload("web", &["tcp-connect", &format!("{api}:8081")]),
        "web → api on a port no allow entry names",
    );
    refused(
        &t.workload("db", &["tcp-connect", &format!("{web}:9999")]),
        "db → web",
    );
    // Same segment: always allowed.
    connected(
        &t.workload("web", &["tcp-connect", &format!("{web}:9999")]),
        "web → itself",
    );
    let line = flow_line(&mut sensor, "web", "db", 5432);
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["enforced_by"], "cgroup", "{line}");
    assert_eq!(line["rule"], "network.cross_segment", "{line}");
    assert_eq!(line["network"]["protocol"], "tcp", "{line}");
    assert_eq!(line["network"]["direction"], "egress", "{line}");
    assert_eq!(line["network"]["dst"], db.as_str(), "{line}");
    assert_eq!(line["network"]["src"], web.as_str(), "{line}");
    assert_eq!(line["process"]["comm"], "workload", "{line}");
    assert_eq!(line["container"]["name"], t.name("web").as_str(), "{line}");
    let allowed = flow_line(&mut sensor, "web", "api", 8080);
    assert!(
        allowed["rule"].is_null(),
        "allowed flows carry no verdict: {allowed}"
    );
}

#[test]
fn audit_mode_connects_everything_and_reports_what_would_be_blocked() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("audit"));
    let policy = write_policy(&t.tag, &three_tier_policy(&t, "audit", "block"));
    let mut sensor = sensor_on(&policy);
    let (db, _) = t.addrs("db");
    connected(
        &t.workload("web", &["tcp-connect", &format!("{db}:5432")]),
        "web → db in audit mode",
    );
    let line = flow_line(&mut sensor, "web", "db", 5432);
    assert_eq!(line["action"], "audit", "{line}");
    assert_eq!(line["would"], "block", "{line}");
    assert_eq!(line["mode"], "audit", "{line}");
    assert!(line["enforced"].is_null(), "{line}");
}

#[test]
fn udp_ipv6_and_ipv4_mapped_destinations_are_blocked_like_tcp() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("families"));
    let policy = write_policy(&t.tag, &three_tier_policy(&t, "enforce", "block"));
    let mut sensor = sensor_on(&policy);
    let (db4, db6) = t.addrs("db");
    assert!(!db6.is_empty(), "the test network has IPv6");
    refused(
        &t.workload("web", &["udp-send", &format!("{db4}:5432")]),
        "web → db UDP sendto",
    );
    refused(
        &t.workload("web", &["tcp-connect", &format!("[{db6}]:5432")]),
        "web → db over IPv6",
    );
    refused(
        &t.workload("web", &["tcp-connect", &format!("[::ffff:{db4}]:5432")]),
        "web → db at its IPv4-mapped IPv6 address",
    );
    refused(
        &t.workload("web", &["udp-send", &format!("[::ffff:{db4}]:5432")]),
        "web → db UDP at its IPv4-mapped address",
    );
    // The allowed flow works in every family.
    connected(
        &t.workload("api", &["tcp-connect", &format!("[{db6}]:5432")]),
        "api → db over IPv6",
    );
    connected(
        &t.workload("api", &["tcp-connect", &format!("[::ffff:{db4}]:5432")]),
        "api → db at its IPv4-mapped address",
    );
    let udp = sensor.wait_for(WAIT, "the UDP refusal", |v| {
        v["kind"] == "network"
            && v["network"]["protocol"] == "udp"
            && v["network"]["src_segment"] == "web"
    });
    assert_eq!(udp["enforced_by"], "cgroup", "{udp}");
    let v6 = sensor.wait_for(WAIT, "the IPv6 refusal", |v| {
        v["kind"] == "network" && v["network"]["dst"] == db6.as_str()
    });
    assert_eq!(v6["network"]["dst_segment"], "db", "{v6}");
}

#[test]
fn a_cidr_segment_is_blocked_and_a_reload_opens_it() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("cidr"));
    let mut outside = NetNs::on(&t.net);
    outside.serve(7000);
    let policy_text = |allow: &str| {
        format!(
            "version: 1\nmode: enforce\n{}  - name: ext\n    cidrs: [\"{}/32\", \"{}/128\"]\nnetwork:\n  cross_segment: deny\n  action: block\n  allow:\n{allow}rules: []\n",
            t.segments(),
            outside.v4,
            outside.v6
        )
    };
    let policy = write_policy(
        &t.tag,
        &policy_text("    - { from: api, to: db, ports: [5432] }\n"),
    );
    let mut sensor = sensor_on(&policy);
    let (web4, _) = t.addrs("web");
    // Egress: web → the outside host.
    refused(
        &t.workload("web", &["tcp-connect", &format!("{}:7000", outside.v4)]),
        "web → ext",
    );
    refused(
        &t.workload("web", &["tcp-connect", &format!("[{}]:7000", outside.v6)]),
        "web → ext over IPv6",
    );
    // A reload that allows both directions: the next connects go through, nothing restarted.
    let first = sensor.wait_for(WAIT, "the policy", |v| {
        v["kind"] == "policy" && v["event"] == "loaded"
    })["hash"]
        .clone();
    std::fs::write(
        &policy,
        policy_text(
            "    - { from: web, to: ext, ports: [7000] }\n    - { from: ext, to: web, ports: [9999] }\n",
        ),
    )
    .unwrap();
    sensor.wait_for(WAIT, "the reloaded policy", |v| {
        v["kind"] == "policy" && v["event"] == "loaded" && v["hash"] != first
    });
    connected(
        &t.workload("web", &["tcp-connect", &format!("{}:7000", outside.v4)]),
        "web → ext after the reload",
    );
    connected(
        &outside.workload(&["tcp-connect", &format!("{web4}:9999"), "1000"]),
        "ext → web after the reload",
    );
}

/// The outside host's SYNs (IPv4, IPv6) and UDP datagrams to a container are dropped in the
/// kernel (ingress program) and reported as inbound cross-segment flows. The outside host must reach
/// the container with its own address: `DockerNetwork` removes stale `MASQUERADE` rules of
/// dead Docker networks on its subnet, which once rewrote it to the gateway's.
#[test]
fn a_cidr_segment_drops_inbound_syns_and_datagrams() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("cidr-in"));
    let outside = NetNs::on(&t.net);
    let policy = write_policy(
        &t.tag,
        &format!(
            "version: 1\nmode: enforce\n{}  - name: ext\n    cidrs: [\"{}/32\", \"{}/128\"]\nnetwork:\n  cross_segment: deny\n  action: block\nrules: []\n",
            t.segments(),
            outside.v4,
            outside.v6
        ),
    );
    let (web4, web6) = t.addrs("web");
    // Control, before the sensor runs: the outside host's datagrams reach web.
    assert_eq!(
        udp_from_outside(&t, &outside, &web4)["received"],
        3,
        "ext → web UDP without the sensor"
    );
    let mut sensor = sensor_on(&policy);
    // Ingress: the outside host → web: its SYN is dropped, so the connect times out.
    let syn = outside.workload(&["tcp-connect", &format!("{web4}:9999"), "1000"]);
    let lines: Vec<Value> = sensor
        .lines(Duration::from_millis(300))
        .iter()
        .filter(|v| v["kind"] != "exec")
        .cloned()
        .collect();
    assert_eq!(
        syn["ok"],
        false,
        "ext → web dropped: {syn}; web {web4}; lines {:?}; sensor stderr:\n{}",
        lines,
        sensor.stderr()
    );
    assert_eq!(syn["error"], "timed out", "dropped, not refused: {syn}");
    let syn6 = outside.workload(&["tcp-connect", &format!("[{web6}]:9999"), "1000"]);
    assert_eq!(syn6["ok"], false, "ext → web over IPv6 dropped: {syn6}");
    let line = sensor.wait_for(WAIT, "the dropped SYN", |v| {
        v["kind"] == "network" && v["network"]["direction"] == "ingress"
    });
    assert_eq!(line["network"]["src_segment"], "ext", "{line}");
    assert_eq!(line["network"]["dst_segment"], "web", "{line}");
    assert_eq!(line["network"]["port"], 9999, "{line}");
    assert_eq!(line["enforced_by"], "cgroup", "{line}");
    // UDP: the datagrams are dropped before web's socket sees them.
    let udp = udp_from_outside(&t, &outside, &web4);
    assert_eq!(udp["received"], 0, "ext → web UDP dropped: {udp}");
    let line = sensor.wait_for(WAIT, "the dropped datagram", |v| {
        v["kind"] == "network"
            && v["network"]["direction"] == "ingress"
            && v["network"]["protocol"] == "udp"
    });
    assert_eq!(line["network"]["port"], 5353, "{line}");
    assert_eq!(line["action"], "block", "{line}");
    // IPv6 extension headers between the IP header and UDP's: still judged.
    let udp6 = udp_from_outside_with(&t, &outside, &format!("[{web6}]"), &["dstopts"]);
    assert_eq!(
        udp6["received"], 0,
        "ext → web UDP over IPv6 with a destination-options header dropped: {udp6}"
    );
    drop(sensor);
    let udp6 = udp_from_outside_with(&t, &outside, &format!("[{web6}]"), &["dstopts"]);
    assert_eq!(udp6["received"], 3, "control, without the sensor: {udp6}");
}

/// Three datagrams from the outside host to web's port 5353; web's `udp-recv` count.
fn udp_from_outside(t: &Tiers, outside: &NetNs, web4: &str) -> Value {
    udp_from_outside_with(t, outside, web4, &[])
}

/// `udp_from_outside` to `host` (an IPv4 address or a bracketed IPv6 one), with extra
/// `udp-send` arguments; web listens on every address of both families.
fn udp_from_outside_with(t: &Tiers, outside: &NetNs, host: &str, extra: &[&str]) -> Value {
    let name = t.name("web");
    let receiver = std::thread::spawn(move || {
        parse_workload(&docker(&[
            "exec",
            &name,
            "/usr/local/bin/workload",
            "udp-recv",
            "5353",
            "2",
            "::",
        ]))
    });
    std::thread::sleep(Duration::from_millis(1000));
    let dst = format!("{host}:5353");
    let mut args = vec!["udp-send", dst.as_str()];
    args.extend_from_slice(extra);
    for _ in 0..3 {
        let sent = outside.workload(&args);
        assert_eq!(sent["ok"], true, "sent: {sent}");
    }
    receiver.join().expect("udp-recv")
}

/// A segment selected by Docker network name (`containers: { network: NAME }`, from the
/// runtime's metadata): its containers reach each other, not a CIDR segment.
#[test]
fn a_docker_network_name_selects_a_segment() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("netsel"));
    let mut outside = NetNs::on(&t.net);
    let policy = write_policy(
        &t.tag,
        &format!(
            "version: 1\nmode: enforce\nsegments:\n  - name: tiers\n    containers: {{ network: {} }}\n  \
             - name: ext\n    cidrs: [\"{}/32\"]\nnetwork:\n  cross_segment: deny\n  action: block\nrules: []\n",
            t.net.name, outside.v4
        ),
    );
    let mut sensor = sensor_on(&policy);
    outside.serve(7000);
    refused(
        &t.workload("web", &["tcp-connect", &format!("{}:7000", outside.v4)]),
        "web → ext",
    );
    let (api, _) = t.addrs("api");
    connected(
        &t.workload("web", &["tcp-connect", &format!("{api}:8080")]),
        "web → api: both on the network",
    );
    let line = flow_line(&mut sensor, "tiers", "ext", 7000);
    assert_eq!(line["container"]["name"], t.name("web"), "{line}");
}

/// The embedded default policy segments every container away from the cloud metadata
/// service: enforced (`--mode enforce`), a connect to it fails with EPERM before any packet
/// leaves (no traffic to an address the test did not create), while containers still reach
/// each other.
#[test]
fn the_default_policy_keeps_containers_from_the_cloud_metadata_service() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("metadata"));
    let mut sensor = Sensor::start(&["--mode", "enforce"]);
    let ready = &sensor.ready;
    let programs = ready["programs"].as_array().expect("programs");
    assert!(
        programs.iter().any(|p| p == "connect4") && !programs.iter().any(|p| p == "ingress"),
        "egress judged, inbound not (`inbound: ignore`: no per-packet program): {ready}"
    );
    refused(
        &t.workload("web", &["tcp-connect", "169.254.169.254:80", "1000"]),
        "web → the metadata service",
    );
    refused(
        &t.workload("web", &["tcp-connect", "[fd00:ec2::254]:80", "1000"]),
        "web → the metadata service over IPv6",
    );
    let (api, _) = t.addrs("api");
    connected(
        &t.workload("web", &["tcp-connect", &format!("{api}:8080")]),
        "web → api: both in `containers`",
    );
    let line = sensor.wait_for(WAIT, "the refused flow", |v| {
        v["kind"] == "network" && v["network"]["dst"] == "169.254.169.254"
    });
    assert_eq!(line["network"]["src_segment"], "containers", "{line}");
    assert_eq!(line["network"]["dst_segment"], "cloud-metadata", "{line}");
    assert_eq!(line["container"]["name"], t.name("web"), "{line}");
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
}

#[test]
fn kill_kills_the_connecting_process() {
    let _serial = integration_tests::serial();
    require_root();
    require_docker();
    let t = Tiers::start(&unique("netkill"));
    let policy = write_policy(&t.tag, &three_tier_policy(&t, "enforce", "kill"));
    let mut sensor = sensor_on(&policy);
    let (db, _) = t.addrs("db");
    let out = docker(&[
        "exec",
        &t.name("web"),
        "sh",
        "-c",
        &format!("/usr/local/bin/workload tcp-connect {db}:5432; echo exit=$?"),
    ]);
    assert!(out.contains("exit=137"), "killed by SIGKILL: {out:?}");
    // The container's own server lives on: only the caller dies.
    let (api, _) = t.addrs("api");
    connected(
        &t.workload("web", &["tcp-connect", &format!("{api}:8080")]),
        "web → api still allowed",
    );
    let line = flow_line(&mut sensor, "web", "db", 5432);
    assert_eq!(line["action"], "kill", "{line}");
    assert_eq!(line["enforced_by"], "signal", "{line}");
}
