//! The policy end to end: audit vs enforce on the same violation in a real container, hot
//! reload (file change as a ConfigMap does it, SIGHUP), invalid reloads, `sensor policy`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration_tests::{
    ContainerGuard, Sensor, docker, docker_output, image, require_docker, run_rm, sensor_bin,
    unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A policy denying `/bin/ls` in containers labelled `tier=<tier>`.
fn ls_policy(mode: &str, tier: &str) -> String {
    format!(
        "version: 1\nmode: {mode}\nrules:\n  - name: no-ls\n    containers: {{ labels: {{ tier: {tier} }} }}\n    exec: {{ deny: [\"/bin/ls\"] }}\n    action: kill\n"
    )
}

/// A directory laid out like a mounted Kubernetes ConfigMap: `policy.yaml -> ..data/policy.yaml`,
/// `..data -> ..<version>/`. Updates swap `..data` atomically.
struct ConfigMapDir {
    dir: PathBuf,
    version: u32,
}

impl ConfigMapDir {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(unique("configmap"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Self { dir, version: 0 };
        d.update(text);
        std::os::unix::fs::symlink("..data/policy.yaml", d.file()).unwrap();
        d
    }

    fn file(&self) -> PathBuf {
        self.dir.join("policy.yaml")
    }

    fn update(&mut self, text: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join("policy.yaml"), text).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

impl Drop for ConfigMapDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_policy(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("policy")));
    std::fs::write(&path, text).unwrap();
    path
}

fn verdict_line(sensor: &mut Sensor, container: &str) -> Value {
    sensor.wait_for(WAIT, "the exec verdict", |v| {
        v["kind"] == "exec" && v["container"]["id"] == container && v["rule"] == "no-ls"
    })
}

/// The policy line `event` numbered `after` (0 = first) since the sensor started.
fn wait_policy(sensor: &mut Sensor, event: &str, after: usize) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found: Vec<Value> = sensor
            .lines(Duration::from_millis(100))
            .iter()
            .filter(|v| v["kind"] == "policy" && v["event"] == event)
            .cloned()
            .collect();
        if let Some(v) = found.get(after) {
            return v.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no policy {event} line #{after}; sensor stderr:\n{}",
            sensor.stderr()
        );
    }
}

/// `docker run --rm --label tier=T IMAGE /bin/ls /` → (exit code, stdout, container id).
fn run_ls(tier: &str) -> (i32, String, String) {
    let name = unique("ls");
    let _g = ContainerGuard(name.clone());
    let label = format!("tier={tier}");
    let (out, id) = run_rm(&name, &["--label", &label], &["/bin/ls", "/"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        id,
    )
}

#[test]
fn audit_reports_would_kill_and_the_program_runs() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("audit");
    let policy = write_policy(&ls_policy("audit", &tier));
    let mut sensor = Sensor::start(&["--policy", policy.to_str().unwrap()]);
    let (code, stdout, id) = run_ls(&tier);
    assert_eq!(code, 0, "audit never interferes");
    assert!(stdout.contains("bin"), "ls ran: {stdout:?}");
    let v = verdict_line(&mut sensor, &id);
    assert_eq!(v["action"], "audit", "{v}");
    assert_eq!(v["would"], "kill", "{v}");
    assert_eq!(v["mode"], "audit", "{v}");
    assert!(v["enforced"].is_null(), "{v}");
}

#[test]
fn enforce_kills_before_the_program_runs() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("enforce");
    let policy = write_policy(&ls_policy("enforce", &tier));
    let mut sensor = Sensor::start(&["--policy", policy.to_str().unwrap()]);
    let (code, stdout, id) = run_ls(&tier);
    assert_eq!(
        code,
        137,
        "SIGKILL: 128 + 9; sensor stderr:\n{}",
        sensor.stderr()
    );
    assert!(
        stdout.is_empty(),
        "ls printed nothing: it never ran its code: {stdout:?}"
    );
    let v = verdict_line(&mut sensor, &id);
    assert_eq!(v["action"], "kill", "{v}");
    assert_eq!(v["mode"], "enforce", "{v}");
    assert_eq!(v["enforced"], true, "{v}");
    assert_eq!(v["enforced_by"], "signal", "{v}");
    // Another container is not touched.
    let (code, _, _) = run_ls(&unique("other"));
    assert_eq!(code, 0);
}

#[test]
fn mode_flag_overrides_the_file() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("override");
    let policy = write_policy(&ls_policy("enforce", &tier));
    let mut sensor = Sensor::start(&["--policy", policy.to_str().unwrap(), "--mode", "audit"]);
    let (code, _, id) = run_ls(&tier);
    assert_eq!(code, 0);
    assert_eq!(verdict_line(&mut sensor, &id)["would"], "kill");
}

