//! Programs attached while the policy in force needs them (the ingress program, `sys_enter`
//! per judged syscall, the syscall LSM hooks), beside the loader that attaches the always-on
//! ones. `sync_hooks` runs after every install of a policy, at start and at each reload.

use crate::loader;

/// Programs attached only while the policy in force needs them.
pub struct Hooks {
    pub ingress: loader::Ingress,
    pub syscalls: loader::SyscallHooks,
    /// A capability program runs: privileged syscalls are judged at their capability check.
    pub capability_checks: bool,
}

impl Hooks {
    /// Every program attached now: those attached at startup, then the ones the policy in
    /// force needs (the ingress program, `sys_enter` per syscall, syscall LSM hooks).
    pub fn programs(&self, at_startup: &[&'static str]) -> Vec<String> {
        let mut all: Vec<String> = at_startup.iter().map(|p| p.to_string()).collect();
        if self.ingress.attached() {
            all.push("ingress".into());
        }
        all.extend(
            self.syscalls
                .attached()
                .map(|s| format!("sys_enter_{}", loader::tracepoint_name(s))),
        );
        all.extend(self.syscalls.lsm_attached().map(|h| h.to_string()));
        all
    }
}

/// Attaches what the policy in force needs, detaches what it no longer does; the sensor's
/// objects (links included) are then guarded from containers.
pub fn sync_hooks(hooks: &mut Hooks, ebpf: &mut aya::Ebpf, engine: &crate::policy::engine::Engine) {
    attach_for_policy(hooks, ebpf, engine);
    match loader::guard_own_objects(ebpf) {
        Ok(n) => log::debug!("{n} BPF objects of the sensor guarded from containers"),
        Err(e) => log::error!("the sensor's BPF objects cannot be guarded from containers: {e}"),
    }
}

fn attach_for_policy(
    hooks: &mut Hooks,
    ebpf: &mut aya::Ebpf,
    engine: &crate::policy::engine::Engine,
) {
    sync_ingress(&mut hooks.ingress, ebpf, engine.needs_ingress());
    let wanted = engine.hooked_syscalls();
    let before: Vec<&str> = hooks.syscalls.attached().copied().collect();
    match hooks.syscalls.set(ebpf, wanted, hooks.capability_checks) {
        Ok(failed) => {
            let tracing =
                crate::kernel::tracefs::root().is_some_and(|r| r.join("events/syscalls").is_dir());
            for (name, e) in failed {
                if tracing {
                    // The kernel was built without it (no modules, no kexec): the syscall
                    // fails with ENOSYS, there is nothing to enforce.
                    log::info!(
                        "syscall `{name}` is not in this kernel (no syscalls:sys_enter_{name}): its rules have nothing to judge"
                    );
                } else {
                    log::error!(
                        "syscall rules on `{name}` cannot be enforced: this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS) or tracefs is not mounted ({e})"
                    );
                }
            }
        }
        Err(e) => log::error!("syscall rules cannot be enforced: {e}"),
    }
    if let Err(e) = hooks.syscalls.set_lsm(ebpf, &engine.enforced_syscalls()) {
        log::error!("syscall LSM hooks: {e}; `block` kills instead");
    }
    let refused_by_lsm = hooks.syscalls.refused_by_lsm();
    let now: Vec<&str> = hooks.syscalls.attached().copied().collect();
    if now != before {
        let (refused, killed): (Vec<&str>, Vec<&str>) =
            now.iter().partition(|n| refused_by_lsm.contains(n));
        log::info!(
            "syscall tracepoints attached for [{}]; `block` there refuses with EPERM (BPF LSM): [{}], kills at entry: [{}]",
            now.join(", "),
            refused.join(", "),
            killed.join(", ")
        );
    }
    let at_check: Vec<&str> = wanted
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !now.contains(n) && loader::AT_CAPABILITY_CHECK.contains(n))
        .collect();
    if !at_check.is_empty() && hooks.capability_checks {
        log::info!(
            "syscalls judged at their capability check (no tracepoint): [{}]; `block` refuses the check with EPERM where BPF LSM runs, kills elsewhere",
            at_check.join(", ")
        );
    }
}

/// Attaches the ingress program while the policy needs it, detaches it when not.
fn sync_ingress(ingress: &mut loader::Ingress, ebpf: &mut aya::Ebpf, needed: bool) {
    let was = ingress.attached();
    match ingress.set(ebpf, needed) {
        // Unchanged, or nothing to attach (network segmentation is off, said at startup).
        Ok(()) if ingress.attached() == was => {}
        Ok(()) => log::info!(
            "ingress program {}",
            if ingress.attached() {
                "attached: the policy judges inbound flows from CIDR segments"
            } else {
                "detached: no CIDR segment under a deny whose inbound flows are judged"
            }
        ),
        Err(e) => log::error!("inbound flows cannot be judged: {e}"),
    }
}
