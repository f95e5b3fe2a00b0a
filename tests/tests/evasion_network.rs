//! Ways around network segmentation, tried from inside real containers: sockets no segment
//! hook sees (raw IP, ICMP datagrams, packet sockets, the same through io_uring) and
//! destinations that reach every segment at once (broadcast, multicast).

use std::time::Duration;

use integration_tests::{
    ContainerGuard, Sensor, helper_in, kernel_has, last_json, probe, require_docker, serial,
    start_labelled, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn attack(name: &str, args: &[&str]) -> (Option<i32>, Value) {
    let (code, out, err) = helper_in(name, "attack", args);
    let line = if code == Some(137) {
        Value::Null
    } else {
        assert!(out.contains('{'), "attack {args:?}: {out} {err}");
        last_json(&out)
    };
    (code, line)
}

fn workload(name: &str, args: &[&str]) -> Value {
    let (_, out, err) = helper_in(name, "workload", args);
    assert!(out.contains('{'), "workload {args:?}: {out} {err}");
    last_json(&out)
}

fn refused(line: &Value, what: &str) {
    assert_eq!(line["ok"], false, "{what}: refused: {line}");
    assert_eq!(line["errno"], 1, "{what}: EPERM: {line}");
}

/// Refused with EPERM where BPF LSM runs, killed by SIGKILL (exit 137) elsewhere.
fn refused_or_killed(lsm: bool, code: Option<i32>, line: &Value, what: &str) {
    if lsm {
        refused(line, what);
    } else {
        assert_eq!(code, Some(137), "{what}: killed by SIGKILL: {line}");
    }
}

/// A policy with two segments, `web` (containers labelled tier=WEB) and `db`, under
/// `cross_segment: deny`.
fn segmented_policy(web: &str, mode: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("netpolicy")));
    std::fs::write(
        &path,
        format!(
            "version: 1\nmode: {mode}\nsegments:\n  - name: web\n    containers: {{ labels: {{ tier: {web} }} }}\n  - name: db\n    containers: {{ labels: {{ tier: db-{web} }} }}\nnetwork:\n  cross_segment: deny\n  action: block\nrules: []\n"
        ),
    )
    .unwrap();
    path
}

fn socket_line(sensor: &mut Sensor, id: &str, protocol: &str) -> Value {
    sensor.wait_for(WAIT, &format!("the {protocol} socket"), |v| {
        v["kind"] == "network"
            && v["container"]["id"] == id
            && v["rule"] == "network.socket"
            && v["network"]["protocol"] == protocol
    })
}

#[test]
fn sockets_no_segment_hook_sees_are_refused_in_a_segmented_container() {
    require_docker();
    let _serial = serial();
    let lsm = kernel_has(&probe(), "lsm");
    let tier = unique("rawsock");
    let p = segmented_policy(&tier, "enforce");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("rawsock");
    let _g = ContainerGuard(name.clone());
    // Docker's default capabilities include NET_RAW; its seccomp profile allows io_uring on
    // none of the versions here, so it is lifted for the io_uring attempt.
    let id = start_labelled(&name, &tier, &["--security-opt", "seccomp=unconfined"]);
    // A container in no segment is not touched: the same sockets open there.
    let free = unique("freesock");
    let _f = ContainerGuard(free.clone());
    start_labelled(&free, &unique("nosegment"), &[]);
    for kind in ["raw-icmp", "ping", "packet", "inet-packet"] {
        let (code, line) = attack(&free, &["socket", kind]);
        assert_eq!(code, Some(0), "{kind} outside every segment: {line}");
        assert_eq!(line["ok"], true, "{kind} outside every segment: {line}");
    }

    // TCP and UDP sockets are judged where they connect and send: created freely.
    let (_, line) = attack(&name, &["socket", "udp"]);
    assert_eq!(line["ok"], true, "{line}");
    // A raw IP socket and an ICMP datagram ("ping") socket reach any address without a
    // connect or UDP send the segment hooks see: refused at creation.
    let (_, line) = attack(&name, &["socket", "raw-icmp"]);
    refused(&line, "raw IP socket");
    let (_, line) = attack(&name, &["socket", "ping"]);
    refused(&line, "ICMP datagram socket");
    let line = socket_line(&mut sensor, &id, "icmp");
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced"], true, "{line}");

    // A packet socket bypasses the IP stack: refused at its CAP_NET_RAW check where BPF LSM
    // runs, its creator killed elsewhere — directly and through io_uring.
    for how in [
        vec!["socket", "packet"],
        vec!["socket", "inet-packet"],
        vec!["iouring-socket", "packet"],
    ] {
        let (code, line) = attack(&name, &how);
        refused_or_killed(lsm, code, &line, &format!("{how:?}"));
    }
    let line = sensor.wait_for(WAIT, "the packet socket", |v| {
        v["kind"] == "network"
            && v["container"]["id"] == id
            && v["rule"] == "network.socket"
            && v["network"]["protocol"] != "icmp"
    });
    assert_eq!(line["enforced"], true, "{line}");
    let _ = std::fs::remove_file(&p);
}

