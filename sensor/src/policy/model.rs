//! The policy as a person writes it (see `default.yaml` and the README), after validation.

use std::{collections::BTreeMap, fmt, net::IpAddr};

use crate::identity::Runtime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Report what enforcement would do; never block or kill.
    Audit,
    /// Apply each rule's action.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Enforce => "enforce",
        }
    }
}

/// What a rule does on a violation. Ordered by strength: when several rules match one
/// operation, the strongest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Audit,
    /// Refuse the operation (EPERM) where the kernel allows it; else kill.
    Block,
    /// SIGKILL the process from the kernel.
    Kill,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Block => "block",
            Self::Kill => "kill",
        }
    }

    /// The value the kernel programs use (`sensor_common::policy::ACTION_*`).
    pub fn code(self) -> u8 {
        match self {
            Self::Audit => sensor_common::policy::ACTION_AUDIT,
            Self::Block => sensor_common::policy::ACTION_BLOCK,
            Self::Kill => sensor_common::policy::ACTION_KILL,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            sensor_common::policy::ACTION_AUDIT => Some(Self::Audit),
            sensor_common::policy::ACTION_BLOCK => Some(Self::Block),
            sensor_common::policy::ACTION_KILL => Some(Self::Kill),
            _ => None,
        }
    }
}

/// A glob on strings: `*` matches any run of characters (including `/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Glob(pub String);

impl Glob {
    pub fn matches(&self, s: &str) -> bool {
        glob_match(self.0.as_bytes(), s.as_bytes())
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative wildcard match with backtracking to the last `*` (linear in practice).
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Which containers a rule or segment applies to. Every given field must match; an empty
/// selector matches every container (never the host unless `host: true`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// All must match (container labels and, for Kubernetes, pod labels).
    pub labels: BTreeMap<String, String>,
    pub image: Option<Glob>,
    pub name: Option<Glob>,
    /// Kubernetes namespace.
    pub namespace: Option<Glob>,
    pub runtime: Option<Runtime>,
    /// Docker network name (segments).
    pub network: Option<String>,
    /// Host processes are in scope.
    pub host: bool,
}

impl Selector {
    /// No condition at all (`containers: {}`): every container. As a segment's selector it
    /// holds the containers no other segment selects (`NetworkPlan::segments_of`).
    pub fn is_catch_all(&self) -> bool {
        *self == Self::default()
    }

    /// Whether every container `other` selects is selected by this one too: each of this
    /// selector's conditions is one of `other`'s.
    pub fn covers(&self, other: &Self) -> bool {
        fn within<T: PartialEq>(mine: &Option<T>, theirs: &Option<T>) -> bool {
            mine.is_none() || mine == theirs
        }
        self.labels
            .iter()
            .all(|(k, v)| other.labels.get(k) == Some(v))
            && within(&self.image, &other.image)
            && within(&self.name, &other.name)
            && within(&self.namespace, &other.namespace)
            && within(&self.runtime, &other.runtime)
            && within(&self.network, &other.network)
    }
}

/// `deny: [...]` (these are violations) or `allow: [...]` (everything else is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum List<T> {
    Deny(Vec<T>),
    Allow(Vec<T>),
}

impl<T> List<T> {
    pub fn items(&self) -> &[T] {
        match self {
            Self::Deny(v) | Self::Allow(v) => v,
        }
    }
}

/// An exec pattern the kernel can match: exact path, `prefix*`, `*suffix` or `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Any,
}

