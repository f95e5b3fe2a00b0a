//! YAML → [`Policy`], collecting every error with its line and column and a hint, instead of
//! stopping at the first (`sensor policy check` prints them all).

use std::{fmt, net::IpAddr};

use marked_yaml::{
    Node, Span,
    types::{MarkedMappingNode, MarkedScalarNode},
};

use super::model::{
    Action, Cidr, Flow, Glob, List, Mode, Network, PathPattern, Policy, Posture, Protocol, Rule,
    Segment, Selector, Stance,
};
use crate::identity::Runtime;
use crate::syscalls::names;

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A parsed policy and what in it is accepted but not acted on.
#[derive(Debug)]
pub struct Parsed {
    pub policy: Policy,
    pub warnings: Vec<PolicyError>,
}

struct Parser {
    errors: Vec<PolicyError>,
    warnings: Vec<PolicyError>,
}

fn position(span: &Span) -> (usize, usize) {
    span.start()
        .map(|m| (m.line(), m.column()))
        .unwrap_or((1, 1))
}

fn hint(input: &str, candidates: &[&str]) -> String {
    match names::did_you_mean(input, candidates.iter().copied()) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => format!("; expected one of: {}", candidates.join(", ")),
    }
}

impl Parser {
    fn error(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = position(span);
        self.errors.push(PolicyError {
            line,
            column,
            message: message.into(),
        });
    }

    fn warn(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = position(span);
        self.warnings.push(PolicyError {
            line,
            column,
            message: message.into(),
        });
    }

    fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedMappingNode> {
        match node {
            Node::Mapping(m) => Some(m),
            other => {
                self.error(
                    other.span(),
                    format!("{what} must be a mapping (`key: value` lines)"),
                );
                None
            }
        }
    }