/// CAP_NET_ADMIN rewrites, tunnels or redirects a container's packets after the segment hooks
/// judged them (nftables DNAT in its namespace, a GRE tunnel, `tc`): in a segmented container
/// it is refused where BPF LSM runs, its user killed elsewhere; so is CAP_NET_RAW's
/// `IP_TRANSPARENT` (sending from another container's address). Granted to a container in no
/// segment, neither is touched.
#[test]
fn net_admin_in_a_segmented_container_is_refused() {
    require_docker();
    let _serial = serial();
    let lsm = kernel_has(&probe(), "lsm");
    let tier = unique("netadmin");
    let p = segmented_policy(&tier, "enforce");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("netadmin");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &["--cap-add", "NET_ADMIN"]);
    let free = unique("freeadmin");
    let _f = ContainerGuard(free.clone());
    start_labelled(&free, &unique("nosegment"), &["--cap-add", "NET_ADMIN"]);
    let (code, line) = attack(&free, &["net-admin"]);
    assert_eq!(code, Some(0), "outside every segment: {line}");
    assert_eq!(line["ok"], true, "outside every segment: {line}");
    // Reading a network sysctl asks CAP_NET_ADMIN without using it (a Go program reads
    // somaxconn before it listens): not a use.
    let (code, out, err) =
        integration_tests::exec_in(&name, &["cat", "/proc/sys/net/core/somaxconn"]);
    assert_eq!(code, Some(0), "reading a network sysctl: {out} {err}");
    let (code, line) = attack(&free, &["ip-transparent"]);
    assert_eq!(line["ok"], true, "outside every segment: {line}");
    assert_eq!(code, Some(0), "outside every segment: {line}");
    let (code, line) = attack(&name, &["net-admin"]);
    refused_or_killed(lsm, code, &line, "CAP_NET_ADMIN in a segmented container");
    // CAP_NET_RAW (Docker's default) sends from any address with IP_TRANSPARENT: judged the
    // same way.
    let (code, line) = attack(&name, &["ip-transparent"]);
    refused_or_killed(lsm, code, &line, "IP_TRANSPARENT in a segmented container");
    let line = sensor.wait_for(WAIT, "the CAP_NET_ADMIN use", |v| {
        v["kind"] == "network" && v["container"]["id"] == id && v["rule"] == "network.admin"
    });
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["network"]["src_segment"], "web", "{line}");
    let _ = std::fs::remove_file(&p);
}