impl PathPattern {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => path == p,
            Self::Prefix(p) => path.starts_with(p.as_str()),
            Self::Suffix(s) => path.ends_with(s.as_str()),
            Self::Any => true,
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Suffix(s) => write!(f, "*{s}"),
            Self::Any => f.write_str("*"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stance {
    Allow,
    Deny,
}

/// Container posture checked when a container starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Posture {
    pub privileged: Option<Stance>,
    pub root_user: Option<Stance>,
    pub images: Option<List<Glob>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub selector: Selector,
    pub capabilities: Option<List<u32>>,
    pub syscalls: Option<List<String>>,
    pub exec: Option<List<PathPattern>>,
    /// Drift: executing a file that is not from the container's image is a violation when its
    /// origin is one of these bits (`1 << sensor_common::exec::ORIGIN_*`); 0 without a drift
    /// rule. `drift: deny` is every origin but `image`.
    pub drift: u8,
    /// `escape: deny`: a process of the container placing one of its processes outside the
    /// container's cgroup is a violation.
    pub escape: bool,
    pub posture: Option<Posture>,
    pub action: Action,
    /// Line of the rule in its file, for messages.
    pub line: usize,
}

/// Origins of executed files that `drift` can cover, by name, with their bits.
pub const DRIFT_ORIGINS: &[(&str, u8)] = &[
    ("upper", 1 << sensor_common::exec::ORIGIN_UPPER),
    ("memfd", 1 << sensor_common::exec::ORIGIN_MEMFD),
    ("deleted", 1 << sensor_common::exec::ORIGIN_DELETED),
    ("tmpfs", 1 << sensor_common::exec::ORIGIN_TMPFS),
    ("volume", 1 << sensor_common::exec::ORIGIN_VOLUME),
];

/// Every origin but `image`.
pub const DRIFT_ALL: u8 = (1 << sensor_common::exec::ORIGIN_UPPER)
    | (1 << sensor_common::exec::ORIGIN_MEMFD)
    | (1 << sensor_common::exec::ORIGIN_DELETED)
    | (1 << sensor_common::exec::ORIGIN_TMPFS)
    | (1 << sensor_common::exec::ORIGIN_VOLUME);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub selector: Option<Selector>,
    pub cidrs: Vec<Cidr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub from: String,
    pub to: String,
    /// Empty: every port.
    pub ports: Vec<u16>,
    pub protocol: Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub cross_segment: Stance,
    pub unknown: Stance,
    pub allow: Vec<Flow>,
    pub action: Action,
    /// `inbound: judge` (default): flows arriving from CIDR segments follow the same rules
    /// (a program on every packet delivered to a socket); `inbound: ignore`: egress only.
    pub inbound: bool,
    /// `net_admin: deny` (default): CAP_NET_ADMIN is refused in segmented containers (it
    /// rewrites and tunnels packets after the hooks judged them); `allow`: it is not.
    pub net_admin: Stance,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    pub segments: Vec<Segment>,
    pub rules: Vec<Rule>,
    pub network: Option<Network>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| Glob(p.into()).matches(s);
        assert!(g("*", ""));
        assert!(g("*", "docker.io/library/nginx"));
        assert!(g("docker.io/library/*", "docker.io/library/nginx:1.25"));
        assert!(!g("docker.io/library/*", "quay.io/x"));
        assert!(g("*/nc", "/usr/bin/nc"));
        assert!(!g("*/nc", "/usr/bin/ncat"));
        assert!(g("a*b*c", "aXXbYYc"));
        assert!(!g("a*b*c", "aXXbYY"));
        assert!(g("exact", "exact"));
        assert!(!g("exact", "exactly"));
    }

    #[test]
    fn path_patterns() {
        assert!(PathPattern::Exact("/bin/sh".into()).matches("/bin/sh"));
        assert!(!PathPattern::Exact("/bin/sh".into()).matches("/bin/sh2"));
        assert!(PathPattern::Prefix("/usr/".into()).matches("/usr/bin/x"));
        assert!(PathPattern::Suffix("/nc".into()).matches("/bin/nc"));
        assert!(!PathPattern::Suffix("/nc".into()).matches("/bin/xnc"));
        assert!(PathPattern::Any.matches("/anything"));
        assert!(Action::Kill > Action::Block && Action::Block > Action::Audit);
    }
}
