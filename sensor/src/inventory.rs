//! `sensor containers`: the containers the running sensor sees, from its API socket; without a
//! running sensor, a direct scan of the cgroup tree and the runtimes' APIs.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::{
    containers::{
        Container, Registry, cgroupfs,
        enrich::{Enricher, MetaState, Sockets},
    },
    http::UnixHttp,
    kernel::preflight,
    output::ContainerView,
};

pub struct Options {
    pub json: bool,
    pub api_socket: PathBuf,
    pub sockets: Sockets,
    pub runtime_timeout: Duration,
    pub metadata_wait: Duration,
    pub containerd_namespaces: Vec<String>,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let list = runtime.block_on(async {
        if opts.api_socket.exists() {
            let api = UnixHttp::new(opts.api_socket.clone(), Duration::from_secs(5));
            match api.get_json("/containers").await {
                Ok((status, v)) if status.is_success() => return Ok(v),
                Ok((status, _)) => log::warn!("{} answered {status}", opts.api_socket.display()),
                Err(e) => log::warn!("{e}"),
            }
        }
        eprintln!(
            "sensor: no running sensor answers on {}; scanning cgroups and runtimes directly",
            opts.api_socket.display()
        );
        scan(opts).await
    })?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", table(&list));
    }
    Ok(())
}

async fn scan(opts: &Options) -> anyhow::Result<Value> {
    preflight::require_root()?;
    let root = cgroupfs::v2_mount()?.context("no cgroup v2 hierarchy is mounted")?;
    let enricher = Arc::new(Enricher::new(
        &opts.sockets,
        opts.runtime_timeout,
        opts.metadata_wait,
    ));
    let (done, _rx) = mpsc::unbounded_channel();
    let registry = Registry::scan(&root, opts.containerd_namespaces.clone(), enricher, done);
    let deadline = tokio::time::Instant::now() + opts.metadata_wait;
    for c in registry.containers() {
        let mut rx = c.meta.subscribe();
        let _ =
            tokio::time::timeout_at(deadline, rx.wait_for(|s| !matches!(s, MetaState::Pending)))
                .await;
    }
    Ok(list(&registry))
}

/// The `container` object of `c`'s lines: its identity and the metadata known now.
pub fn view(c: &Container) -> ContainerView<'_> {
    ContainerView {
        id: &c.id,
        runtime: c.runtime,
        pod_uid: c.pod_uid.as_deref(),
        namespace: c.namespace.as_deref(),
        metadata: c.metadata(),
    }
}

/// Every known container with its cgroup, as `sensor containers` lists them.
pub fn list(registry: &Registry) -> Value {
    crate::output::container::inventory(registry.containers().map(|c| {
        let cgroup = registry.path(c.cgroup_id).unwrap_or_default();
        (view(c), c.cgroup_id, cgroup)
    }))
}

/// `CGROUP RUNTIME ID NAME IMAGE POD` columns.
pub fn table(list: &Value) -> String {
    let rows: Vec<[String; 6]> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let s = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| "-".into());
                    let pod = match (&c["pod"]["namespace"], &c["pod"]["name"], &c["pod"]["uid"]) {
                        (Value::String(ns), Value::String(n), _) => format!("{ns}/{n}"),
                        (_, _, Value::String(uid)) => uid.clone(),
                        _ => "-".into(),
                    };
                    let id = s(&c["id"]);
                    [
                        c["cgroup_id"].to_string(),
                        s(&c["runtime"]),
                        id.chars().take(12).collect(),
                        s(&c["name"]),
                        s(&c["image"]),
                        pod,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let header = ["CGROUP", "RUNTIME", "ID", "NAME", "IMAGE", "POD"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns() {
        let list = serde_json::json!([
            {"cgroup_id": 12, "runtime": "docker", "id": "3f1c2e9a8b7d6c5e4f3a", "name": "web1", "image": "local/busybox", "pod": null},
            {"cgroup_id": 345, "runtime": "containerd", "id": "abc", "name": "app", "image": "nginx",
             "pod": {"name": "demo", "namespace": "default", "uid": "u-1", "labels": {}}},
            {"cgroup_id": 6, "runtime": "cri", "id": "def", "name": null, "image": null,
             "pod": {"name": null, "namespace": null, "uid": "u-2", "labels": {}}},
        ]);
        assert_eq!(
            table(&list),
            "CGROUP  RUNTIME     ID            NAME  IMAGE          POD\n\
             12      docker      3f1c2e9a8b7d  web1  local/busybox  -\n\
             345     containerd  abc           app   nginx          default/demo\n\
             6       cri         def           -     -              u-2\n"
        );
    }
}
