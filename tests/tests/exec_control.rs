//! Exec control against real containers: a denied shell never runs, an allow-list refuses
//! everything else, busybox applets are matched by the path executed (`/bin/nc`), and drift —
//! a file that is not from the image, executed — is flagged (and killed when the rule says so).

use std::{path::PathBuf, time::Duration};

use integration_tests::{
    ContainerGuard, Sensor, docker, docker_output, image, require_docker, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn policy(mode: &str, tier: &str, rule: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("exec-policy")));
    std::fs::write(
        &path,
        format!(
            "version: 1\nmode: {mode}\nrules:\n  - name: under-test\n    containers: {{ labels: {{ tier: {tier} }} }}\n{rule}\n"
        ),
    )
    .unwrap();
    path
}

fn start(name: &str, tier: &str) -> String {
    let label = format!("tier={tier}");
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--label",
        &label,
        &image(),
        "sleep",
        "300",
    ])
}

/// `docker exec NAME CMD…`: exit code and stdout.
fn exec(name: &str, cmd: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["exec", name];
    args.extend_from_slice(cmd);
    let out = docker_output(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn exec_line(sensor: &mut Sensor, id: &str, exe: &str) -> Value {
    sensor.wait_for(WAIT, &format!("exec of {exe} in {id}"), |v| {
        v["kind"] == "exec" && v["container"]["id"] == id && v["process"]["exe"] == exe
    })
}

#[test]
fn denied_shell_never_runs() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("no-sh");
    let p = policy(
        "enforce",
        &tier,
        "    exec: { deny: [\"/bin/sh\"] }\n    action: kill",
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("no-sh");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    // The shell would create a file first thing: it must never get to.
    let (code, _) = exec(&name, &["/bin/sh", "-c", "touch /tmp/ran"]);
    assert_eq!(code, Some(137), "the shell is killed before it runs");
    let (code, _) = exec(&name, &["ls", "/tmp/ran"]);
    assert_ne!(code, Some(0), "the shell ran code");
    let line = exec_line(&mut sensor, &id, "/bin/sh");
    assert_eq!(line["enforced"], true, "{line}");
    // Other programs run.
    let (code, _) = exec(&name, &["/bin/true"]);
    assert_eq!(code, Some(0));
}

#[test]
fn busybox_applet_is_matched_by_the_path_executed() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("no-nc");
    let p = policy(
        "enforce",
        &tier,
        "    exec: { deny: [\"/bin/nc\"] }\n    action: kill",
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("no-nc");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    // `nc` found through $PATH (runc executes /bin/nc, a link to /bin/busybox), and /bin/nc
    // named by a shell: the rule on /bin/nc stops both, and busybox itself (`/bin/echo` is
    // the same file) is untouched.
    let (code, _) = exec(&name, &["nc", "-h"]);
    assert_eq!(code, Some(137), "nc killed");
    let line = exec_line(&mut sensor, &id, "/bin/nc");
    assert_eq!(line["rule"], "under-test", "{line}");
    assert_eq!(line["process"]["args"][0], "nc", "{line}");
    let (code, out) = exec(&name, &["sh", "-c", "/bin/nc -h 2>/dev/null; echo rc=$?"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("rc=137"), "nc killed: {out}");
    let (code, out) = exec(&name, &["/bin/echo", "fine"]);
    assert_eq!((code, out.trim()), (Some(0), "fine"));
}

#[test]
fn allow_list_refuses_everything_else() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("allow");
    // Every name of an exec must be allowed: `/bin/true` and the file it resolves to,
    // `/bin/busybox` (and busybox run under the name of another applet is refused, see
    // `tests/tests/exec_names.rs`).
    let p = policy(
        "enforce",
        &tier,
        "    exec: { allow: [\"/bin/sleep\", \"/bin/true\", \"/bin/busybox\"] }\n    action: kill",
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("allow");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    assert_eq!(exec(&name, &["/bin/true"]).0, Some(0), "allowed");
    for denied in ["/bin/ls", "/bin/cat", "/bin/sh"] {
        assert_eq!(exec(&name, &[denied]).0, Some(137), "{denied} refused");
        let line = exec_line(&mut sensor, &id, denied);
        assert_eq!(line["rule"], "under-test", "{line}");
        assert_eq!(line["enforced"], true, "{line}");
    }
}

#[test]
fn drift_is_flagged_for_files_not_from_the_image() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("drift");
    let p = policy("audit", &tier, "    drift: deny\n    action: kill");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("drift");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    // From the image: no drift.
    assert_eq!(exec(&name, &["/bin/true"]).0, Some(0));
    let line = exec_line(&mut sensor, &id, "/bin/true");
    assert!(line["drift"].is_null(), "image file flagged: {line}");
    assert!(line["rule"].is_null(), "{line}");
    // Copied inside the running container (busybox runs the applet its file is named after),
    // and copied in from the host: drift.
    assert_eq!(exec(&name, &["cp", "/bin/busybox", "/tmp/true"]).0, Some(0));
    assert_eq!(exec(&name, &["/tmp/true"]).0, Some(0), "audit only");
    let line = exec_line(&mut sensor, &id, "/tmp/true");
    assert_eq!(line["drift"], true, "{line}");
    assert_eq!(line["rule"], "under-test", "{line}");
    assert_eq!(line["would"], "kill", "{line}");
    // A file put in from the host with `docker cp` (busybox, taken out and put back).
    let host_copy = std::env::temp_dir().join(unique("echo"));
    docker(&[
        "cp",
        &format!("{name}:/bin/busybox"),
        host_copy.to_str().unwrap(),
    ]);
    docker(&[
        "cp",
        host_copy.to_str().unwrap(),
        &format!("{name}:/tmp/echo"),
    ]);
    let _ = std::fs::remove_file(&host_copy);
    let (code, out) = exec(&name, &["/tmp/echo", "copied"]);
    assert_eq!((code, out.trim()), (Some(0), "copied"));
    let line = exec_line(&mut sensor, &id, "/tmp/echo");
    assert_eq!(line["drift"], true, "{line}");
}

#[test]
fn drift_kill_stops_a_dropped_binary() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("drift-kill");
    let p = policy("enforce", &tier, "    drift: deny\n    action: kill");
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("drift-kill");
    let _g = ContainerGuard(name.clone());
    let id = start(&name, &tier);
    assert_eq!(exec(&name, &["cp", "/bin/busybox", "/tmp/true"]).0, Some(0));
    assert_eq!(exec(&name, &["/tmp/true"]).0, Some(137));
    let line = exec_line(&mut sensor, &id, "/tmp/true");
    assert_eq!(line["drift"], true, "{line}");
    assert_eq!(line["enforced"], true, "{line}");
    // The image's own programs still run.
    assert_eq!(exec(&name, &["/bin/true"]).0, Some(0));
}
