//! Container identity from a cgroup v2 path, for every layout the supported runtimes create:
//!
//! | runtime | cgroupfs driver | systemd driver |
//! |---|---|---|
//! | Docker | `/docker/<64 hex>` | `/system.slice/docker-<64 hex>.scope` |
//! | containerd (`ctr`) | `/<namespace>/<id>` | — |
//! | nerdctl | `/<namespace>/<64 hex>` | `/system.slice/nerdctl-<64 hex>.scope` |
//! | Kubernetes + containerd | `/kubepods/<qos>/pod<uid>/<64 hex>` | `…/kubepods-<qos>-pod<uid>.slice/cri-containerd-<64 hex>.scope` |
//! | Kubernetes + CRI-O | `/kubepods/<qos>/pod<uid>/crio-<64 hex>` | `…/crio-<64 hex>.scope` |
//! | Podman | `/libpod_parent/libpod-<64 hex>` | `/machine.slice/libpod-<64 hex>.scope` |
//! | Docker, `--cgroup-parent` | `/<parent…>/<64 hex>` | `/<parent>.slice/docker-<64 hex>.scope` |
//!
//! A bare 64-hex id under a parent no runtime uses by default is *inferred* to be a Docker
//! container's (a custom `--cgroup-parent` with the cgroupfs driver): it is a container only
//! if Docker knows it (`Identity::inferred`); the kernel judges it as one from its creation.
//!
//! The outermost component that names a container wins: whatever a container creates below its
//! own cgroup — sub-cgroups of systemd inside it, the containers of a runtime running inside it
//! (a kind node, Docker in Docker), a cgroup named like another container's
//! (`docker-<other id>.scope`) — is part of that container and judged by its rules. Runtime helper cgroups
//! (`crio-conmon-*`, `libpod-conmon-*`) are not containers.

pub use crate::identity::Runtime;

/// What the cgroup path alone says about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub runtime: Runtime,
    /// Full 64-hex id, or the runtime's own id (`ctr` lets users choose any name).
    pub id: String,
    /// Kubernetes pod UID, dashed form, when the path is under a kubepods hierarchy.
    pub pod_uid: Option<String>,
    /// containerd namespace for `ctr`/nerdctl containers under the cgroupfs layout.
    pub namespace: Option<String>,
    /// Only the id's form says it is a container's (a bare 64-hex id under a parent no
    /// runtime uses by default): a container if its runtime knows it, else the host's.
    pub inferred: bool,
}

/// containerd namespaces recognised in `/<namespace>/<id>` paths. Any other two-level path
/// (`/system.slice/cron.service`) is not a container.
pub const DEFAULT_CONTAINERD_NAMESPACES: &[&str] = &["default", "k8s.io", "moby", "buildkit"];

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `prefix<64 hex>suffix` → the hex id.
fn strip_id<'a>(component: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let id = component.strip_prefix(prefix)?.strip_suffix(suffix)?;
    is_hex64(id).then_some(id)
}

/// Pod UID from a kubepods component: `pod<uid>` (cgroupfs) or `kubepods[-qos]-pod<uid>.slice`
/// (systemd, dashes in the UID replaced by underscores).
fn pod_uid(component: &str) -> Option<String> {
    let raw = if let Some(rest) = component.strip_suffix(".slice") {
        rest.rsplit_once("-pod").map(|(_, uid)| uid)?
    } else {
        component.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    let valid = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    valid.then_some(uid)
}

/// One component, given its parent, as a container of some runtime, and whether that is only
/// inferred from the id's form.
fn component_identity(
    parent: Option<&str>,
    component: &str,
    in_kubepods: bool,
) -> Option<(Runtime, String, bool)> {
    let patterns: [(&str, &str, Runtime); 6] = [
        ("docker-", ".scope", Runtime::Docker),
        ("cri-containerd-", ".scope", Runtime::Containerd),
        ("crio-", ".scope", Runtime::CriO),
        ("libpod-", ".scope", Runtime::Podman),
        ("nerdctl-", ".scope", Runtime::Containerd),
        ("crio-", "", Runtime::CriO),
    ];
    for (prefix, suffix, runtime) in patterns {
        if let Some(id) = strip_id(component, prefix, suffix) {
            return Some((runtime, id.to_owned(), false));
        }
    }
    if parent == Some("libpod_parent")
        && let Some(id) = strip_id(component, "libpod-", "")
    {
        return Some((Runtime::Podman, id.to_owned(), false));
    }
    if is_hex64(component) {
        if parent == Some("docker") {
            return Some((Runtime::Docker, component.to_owned(), false));
        }
        if in_kubepods {
            // The kubelet names every level: only a pod's child is a container.
            return parent
                .is_some_and(|p| pod_uid(p).is_some())
                .then(|| (Runtime::Cri, component.to_owned(), false));
        }
        // Docker's `--cgroup-parent` with the cgroupfs driver puts `<id>` under any parent.
        return Some((Runtime::Docker, component.to_owned(), true));
    }
    None
}

/// Container identity of the cgroup at `path` (relative to the v2 root, starting with `/`),
/// or `None` for host cgroups.
pub fn parse(path: &str, containerd_namespaces: &[&str]) -> Option<Identity> {
    parse_with_own(path, containerd_namespaces).map(|(identity, _)| identity)
}

/// `parse`, with the path of the container's own cgroup: `path` itself, or the ancestor of it
/// that names the container when `path` is one of its sub-cgroups.
pub fn parse_with_own(path: &str, containerd_namespaces: &[&str]) -> Option<(Identity, String)> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let kubepods_at = components
        .iter()
        .position(|c| *c == "kubepods" || c.starts_with("kubepods.") || c.starts_with("kubepods-"));

    let mut found = None;
    for (i, component) in components.iter().enumerate() {
        let parent = i.checked_sub(1).map(|p| components[p]);
        let in_kubepods = kubepods_at.is_some_and(|k| k < i);
        if found.is_some() {
            break;
        }
        // `/<namespace>/<id>` first: nerdctl's cgroupfs ids are 64 hex too.
        if i == 1 && containerd_namespaces.contains(&components[0]) && valid_ctr_id(component) {
            found = Some((
                i,
                Runtime::Containerd,
                component.to_string(),
                Some(components[0].to_owned()),
                false,
            ));
        } else if let Some((runtime, id, inferred)) =
            component_identity(parent, component, in_kubepods)
        {
            found = Some((i, runtime, id, None, inferred));
        }
    }
    let (at, runtime, id, namespace, inferred) = found?;
    let pod_uid = kubepods_at
        .filter(|k| *k < at)
        .and_then(|_| components[..at].iter().rev().find_map(|c| pod_uid(c)));
    let own = format!("/{}", components[..=at].join("/"));
    Some((
        Identity {
            runtime,
            id,
            pod_uid,
            namespace,
            inferred,
        },
        own,
    ))
}