/// With CAP_SYS_ADMIN alone a container loads XDP and tc programs (they need CAP_NET_ADMIN
/// or CAP_SYS_ADMIN) and attaches them to its interfaces with `bpf_link`, rewriting packets
/// after the segment hooks: in a segmented container the load is judged as CAP_NET_ADMIN.
#[test]
fn a_bpf_program_load_in_a_segmented_container_is_refused() {
    require_docker();
    let _serial = serial();
    let lsm = kernel_has(&probe(), "lsm");
    let tier = unique("xdp");
    let p = segmented_policy(&tier, "enforce");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let caps = [
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
    ];
    let name = unique("xdp");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &caps);
    let free = unique("freexdp");
    let _f = ContainerGuard(free.clone());
    start_labelled(&free, &unique("nosegment"), &caps);
    let (code, line) = attack(&free, &["bpf-xdp"]);
    assert_eq!(
        (code, &line["ok"]),
        (Some(0), &Value::Bool(true)),
        "outside every segment: {line}"
    );
    let (code, line) = attack(&name, &["bpf-xdp"]);
    refused_or_killed(
        lsm,
        code,
        &line,
        "an XDP program load in a segmented container",
    );
    let line = sensor.wait_for(WAIT, "the program load", |v| {
        v["kind"] == "network" && v["container"]["id"] == id && v["rule"] == "network.admin"
    });
    assert_eq!(line["enforced"], true, "{line}");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn broadcast_and_multicast_from_a_segmented_container_are_refused() {
    require_docker();
    let _serial = serial();
    let tier = unique("bcast");
    let p = segmented_policy(&tier, "enforce");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("bcast");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &[]);
    let free = unique("freebcast");
    let _f = ContainerGuard(free.clone());
    start_labelled(&free, &unique("nosegment"), &[]);
    for dst in ["255.255.255.255:9", "224.0.0.251:5353"] {
        let line = workload(&free, &["udp-send", dst]);
        assert_eq!(line["ok"], true, "{dst} outside every segment: {line}");
        let line = workload(&name, &["udp-send", dst]);
        refused(&line, dst);
    }
    let line = sensor.wait_for(WAIT, "the broadcast", |v| {
        v["kind"] == "network" && v["container"]["id"] == id && v["rule"] == "network.broadcast"
    });
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["network"]["protocol"], "udp", "{line}");
    let _ = std::fs::remove_file(&p);
}

/// An iptables DNAT rule on the host, as kube-proxy writes for a ClusterIP service; removed
/// on drop.
struct Dnat(Vec<String>);

