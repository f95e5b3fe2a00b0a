//! Everything after the ring buffer: decoded event → container attribution → JSON line.
//!
//! A new container's events are held back (bounded by `metadata_wait`) until its metadata is
//! there, so that they go out complete and after its `start` line. Only that container waits:
//! the events of every other container and of the host keep flowing, and its own keep their
//! order.

mod network;

use std::{
    collections::HashMap,
    io,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use sensor_common::kind;
use serde::Serialize;
use serde_json::Value;

use crate::output::PostureBody;
use crate::{
    containers::{Attribution, Container, Maker, Registry, enrich::MetaState},
    events::{Event, capability::Capability, exec::Exec, syscall::Syscall},
    inventory::view,
    metrics::Metrics,
    output::{
        CapabilityBody, CapabilityView, ContainerBody, ExecBody, Line, PolicyBody, Process,
        ProcessRef, Sink, SyscallBody, SyscallView, VerdictView,
    },
    policy::{self, Action, Mode, compile::Subject, engine::Engine},
    syscalls::names::{self, Arch},
    time::Clock,
};

/// Events of one container waiting for its metadata.
struct Held {
    deadline: Instant,
    events: Vec<Event>,
}

pub struct Pipeline<S: Sink> {
    pub registry: Registry,
    pub clock: Clock,
    pub sink: S,
    pub metrics: Arc<Metrics>,
    /// Longest a new container's events wait for its metadata.
    pub metadata_wait: Duration,
    held: HashMap<u64, Held>,
    /// Containers' cgroups that went while processes of theirs lived on elsewhere: their
    /// entries stay (pending) until none does.
    orphans: std::collections::HashSet<u64>,
    /// Executable of each recently exec'd pid, for non-exec events.
    exes: ExeCache,
    /// Counts of repeated capability checks.
    pub summaries: Option<crate::summaries::CapSummaries>,
    /// Counts of repeated network flows.
    pub net_summaries: Option<crate::summaries::NetSummaries>,
    pub sys_summaries: Option<crate::summaries::SysSummaries>,
    /// The policy in force; `None` when the kernel's policy maps are not in use.
    pub engine: Option<Engine>,
}

impl<S: Sink> Pipeline<S> {
    pub fn new(
        registry: Registry,
        sink: S,
        metrics: Arc<Metrics>,
        metadata_wait: Duration,
    ) -> Self {
        Self {
            registry,
            clock: Clock::new(),
            sink,
            metrics,
            metadata_wait,
            held: HashMap::new(),
            orphans: Default::default(),
            exes: ExeCache::default(),
            summaries: None,
            net_summaries: None,
            sys_summaries: None,
            engine: None,
        }
    }

    fn write(&mut self, kind: &'static str, time: &str, body: impl Serialize) -> io::Result<()> {
        self.sink.write_line(&Line { time, kind, body })?;
        self.metrics.lines.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn handle(&mut self, event: Event) -> io::Result<()> {
        match event {
            Event::Exec(_)
            | Event::Capability(_)
            | Event::Network(_)
            | Event::Syscall(_)
            | Event::Escape(_)
            | Event::Tamper(_) => {
                let kind = match &event {
                    Event::Exec(_) => kind::EXEC,
                    Event::Network(_) => kind::NETWORK,
                    Event::Syscall(_) => kind::SYSCALL,
                    Event::Escape(_) => kind::ESCAPE,
                    Event::Tamper(_) => kind::TAMPER,
                    _ => kind::CAPABILITY,
                };
                self.metrics.events[kind as usize].fetch_add(1, Relaxed);
                let cgroup_id = event.header().cgroup_id;
                if let Some(held) = self.held.get_mut(&cgroup_id) {
                    held.events.push(event);
                    return Ok(());
                }
                let attribution = self.registry.lookup(cgroup_id);
                if let Attribution::Container(c) = &attribution
                    && c.cgroup_id == cgroup_id
                    && !c.announced.load(Relaxed)
                    && c.is_pending()
                {
                    // Found by its events rather than its cgroup's creation (a cgroup made
                    // before the sensor's walk finished): the same as at creation.
                    self.container_seen(cgroup_id);
                    self.held.insert(
                        cgroup_id,
                        Held {
                            deadline: Instant::now() + self.metadata_wait,
                            events: vec![event],
                        },
                    );
                    return Ok(());
                }
                self.write_event(&event, attribution)?;
            }
            Event::CgroupMkdir(c) => {
                self.metrics.events[kind::CGROUP_MKDIR as usize].fetch_add(1, Relaxed);
                // The maker's cgroup, as the kernel judged it (its container's, or its own).
                let maker = match self.registry.lookup(c.header.cgroup_id) {
                    Attribution::Container(_) => Maker::Container,
                    Attribution::Host => Maker::Host,
                    Attribution::Unknown => Maker::Unknown,
                };
                match self
                    .registry
                    .cgroup_created(c.id, c.path, c.header.ktime_ns, maker)
                {
                    Some(container) if container.cgroup_id == c.id => {
                        log::debug!(
                            "container {} ({}) in cgroup {}",
                            container.id,
                            container.runtime.as_str(),
                            c.id
                        );
                        // A container for the kernel from now on: host rules stop applying,
                        // and until its metadata says which rules are its own, every rule
                        // does (fail closed). Its fetch, already started, installs them when
                        // it completes.
                        self.container_seen(c.id);
                    }
                    // No entry of its own: a container's sub-cgroup is judged through its
                    // container's, a host cgroup the kernel took for a container's by its
                    // name (`/<64 hex>` under no runtime's parent) is the host's again.
                    _ => {
                        if let Some(engine) = &mut self.engine {
                            engine.container_gone(c.id);
                        }
                    }
                }
                self.update_container_gauge();
            }
            Event::CgroupRmdir(c) => {
                self.metrics.events[kind::CGROUP_RMDIR as usize].fetch_add(1, Relaxed);
                self.release(c.id)?;
                // Its last counts, then forget them.
                self.write_summaries(Some(c.id))?;
                if let Some(summaries) = &mut self.summaries {
                    summaries.forget_cgroup(c.id);
                }
                if let Some(summaries) = &mut self.net_summaries {
                    summaries.forget_cgroup(c.id);
                }
                if let Some(summaries) = &mut self.sys_summaries {
                    summaries.forget_cgroup(c.id);
                }
                let container = self.registry.cgroup_removed(c.id);
                if let Some(engine) = &mut self.engine {
                    engine.container_gone(c.id);
                    // Processes of the container that outlive its cgroup (moved out of it
                    // before it went: `escape`) are still the container's; while any is,
                    // its entry stays, as a pending container's (every rule): never the
                    // host's.
                    if container.is_some() && engine.referenced_cgroups().contains(&c.id) {
                        log::warn!(
                            "cgroup {} went while processes of its container live elsewhere: they are judged by every rule",
                            c.id
                        );
                        self.container_seen(c.id);
                        self.orphans.insert(c.id);
                    }
                }
                if let Some(container) = container {
                    self.announce(&container)?;
                    let time = self.clock.rfc3339(c.header.ktime_ns);
                    self.container_line(&time, "stop", &container)?;
                }
                self.update_container_gauge();
            }
        }
        Ok(())
    }

    fn write_event(&mut self, event: &Event, attribution: Attribution) -> io::Result<()> {
        match event {
            Event::Exec(e) => self.write_exec(e, attribution),
            Event::Capability(c) => self.write_capability(c, attribution),
            Event::Network(n) => self.write_network(n, attribution),
            Event::Syscall(c) => self.write_syscall(c, attribution),
            Event::Escape(e) => self.write_escape(e, attribution),
            Event::Tamper(t) => self.write_tamper(t, attribution),
            Event::CgroupMkdir(_) | Event::CgroupRmdir(_) => Ok(()),
        }
    }

    /// The container of an event (announced first), or `None` for the host.
    fn container_of(&mut self, attribution: Attribution) -> io::Result<Option<Arc<Container>>> {
        Ok(match attribution {
            Attribution::Host => None,
            Attribution::Unknown => {
                self.metrics.unresolved_cgroups.fetch_add(1, Relaxed);
                None
            }
            Attribution::Container(c) => {
                self.announce(&c)?;
                Some(c)
            }
        })
    }

    fn write_escape(
        &mut self,
        e: &crate::events::escape::Escape,
        attribution: Attribution,
    ) -> io::Result<()> {
        let container = self.container_of(attribution)?;
        let time = self.clock.rfc3339(e.header.ktime_ns);
        let verdict = self.verdict(&e.header, e.verdict);
        let to = self.registry.path(e.to_cgroup).map(str::to_owned);
        let exe = self.exes.get(e.header.pid);
        let body = crate::output::EscapeBody {
            escape: crate::output::EscapeView {
                pid: e.moved_pid,
                via: e.via,
                to_cgroup: e.to_cgroup,
                to_path: to.as_deref(),
            },
            process: process_ref(&e.header, exe.as_deref()),
            container: container.as_deref().map(view),
            verdict,
        };
        self.write("escape", &time, body)
    }

    /// Not a policy verdict: the sensor's guard of its own objects, always enforced.
    fn write_tamper(
        &mut self,
        t: &crate::events::tamper::Tamper,
        attribution: Attribution,
    ) -> io::Result<()> {
        let container = self.container_of(attribution)?;
        let time = self.clock.rfc3339(t.header.ktime_ns);
        let action = Action::from_code(t.verdict.action).unwrap_or(Action::Kill);
        let verdict = self.verdict_view("sensor.guard", action, t.verdict);
        let exe = self.exes.get(t.header.pid);
        let body = crate::output::TamperBody {
            tamper: crate::output::TamperView {
                object: t.object,
                id: t.id,
            },
            process: process_ref(&t.header, exe.as_deref()),
            container: container.as_deref().map(view),
            verdict,
        };
        self.write("tamper", &time, body)
    }

    fn write_syscall(&mut self, call: &Syscall, attribution: Attribution) -> io::Result<()> {
        let container = self.container_of(attribution)?;
        let time = self.clock.rfc3339(call.header.ktime_ns);
        let verdict = self.verdict(&call.header, call.verdict);
        let exe = self.exes.get(call.header.pid);
        let name = names::syscall_name(Arch::native(), call.nr);
        let body = SyscallBody {
            syscall: SyscallView {
                name,
                nr: call.nr,
                args: name
                    .map(|n| crate::events::syscall::decoded_args(n, call))
                    .unwrap_or_default(),
                raw_args: call.args,
                seen_at: seen_at_name(call.seen_at),
                compat: call.compat,
                count: None,
            },
            process: Some(process_ref(&call.header, exe.as_deref())),
            container: container.as_deref().map(view),
            verdict,
            summary: false,
        };
        self.write("syscall", &time, body)
    }

    fn write_capability(&mut self, cap: &Capability, attribution: Attribution) -> io::Result<()> {
        let container = self.container_of(attribution)?;
        let time = self.clock.rfc3339(cap.header.ktime_ns);
        let verdict = self.verdict(&cap.header, cap.verdict);
        let exe = self.exes.get(cap.header.pid);
        let body = CapabilityBody {
            capability: CapabilityView {
                name: names::capability_name(cap.cap),
                granted: cap.granted,
                quiet: cap.quiet,
                count: 1,
            },
            syscall: syscall_name(cap.syscall),
            process: Some(process_ref(&cap.header, exe.as_deref())),
            container: container.as_deref().map(view),
            verdict,
            summary: false,
        };
        self.write("capability", &time, body)
    }

    /// Summary lines for the capability checks counted since the last ones (of one cgroup, or
    /// of all).
    pub fn write_summaries(&mut self, only_cgroup: Option<u64>) -> io::Result<()> {
        self.write_network_summaries(only_cgroup)?;
        self.write_syscall_summaries(only_cgroup)?;
        let Some(summaries) = &mut self.summaries else {
            return Ok(());
        };
        let deltas = summaries.collect(only_cgroup);
        if deltas.is_empty() {
            return Ok(());
        }
        let time = self.clock.now_rfc3339();
        for (key, count) in deltas {
            let container = self.registry.container(key.cgroup_id).cloned();
            let verdict = match (&self.engine, key.granted != 0 && key.quiet == 0) {
                (Some(engine), true) => engine.capability_rule(key.cgroup_id, u32::from(key.cap)),
                _ => None,
            };
            let mode = self.engine.as_ref().map(|e| e.mode());
            let verdict = verdict.map(|(name, action)| {
                VerdictView::new(intern(&name), action, mode == Some(Mode::Enforce))
            });
            let body = CapabilityBody {
                capability: CapabilityView {
                    name: names::capability_name(u32::from(key.cap)),
                    granted: key.granted != 0,
                    quiet: key.quiet != 0,
                    count,
                },
                syscall: syscall_name(key.syscall),
                process: None,
                container: container.as_deref().map(view),
                verdict,
                summary: true,
            };
            self.metrics.capability_checks.fetch_add(count, Relaxed);
            self.write("capability", &time, body)?;
        }
        Ok(())
    }

    /// Judged syscalls beyond the first of each kind: one line per (container, syscall,
    /// verdict) with the count since the last.
    fn write_syscall_summaries(&mut self, only_cgroup: Option<u64>) -> io::Result<()> {
        let Some(summaries) = &mut self.sys_summaries else {
            return Ok(());
        };
        let deltas = summaries.collect(only_cgroup);
        if deltas.is_empty() {
            return Ok(());
        }
        let time = self.clock.now_rfc3339();
        for (key, count) in deltas {
            let container = self.registry.container(key.cgroup_id).cloned();
            let v = sensor_common::policy::Verdict {
                rule: key.rule,
                ruleset: key.ruleset,
                action: key.action,
                enforced: key.enforced,
                generation: key.generation,
                mode: key.mode,
                ..Default::default()
            };
            let header = crate::events::Header {
                ktime_ns: 0,
                cgroup_id: key.cgroup_id,
                pid: 0,
                tid: 0,
                ppid: 0,
                uid: 0,
                gid: 0,
                comm: String::new(),
                moved: false,
            };
            let verdict = self.verdict(&header, v);
            let name = names::syscall_name(Arch::native(), key.nr);
            let body = SyscallBody {
                syscall: SyscallView {
                    name,
                    nr: key.nr,
                    args: Default::default(),
                    raw_args: [0; 6],
                    seen_at: seen_at_name(key.seen_at),
                    compat: key.compat != 0,
                    count: Some(count),
                },
                process: None,
                container: container.as_deref().map(view),
                verdict,
                summary: true,
            };
            self.write("syscall", &time, body)?;
        }
        Ok(())
    }

    fn write_exec(&mut self, exec: &Exec, attribution: Attribution) -> io::Result<()> {
        self.exes.insert(exec.header.pid, &exec.filename);
        let container = self.container_of(attribution)?;
        let time = self.clock.rfc3339(exec.header.ktime_ns);
        let verdict = self.verdict(&exec.header, exec.verdict);
        let judged = verdict.is_some();
        let body = ExecBody {
            process: Process {
                pid: exec.header.pid,
                ppid: exec.header.ppid,
                uid: exec.header.uid,
                gid: exec.header.gid,
                comm: &exec.header.comm,
                exe: &exec.filename,
                args: &exec.args,
            },
            container: container.as_deref().map(view),
            verdict,
            truncated: exec.truncated,
            drift: exec.drift,
            file: exec.file.as_deref(),
            origin: exec.origin,
            metadata_changed: exec.metadata_changed,
            script: exec.script,
            loader: exec.loader,
            matched: exec.matched.as_ref().filter(|_| judged).map(|(by, path)| {
                crate::output::MatchedView {
                    by,
                    path: path.as_deref(),
                }
            }),
        };
        self.write("exec", &time, body)
    }

    /// A kernel verdict as event fields, counted per rule.
    fn verdict(
        &mut self,
        header: &crate::events::Header,
        v: sensor_common::policy::Verdict,
    ) -> Option<VerdictView<'static>> {
        let action = Action::from_code(v.action)?;
        let engine = self.engine.as_mut()?;
        let Some(rule) = engine.rule(&v) else {
            log::warn!(
                "verdict for pid {} names unknown rule {} (generation {})",
                header.pid,
                v.rule,
                v.generation
            );
            return None;
        };
        // Rule names live as long as the engine keeps the generation; the line is written at
        // once, so a leaked copy is avoided by interning the names.
        let name = intern(&rule.name);
        Some(self.verdict_view(name, action, v))
    }

    /// Verdict fields for rule `name` whose action is `action`, counted per rule.
    fn verdict_view(
        &self,
        name: &'static str,
        action: Action,
        v: sensor_common::policy::Verdict,
    ) -> VerdictView<'static> {
        let enforce = v.mode == 1;
        let enforced = enforce && action != Action::Audit;
        let enforced_by = match v.enforced {
            sensor_common::policy::ENFORCED_SIGNAL => Some("signal"),
            sensor_common::policy::ENFORCED_LSM => Some("lsm"),
            sensor_common::policy::ENFORCED_CGROUP => Some("cgroup"),
            _ => None,
        };
        let view = VerdictView {
            enforced: enforced.then_some(enforced_by.is_some()),
            enforced_by: enforced_by.filter(|_| enforced),
            ..VerdictView::new(name, action, enforce)
        };
        self.metrics
            .count_rule(name, enforced_by.is_some(), !enforced);
        view
    }

    /// Writes the held events of a container, in order, after its start line.
    fn release(&mut self, cgroup_id: u64) -> io::Result<()> {
        let Some(held) = self.held.remove(&cgroup_id) else {
            return Ok(());
        };
        for event in held.events {
            let attribution = self.registry.lookup(cgroup_id);
            self.write_event(&event, attribution)?;
        }
        Ok(())
    }

    /// Releases every held event (at shutdown).
    pub fn release_all(&mut self) -> io::Result<()> {
        let ids: Vec<u64> = self.held.keys().copied().collect();
        for id in ids {
            self.release(id)?;
        }
        Ok(())
    }

    /// Releases containers whose metadata did not arrive in time; their events go out with
    /// the container id and `"enriched": false`.
    pub fn expire(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let late: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.metrics.metadata_late.fetch_add(1, Relaxed);
            if let (Some(engine), Some(c)) = (&mut self.engine, self.registry.container(id)) {
                // Rules whose selectors need no metadata still apply.
                if let Err(e) = engine.container_ready(id, &Subject::container(c.runtime, None)) {
                    log::error!("policy for container {}: {e}", c.id);
                }
            }
            self.release(id)?;
        }
        if let Some(engine) = &mut self.engine {
            engine.retire(false);
        }
        Ok(())
    }

    /// The container's posture findings, once its metadata is known.
    fn judge_posture(&mut self, c: &Container) -> io::Result<()> {
        let Some(metadata) = c.metadata() else {
            return Ok(());
        };
        let Some(engine) = &self.engine else {
            return Ok(());
        };
        if c.posture_judged.swap(true, Relaxed) {
            return Ok(());
        }
        let findings = engine.findings(&Subject::container(c.runtime, Some(&metadata)));
        let mode = engine.mode();
        let time = self.clock.now_rfc3339();
        for (finding, rule) in findings {
            // Holding a capability is only reported: its use is what a capability rule acts on.
            let action = if finding.finding == "capability_held" {
                Action::Audit
            } else {
                rule.action
            };
            let enforce = mode == Mode::Enforce;
            let body = PostureBody {
                finding: finding.finding,
                detail: &finding.detail,
                container: view(c),
                verdict: VerdictView::new(intern(&rule.name), action, enforce),
            };
            self.metrics
                .count_rule(&rule.name, false, !enforce || action == Action::Audit);
            self.write("posture", &time, body)?;
        }
        Ok(())
    }

    /// The kernel judges cgroup `cgroup_id` as a container whose metadata is pending (a no-op
    /// once its rules are installed).
    fn container_seen(&mut self, cgroup_id: u64) {
        if let Some(engine) = &mut self.engine
            && let Err(e) = engine.container_seen(cgroup_id)
        {
            log::error!("policy for the container in cgroup {cgroup_id}: {e}");
        }
    }

    /// Cgroups the kernel made containers at their creation that the daemon has not read
    /// (the event was lost on a full ring, or is still queued): a container's own cgroup gets
    /// the pending ruleset and its metadata fetch; any other (a host cgroup, a container's
    /// sub-cgroup, judged through its container's entry) loses its entry. Run at every
    /// reload and periodically.
    pub fn reconcile_cgroups(&mut self) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if !self.orphans.is_empty() {
            let referenced = engine.referenced_cgroups();
            self.orphans.retain(|id| {
                let live = referenced.contains(id);
                if !live {
                    engine.container_gone(*id);
                }
                live
            });
        }
        let untracked = engine.untracked();
        for id in untracked {
            let demote = match self.registry.lookup(id) {
                Attribution::Container(c) if c.cgroup_id == id => {
                    self.container_seen(id);
                    false
                }
                // Gone, or not resolvable (a refused file handle): kept, fail closed; its
                // rmdir, when read, removes it.
                Attribution::Unknown => false,
                Attribution::Container(_) | Attribution::Host => true,
            };
            if demote && let Some(engine) = &mut self.engine {
                engine.container_gone(id);
            }
        }
    }

    /// A metadata fetch finished: install the container's rules, announce it, release its
    /// held events.
    pub fn fetched(&mut self, cgroup_id: u64) -> io::Result<()> {
        // Why no runtime knows an inferred container (the borrow ends here).
        let unknown = self
            .registry
            .container(cgroup_id)
            .filter(|c| c.inferred)
            .and_then(|c| match &*c.meta.borrow() {
                MetaState::Unknown(why) => Some(why.clone()),
                _ => None,
            });
        // Unless processes identified as its own live outside it (moved out, `escape`), or
        // it is gone: a container Docker removed already (`--rm`) whose processes must not
        // become the host's. A host cgroup's processes are all inside it.
        // The processes as they were no earlier than the cgroup's creation, and a quarter of
        // a second at most: thousands of cgroups named like containers that a privileged
        // container made before the sensor started (no creation time) share one walk of
        // `PROC_IDENTITY`.
        let age = self
            .registry
            .container(cgroup_id)
            .and_then(|c| c.created_ns)
            .map_or(u64::MAX, |t| crate::time::boottime_ns().saturating_sub(t));
        let max_age = Duration::from_nanos(age).min(Duration::from_millis(250));
        let kept = unknown.is_some()
            && self.engine.as_mut().is_some_and(|engine| {
                engine
                    .processes_of(cgroup_id, max_age)
                    .iter()
                    .any(|pid| self.registry.process_outside(*pid, cgroup_id))
            });
        if kept {
            log::warn!(
                "cgroup {cgroup_id}: no runtime knows it, but processes identified as its container's live outside it: kept as a container, judged by every rule"
            );
        }
        if let Some(why) = unknown
            && !kept
            && self.registry.disown(cgroup_id)
        {
            // A host cgroup that only looked like a container's (`/<parent>/<64 hex>`): the
            // host's again, and so are its events held meanwhile.
            log::info!(
                "cgroup {} ({}) is no container: {why}; it is the host's",
                cgroup_id,
                self.registry.path(cgroup_id).unwrap_or("?")
            );
            if let Some(engine) = &mut self.engine {
                engine.container_gone(cgroup_id);
            }
            self.update_container_gauge();
            return self.release(cgroup_id);
        }
        if let Some(c) = self.registry.container(cgroup_id).cloned() {
            if let Some(engine) = &mut self.engine {
                let metadata = c.metadata();
                match engine.container_ready(
                    cgroup_id,
                    &Subject::container(c.runtime, metadata.as_deref()),
                ) {
                    Ok(ruleset) => log::debug!(
                        "container {}: ruleset {ruleset} installed {:.2} ms after its cgroup appeared",
                        c.id,
                        c.created_ns
                            .map(|t| crate::time::boottime_ns().saturating_sub(t) as f64 / 1e6)
                            .unwrap_or(0.0)
                    ),
                    Err(e) => log::error!("policy for container {}: {e}", c.id),
                }
            }
            self.announce(&c)?;
            self.judge_posture(&c)?;
        }
        self.release(cgroup_id)
    }

    fn policy_line(
        &mut self,
        source: &policy::Source,
        loaded: Option<&policy::engine::Loaded>,
        warnings: &[String],
        errors: &[String],
    ) -> io::Result<()> {
        let time = self.clock.now_rfc3339();
        self.write(
            "policy",
            &time,
            PolicyBody {
                event: if loaded.is_some() {
                    "loaded"
                } else {
                    "rejected"
                },
                origin: &source.origin,
                hash: loaded.map(|l| l.hash.as_str()),
                mode: loaded.map(|l| l.mode.as_str()),
                rules: loaded.map(|l| l.rules),
                install_ms: loaded.map(|l| l.took.as_secs_f64() * 1e3),
                warnings,
                errors,
            },
        )
    }

    /// The `loaded` line of the policy installed at startup.
    pub fn policy_loaded(
        &mut self,
        source: &policy::Source,
        parsed: &policy::Parsed,
        loaded: &policy::engine::Loaded,
    ) -> io::Result<()> {
        let warnings: Vec<String> = parsed
            .warnings
            .iter()
            .map(|w| format!("{}:{w}", source.origin))
            .collect();
        log::info!(
            "policy {} from {}: {} rules, mode {}",
            loaded.hash,
            source.origin,
            loaded.rules,
            loaded.mode.as_str()
        );
        self.policy_line(source, Some(loaded), &warnings, &[])
    }

    /// Loads a new policy over every known container, or reports why not; the old policy
    /// stays in force on any error.
    pub fn reload(&mut self, source: &policy::Source) -> io::Result<()> {
        let parsed = match policy::parse_source(source) {
            Ok(p) => p,
            Err(rejected) => {
                let errors = rejected.lines();
                for e in &errors {
                    log::error!("policy rejected: {e}");
                }
                return self.policy_line(source, None, &[], &errors);
            }
        };
        self.reconcile_cgroups();
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        let containers: Vec<Arc<Container>> = self
            .registry
            .containers()
            .filter(|c| !c.is_pending())
            .cloned()
            .collect();
        let metadata: Vec<_> = containers.iter().map(|c| c.metadata()).collect();
        let subjects: Vec<(u64, Subject<'_>)> = containers
            .iter()
            .zip(&metadata)
            .map(|(c, m)| (c.cgroup_id, Subject::container(c.runtime, m.as_deref())))
            .collect();
        match engine.load(source, &parsed, subjects) {
            Ok(loaded) => {
                let warnings: Vec<String> = parsed
                    .warnings
                    .iter()
                    .map(|w| format!("{}:{w}", source.origin))
                    .collect();
                log::info!(
                    "policy {} loaded from {}: {} rules, {} rulesets over {} containers, mode {}, installed in {:.1} ms",
                    loaded.hash,
                    source.origin,
                    loaded.rules,
                    loaded.rulesets,
                    loaded.containers,
                    loaded.mode.as_str(),
                    loaded.took.as_secs_f64() * 1e3
                );
                self.policy_line(source, Some(&loaded), &warnings, &[])
            }
            Err(e) => {
                let errors = vec![format!("{}: {e}", source.origin)];
                log::error!("policy rejected: {}", errors[0]);
                self.policy_line(source, None, &[], &errors)
            }
        }
    }

    /// Writes the container's `start` line once.
    fn announce(&mut self, c: &Container) -> io::Result<()> {
        if !c.announce() {
            return Ok(());
        }
        let time = self.clock.now_rfc3339();
        self.container_line(&time, "start", c)
    }

    fn container_line(&mut self, time: &str, event: &'static str, c: &Container) -> io::Result<()> {
        let state = c.meta.borrow().clone();
        let (metadata_ms, error) = match (&state, event) {
            (MetaState::Ready { ready_boot_ns, .. }, "start") => (
                c.created_ns
                    .map(|created| ready_boot_ns.saturating_sub(created) as f64 / 1e6),
                None,
            ),
            (MetaState::Unavailable(why) | MetaState::Unknown(why), "start") => {
                (None, Some(why.as_str()))
            }
            (MetaState::Pending, "start") => (None, Some("metadata still pending")),
            _ => (None, None),
        };
        let body = ContainerBody {
            event,
            container: view(c),
            at_startup: event == "start" && c.created_ns.is_none(),
            metadata_ms,
            metadata_error: error,
        };
        self.write("container", time, body)
    }

    pub fn update_container_gauge(&self) {
        self.metrics
            .containers
            .store(self.registry.containers().count() as u64, Relaxed);
    }

    /// `GET /containers`: what the sensor sees, one object per container.
    pub fn containers_json(&self) -> Value {
        crate::inventory::list(&self.registry)
    }

    pub fn sensor_line(&mut self, body: impl Serialize) -> io::Result<()> {
        let time = self.clock.now_rfc3339();
        self.write("sensor", &time, body)?;
        self.sink.flush()
    }
}

