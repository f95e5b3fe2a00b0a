//! Ways around exec control, drift and the runtime's setup exemption, tried as root inside a
//! real container (issue: enforcement that holds against an adversary). Each test names the
//! way around; the control beside it shows that what should run still runs.

use std::time::Duration;

use integration_tests::{
    ContainerGuard, Sensor, docker_output, exec_in, image, policy_file, require_docker,
    start_labelled, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn deny_rule(tier: &str, exec: &str) -> String {
    format!(
        "  - name: under-test\n    containers: {{ labels: {{ tier: {tier} }} }}\n    exec: {{ {exec} }}\n    action: kill\n"
    )
}

fn exec_line(sensor: &mut Sensor, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    sensor.wait_for(WAIT, what, |v| {
        v["kind"] == "exec" && v["container"]["id"] == id && pred(v)
    })
}

/// Runs `attack exec-argv0 PATH ARGV0 -c 'echo ran'` (a shell that would print `ran`) in the
/// container: whether it ran, and its exit code.
fn spelled(name: &str, path: &str, argv0: &str) -> (Option<i32>, bool) {
    let (code, out, _) = exec_in(
        name,
        &[
            "/usr/local/bin/attack",
            "exec-argv0",
            path,
            argv0,
            "-c",
            "echo ran",
        ],
    );
    (code, out.contains("ran"))
}

#[test]
fn a_denied_program_is_denied_under_every_spelling_of_its_name() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("spell");
    let p = policy_file("enforce", &deny_rule(&tier, "deny: [\"/bin/sh\"]"));
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("spell");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &[]);
    // Control: another applet runs.
    assert_eq!(spelled(&name, "/bin/echo", "echo").0, Some(0), "echo runs");
    for path in [
        "//bin/sh",
        "/bin/./sh",
        "/bin/../bin/sh",
        "/usr/../bin//sh",
        "/proc/self/root/bin/sh",
        "/proc/1/root/bin/sh",
    ] {
        assert_eq!(spelled(&name, path, "sh"), (Some(137), false), "{path}");
        let line = exec_line(&mut sensor, &id, path, |v| v["process"]["exe"] == path);
        assert_eq!(line["matched"]["path"], "/bin/sh", "{path}: {line}");
        assert_eq!(line["file"], "/bin/busybox", "{line}");
    }
    // Relative to the working directory.
    let out = docker_output(&[
        "exec",
        "-w",
        "/bin",
        &name,
        "/usr/local/bin/attack",
        "exec-argv0",
        "./sh",
        "sh",
        "-c",
        "echo ran",
    ]);
    assert_eq!(out.status.code(), Some(137), "./sh in /bin");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"));
    // Busybox runs the applet argv[0] names: /bin/busybox (or any of its links) as `sh`.
    for path in ["/bin/busybox", "/bin/true"] {
        assert_eq!(
            spelled(&name, path, "sh"),
            (Some(137), false),
            "{path} as sh"
        );
        let line = exec_line(&mut sensor, &id, path, |v| {
            v["process"]["exe"] == path && v["rule"] == "under-test"
        });
        assert_eq!(line["matched"]["by"], "argv0", "{line}");
        assert_eq!(line["matched"]["path"], "/bin/sh", "{line}");
    }
}

#[test]
fn a_suffix_rule_catches_links_and_copies_named_after_the_program() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("link");
    let p = policy_file("enforce", &deny_rule(&tier, "deny: [\"*/sh\"]"));
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("link");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &[]);
    assert_eq!(
        exec_in(&name, &["ln", "-s", "/bin/busybox", "/tmp/sh"]).0,
        Some(0)
    );
    assert_eq!(
        spelled(&name, "/tmp/sh", "sh"),
        (Some(137), false),
        "a link"
    );
    // Under another name, busybox still runs what argv[0] says.
    assert_eq!(
        exec_in(&name, &["ln", "-s", "/bin/busybox", "/tmp/innocent"]).0,
        Some(0)
    );
    assert_eq!(
        spelled(&name, "/tmp/innocent", "sh"),
        (Some(137), false),
        "a link under another name, argv[0] sh"
    );
}