#[test]
fn reload_from_audit_to_enforce_applies_to_a_running_container() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("reload");
    let mut cm = ConfigMapDir::new(&ls_policy("audit", &tier));
    let mut sensor = Sensor::start(&["--policy", cm.file().to_str().unwrap()]);
    let name = unique("running");
    let _g = ContainerGuard(name.clone());
    let label = format!("tier={tier}");
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &label,
        &image(),
        "sleep",
        "300",
    ]);
    sensor.wait_for(WAIT, "the container's start line", |v| {
        v["kind"] == "container" && v["container"]["id"] == id.as_str()
    });

    let out = docker_output(&["exec", &name, "/bin/ls", "/"]);
    assert_eq!(out.status.code(), Some(0), "audit: runs");
    assert_eq!(verdict_line(&mut sensor, &id)["action"], "audit");

    // A ConfigMap update: `..data` swapped to a new version.
    cm.update(&ls_policy("enforce", &tier));
    let loaded = wait_policy(&mut sensor, "loaded", 1);
    assert_eq!(loaded["mode"], "enforce", "{loaded}");
    let out = docker_output(&["exec", &name, "/bin/ls", "/"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "enforce after reload, same container"
    );
    assert!(out.stdout.is_empty());
    let killed = sensor.wait_for(WAIT, "the enforced verdict", |v| {
        v["kind"] == "exec" && v["container"]["id"] == id.as_str() && v["enforced"] == true
    });
    assert_eq!(killed["rule"], "no-ls");
    // Exactly one verdict per exec: no double events across the flip.
    let verdicts = sensor
        .lines(Duration::from_millis(300))
        .iter()
        .filter(|v| {
            v["kind"] == "exec" && v["container"]["id"] == id.as_str() && !v["rule"].is_null()
        })
        .count();
    assert_eq!(verdicts, 2, "one audit verdict, one enforced verdict");
}

#[test]
fn invalid_reload_keeps_the_old_policy_in_force() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("invalid");
    let policy = write_policy(&ls_policy("enforce", &tier));
    let mut sensor = Sensor::start(&["--policy", policy.to_str().unwrap()]);
    std::fs::write(
        &policy,
        "version: 1\nrules:\n  - name: broken\n    exec: { deny: [\"sh\"] }\n    action: kil\n",
    )
    .unwrap();
    let rejected = wait_policy(&mut sensor, "rejected", 0);
    let errors: Vec<&str> = rejected["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let file = policy.display().to_string();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{file}:4:20: exec pattern `sh`"))),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{file}:5:13: action `kil`"))),
        "{errors:?}"
    );
    // The old policy still kills.
    let (code, _, id) = run_ls(&tier);
    assert_eq!(
        code,
        137,
        "old policy in force; sensor stderr:\n{}",
        sensor.stderr()
    );
    assert_eq!(verdict_line(&mut sensor, &id)["enforced"], true);
}

#[test]
fn sighup_reloads_the_policy() {
    let _serial = integration_tests::serial();
    require_docker();
    let tier = unique("hup");
    let policy = write_policy(&ls_policy("audit", &tier));
    let mut sensor = Sensor::start(&["--policy", policy.to_str().unwrap()]);
    // SIGHUP reloads even when nothing changed (operators use it to force a reload).
    // SAFETY: signalling the sensor we started.
    unsafe { libc::kill(sensor.pid() as i32, libc::SIGHUP) };
    let loaded = wait_policy(&mut sensor, "loaded", 1);
    assert_eq!(loaded["mode"], "audit");
}

fn policy_check(file: &Path) -> (i32, String, String) {
    let out = Command::new(sensor_bin())
        .args(["policy", "check"])
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_check_and_default() {
    let good = write_policy(&ls_policy("audit", "x"));
    let (code, stdout, _) = policy_check(&good);
    assert_eq!(code, 0);
    assert!(stdout.contains("valid"), "{stdout}");

    let bad = write_policy(
        "version: 1\nrules:\n  - name: caps\n    capabilities: { deny: [SYS_ADMN] }\n    action: kill\n",
    );
    let (code, _, stderr) = policy_check(&bad);
    assert_ne!(code, 0);
    assert_eq!(
        stderr.trim(),
        format!(
            "{}:4:28: unknown capability `SYS_ADMN`; did you mean `SYS_ADMIN`?",
            bad.display()
        )
    );

    let out = Command::new(sensor_bin())
        .args(["policy", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let default = write_policy(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(policy_check(&default).0, 0, "the default policy is valid");
}

#[test]
fn run_refuses_an_invalid_policy() {
    let bad = write_policy("version: 1\nmode: enforcing\n");
    let out = Command::new(sensor_bin())
        .args(["run", "--policy"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2:7: mode `enforcing` is not valid; did you mean `enforce`?",
            bad.display()
        )),
        "{stderr}"
    );
}
