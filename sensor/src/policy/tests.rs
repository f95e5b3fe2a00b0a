//! Golden tests: broken policies → their error lines; policies + containers → compiled
//! entries. `UPDATE_GOLDEN=1 cargo test -p sensor policy` rewrites the expectations (review
//! the diff).

use std::{collections::BTreeMap, fs, path::PathBuf};

use super::{
    compile::{Subject, compile, evaluate_exec, render},
    parse::parse,
};
use crate::containers::Runtime;

fn testdata(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/policy/testdata")
        .join(dir)
}

fn update() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Compares `actual` with the file `expected`, or rewrites it under UPDATE_GOLDEN.
fn golden(expected: &PathBuf, actual: &str) {
    if update() {
        fs::write(expected, actual).unwrap();
        return;
    }
    let want =
        fs::read_to_string(expected).unwrap_or_else(|_| panic!("missing {}", expected.display()));
    assert_eq!(
        actual,
        want,
        "{} differs (UPDATE_GOLDEN=1 to rewrite)",
        expected.display()
    );
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(testdata(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn broken_policies_report_every_error_with_its_position() {
    let files = yaml_files("broken");
    assert!(
        files.len() >= 30,
        "the corpus has {} broken policies",
        files.len()
    );
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let errors = match parse(&text) {
            Ok(_) => panic!("{} parsed, but it is broken", file.display()),
            Err(e) => e,
        };
        let actual: String = errors.iter().map(|e| format!("{e}\n")).collect();
        golden(&file.with_extension("err"), &actual);
    }
}

#[test]
fn default_policy_is_valid() {
    let parsed = parse(super::DEFAULT).expect("the embedded default policy parses");
    assert!(!parsed.policy.rules.is_empty());
    assert_eq!(
        parsed.policy.mode,
        super::Mode::Audit,
        "the default never interferes"
    );
}

/// `# container CGROUP key=value ...` lines in a golden policy describe the containers to
/// compile for: runtime, name, image, namespace, labels (`l.KEY=V`), pod labels (`p.KEY=V`).
struct Spec {
    cgroup: u64,
    runtime: Runtime,
    fields: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    pod_labels: BTreeMap<String, String>,
}

fn specs(text: &str) -> Vec<Spec> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# container "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let cgroup = parts.next().unwrap().parse().unwrap();
            let mut spec = Spec {
                cgroup,
                runtime: Runtime::Docker,
                fields: BTreeMap::new(),
                labels: BTreeMap::new(),
                pod_labels: BTreeMap::new(),
            };
            for kv in parts {
                let (k, v) = kv.split_once('=').unwrap();
                if let Some(label) = k.strip_prefix("l.") {
                    spec.labels.insert(label.into(), v.into());
                } else if let Some(label) = k.strip_prefix("p.") {
                    spec.pod_labels.insert(label.into(), v.into());
                } else if k == "runtime" {
                    spec.runtime = match v {
                        "containerd" => Runtime::Containerd,
                        "cri-o" => Runtime::CriO,
                        "podman" => Runtime::Podman,
                        _ => Runtime::Docker,
                    };
                } else {
                    spec.fields.insert(k.into(), v.into());
                }
            }
            spec
        })
        .collect()
}

#[test]
fn golden_policies_compile_to_expected_entries() {
    for file in yaml_files("golden") {
        let text = fs::read_to_string(&file).unwrap();
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
        let specs = specs(&text);
        let subjects = specs.iter().map(|s| {
            (
                s.cgroup,
                Subject {
                    runtime: Some(s.runtime),
                    name: s.fields.get("name").map(String::as_str),
                    image: s.fields.get("image").map(String::as_str),
                    labels: Some(&s.labels),
                    pod_labels: (!s.pod_labels.is_empty()).then_some(&s.pod_labels),
                    namespace: s.fields.get("namespace").map(String::as_str),
                    networks: s
                        .fields
                        .get("network")
                        .map(|n| vec![n.as_str()])
                        .unwrap_or_default(),
                },
            )
        });
        let plan = compile(&parsed.policy, 1, subjects).unwrap();
        let mut out = render(&plan);
        // What the kernel would decide for `# exec CGROUP PATH` lines.
        for line in text.lines().filter_map(|l| l.strip_prefix("# exec ")) {
            let (cg, path) = line.split_once(' ').unwrap();
            let id = plan.cgroups[&cg.parse::<u64>().unwrap()];
            let verdict = plan
                .compiler
                .ruleset(id)
                .and_then(|rs| evaluate_exec(rs, path))
                .map(|(action, rule)| {
                    format!(
                        "{} by {}",
                        super::Action::from_code(action).unwrap().as_str(),
                        plan.compiler.rules[rule as usize].name
                    )
                })
                .unwrap_or_else(|| "allowed".into());
            out.push_str(&format!("exec cgroup {cg} {path}: {verdict}\n"));
        }
        golden(&file.with_extension("compiled"), &out);
    }
}
