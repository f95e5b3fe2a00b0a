//! Container posture, judged when a container starts from what its runtime says: privileged,
//! running as root, an image outside the allowed ones, the runtime's socket mounted inside, and
//! capabilities a capability rule denies that the container holds (used or not).

use super::model::{List, Rule, Stance};
use crate::{identity::metadata::Metadata, syscalls::names};

/// Docker's and containerd's default capability set for unprivileged containers.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Sockets that give whoever can open them control of the host's containers.
pub const RUNTIME_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
    "/run/podman/podman.sock",
];

/// One thing wrong with a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the rule that forbids it.
    pub rule: usize,
    /// `privileged`, `root_user`, `image_not_allowed`, `runtime_socket_mounted`,
    /// `capability_held`.
    pub finding: &'static str,
    pub detail: String,
}

/// The capabilities the container holds (bit = number): all when privileged, else the
/// runtime's defaults with its additions and drops.
pub fn held_capabilities(m: &Metadata) -> u64 {
    if m.privileged == Some(true) {
        return (1u64 << names::CAPABILITIES.len()) - 1;
    }
    let bit = |name: &str| names::capability(name).map_or(0, |c| 1u64 << c);
    let all = (1u64 << names::CAPABILITIES.len()) - 1;
    let mut held: u64 = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| bit(c))
        .fold(0, |a, b| a | b);
    for c in &m.cap_add {
        held |= if c == "ALL" { all } else { bit(c) };
    }
    for c in &m.cap_drop {
        held &= if c == "ALL" { 0 } else { !bit(c) };
    }
    held
}

/// Root in the host user namespace: no user configured (the image's default, root for
/// almost every image), or uid 0 / `root`.
pub fn runs_as_root(m: &Metadata) -> bool {
    let user = m.user.as_deref().unwrap_or("");
    let uid = user.split(':').next().unwrap_or("");
    uid.is_empty() || uid == "0" || uid == "root"
}

/// What rule `index` finds wrong with a container of metadata `m`.
pub fn findings(index: usize, rule: &Rule, m: &Metadata) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut find = |finding: &'static str, detail: String| {
        out.push(Finding {
            rule: index,
            finding,
            detail,
        })
    };
    if let Some(p) = &rule.posture {
        if p.privileged == Some(Stance::Deny) && m.privileged == Some(true) {
            find("privileged", "the container runs privileged".into());
        }
        if p.root_user == Some(Stance::Deny) && runs_as_root(m) {
            let user = m
                .user
                .as_deref()
                .filter(|u| !u.is_empty())
                .unwrap_or("the image's default (root)");
            find("root_user", format!("runs as {user}"));
        }
        if let (Some(images), Some(image)) = (&p.images, m.image.as_deref()) {
            let allowed = match images {
                List::Allow(globs) => globs.iter().any(|g| g.matches(image)),
                List::Deny(globs) => !globs.iter().any(|g| g.matches(image)),
            };
            if !allowed {
                find("image_not_allowed", format!("image {image}"));
            }
        }
        for mount in &m.mounts {
            if RUNTIME_SOCKETS.contains(&mount.source.as_str()) {
                find(
                    "runtime_socket_mounted",
                    format!("{} mounted at {}", mount.source, mount.destination),
                );
            }
        }
    }
    if let Some(List::Deny(caps)) = &rule.capabilities {
        let held = held_capabilities(m);
        for cap in caps.iter().filter(|c| held & (1 << **c) != 0) {
            find(
                "capability_held",
                format!("holds {} (used or not)", names::capability_name(*cap)),
            );
        }
    }
    out
}

/// Whether rule `rule`'s posture part is violated in a way that stops the violator: a
/// finding under `block` or `kill` (its processes are stopped at exec). Under `audit` the
/// finding line at start says it all; every exec of the container is not a new violation.
pub fn violated(index: usize, rule: &Rule, m: &Metadata) -> bool {
    rule.posture.is_some()
        && rule.action != super::Action::Audit
        && findings(index, rule, m)
            .iter()
            .any(|f| f.finding != "capability_held")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        identity::metadata::Mount,
        policy::model::{Action, Glob, Posture, Selector},
    };

    fn rule() -> Rule {
        Rule {
            name: "posture".into(),
            selector: Selector::default(),
            capabilities: Some(List::Deny(vec![
                names::capability("SYS_ADMIN").unwrap(),
                names::capability("NET_RAW").unwrap(),
            ])),
            syscalls: None,
            exec: None,
            drift: 0,
            escape: false,
            posture: Some(Posture {
                privileged: Some(Stance::Deny),
                root_user: Some(Stance::Deny),
                images: Some(List::Allow(vec![Glob("docker.io/library/*".into())])),
            }),
            action: Action::Kill,
            line: 1,
        }
    }

    #[test]
    fn every_finding() {
        let m = Metadata {
            privileged: Some(true),
            user: Some(String::new()),
            image: Some("quay.io/x/y".into()),
            mounts: vec![Mount {
                source: "/var/run/docker.sock".into(),
                destination: "/var/run/docker.sock".into(),
            }],
            ..Metadata::default()
        };
        let found: Vec<&str> = findings(0, &rule(), &m).iter().map(|f| f.finding).collect();
        assert_eq!(
            found,
            [
                "privileged",
                "root_user",
                "image_not_allowed",
                "runtime_socket_mounted",
                "capability_held",
                "capability_held"
            ]
        );
        assert!(violated(0, &rule(), &m));
    }

    #[test]
    fn a_clean_container() {
        let m = Metadata {
            privileged: Some(false),
            user: Some("1000".into()),
            image: Some("docker.io/library/nginx:1.25".into()),
            cap_drop: vec!["CAP_NET_RAW".into()],
            ..Metadata::default()
        };
        assert!(
            findings(0, &rule(), &m).is_empty(),
            "{:?}",
            findings(0, &rule(), &m)
        );
        assert!(!violated(0, &rule(), &m));
    }

    #[test]
    fn capabilities_held() {
        let m = Metadata {
            cap_add: vec!["CAP_SYS_ADMIN".into()],
            cap_drop: vec!["CAP_NET_RAW".into()],
            ..Metadata::default()
        };
        let held = held_capabilities(&m);
        assert!(held & (1 << 21) != 0, "SYS_ADMIN added");
        assert!(held & (1 << 13) == 0, "NET_RAW dropped");
        assert!(held & (1 << 0) != 0, "CHOWN by default");
        let all = Metadata {
            cap_drop: vec!["ALL".into()],
            ..Metadata::default()
        };
        assert_eq!(held_capabilities(&all), 0);
    }
}