impl Dnat {
    fn add(vip: &str, port: u16, to: &str) -> Self {
        let rule: Vec<String> = [
            "PREROUTING",
            "-d",
            vip,
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-j",
            "DNAT",
            "--to-destination",
            &format!("{to}:{port}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut args = vec!["-t", "nat", "-I"];
        args.extend(rule.iter().map(String::as_str));
        integration_tests::checked("iptables", &args);
        Self(rule)
    }
}

impl Drop for Dnat {
    fn drop(&mut self) {
        let mut args = vec!["-t".to_string(), "nat".into(), "-D".into()];
        args.extend(self.0.iter().cloned());
        let _ = std::process::Command::new("iptables").args(&args).status();
    }
}

/// A connect to a service address that the host rewrites to a container of another segment
/// (DNAT, as a Kubernetes ClusterIP) names an address in no segment at the caller: the
/// receiving container judges the flow by its source and drops it.
#[test]
fn a_flow_rewritten_to_another_segment_is_dropped_where_it_arrives() {
    rewritten_flow_is_dropped_where_it_arrives(false);
}

/// The same, with the receiving server in a sub-cgroup of its container (as systemd inside a
/// container puts its services): its listening socket's cgroup has no entry of its own, and
/// the flow is judged through its container's.
#[test]
fn a_flow_to_a_server_in_a_containers_sub_cgroup_is_judged_as_that_containers() {
    rewritten_flow_is_dropped_where_it_arrives(true);
}

/// `db` serves on 5432, in its own cgroup or (`in_sub_cgroup`) in a sub-cgroup of it the host
/// made and moved the server into before it made its socket.
fn rewritten_flow_is_dropped_where_it_arrives(in_sub_cgroup: bool) {
    use integration_tests::net::{DockerNetwork, container_addrs};
    require_docker();
    let _serial = serial();
    let tier = unique("dnat");
    let net = DockerNetwork::create(&format!("sensor-{tier}"));
    let run = |name: &str, label: &str, cmd: &[&str]| {
        let image = integration_tests::image();
        let label = format!("tier={label}");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &net.name,
            "--label",
            &label,
            &image,
        ];
        args.extend_from_slice(cmd);
        integration_tests::docker(&args);
        ContainerGuard(name.to_owned())
    };
    let (web, db, db2) = (
        format!("{tier}-web"),
        format!("{tier}-db"),
        format!("{tier}-db2"),
    );
    // The server waits for /tmp/go before it makes its socket.
    let server = "while [ ! -e /tmp/go ]; do sleep 0.1; done; exec /usr/local/bin/workload tcp-server 5432 ::";
    let _guards = [
        run(&web, &tier, &["sleep", "300"]),
        run(&db, &format!("db-{tier}"), &["sh", "-c", server]),
        run(&db2, &format!("db-{tier}"), &["sleep", "300"]),
    ];
    let _sub = in_sub_cgroup.then(|| {
        use integration_tests::{cgroup_dir_of, container_pid};
        let pid = container_pid(&db);
        let sub = cgroup_dir_of(pid).join("server");
        std::fs::create_dir(&sub).expect("a sub-cgroup of db");
        std::fs::write(sub.join("cgroup.procs"), pid.to_string()).expect("moving db's server");
        assert_eq!(cgroup_dir_of(pid), sub, "db's server is in the sub-cgroup");
        // Dropped before `_guards`: db goes first, then its sub-cgroup, if still there.
        struct Remove(String, std::path::PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = integration_tests::docker_output(&["rm", "-f", &self.0]);
                let _ = std::fs::remove_dir(&self.1);
            }
        }
        Remove(db.clone(), sub)
    });
    integration_tests::docker(&["exec", &db, "touch", "/tmp/go"]);
    let (db_ip, _) = container_addrs(&db, &net.name);
    let (web_ip, _) = container_addrs(&web, &net.name);
    // A service address outside the network's subnet: routed through the host, rewritten there.
    let vip = format!("10.214.{}.200", net.n);
    let _dnat = Dnat::add(&vip, 5432, &db_ip);
    let p = segmented_policy(&tier, "enforce");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let target = format!("{vip}:5432");
    // The control: db's own segment reaches it through the service address.
    let line = workload(&db2, &["tcp-connect", &target, "3000"]);
    assert_eq!(line["ok"], true, "db2 → service → db, same segment: {line}");
    let line = workload(&web, &["tcp-connect", &target, "3000"]);
    assert_eq!(
        line["ok"], false,
        "web → service → db must not connect: {line}"
    );
    let line = sensor.wait_for(WAIT, "the rewritten flow", |v| {
        v["kind"] == "network"
            && v["network"]["direction"] == "ingress"
            && v["network"]["src"] == web_ip.as_str()
    });
    assert_eq!(line["rule"], "network.cross_segment", "{line}");
    assert_eq!(line["network"]["src_segment"], "web", "{line}");
    assert_eq!(line["network"]["dst_segment"], "db", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    let _ = std::fs::remove_file(&p);
}

/// A container whose runtime has not answered yet may turn out to be in any segment: until it
/// is known, it gets what every segment would deny (fail closed, like every other rule), and
/// once its metadata is known what its own segments allow.
#[test]
fn a_container_whose_metadata_is_late_is_held_to_what_every_segment_denies() {
    require_docker();
    let _serial = serial();
    let tier = unique("late");
    // The destination: a container of this test, put in a CIDR segment by its address.
    let dst = unique("latedst");
    let _d = ContainerGuard(dst.clone());
    start_labelled(&dst, &unique("nosegment"), &[]);
    let (dst_ip, _) = integration_tests::net::container_addrs(&dst, "bridge");
    let p = std::env::temp_dir().join(format!("{}.yaml", unique("latepolicy")));
    std::fs::write(
        &p,
        format!(
            "version: 1\nmode: enforce\nsegments:\n  - name: web\n    containers: {{ labels: {{ tier: {tier} }} }}\n  - name: lab\n    cidrs: [\"{dst_ip}/32\"]\nnetwork:\n  cross_segment: deny\n  action: block\nrules: []\n"
        ),
    )
    .unwrap();
    let sock = std::env::temp_dir().join(format!("{}.sock", unique("late")));
    let answer = integration_tests::held_docker_socket(&sock);
    let mut sensor = Sensor::start(&[
        "--policy",
        p.to_str().unwrap(),
        "--docker-socket",
        sock.to_str().unwrap(),
        "--runtime-timeout-ms",
        "1000",
        "--metadata-wait-ms",
        "1000",
    ]);
    // Labelled for no segment: once known, it is not restricted.
    let name = unique("late");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &unique("nosegment"), &[]);
    let target = format!("{dst_ip}:9");
    let line = workload(&name, &["udp-send", &target]);
    refused(
        &line,
        "a send to a segment while the container's metadata is pending",
    );
    let line = workload(&name, &["tcp-connect", &target, "1000"]);
    refused(&line, "a connect to a segment while pending");
    // The runtime answers: the sensor's health check finds it back, fetches what it missed,
    // and the container gets its own segments (none).
    answer.store(true, std::sync::atomic::Ordering::Relaxed);
    let released = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = workload(&name, &["udp-send", &target]);
        if line["ok"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < released,
            "still refused 30 s after the runtime answers: {line}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let line = sensor.wait_for(WAIT, "the pending flow", |v| {
        v["kind"] == "network" && v["container"]["id"] == id && v["rule"] == "network.pending"
    });
    assert_eq!(line["action"], "block", "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    assert_eq!(line["network"]["src_segment"], "pending", "{line}");
    assert_eq!(line["network"]["dst_segment"], "lab", "{line}");
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_file(&sock);
}