#[test]
fn an_exec_that_cannot_be_judged_fails_closed() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("unjudged");
    let p = policy_file("enforce", &deny_rule(&tier, "deny: [\"/bin/sh\"]"));
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("unjudged");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &[]);
    // A memfd copy of the shell, executed by its descriptor: no name, no path to judge.
    let (code, out, _) = exec_in(
        &name,
        &[
            "/usr/local/bin/attack",
            "exec-memfd",
            "/bin/busybox",
            "-c",
            "echo ran",
        ],
    );
    assert_eq!((code, out.contains("ran")), (Some(137), false), "memfd");
    let line = exec_line(&mut sensor, &id, "the memfd exec", |v| {
        v["matched"]["by"] == "unjudgeable"
    });
    assert_eq!(line["origin"], "memfd", "{line}");
    assert_eq!(line["rule"], "under-test", "{line}");
    // A name longer than the kernel matches: a link to busybox 300 bytes deep.
    let dir = format!("/tmp/{}", vec!["d".repeat(60); 5].join("/"));
    assert_eq!(exec_in(&name, &["mkdir", "-p", &dir]).0, Some(0));
    let long = format!("{dir}/x");
    assert_eq!(
        exec_in(&name, &["ln", "-s", "/bin/busybox", &long]).0,
        Some(0)
    );
    assert_eq!(spelled(&name, &long, "x"), (Some(137), false), "long name");
    let line = exec_line(&mut sensor, &id, "the long name", |v| {
        v["process"]["exe"] == long
    });
    assert_eq!(line["matched"]["by"], "unjudgeable", "{line}");
    // Control: a name the rule can judge, and allows, runs.
    assert_eq!(spelled(&name, "/bin/echo", "echo").0, Some(0));
}

#[test]
fn a_script_is_judged_by_its_interpreter_and_ld_so_by_what_it_loads() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("script");
    let p = policy_file("enforce", &deny_rule(&tier, "deny: [\"/bin/sh\"]"));
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("script");
    let _g = ContainerGuard(name.clone());
    let id = start_labelled(&name, &tier, &[]);
    assert_eq!(
        exec_in(
            &name,
            &[
                "sh",
                "-c",
                "printf '#!/bin/sh\\necho ran\\n' > /tmp/s && chmod +x /tmp/s"
            ]
        )
        .0,
        Some(137),
        "the shell itself is denied"
    );
    // Written without the shell: busybox's own applets.
    let (code, _, _) = exec_in(&name, &["/bin/cp", "/etc/script.sh", "/tmp/s"]);
    assert_eq!(code, Some(0));
    let (code, out, _) = exec_in(&name, &["/tmp/s"]);
    assert_eq!((code, out.contains("ran")), (Some(137), false), "script");
    let line = exec_line(&mut sensor, &id, "the script", |v| {
        v["process"]["exe"] == "/tmp/s"
    });
    assert_eq!(line["matched"]["by"], "interpreter", "{line}");
    assert_eq!(line["script"], true, "{line}");
    // The dynamic loader run as a program, loading the shell.
    let loader = "/lib64/ld-linux-x86-64.so.2";
    let (code, out, _) = exec_in(&name, &[loader, "/bin/sh", "-c", "echo ran"]);
    assert_eq!(
        (code, out.contains("ran")),
        (Some(137), false),
        "ld.so /bin/sh"
    );
    let line = exec_line(&mut sensor, &id, "ld.so", |v| v["process"]["exe"] == loader);
    assert_eq!(line["matched"]["by"], "loaded", "{line}");
    assert_eq!(line["loader"], true, "{line}");
    // With an option first, the program cannot be told: refused.
    let (code, _, _) = exec_in(&name, &[loader, "--argv0", "x", "/bin/true"]);
    assert_eq!(code, Some(137), "ld.so --argv0 x /bin/true");
    // Control: the loader with an allowed program is not killed (it fails on its own: busybox
    // is static).
    let (code, _, _) = exec_in(&name, &[loader, "/bin/true"]);
    assert_ne!(code, Some(137), "ld.so /bin/true");
}

#[test]
fn an_allow_list_holds_against_argv0_and_link_tricks() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("allow-evade");
    let p = policy_file(
        "enforce",
        &deny_rule(
            &tier,
            "allow: [\"/bin/sleep\", \"/bin/true\", \"/bin/busybox\", \"/usr/local/bin/attack\"]",
        ),
    );
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("allow-evade");
    let _g = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &[]);
    // Control.
    assert_eq!(exec_in(&name, &["/bin/true"]).0, Some(0));
    // An allowed file run as a denied applet.
    assert_eq!(spelled(&name, "/bin/true", "sh"), (Some(137), false));
    assert_eq!(spelled(&name, "/bin/busybox", "sh"), (Some(137), false));
    // /proc/self/exe (what busybox's own shell runs applets through) as sh.
    assert_eq!(
        spelled(&name, "/proc/self/root/bin/busybox", "sh"),
        (Some(137), false)
    );
}