    /// Reports keys outside `allowed`, with a suggestion.
    fn check_keys(&mut self, map: &MarkedMappingNode, allowed: &[&str], what: &str) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    key.span(),
                    format!(
                        "unknown field `{}` in {what}{}",
                        key.as_str(),
                        hint(key.as_str(), allowed)
                    ),
                );
            }
        }
    }

    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedScalarNode> {
        match node {
            Node::Scalar(s) => Some(s),
            other => {
                self.error(other.span(), format!("{what} must be a single value"));
                None
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.scalar(node, what)?;
        if s.as_str().is_empty() {
            self.error(s.span(), format!("{what} is empty"));
            return None;
        }
        Some(s.as_str().to_owned())
    }

    fn keyword<T: Copy>(&mut self, node: &Node, what: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.scalar(node, what)?;
        let found = options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(s.as_str()));
        if found.is_none() {
            let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
            self.error(
                s.span(),
                format!(
                    "{what} `{}` is not valid{}",
                    s.as_str(),
                    hint(s.as_str(), &names)
                ),
            );
        }
        found.map(|(_, v)| *v)
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        let s = self.scalar(node, what)?;
        let v = s.as_bool();
        if v.is_none() {
            self.error(
                s.span(),
                format!("{what} must be true or false, not `{}`", s.as_str()),
            );
        }
        v
    }

    /// A sequence of scalars (a single scalar is accepted as a one-element list).
    fn scalars<'n>(&mut self, node: &'n Node, what: &str) -> Vec<&'n MarkedScalarNode> {
        match node {
            Node::Scalar(s) => vec![s],
            Node::Sequence(seq) => seq
                .iter()
                .filter_map(|item| self.scalar(item, &format!("each entry of {what}")))
                .collect(),
            Node::Mapping(m) => {
                self.error(m.span(), format!("{what} must be a list like [a, b]"));
                Vec::new()
            }
        }
    }

    /// `{deny: [...]}` or `{allow: [...]}`, each item converted by `item`.
    fn list<T>(
        &mut self,
        node: &Node,
        what: &str,
        mut item: impl FnMut(&mut Self, &MarkedScalarNode) -> Option<T>,
    ) -> Option<List<T>> {
        let map = self.mapping(node, what)?;
        let errors_before = self.errors.len();
        self.check_keys(map, &["deny", "allow"], what);
        let misspelt = self.errors.len() > errors_before;
        let deny = map.get_node("deny");
        let allow = map.get_node("allow");
        let (kind, items) = match (deny, allow) {
            (Some(d), None) => (Stance::Deny, d),
            (None, Some(a)) => (Stance::Allow, a),
            (Some(_), Some(a)) => {
                self.error(
                    a.span(),
                    format!("{what} takes either `deny` or `allow`, not both"),
                );
                return None;
            }
            (None, None) => {
                if !misspelt {
                    self.error(
                        map.span(),
                        format!("{what} needs `deny: [...]` or `allow: [...]`"),
                    );
                }
                return None;
            }
        };
        let values: Vec<T> = self
            .scalars(items, what)
            .into_iter()
            .filter_map(|s| item(self, s))
            .collect();
        Some(match kind {
            Stance::Deny => List::Deny(values),
            Stance::Allow => List::Allow(values),
        })
    }

    fn selector(&mut self, node: &Node, what: &str) -> Option<Selector> {
        let map = self.mapping(node, what)?;
        self.check_keys(
            map,
            &[
                "labels",
                "image",
                "name",
                "namespace",
                "runtime",
                "network",
                "host",
            ],
            what,
        );
        let mut sel = Selector::default();
        if let Some(labels) = map.get_node("labels")
            && let Some(lm) = self.mapping(labels, "labels")
        {
            for (k, v) in lm.iter() {
                if let Some(v) = self.scalar(v, &format!("label `{}`", k.as_str())) {
                    sel.labels
                        .insert(k.as_str().to_owned(), v.as_str().to_owned());
                }
            }
        }
        let glob =
            |p: &mut Self, key: &str| map.get_node(key).and_then(|n| p.string(n, key)).map(Glob);
        sel.image = glob(self, "image");
        sel.name = glob(self, "name");
        sel.namespace = glob(self, "namespace");
        sel.runtime = map.get_node("runtime").and_then(|n| {
            self.keyword(
                n,
                "runtime",
                &[
                    ("docker", Runtime::Docker),
                    ("containerd", Runtime::Containerd),
                    ("cri-o", Runtime::CriO),
                    ("podman", Runtime::Podman),
                ],
            )
        });
        sel.network = map
            .get_node("network")
            .and_then(|n| self.string(n, "network"));
        sel.host = map
            .get_node("host")
            .and_then(|n| self.bool(n, "host"))
            .unwrap_or(false);
        Some(sel)
    }

    fn capability(&mut self, s: &MarkedScalarNode) -> Option<u32> {
        let cap = names::capability(s.as_str());
        if cap.is_none() {
            let input = s.as_str().to_ascii_uppercase();
            let bare = input.strip_prefix("CAP_").unwrap_or(&input);
            self.error(
                s.span(),
                format!(
                    "unknown capability `{}`{}",
                    s.as_str(),
                    hint(bare, names::CAPABILITIES)
                ),
            );
        }
        cap
    }

    fn syscall(&mut self, s: &MarkedScalarNode) -> Option<String> {
        let name = s.as_str().trim().to_ascii_lowercase();
        if names::syscall_anywhere(&name) {
            if names::syscall(names::Arch::native(), &name).is_none() {
                self.warn(
                    s.span(),
                    format!(
                        "syscall `{name}` does not exist on {}; it is ignored here",
                        names::Arch::native().as_str()
                    ),
                );
            }
            return Some(name);
        }
        let all: Vec<&str> = names::Arch::native()
            .table()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        let suggestion = names::did_you_mean(&name, all.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_else(|| {
                "; syscall names are as in `man 2 syscalls` (mount, unshare, setns, ...)".into()
            });
        self.error(
            s.span(),
            format!("unknown syscall `{}`{suggestion}", s.as_str()),
        );
        None
    }

    fn exec_pattern(&mut self, s: &MarkedScalarNode) -> Option<PathPattern> {
        let p = s.as_str();
        // The kernel matches paths of at most EXEC_PATH_LEN - 2 bytes (see sensor-ebpf exec.rs).
        let max = sensor_common::policy::EXEC_PATH_LEN - 2;
        let stars = p.matches('*').count();
        let pattern = if p == "*" {
            Some(PathPattern::Any)
        } else if stars == 0 && p.starts_with('/') {
            Some(PathPattern::Exact(p.to_owned()))
        } else if stars == 1 && p.ends_with('*') && p.starts_with('/') {
            Some(PathPattern::Prefix(p[..p.len() - 1].to_owned()))
        } else if stars == 1 && p.starts_with('*') {
            Some(PathPattern::Suffix(p[1..].to_owned()))
        } else {
            None
        };
        match pattern {
            None => {
                self.error(
                    s.span(),
                    format!(
                        "exec pattern `{p}` is not supported: use an absolute path (`/bin/sh`), a directory prefix (`/usr/bin/*`), a suffix (`*/nc`) or `*`"
                    ),
                );
                None
            }
            Some(PathPattern::Suffix(suffix))
                if suffix.len() > sensor_common::policy::SUFFIX_LEN =>
            {
                self.error(
                    s.span(),
                    format!(
                        "suffix pattern `{p}` is longer than {} bytes, the longest end of a path the kernel matches",
                        sensor_common::policy::SUFFIX_LEN
                    ),
                );
                None
            }
            Some(_) if p.len() > max => {
                self.error(
                    s.span(),
                    format!(
                        "exec pattern is longer than {max} bytes, the longest the kernel matches"
                    ),
                );
                None
            }
            some => some,
        }
    }

    fn rule(&mut self, node: &Node, index: usize) -> Option<Rule> {
        let what = format!("rule #{}", index + 1);
        let map = self.mapping(node, &what)?;
        const KEYS: &[&str] = &[
            "name",
            "containers",
            "capabilities",
            "syscalls",
            "exec",
            "drift",
            "escape",
            "posture",
            "action",
        ];
        self.check_keys(map, KEYS, &what);
        let (line, _) = position(map.span());
        let name = match map.get_node("name") {
            Some(n) => self.string(n, "rule name"),
            None => {
                self.error(map.span(), format!("{what} needs a `name`"));
                None
            }
        };
        let selector = match map.get_node("containers") {
            Some(n) => self.selector(n, "containers"),
            None => Some(Selector::default()),
        };
        let capabilities = map
            .get_node("capabilities")
            .and_then(|n| self.list(n, "capabilities", |p, s| p.capability(s)));
        let syscalls = map
            .get_node("syscalls")
            .and_then(|n| self.list(n, "syscalls", |p, s| p.syscall(s)));
        let exec = map
            .get_node("exec")
            .and_then(|n| self.list(n, "exec", |p, s| p.exec_pattern(s)));
        let posture = map.get_node("posture").and_then(|n| self.posture(n));
        let drift = map
            .get_node("drift")
            .and_then(|n| self.drift(n))
            .unwrap_or(0);
        let escape = map
            .get_node("escape")
            .and_then(|n| self.keyword(n, "escape", &[("deny", true), ("allow", false)]))
            .unwrap_or(false);
        let action = match map.get_node("action") {
            Some(n) => self.keyword(
                n,
                "action",
                &[
                    ("audit", Action::Audit),
                    ("block", Action::Block),
                    ("kill", Action::Kill),
                ],
            ),
            None => Some(Action::Audit),
        };
        let has_kind = [
            "capabilities",
            "syscalls",
            "exec",
            "drift",
            "escape",
            "posture",
        ]
        .iter()
        .any(|k| map.get_node(k).is_some());
        if !has_kind {
            self.error(
                map.span(),
                format!("{what} controls nothing: give it `capabilities`, `syscalls`, `exec`, `drift`, `escape` or `posture`"),
            );
        }
        Some(Rule {
            name: name?,
            selector: selector?,
            capabilities,
            syscalls,
            exec,
            drift,
            escape,
            posture,
            action: action?,
            line,
        })
    }

    /// `drift: deny` (every origin but the image), `drift: allow` (none), or a list of origins:
    /// `drift: { deny: [memfd, tmpfs] }`, `drift: { allow: [volume] }`.
    fn drift(&mut self, node: &Node) -> Option<u8> {
        use super::model::{DRIFT_ALL, DRIFT_ORIGINS};
        if node.as_mapping().is_none() {
            return self.keyword(node, "drift", &[("deny", DRIFT_ALL), ("allow", 0)]);
        }
        let list = self.list(node, "drift", |p, s| {
            let found = DRIFT_ORIGINS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(s.as_str()));
            if found.is_none() {
                let names: Vec<&str> = DRIFT_ORIGINS.iter().map(|(n, _)| *n).collect();
                p.error(
                    s.span(),
                    format!(
                        "unknown drift origin `{}`{}",
                        s.as_str(),
                        hint(s.as_str(), &names)
                    ),
                );
            }
            found.map(|(_, bit)| *bit)
        })?;
        let named = list.items().iter().fold(0u8, |m, b| m | b);
        Some(match list {
            List::Deny(_) => named,
            List::Allow(_) => DRIFT_ALL & !named,
        })
    }

    fn posture(&mut self, node: &Node) -> Option<Posture> {
        let map = self.mapping(node, "posture")?;
        self.check_keys(map, &["privileged", "root_user", "images"], "posture");
        let stance = |p: &mut Self, key: &str| {
            map.get_node(key).and_then(|n| {
                p.keyword(n, key, &[("deny", Stance::Deny), ("allow", Stance::Allow)])
            })
        };
        let privileged = stance(self, "privileged");
        let root_user = stance(self, "root_user");
        let images = map.get_node("images").and_then(|n| {
            self.list(n, "images", |p, s| {
                if s.as_str().is_empty() {
                    p.error(s.span(), "image pattern is empty");
                    return None;
                }
                Some(Glob(s.as_str().to_owned()))
            })
        });
        Some(Posture {
            privileged,
            root_user,
            images,
        })
    }

    fn cidr(&mut self, s: &MarkedScalarNode) -> Option<Cidr> {
        let text = s.as_str();
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let addr: Option<IpAddr> = addr.parse().ok();
        let max = match addr {
            Some(IpAddr::V4(_)) => 32,
            Some(IpAddr::V6(_)) => 128,
            None => {
                self.error(
                    s.span(),
                    format!("`{text}` is not an address or CIDR (10.0.0.0/8, fd00::/8)"),
                );
                return None;
            }
        };
        let prefix = if prefix.is_empty() {
            Some(max)
        } else {
            prefix.parse::<u8>().ok().filter(|p| *p <= max)
        };
        match (addr, prefix) {
            (Some(addr), Some(prefix)) => Some(Cidr { addr, prefix }),
            _ => {
                self.error(
                    s.span(),
                    format!("`{text}`: the prefix length must be 0–{max}"),
                );
                None
            }
        }
    }

    fn segment(&mut self, node: &Node, index: usize) -> Option<Segment> {
        let what = format!("segment #{}", index + 1);
        let map = self.mapping(node, &what)?;
        self.check_keys(map, &["name", "containers", "cidrs"], &what);
        let name = match map.get_node("name") {
            Some(n) => self.string(n, "segment name"),
            None => {
                self.error(map.span(), format!("{what} needs a `name`"));
                None
            }
        };
        let selector = map
            .get_node("containers")
            .and_then(|n| self.selector(n, "containers"));
        let cidrs: Vec<Cidr> = map
            .get_node("cidrs")
            .map(|n| {
                self.scalars(n, "cidrs")
                    .into_iter()
                    .filter_map(|s| self.cidr(s))
                    .collect()
            })
            .unwrap_or_default();
        if map.get_node("containers").is_none() && map.get_node("cidrs").is_none() {
            self.error(
                map.span(),
                format!("{what} needs `containers` or `cidrs` (or both)"),
            );
        }
        Some(Segment {
            name: name?,
            selector,
            cidrs,
        })
    }

    /// Warns where one segment's containers are all in another too: the two share them, so
    /// `cross_segment: deny` separates nothing between them.
    fn overlapping_segments(&mut self, segments: &[Segment], spans: &[&Span]) {
        let selectors: Vec<Option<&Selector>> =
            segments.iter().map(|s| s.selector.as_ref()).collect();
        for (i, a) in selectors.iter().enumerate() {
            for (j, b) in selectors.iter().enumerate() {
                let (Some(a), Some(b)) = (a, b) else { continue };
                if i == j || (a == b && j < i) {
                    continue;
                }
                let (na, nb) = (&segments[i].name, &segments[j].name);
                if a.is_catch_all() && b.is_catch_all() {
                    self.warn(
                        spans[j],
                        format!(
                            "segments `{na}` and `{nb}` both select every container (`containers: {{}}`): the containers no other segment selects are in both, so nothing separates them; keep one"
                        ),
                    );
                } else if !a.is_catch_all() && a.covers(b) {
                    self.warn(
                        spans[j],
                        format!(
                            "every container segment `{nb}` selects is in segment `{na}` too (`{nb}` has all of `{na}`'s conditions): they share those containers, so `cross_segment: deny` separates nothing between them; give `{na}` a condition `{nb}` does not have"
                        ),
                    );
                }
            }
        }
    }

    fn network(&mut self, node: &Node, segments: &[Segment]) -> Option<Network> {
        let map = self.mapping(node, "network")?;
        self.check_keys(
            map,
            &[
                "cross_segment",
                "unknown",
                "allow",
                "action",
                "inbound",
                "net_admin",
            ],
            "network",
        );
        let stance = |p: &mut Self, key: &str| {
            map.get_node(key)
                .and_then(|n| {
                    p.keyword(n, key, &[("deny", Stance::Deny), ("allow", Stance::Allow)])
                })
                .unwrap_or(Stance::Allow)
        };
        let cross_segment = stance(self, "cross_segment");
        let unknown = stance(self, "unknown");
        let net_admin = map
            .get_node("net_admin")
            .and_then(|n| {
                self.keyword(
                    n,
                    "net_admin",
                    &[("deny", Stance::Deny), ("allow", Stance::Allow)],
                )
            })
            .unwrap_or(Stance::Deny);
        let action = map
            .get_node("action")
            .and_then(|n| {
                self.keyword(
                    n,
                    "action",
                    &[
                        ("audit", Action::Audit),
                        ("block", Action::Block),
                        ("kill", Action::Kill),
                    ],
                )
            })
            .unwrap_or(Action::Block);
        let inbound = map
            .get_node("inbound")
            .and_then(|n| self.keyword(n, "inbound", &[("judge", true), ("ignore", false)]))
            .unwrap_or(true);
        let names: Vec<&str> = segments.iter().map(|s| s.name.as_str()).collect();
        let mut allow = Vec::new();
        if let Some(n) = map.get_node("allow") {
            match n {
                Node::Sequence(seq) => {
                    for item in seq.iter() {
                        if let Some(f) = self.flow(item, &names) {
                            allow.push(f);
                        }
                    }
                }
                other => self.error(
                    other.span(),
                    "network.allow must be a list of { from, to, ports, protocol }",
                ),
            }
        }
        Some(Network {
            cross_segment,
            unknown,
            allow,
            action,
            inbound,
            net_admin,
        })
    }

    fn flow(&mut self, node: &Node, segments: &[&str]) -> Option<Flow> {
        let map = self.mapping(node, "a network.allow entry")?;
        self.check_keys(
            map,
            &["from", "to", "ports", "protocol"],
            "a network.allow entry",
        );
        let segment = |p: &mut Self, key: &str| -> Option<String> {
            let Some(n) = map.get_node(key) else {
                p.error(map.span(), format!("a network.allow entry needs `{key}`"));
                return None;
            };
            let s = p.scalar(n, key)?;
            if !segments.contains(&s.as_str()) {
                p.error(
                    s.span(),
                    format!(
                        "`{}` is not a segment{}",
                        s.as_str(),
                        if segments.is_empty() {
                            "; define it under `segments`".to_owned()
                        } else {
                            hint(s.as_str(), segments)
                        }
                    ),
                );
                return None;
            }
            Some(s.as_str().to_owned())
        };
        let from = segment(self, "from");
        let to = segment(self, "to");
        let ports: Vec<u16> = map
            .get_node("ports")
            .map(|n| {
                self.scalars(n, "ports")
                    .into_iter()
                    .filter_map(|s| match s.as_str().parse::<u16>() {
                        Ok(p) if p > 0 => Some(p),
                        _ => {
                            self.error(s.span(), format!("port `{}` must be 1–65535", s.as_str()));
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let protocol = map
            .get_node("protocol")
            .and_then(|n| {
                self.keyword(
                    n,
                    "protocol",
                    &[
                        ("tcp", Protocol::Tcp),
                        ("udp", Protocol::Udp),
                        ("any", Protocol::Any),
                    ],
                )
            })
            .unwrap_or(Protocol::Any);
        Some(Flow {
            from: from?,
            to: to?,
            ports,
            protocol,
        })
    }
}

/// Parses and validates a policy. `Err` holds every error found, in file order.
pub fn parse(text: &str) -> Result<Parsed, Vec<PolicyError>> {
    let mut p = Parser {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let options = marked_yaml::LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .toplevel_mapping();
    let root = match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(root) => root,
        Err(e) => return Err(vec![load_error(e)]),
    };
    let Some(map) = p.mapping(&root, "the policy") else {
        return Err(p.errors);
    };
    p.check_keys(
        map,
        &["version", "mode", "segments", "rules", "network"],
        "the policy",
    );
    match map.get_node("version") {
        Some(n) => {
            if let Some(s) = p.scalar(n, "version")
                && s.as_str() != "1"
            {
                p.error(
                    s.span(),
                    format!(
                        "version `{}` is not supported; this sensor reads `version: 1`",
                        s.as_str()
                    ),
                );
            }
        }
        None => p.errors.push(PolicyError {
            line: 1,
            column: 1,
            message: "the policy needs `version: 1` on its first line".into(),
        }),
    }
    let mode = map
        .get_node("mode")
        .and_then(|n| {
            p.keyword(
                n,
                "mode",
                &[("audit", Mode::Audit), ("enforce", Mode::Enforce)],
            )
        })
        .unwrap_or(Mode::Audit);

    let mut segments = Vec::new();
    let mut spans = Vec::new();
    if let Some(n) = map.get_node("segments") {
        match n {
            Node::Sequence(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    if let Some(s) = p.segment(item, i) {
                        if segments.iter().any(|x: &Segment| x.name == s.name) {
                            p.error(
                                item.span(),
                                format!("segment `{}` is defined twice", s.name),
                            );
                        }
                        if segments.len() == sensor_common::network::MAX_SEGMENTS {
                            p.error(
                                item.span(),
                                format!(
                                    "more than {} segments; merge some (a segment can list several CIDRs and match by label)",
                                    sensor_common::network::MAX_SEGMENTS
                                ),
                            );
                        }
                        segments.push(s);
                        spans.push(item.span());
                    }
                }
                p.overlapping_segments(&segments, &spans);
            }
            other => p.error(
                other.span(),
                "`segments` must be a list (lines starting with `- name: ...`)",
            ),
        }
    }
    let mut rules: Vec<Rule> = Vec::new();
    if let Some(n) = map.get_node("rules") {
        match n {
            Node::Sequence(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    if let Some(r) = p.rule(item, i) {
                        if rules.iter().any(|x| x.name == r.name) {
                            p.error(
                                item.span(),
                                format!(
                                    "rule `{}` is defined twice: rule names must be unique",
                                    r.name
                                ),
                            );
                        }
                        rules.push(r);
                    }
                }
            }
            other => p.error(
                other.span(),
                "`rules` must be a list (lines starting with `- name: ...`)",
            ),
        }
    }
    let network = map
        .get_node("network")
        .and_then(|n| p.network(n, &segments));
    if p.errors.is_empty() {
        Ok(Parsed {
            policy: Policy {
                mode,
                segments,
                rules,
                network,
            },
            warnings: p.warnings,
        })
    } else {
        p.errors.sort_by_key(|e| (e.line, e.column));
        Err(p.errors)
    }
}

fn load_error(e: marked_yaml::LoadError) -> PolicyError {
    use marked_yaml::LoadError as E;
    let (marker, message) = match &e {
        E::TopLevelMustBeMapping(m) => (
            Some(*m),
            "the policy must be a mapping (`version: 1`, `rules: ...`)".to_owned(),
        ),
        E::TopLevelMustBeSequence(m) => (Some(*m), "unexpected top-level list".to_owned()),
        E::UnexpectedAnchor(m) => (
            Some(*m),
            "YAML anchors and aliases are not supported in policies".to_owned(),
        ),
        E::MappingKeyMustBeScalar(m) => (Some(*m), "mapping keys must be plain names".to_owned()),
        E::UnexpectedTag(m) => (
            Some(*m),
            "YAML tags (`!!x`) are not supported in policies".to_owned(),
        ),
        E::ScanError(m, se) => (Some(*m), format!("not valid YAML: {}", se.info())),
        E::DuplicateKey(d) => (
            d.key.span().start().copied(),
            format!(
                "`{}` is given twice (first on line {})",
                d.key.as_str(),
                d.prev_key.span().start().map(|m| m.line()).unwrap_or(0)
            ),
        ),
    };
    let (line, column) = marker.map(|m| (m.line(), m.column())).unwrap_or((1, 1));
    PolicyError {
        line,
        column,
        message,
    }
}