/// Rule names as `&'static str` for event lines: a policy has few rules and reloads are
/// rare, so keeping each distinct name once for the life of the process is bounded.
/// `"seen_at"` of a syscall line.
fn seen_at_name(seen_at: u8) -> &'static str {
    use sensor_common::syscall::*;
    match seen_at {
        SEEN_AT_CAPABILITY => "capability_check",
        SEEN_AT_LSM => "lsm_hook",
        SEEN_AT_IO_URING => "io_uring",
        SEEN_AT_FORK => "fork",
        SEEN_AT_RING_CREATE => "io_uring_create",
        _ => "entry",
    }
}

fn intern(name: &str) -> &'static str {
    use std::{collections::HashSet, sync::Mutex};
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let set = names.get_or_insert_with(HashSet::new);
    if let Some(n) = set.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Syscall name of a number on this architecture.
fn syscall_name(nr: i32) -> Option<&'static str> {
    u32::try_from(nr)
        .ok()
        .and_then(|nr| names::syscall_name(Arch::native(), nr))
}

/// pid → executable of its last exec, bounded (oldest dropped first).
#[derive(Default)]
struct ExeCache {
    by_pid: HashMap<u32, Arc<str>>,
    order: std::collections::VecDeque<u32>,
}

impl ExeCache {
    const CAPACITY: usize = 32_768;

    fn insert(&mut self, pid: u32, exe: &str) {
        if self.by_pid.insert(pid, Arc::from(exe)).is_none() {
            self.order.push_back(pid);
            if self.order.len() > Self::CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.by_pid.remove(&old);
            }
        }
    }

    fn get(&self, pid: u32) -> Option<Arc<str>> {
        self.by_pid.get(&pid).cloned()
    }
}

/// The `process` part of a line, from an event's header and the executable the daemon knows.
fn process_ref<'a>(h: &'a crate::events::Header, exe: Option<&'a str>) -> ProcessRef<'a> {
    ProcessRef {
        pid: h.pid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        comm: &h.comm,
        exe,
    }
}