#[test]
fn the_runtime_exemption_cannot_be_claimed_by_an_entrypoint_or_docker_exec() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("setup");
    let p = policy_file(
        "enforce",
        &format!(
            "{}  - name: no-mount\n    containers: {{ labels: {{ tier: {tier} }} }}\n    syscalls: {{ deny: [mount] }}\n    action: kill\n",
            deny_rule(&tier, "deny: [\"/bin/sh\"]")
        ),
    );
    let _sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    // An entrypoint whose name starts like the runtime's own re-exec.
    let label = format!("tier={tier}");
    let image = image();
    let name = unique("setup-entry");
    let _g = ContainerGuard(name.clone());
    let out = docker_output(&[
        "run",
        "--name",
        &name,
        "--label",
        &label,
        &image,
        "/dev/fd/../../../bin/sh",
        "-c",
        "echo ran",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(137), "entrypoint: {stdout}");
    assert!(!stdout.contains("ran"), "{stdout}");
    // `docker exec` of the same spelling, and of a program that mounts (the setup
    // exemption skipped syscall rules too).
    let name = unique("setup-exec");
    let _g2 = ContainerGuard(name.clone());
    start_labelled(&name, &tier, &["--cap-add", "SYS_ADMIN"]);
    let (code, out, _) = exec_in(&name, &["/dev/fd/../../../bin/sh", "-c", "echo ran"]);
    assert_eq!(
        (code, out.contains("ran")),
        (Some(137), false),
        "exec of sh"
    );
    let (code, out, _) = exec_in(
        &name,
        &[
            "/dev/fd/../../../usr/local/bin/workload",
            "syscall",
            "mount",
            "/tmp",
        ],
    );
    assert_eq!(code, Some(137), "mount by a docker exec: {out}");
    // Control: the container's own start (runc's setup, which mounts) was not judged.
    let (code, _, _) = exec_in(&name, &["/bin/true"]);
    assert_eq!(code, Some(0));
}

#[test]
fn drift_covers_memfd_tmpfs_and_volumes_but_not_metadata_changes() {
    require_docker();
    let _serial = integration_tests::serial();
    let tier = unique("drift-all");
    let p = policy_file(
        "audit",
        &format!(
            "  - name: no-drift\n    containers: {{ labels: {{ tier: {tier} }} }}\n    drift: deny\n    action: kill\n"
        ),
    );
    let mut sensor = Sensor::start(&["--policy", p.to_str().unwrap()]);
    let name = unique("drift-all");
    let _g = ContainerGuard(name.clone());
    let volume = std::env::temp_dir().join(unique("vol"));
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::copy("/bin/busybox", volume.join("true")).unwrap();
    let mount = format!("{}:/vol", volume.display());
    let id = start_labelled(&name, &tier, &["-v", &mount, "--tmpfs", "/scratch:exec"]);
    let origin_of = |sensor: &mut Sensor, exe: &str| -> Value {
        exec_line(sensor, &id, exe, |v| v["process"]["exe"] == exe)
    };
    // Image files, a chmod'ed image file (copied up, content unchanged): image.
    assert_eq!(exec_in(&name, &["/bin/true"]).0, Some(0));
    let line = origin_of(&mut sensor, "/bin/true");
    assert_eq!(line["origin"], "image", "{line}");
    assert!(line["rule"].is_null(), "{line}");
    assert_eq!(exec_in(&name, &["chmod", "755", "/bin/busybox"]).0, Some(0));
    assert_eq!(exec_in(&name, &["/bin/busybox", "true"]).0, Some(0));
    let line = origin_of(&mut sensor, "/bin/busybox");
    assert_eq!(line["origin"], "image", "{line}");
    assert_eq!(line["metadata_changed"], true, "{line}");
    assert!(line["rule"].is_null(), "a chmod is not drift: {line}");
    // A volume, a tmpfs, a memfd: drift.
    assert_eq!(exec_in(&name, &["/vol/true"]).0, Some(0));
    let line = origin_of(&mut sensor, "/vol/true");
    assert_eq!(
        (line["origin"].clone(), line["would"].clone()),
        ("volume".into(), "kill".into()),
        "{line}"
    );
    assert_eq!(
        exec_in(&name, &["cp", "/bin/busybox", "/scratch/true"]).0,
        Some(0)
    );
    assert_eq!(exec_in(&name, &["/scratch/true"]).0, Some(0));
    let line = origin_of(&mut sensor, "/scratch/true");
    assert_eq!(line["origin"], "tmpfs", "{line}");
    assert_eq!(line["drift"], true, "{line}");
    let (code, _, _) = exec_in(
        &name,
        &[
            "/usr/local/bin/attack",
            "exec-memfd",
            "/bin/busybox",
            "true",
        ],
    );
    assert_eq!(code, Some(0), "audit only");
    let line = exec_line(&mut sensor, &id, "the memfd", |v| v["origin"] == "memfd");
    assert_eq!(line["would"], "kill", "{line}");
    // An image file written over (content changed, same name): drift.
    assert_eq!(
        exec_in(&name, &["cp", "/bin/busybox", "/usr/local/bin/workload"]).0,
        Some(0)
    );
    let _ = exec_in(&name, &["/usr/local/bin/workload"]);
    let line = origin_of(&mut sensor, "/usr/local/bin/workload");
    assert_eq!(line["origin"], "upper", "{line}");
    assert_eq!(line["would"], "kill", "{line}");
    let _ = std::fs::remove_dir_all(&volume);
}
