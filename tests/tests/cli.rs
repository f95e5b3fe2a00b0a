//! The binary's contract with operators: clean detach on signals, one-line errors, the probe.

use std::{process::Command, time::Duration};

use integration_tests::{
    Sensor, http_get, kernel_has, kernel_suite, probe, require_root, sensor_bin,
};

#[test]
fn sigint_unloads_every_program() {
    kernel_suite::detaches_on(libc::SIGINT);
}

/// Runs the sensor with `wrapper` around it and returns (exit code, stderr).
fn failing_run(wrapper: &[&str], extra: &[&str]) -> (i32, String) {
    let bin = sensor_bin();
    let mut cmd = Command::new(wrapper.first().copied().unwrap_or(bin.to_str().unwrap()));
    if !wrapper.is_empty() {
        cmd.args(&wrapper[1..]).arg(&bin);
    }
    let out = cmd.arg("run").args(extra).output().expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.stdout.is_empty(),
        "no events on failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code().unwrap_or(-1), stderr)
}

fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stderr:?}");
    assert!(lines[0].starts_with("sensor: error: "), "{stderr}");
    assert!(lines[0].contains(needle), "mentions {needle:?}: {stderr}");
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn not_root_is_one_line() {
    require_root();
    let (code, stderr) = failing_run(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert_one_line_error(&stderr, "must run as root");
}

#[test]
fn missing_btf_is_one_line() {
    require_root();
    let (code, stderr) = failing_run(&[], &["--btf", "/nonexistent/vmlinux"]);
    assert_ne!(code, 0);
    assert_one_line_error(&stderr, "CONFIG_DEBUG_INFO_BTF");
}

#[test]
fn missing_bpffs_is_one_line() {
    require_root();
    // A private mount namespace without bpffs: the host's mount is untouched.
    let (code, stderr) = failing_run(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "umount /sys/fs/bpf && exec \"$0\" \"$@\"",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert_one_line_error(&stderr, "mount -t bpf bpf /sys/fs/bpf");
}

#[test]
fn probe_reports_what_this_kernel_allows() {
    let _serial = integration_tests::serial();
    require_root();
    let p = probe();
    for key in [
        "kernel",
        "btf",
        "bpffs",
        "cgroup_v2",
        "checks",
        "enforcement",
    ] {
        assert!(!p[key].is_null(), "probe has {key}: {p}");
    }
    // What every supported kernel must have for the sensor to run at all.
    for feature in ["ring_buffer", "raw_tracepoint"] {
        assert!(kernel_has(&p, feature), "{feature}: {p:#}");
    }
    // The answers must match what the kernel actually does: the sensor's own exec hook is a raw
    // tracepoint and it loaded above (Sensor::start in other tests); here, LSM is either usable
    // or explained.
    let lsm = p["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lsm")
        .unwrap();
    if lsm["ok"] == false {
        let detail = lsm["detail"].as_str().unwrap();
        assert!(!detail.is_empty(), "a refused feature says why");
        eprintln!(
            "note: BPF LSM is not usable on this kernel ({detail}); block falls back to kill"
        );
    }
    let controls: Vec<&str> = p["enforcement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["control"].as_str().unwrap())
        .collect();
    assert_eq!(controls, ["exec", "capability", "syscall", "network"]);
    // Text mode works too.
    let out = Command::new(sensor_bin()).arg("probe").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("enforcement on this kernel"));
}

/// `/metrics` is served in the Prometheus text format, and a rule name holding a newline, a
/// quote and a backslash (a policy author's text) cannot break it: `promtool check metrics`
/// (Debian's `prometheus`, installed by setup) parses the whole exposition.
#[test]
fn metrics_are_served() {
    let _serial = integration_tests::serial();
    let dir = std::env::temp_dir().join(integration_tests::unique("metrics"));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    // In YAML's double quotes: a newline, a quote, a backslash, and a forged sample.
    std::fs::write(
        &policy,
        "version: 1\nmode: audit\nrules:\n  - name: \"evil\\n# TYPE forged counter\\nforged_total 1\\n\\\"} \\\\\"\n    \
         containers: { host: true }\n    exec: { deny: [\"/bin/true\"] }\n    action: kill\n",
    )
    .unwrap();
    let mut sensor = Sensor::start(&[
        "--metrics-addr",
        "127.0.0.1:0",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let addr = sensor.ready["metrics"]
        .as_str()
        .expect("ready line names the metrics address")
        .to_owned();
    Command::new("/bin/true").status().unwrap();
    let verdict = sensor.wait_for(Duration::from_secs(10), "the audited exec", |v| {
        v["kind"] == "exec" && v["rule"].as_str().is_some_and(|r| r.starts_with("evil"))
    });
    let body = http_get(&addr, "/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{body}"
    );
    assert!(
        body.contains("sensor_lost_events_total{kind=\"exec\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("sensor_events_total{kind=\"exec\"}"),
        "{body}"
    );
    let exposition = body.split_once("\r\n\r\n").expect("a body").1;
    assert!(
        exposition.contains(
            "sensor_policy_violations_total{rule=\"evil\\n# TYPE forged counter\\nforged_total 1\\n\\\"} \\\\\"} 1\n"
        ),
        "the rule {:?} escaped: {exposition}",
        verdict["rule"]
    );
    assert!(
        !exposition.lines().any(|l| l.starts_with("forged")),
        "{exposition}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus; cargo xtask setup installs it)");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), exposition.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