/// containerd's identifier rule: alphanumerics, `.`, `_`, `-`, starting with an alphanumeric,
/// at most 76 bytes.
fn valid_ctr_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !s.ends_with(".scope")
        && !s.ends_with(".slice")
        && !s.ends_with(".service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_cgroup_is_its_containers() {
        let own = format!("/system.slice/docker-{ID}.scope");
        for path in [
            own.clone(),
            format!("{own}/"),
            format!("{own}/init.scope/a/b"),
        ] {
            let (identity, at) = parse_with_own(&path, DEFAULT_CONTAINERD_NAMESPACES).unwrap();
            assert_eq!(
                (identity.id.as_str(), at.as_str()),
                (ID, own.as_str()),
                "{path}"
            );
        }
        let (_, at) = parse_with_own("/default/web1/sub", &["default"]).unwrap();
        assert_eq!(at, "/default/web1");
    }

    const ID: &str = "3f1c2e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e";
    const UID: &str = "0f5e6b1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b";

    fn id(runtime: Runtime, id: &str, pod: Option<&str>, ns: Option<&str>) -> Option<Identity> {
        Some(Identity {
            runtime,
            id: id.into(),
            pod_uid: pod.map(Into::into),
            namespace: ns.map(Into::into),
            inferred: false,
        })
    }

    /// A bare id under a parent no runtime uses by default: Docker's, if Docker knows it.
    fn inferred(id: &str) -> Option<Identity> {
        Some(Identity {
            runtime: Runtime::Docker,
            id: id.into(),
            pod_uid: None,
            namespace: None,
            inferred: true,
        })
    }

    fn cases() -> Vec<(String, Option<Identity>)> {
        let uid_ = UID.replace('-', "_");
        vec![
            // Docker, cgroupfs and systemd drivers.
            (format!("/docker/{ID}"), id(Runtime::Docker, ID, None, None)),
            (
                format!("/system.slice/docker-{ID}.scope"),
                id(Runtime::Docker, ID, None, None),
            ),
            // systemd inside a Docker container: still that container.
            (
                format!("/system.slice/docker-{ID}.scope/system.slice/cron.service"),
                id(Runtime::Docker, ID, None, None),
            ),
            // containerd via ctr: /<namespace>/<id>, ids chosen by the user.
            (
                "/default/web1".into(),
                id(Runtime::Containerd, "web1", None, Some("default")),
            ),
            (
                format!("/k8s.io/{ID}"),
                id(Runtime::Containerd, ID, None, Some("k8s.io")),
            ),
            // nerdctl under systemd.
            (
                format!("/system.slice/nerdctl-{ID}.scope"),
                id(Runtime::Containerd, ID, None, None),
            ),
            // Kubernetes, systemd driver, containerd: pod UID with underscores in the slice.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"
                ),
                id(Runtime::Containerd, ID, Some(UID), None),
            ),
            // Guaranteed QoS has no QoS slice.
            (
                format!("/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope"),
                id(Runtime::Containerd, ID, Some(UID), None),
            ),
            // Kubernetes, systemd driver, CRI-O.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"
                ),
                id(Runtime::CriO, ID, Some(UID), None),
            ),
            // Kubernetes, cgroupfs driver: runtime not in the path.
            (
                format!("/kubepods/burstable/pod{UID}/{ID}"),
                id(Runtime::Cri, ID, Some(UID), None),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/crio-{ID}"),
                id(Runtime::CriO, ID, Some(UID), None),
            ),
            // Podman, cgroupfs and systemd; rootless podman under a user slice.
            (
                format!("/libpod_parent/libpod-{ID}"),
                id(Runtime::Podman, ID, None, None),
            ),
            (
                format!("/machine.slice/libpod-{ID}.scope"),
                id(Runtime::Podman, ID, None, None),
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
                ),
                id(Runtime::Podman, ID, None, None),
            ),
            // Nested: Kubernetes in a kind node (a Docker container) → the outer container;
            // so is a sub-cgroup named like another container.
            (
                format!(
                    "/docker/{ID}/kubepods/burstable/pod{UID}/{}",
                    "a".repeat(64)
                ),
                id(Runtime::Docker, ID, None, None),
            ),
            (
                format!("/docker/{ID}/docker-{}.scope", "b".repeat(64)),
                id(Runtime::Docker, ID, None, None),
            ),
            // Runtime helpers are not containers.
            (format!("/system.slice/crio-conmon-{ID}.scope"), None),
            (format!("/machine.slice/libpod-conmon-{ID}.scope"), None),
            // Pod-level cgroup without a container below it.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"
                ),
                None,
            ),
            // Host cgroups.
            ("/".into(), None),
            ("".into(), None),
            ("/init.scope".into(), None),
            ("/system.slice/cron.service".into(), None),
            ("/user.slice/user-0.slice/session-1.scope".into(), None),
            // Malformed ids: wrong length, uppercase, non-hex.
            ("/docker/abc".into(), None),
            (format!("/docker/{}", ID.to_uppercase()), None),
            (format!("/system.slice/docker-{}.scope", &ID[1..]), None),
            (format!("/system.slice/docker-{}z.scope", &ID[1..]), None),
            // A 64-hex directory under a parent no runtime uses by default: Docker's
            // `--cgroup-parent` with the cgroupfs driver, if Docker knows it.
            (format!("/system.slice/{ID}"), inferred(ID)),
            (format!("/ci/jobs/{ID}"), inferred(ID)),
            (format!("/{ID}"), inferred(ID)),
            (format!("/ci/{ID}/sub"), inferred(ID)),
            // Not inside Kubernetes' own hierarchy, where only a pod's child is a container;
            // nerdctl's cgroupfs ids under a containerd namespace are containerd's.
            (format!("/kubepods/burstable/{ID}"), None),
            (
                format!("/default/{ID}"),
                id(Runtime::Containerd, ID, None, Some("default")),
            ),
            // Unknown containerd namespace and a service name under a known one.
            ("/myns/web1".into(), None),
            ("/default/foo.service".into(), None),
            // A sub-cgroup of a ctr container belongs to it.
            (
                "/default/a/b".into(),
                id(Runtime::Containerd, "a", None, Some("default")),
            ),
        ]
    }

    #[test]
    fn table() {
        for (path, want) in cases() {
            assert_eq!(
                parse(&path, DEFAULT_CONTAINERD_NAMESPACES),
                want,
                "path {path}"
            );
        }
    }

    /// The kernel's `cgroup_mkdir` makes a cgroup a pending container by its own name alone:
    /// every component that names a container here must be one it recognises (the one
    /// exception, `ctr`'s ids chosen by the user, waits for the daemon).
    #[test]
    fn the_kernel_recognises_every_container_component() {
        use sensor_common::cgroup::{NAME_LEN, names_container};
        for (path, _) in cases() {
            let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
            let kubepods_at = components.iter().position(|c| c.starts_with("kubepods"));
            for (i, component) in components.iter().enumerate() {
                let parent = i.checked_sub(1).map(|p| components[p]);
                let in_kubepods = kubepods_at.is_some_and(|k| k < i);
                let mut name = [0u8; NAME_LEN];
                name[..component.len()].copy_from_slice(component.as_bytes());
                if component_identity(parent, component, in_kubepods).is_some() {
                    assert!(
                        names_container(&name, component.len()),
                        "{path}: {component}"
                    );
                }
            }
        }
    }

    #[test]
    fn pod_uids() {
        assert_eq!(pod_uid(&format!("pod{UID}")).as_deref(), Some(UID));
        assert_eq!(
            pod_uid(&format!(
                "kubepods-burstable-pod{}.slice",
                UID.replace('-', "_")
            ))
            .as_deref(),
            Some(UID)
        );
        assert_eq!(pod_uid("podnotauid"), None);
        assert_eq!(pod_uid("kubepods-burstable.slice"), None);
    }
}
