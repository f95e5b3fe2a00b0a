//! `sensor policy bench`: how long a large policy takes to compile and install into the real
//! kernel maps (no program is attached: nothing is enforced while it runs).

use std::{collections::BTreeMap, fmt::Write as _, time::Instant};

use anyhow::Context as _;

use crate::policy::{Source, compile::Subject, engine::Engine, install::Installer, parse_source};
use crate::{identity::Runtime, kernel::preflight, loader};

/// A policy of `rules` exec rules spread over `groups` label values, two patterns each.
pub fn synthetic_policy(rules: usize, groups: usize) -> String {
    let mut text = String::from("version: 1\nmode: enforce\nrules:\n");
    for i in 0..rules {
        let _ = write!(
            text,
            "  - name: rule-{i}\n    containers: {{ labels: {{ group: g{} }} }}\n    exec: {{ deny: [\"/opt/app{i}/bin/tool\", \"*/tool{i}\"] }}\n    action: {}\n",
            i % groups.max(1),
            if i % 3 == 0 { "kill" } else { "audit" }
        );
    }
    text
}

pub struct Report {
    pub rules: usize,
    pub containers: usize,
    pub rulesets: usize,
    pub parse_ms: f64,
    pub compile_and_install_ms: f64,
}

pub fn run(btf: &std::path::Path, rules: usize, containers: usize) -> anyhow::Result<Report> {
    preflight::require_root()?;
    preflight::require_bpffs()?;
    let source = Source {
        origin: format!("<synthetic: {rules} rules>"),
        text: synthetic_policy(rules, containers),
    };
    let started = Instant::now();
    let parsed = parse_source(&source)?;
    let parse_ms = started.elapsed().as_secs_f64() * 1e3;

    let btf = loader::read_btf(btf)?;
    let (mut ebpf, _, _) = loader::open(&btf, 4096, loader::Globals::default())?;
    let installer = Installer::from_ebpf(&mut ebpf, std::process::id())?;
    let empty = parse_source(&Source {
        origin: "<empty>".into(),
        text: "version: 1\n".into(),
    })?;
    let (mut engine, _) = Engine::new(installer, &source, &empty, None)?;

    let labels: Vec<BTreeMap<String, String>> = (0..containers)
        .map(|i| [("group".to_owned(), format!("g{i}"))].into())
        .collect();
    let subjects: Vec<(u64, Subject<'_>)> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                1_000_000 + i as u64,
                Subject {
                    runtime: Some(Runtime::Docker),
                    labels: Some(l),
                    ..Subject::default()
                },
            )
        })
        .collect();
    for (cgroup, _) in &subjects {
        engine
            .container_seen(*cgroup)
            .context("marking containers")?;
    }
    let loaded = engine.load(&source, &parsed, subjects)?;
    Ok(Report {
        rules,
        containers,
        rulesets: loaded.rulesets,
        parse_ms,
        compile_and_install_ms: loaded.took.as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_policy_is_valid_and_spreads_rules() {
        let text = synthetic_policy(50, 10);
        let parsed = crate::policy::parse::parse(&text).expect("valid");
        assert_eq!(parsed.policy.rules.len(), 50);
        let labels: BTreeMap<String, String> = [("group".to_owned(), "g3".to_owned())].into();
        let subject = Subject {
            runtime: Some(Runtime::Docker),
            labels: Some(&labels),
            ..Subject::default()
        };
        let compiler = crate::policy::compile::Compiler::new(&parsed.policy, 1);
        assert_eq!(compiler.matching(&subject).len(), 5);
    }
}
