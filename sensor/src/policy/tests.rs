//! Golden tests: broken policies → their error lines; policies + containers → compiled
//! entries. `UPDATE_GOLDEN=1 cargo test -p sensor policy` rewrites the expectations (review
//! the diff).

use std::{collections::BTreeMap, fs, path::PathBuf};

use super::{
    compile::{Subject, compile, evaluate_exec, render},
    parse::parse,
};
use crate::identity::Runtime;

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
                    metadata: None,
                    pending: false,
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

/// xorshift64*: a deterministic stream for the mutation test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Fragments a mutation splices in: the policy's own vocabulary and YAML syntax.
const FRAGMENTS: &[&str] = &[
    "version: 1",
    "mode: enforce",
    "rules:",
    "- name: x",
    "exec:",
    "{ deny: [\"/bin/sh\"] }",
    "allow:",
    "capabilities:",
    "syscalls:",
    "[SYS_ADMIN]",
    "[mount]",
    "action: kill",
    "containers:",
    "labels:",
    "{ tier: db }",
    "host: true",
    "segments:",
    "cidrs: [10.0.0.0/8]",
    "network:",
    "cross_segment: deny",
    "- { from: a, to: b, ports: [1] }",
    "posture:",
    "privileged: deny",
    "images:",
    "*",
    "\"*/nc\"",
    ":",
    "-",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "  ",
    "\t",
    "&a",
    "*a",
    "!!str",
    "'",
    "\"",
    "#",
    "|",
    ">",
    "~",
    "null",
    "0x1",
    "\u{feff}",
    "é",
    "\0",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 if !s.is_empty() => {
                let end = (at + 1 + rng.below(20)).min(s.len());
                s.drain(at.min(s.len())..end);
            }
            1 => {
                let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
                s.splice(at..at, frag.chars());
            }
            2 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = char::from_u32(rng.below(0x80) as u32).unwrap_or(' ');
            }
            3 => {
                // Duplicate a line elsewhere.
                let lines: Vec<&str> = text.lines().collect();
                let line = lines[rng.below(lines.len())];
                s.splice(at..at, format!("\n{line}\n").chars());
            }
            _ => {
                let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
                s.splice(at..at, format!("\n  {frag}").chars());
            }
        }
    }
    s.into_iter().collect()
}

/// Mutated policies never panic or hang the parser and the compiler. `SENSOR_FUZZ_SECONDS`
/// runs it longer than the default 20,000 cases.
#[test]
fn parser_and_compiler_survive_mutated_policies() {
    let mut seeds: Vec<String> = vec![super::DEFAULT.to_owned()];
    for dir in ["golden", "broken"] {
        for f in yaml_files(dir) {
            seeds.push(fs::read_to_string(f).unwrap());
        }
    }
    let budget = std::env::var("SENSOR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let started = std::time::Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let labels: BTreeMap<String, String> = [("tier".to_owned(), "db".to_owned())].into();
    let (mut cases, mut valid) = (0u64, 0u64);
    loop {
        let done = match budget {
            Some(s) => started.elapsed().as_secs() >= s,
            None => cases >= 20_000,
        };
        if done {
            break;
        }
        let seed = &seeds[rng.below(seeds.len())];
        let text = mutate(&mut rng, seed);
        let t = std::time::Instant::now();
        if let Ok(parsed) = parse(&text) {
            valid += 1;
            let subject = Subject {
                runtime: Some(Runtime::Docker),
                name: Some("db1"),
                image: Some("postgres"),
                labels: Some(&labels),
                ..Subject::default()
            };
            let _ = compile(&parsed.policy, 1, [(1, subject)]);
        }
        assert!(
            t.elapsed().as_millis() < 500,
            "case took {:?}:\n{text}",
            t.elapsed()
        );
        cases += 1;
    }
    eprintln!(
        "MEASURE fuzz: {cases} mutated policies ({valid} still valid) in {:.1} s, no panic",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn syscall_rules_compile_per_architecture_number() {
    use super::compile::{Subject, compile, hooked_syscalls};
    use crate::syscalls::names::{Arch, syscall};
    let parsed = parse(
        "version: 1\nrules:\n  - name: audit-ns\n    syscalls: { deny: [unshare, mount] }\n    action: audit\n  - name: kill-mount\n    syscalls: { deny: [mount] }\n    action: kill\n  - name: host-allow\n    containers: { host: true, labels: { only: host } }\n    syscalls: { allow: [read, write] }\n    action: audit\n",
    )
    .expect("parses");
    let arch = Arch::native();
    let nr = |n: &str| syscall(arch, n).unwrap();
    let hooked = hooked_syscalls(&parsed.policy);
    // The allow-list hooks every syscall but the two it names.
    assert!(hooked.contains(&("mount", nr("mount"))));
    assert!(!hooked.iter().any(|(n, _)| *n == "read" || *n == "write"));
    assert_eq!(hooked.len(), arch.table().len() - 2);

    let container = Subject {
        runtime: Some(crate::identity::Runtime::Docker),
        ..Subject::default()
    };
    let plan = compile(&parsed.policy, 1, [(7, container)]).expect("compiles");
    let rs = plan.compiler.ruleset(plan.cgroups[&7]).unwrap();
    let entry = |n: &str| {
        rs.syscalls
            .iter()
            .find(|(x, _)| *x == nr(n))
            .map(|(_, v)| *v)
    };
    // The strongest rule wins, and mount's three string arguments are read.
    let mount = entry("mount").unwrap();
    assert_eq!((mount.action, mount.rule, mount.strings), (3, 1, 0b111));
    assert_eq!(entry("unshare").unwrap().action, 1);
    // `mount` covers the new mount API (`names::FAMILIES`).
    let mount_api = [
        "fsopen",
        "fspick",
        "fsmount",
        "move_mount",
        "open_tree",
        "mount_setattr",
    ];
    for n in mount_api {
        assert_eq!(entry(n).map(|v| (v.action, v.rule)), Some((3, 1)), "{n}");
    }
    assert_eq!(
        rs.syscalls.len(),
        2 + mount_api.len(),
        "only the denied syscalls and their families: {:?}",
        rs.syscalls
    );
    // The host's allow-list denies everything else.
    let host = plan.compiler.ruleset(plan.host_ruleset).unwrap();
    assert_eq!(host.syscalls.len(), arch.table().len() - 2);
    assert!(host.syscalls.iter().all(|(n, _)| *n != nr("read")));
}