/// A container's sub-cgroup (systemd in it, Docker-in-Docker, or any `mkdir` in its cgroupfs)
/// has its addresses too: removing the sub-cgroup must not take them from the container, or
/// its address falls out of its segment and other segments reach it as `unknown`.
#[test]
fn a_sub_cgroup_going_away_leaves_the_containers_address_in_its_segment() {
    use integration_tests::{cgroup_dir_of, container_pid, net::container_addrs};
    require_docker();
    let _serial = serial();
    let tier = unique("subcg");
    let p = segmented_policy(&tier, "enforce");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let (web, db) = (unique("subcg-web"), unique("subcg-db"));
    let _w = ContainerGuard(web.clone());
    let _d = ContainerGuard(db.clone());
    start_labelled(&web, &tier, &[]);
    let db_id = start_labelled(&db, &format!("db-{tier}"), &[]);
    let (db_ip, _) = container_addrs(&db, "bridge");
    sensor.wait_for(WAIT, "db's start line", |v| {
        v["kind"] == "container" && v["event"] == "start" && v["container"]["id"] == db_id
    });
    let target = format!("{db_ip}:5432");
    let line = workload(&web, &["tcp-connect", &target, "1000"]);
    refused(&line, "web → db across segments");
    let sub = cgroup_dir_of(container_pid(&db)).join("sub");
    std::fs::create_dir(&sub).expect("a sub-cgroup of db");
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_dir(&sub).expect("removing it");
    std::thread::sleep(Duration::from_secs(1));
    let line = workload(&web, &["tcp-connect", &target, "1000"]);
    refused(&line, "web → db after db's sub-cgroup went away");
    let _ = std::fs::remove_file(&p);
}
