//! The `container` object of every event line, and the list `sensor containers` prints.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Serialize, ser::SerializeStruct as _};

use crate::identity::{Metadata, Runtime};

/// The `container` object of every event line: identity from the cgroup path, plus whatever
/// metadata its runtime gave so far.
pub struct ContainerView<'a> {
    pub id: &'a str,
    pub runtime: Runtime,
    /// Kubernetes pod UID from the cgroup path.
    pub pod_uid: Option<&'a str>,
    /// containerd namespace (`ctr`/nerdctl containers).
    pub namespace: Option<&'a str>,
    pub metadata: Option<Arc<Metadata>>,
}

impl ContainerView<'_> {
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_deref()
    }
}

#[derive(Serialize)]
struct PodView<'a> {
    name: Option<&'a str>,
    namespace: Option<&'a str>,
    uid: &'a str,
    labels: &'a BTreeMap<String, String>,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Serialize for ContainerView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.metadata.as_deref();
        let pod = match (m.and_then(|m| m.pod.as_ref()), self.pod_uid) {
            (Some(p), _) => Some(PodView {
                name: Some(&p.name),
                namespace: Some(&p.namespace),
                uid: &p.uid,
                labels: &p.labels,
            }),
            (None, Some(uid)) => Some(PodView {
                name: None,
                namespace: None,
                uid,
                labels: &NO_LABELS,
            }),
            (None, None) => None,
        };
        let mut st = s.serialize_struct("Container", 13)?;
        st.serialize_field("id", self.id)?;
        st.serialize_field("name", &m.and_then(|m| m.name.as_deref()))?;
        st.serialize_field("image", &m.and_then(|m| m.image.as_deref()))?;
        st.serialize_field("image_id", &m.and_then(|m| m.image_id.as_deref()))?;
        st.serialize_field("runtime", &self.runtime)?;
        st.serialize_field("labels", m.map_or(&NO_LABELS, |m| &m.labels))?;
        st.serialize_field("privileged", &m.and_then(|m| m.privileged))?;
        st.serialize_field("user", &m.and_then(|m| m.user.as_deref()))?;
        st.serialize_field("pod", &pod)?;
        st.serialize_field("networks", m.map_or(&[][..], |m| &m.networks[..]))?;
        st.serialize_field("enriched", &m.is_some())?;
        if let Some(ns) = self.namespace {
            st.serialize_field("namespace", ns)?;
        }
        st.end()
    }
}

/// The list `sensor containers` prints: each container's view with its cgroup id and path,
/// sorted by id.
pub fn inventory<'a>(
    containers: impl Iterator<Item = (ContainerView<'a>, u64, &'a str)>,
) -> serde_json::Value {
    let mut list: Vec<serde_json::Value> = containers
        .map(|(view, cgroup_id, cgroup)| {
            let mut v = serde_json::to_value(view).unwrap_or_default();
            if let serde_json::Value::Object(o) = &mut v {
                o.insert("cgroup_id".into(), cgroup_id.into());
                o.insert("cgroup".into(), cgroup.into());
            }
            v
        })
        .collect();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    serde_json::Value::Array(list)
}
