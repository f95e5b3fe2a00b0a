//! Loads the embedded kernel object, fills in the kernel's field offsets, and attaches the
//! programs. One `Loaded` owns everything: dropping it detaches and unloads every program.

use sensor_common::names::{global, map};
use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, ProgramError,
        RawTracePoint, TracePoint,
    },
};
use sensor_common::{capability::CapConfig, network::NetworkHooks, offsets::KernelOffsets};

use crate::kernel::{self, Btf};

/// The kernel programs, compiled from `sensor-ebpf` by `build.rs` and embedded in the binary.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// Raw tracepoints the daemon always attaches: (program name = tracepoint name). The cgroup
/// hooks come first so that no container cgroup can appear unseen between them and the exec
/// hook.
pub const RAW_TRACEPOINTS: &[&str] = &[
    "cgroup_mkdir",
    "cgroup_rmdir",
    "cgroup_attach_task",
    "sched_process_fork",
    "sched_process_exit",
    "sched_process_exec",
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading kernel BTF from {path}: {source}")]
    Btf {
        path: PathBuf,
        source: kernel::btf::BtfError,
    },
    #[error("creating the sensor's BPF maps: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("program {name} is missing from the embedded object (build mismatch)")]
    MissingProgram { name: String },
    #[error("program {name}: {detail}")]
    Program { name: String, detail: String },
    #[error("pinning maps under {dir}: {source}")]
    Pin {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Describes a program error in one line: a failed load names the errno and the verifier's last
/// few lines (its message and statistics) instead of dumping the whole log (set
/// SENSOR_VERIFIER_LOG=1 for all of it).
pub fn describe(err: &ProgramError) -> String {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            if std::env::var_os("SENSOR_VERIFIER_LOG").is_some() {
                return format!("the kernel refused to load it: {io_error}; verifier log:\n{log}");
            }
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| !l.trim().is_empty())
                .rev()
                .take(6)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            if tail.is_empty() {
                format!("the kernel refused to load it: {io_error}")
            } else {
                format!(
                    "the kernel refused to load it: {io_error} (verifier: {})",
                    tail.join(" / ")
                )
            }
        }
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(e) = src {
                s.push_str(": ");
                s.push_str(&e.to_string());
                src = e.source();
            }
            s
        }
    }
}

pub struct LoadOptions {
    pub btf_path: PathBuf,
    /// Attach the BPF LSM programs (the kernel allows them: `sensor probe`).
    pub lsm: bool,
    /// Attach `capability:cap_capable` (the kernel has it).
    pub cap_tracepoint: bool,
    /// Attach `fexit/security_capable` (the kernel allows trampolines); preferred over the
    /// tracepoint: it sees the no-audit option.
    pub cap_fexit: bool,
    /// Size of the event ring buffer; a power of two multiple of the page size.
    pub ring_buffer_bytes: u32,
    /// Attach the network programs at this cgroup v2 root (the kernel allows cgroup socket
    /// programs), with what they may call.
    pub network: Option<(PathBuf, NetworkHooks)>,
}

pub struct Loaded {
    pub ebpf: Ebpf,
    pub offsets: KernelOffsets,
    /// Offsets the kernel's BTF did not have; the fields they feed stay empty.
    pub missing_offsets: Vec<&'static str>,
    pub attached: Vec<&'static str>,
    /// Why network segmentation is off, when it is.
    pub network_error: Option<String>,
    /// Kernel BTF for loading the syscall LSM hooks later, where BPF LSM runs.
    pub lsm_btf: Option<aya::Btf>,
}

/// Parses the kernel BTF at `path`.
pub fn read_btf(path: &Path) -> Result<Btf, LoadError> {
    Btf::from_file(path).map_err(|source| LoadError::Btf {
        path: path.to_owned(),
        source,
    })
}

/// Values the programs read from their read-only data, set before load.
#[derive(Clone, Copy, Debug, Default)]
pub struct Globals {
    /// Layout of the `capability:cap_capable` record, and whether `lsm/capable` reports the
    /// granted checks (the tracepoint then reports refusals only).
    pub cap_config: CapConfig,
    /// What the network programs may call.
    pub network_hooks: NetworkHooks,
}

/// Creates the maps with the kernel's offsets filled in, without loading any program.
pub fn open(
    btf: &Btf,
    ring_buffer_bytes: u32,
    globals: Globals,
) -> Result<(Ebpf, KernelOffsets, Vec<&'static str>), LoadError> {
    let (offsets, missing) = kernel::resolve_offsets(btf);
    // Wake the daemon early once an eighth of the buffer is pending, well before it can fill.
    let wakeup_bytes = u64::from(ring_buffer_bytes / 8);
    let ebpf = EbpfLoader::new()
        .override_global(global::OFFSETS, &offsets, true)
        .override_global(global::WAKEUP_BYTES, &wakeup_bytes, true)
        .override_global(global::CAP_CONFIG, &globals.cap_config, true)
        .override_global(global::NETWORK_HOOKS, &globals.network_hooks, true)
        .map_max_entries(map::EVENTS, ring_buffer_bytes)
        .load(OBJECT)?;
    Ok((ebpf, offsets, missing))
}

/// Loads and attaches the always-on programs.
pub fn load(opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let btf = read_btf(&opts.btf_path)?;
    let mut globals = Globals::default();
    let cap_tracepoint = opts.cap_tracepoint && !opts.cap_fexit;
    globals.cap_config.refused_only = u32::from(opts.lsm);
    if let Some((_, hooks)) = &opts.network {
        globals.network_hooks = *hooks;
    }
    let (mut ebpf, offsets, missing_offsets) = open(&btf, opts.ring_buffer_bytes, globals)?;
    fill_compat_syscalls(&mut ebpf)?;
    let mut attached = Vec::new();
    for &name in RAW_TRACEPOINTS {
        attach_raw_tracepoint(&mut ebpf, name, name)?;
        attached.push(name);
    }
    if cap_tracepoint {
        // As a raw tracepoint: the arguments directly, without the perf record the
        // `capability:cap_capable` event would fill first (half the cost of a check).
        attach_raw_tracepoint(&mut ebpf, "cap_capable", "cap_capable")?;
        attached.push("cap_capable");
    }
    let kernel_btf = if opts.lsm || opts.cap_fexit {
        Some(aya::Btf::from_sys_fs().map_err(|e| LoadError::Program {
            name: "security_capable".into(),
            detail: format!("reading kernel BTF: {e}"),
        })?)
    } else {
        None
    };
    if let (true, Some(btf)) = (opts.cap_fexit, &kernel_btf) {
        let prog: &mut aya::programs::FExit = program(&mut ebpf, "security_capable")?;
        prog.load("security_capable", btf)
            .map_err(|e| program_error("security_capable", &e))?;
        prog.attach()
            .map_err(|e| program_error("security_capable", &e))?;
        attached.push("security_capable");
    }
    if let (true, Some(btf)) = (opts.lsm, &kernel_btf) {
        for &(name, hook) in LSM_HOOKS {
            attach_lsm(&mut ebpf, name, hook, btf)?;
            attached.push(name);
        }
    }
    let prog: &mut TracePoint = program(&mut ebpf, "sys_enter")?;
    prog.load().map_err(|e| program_error("sys_enter", &e))?;
    let network_error = match &opts.network {
        Some((root, hooks)) => match attach_network(&mut ebpf, root, hooks) {
            Ok(names) => {
                attached.extend(names);
                None
            }
            Err(e) => Some(e.to_string()),
        },
        None => Some("this kernel does not allow cgroup socket programs (`sensor probe`)".into()),
    };
    Ok(Loaded {
        ebpf,
        offsets,
        missing_offsets,
        attached,
        network_error,
        lsm_btf: if opts.lsm { kernel_btf } else { None },
    })
}

/// Writes the i386 → native syscall table the programs translate 32-bit calls with.
fn fill_compat_syscalls(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let map_err = |e: aya::maps::MapError| LoadError::Program {
        name: map::COMPAT_SYSCALLS.into(),
        detail: e.to_string(),
    };
    let mut map: aya::maps::Array<_, u16> =
        aya::maps::Array::try_from(ebpf.map_mut(map::COMPAT_SYSCALLS).ok_or_else(|| {
            LoadError::MissingProgram {
                name: map::COMPAT_SYSCALLS.into(),
            }
        })?)
        .map_err(map_err)?;
    for (nr, native) in crate::syscalls::names::compat_entries() {
        map.set(nr, native, 0).map_err(map_err)?;
    }
    let mut ops: aya::maps::Array<_, u16> =
        aya::maps::Array::try_from(ebpf.map_mut(map::IOURING_SYSCALLS).ok_or_else(|| {
            LoadError::MissingProgram {
                name: map::IOURING_SYSCALLS.into(),
            }
        })?)
        .map_err(map_err)?;
    for (op, native) in crate::syscalls::iouring_table::entries() {
        ops.set(op, native, 0).map_err(map_err)?;
    }
    Ok(())
}

/// BPF LSM hooks that refuse syscalls under `block`: (hook, the syscalls that reach it).
/// `ptrace` reaches its hooks only for PTRACE_ATTACH, PTRACE_SEIZE and PTRACE_TRACEME.
pub const SYSCALL_LSM_HOOKS: &[(&str, &[&str])] = &[
    ("sb_mount", &["mount"]),
    ("sb_umount", &["umount2"]),
    ("sb_pivotroot", &["pivot_root"]),
    ("path_chroot", &["chroot"]),
    ("ptrace_access_check", &["ptrace"]),
    ("ptrace_traceme", &["ptrace"]),
    ("bpf", &["bpf"]),
    ("kernel_load_data", &["init_module", "kexec_load"]),
    ("kernel_read_file", &["finit_module", "kexec_file_load"]),
    ("perf_event_open", &["perf_event_open"]),
];

/// Syscalls that check a capability before they do anything, on every path: their rules are
/// judged at that check by the capability programs (attached anyway), so they need no
/// tracepoint. Any syscall tracepoint, once attached, sends every syscall of every task on
/// the host through the kernel's slow syscall path: measured here, +5 ns on each `getpid`
/// (5%), whatever the syscall it is for.
pub const AT_CAPABILITY_CHECK: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "setns",
    "chroot",
    "swapon",
    "swapoff",
    "reboot",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "acct",
    "sethostname",
    "setdomainname",
    "settimeofday",
    "clock_settime",
    "iopl",
    "ioperm",
    // The new mount API: each step checks CAP_SYS_ADMIN first (open_tree when it clones a
    // tree, the form that mounts).
    "fsopen",
    "fspick",
    "fsmount",
    "move_mount",
    "open_tree",
    "mount_setattr",
];

/// How the policy's syscalls are watched: privileged ones at their capability check
/// (`SYSCALL_AT_CAPABILITY`), the others by the `sys_enter` program attached to their own
/// `syscalls:sys_enter_<name>`.
#[derive(Default)]
pub struct SyscallHooks {
    /// Where BPF LSM runs: the kernel BTF the hooks are loaded against.
    lsm_btf: Option<aya::Btf>,
    /// Syscall LSM hooks attached, by hook name.
    lsm_links: std::collections::BTreeMap<&'static str, aya::programs::lsm::LsmLinkId>,
    /// Hooks that failed to load or attach on this kernel, already reported.
    lsm_unavailable: std::collections::BTreeSet<&'static str>,
    links: std::collections::BTreeMap<&'static str, aya::programs::trace_point::TracePointLinkId>,
    /// `compat_sys_enter` on `raw_syscalls:sys_enter`, while any syscall is judged at entry.
    compat_link: Option<aya::programs::raw_trace_point::RawTracePointLinkId>,
    /// `io_uring_submit_req`, while any syscall is judged at entry (a request may do it).
    uring_link: Option<aya::programs::raw_trace_point::RawTracePointLinkId>,
    /// `io_uring_create`, while a rule names `io_uring_setup`.
    ring_create_link: Option<aya::programs::raw_trace_point::RawTracePointLinkId>,
    /// Judged at their capability check.
    at_capability: std::collections::BTreeSet<u32>,
    /// Syscalls without a tracepoint on this kernel, already reported.
    unavailable: std::collections::BTreeSet<&'static str>,
}

impl SyscallHooks {
    pub fn new(lsm_btf: Option<aya::Btf>) -> Self {
        Self {
            lsm_btf,
            ..Self::default()
        }
    }

    /// Syscalls an attached LSM hook refuses (every hook they reach is attached).
    pub fn refused_by_lsm(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = SYSCALL_LSM_HOOKS
            .iter()
            .flat_map(|(_, syscalls)| syscalls.iter().copied())
            .filter(|s| {
                SYSCALL_LSM_HOOKS
                    .iter()
                    .filter(|(_, sys)| sys.contains(s))
                    .all(|(hook, _)| self.lsm_links.contains_key(hook))
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Attaches the LSM hooks of the syscalls in `enforced` (those a `block` or `kill` rule
    /// names under enforce mode) and detaches the others: a hook runs on every mount, bpf()
    /// call, ... of the host, so it is only there while it can refuse something. Loading
    /// waits for the first need (each is a verifier run at startup otherwise).
    pub fn set_lsm(
        &mut self,
        ebpf: &mut Ebpf,
        enforced: &std::collections::BTreeSet<&'static str>,
    ) -> Result<(), LoadError> {
        let Some(btf) = &self.lsm_btf else {
            return Ok(());
        };
        for &(hook, syscalls) in SYSCALL_LSM_HOOKS {
            let needed = syscalls.iter().any(|s| enforced.contains(s));
            let prog: &mut aya::programs::Lsm = program(ebpf, hook)?;
            match (needed, self.lsm_links.remove(hook)) {
                (true, None) if !self.lsm_unavailable.contains(hook) => {
                    let attached = (|| {
                        if prog.fd().is_err() {
                            prog.load(hook, btf)?;
                        }
                        prog.attach()
                    })();
                    match attached {
                        Ok(link) => {
                            self.lsm_links.insert(hook, link);
                        }
                        Err(e) => {
                            // A kernel without CONFIG_SECURITY_PATH has no path_chroot.
                            log::warn!(
                                "LSM hook {hook} unavailable ({}): `block` kills instead for {syscalls:?}",
                                describe(&e)
                            );
                            self.lsm_unavailable.insert(hook);
                        }
                    }
                }
                (false, Some(link)) => {
                    prog.detach(link).map_err(|e| program_error(hook, &e))?;
                }
                (_, Some(link)) => {
                    self.lsm_links.insert(hook, link);
                }
                _ => {}
            }
        }
        // Tell sys_enter which calls a hook refuses.
        let refused = self.refused_by_lsm();
        let map_err = |e: aya::maps::MapError| LoadError::Program {
            name: map::SYSCALL_LSM.into(),
            detail: e.to_string(),
        };
        let mut map: aya::maps::Array<_, u8> =
            aya::maps::Array::try_from(ebpf.map_mut(map::SYSCALL_LSM).ok_or_else(|| {
                LoadError::MissingProgram {
                    name: map::SYSCALL_LSM.into(),
                }
            })?)
            .map_err(map_err)?;
        let arch = crate::syscalls::names::Arch::native();
        for &(_, syscalls) in SYSCALL_LSM_HOOKS {
            for name in syscalls {
                let Some(nr) = crate::syscalls::names::syscall(arch, name) else {
                    continue;
                };
                let value = match (refused.contains(name), *name == "ptrace") {
                    (false, _) => 0,
                    (true, true) => sensor_common::syscall::LSM_REFUSES_PTRACE_ATTACH,
                    (true, false) => sensor_common::syscall::LSM_REFUSES_ALL,
                };
                map.set(nr, value, 0).map_err(map_err)?;
            }
        }
        Ok(())
    }

    /// Syscalls with their tracepoint attached.
    pub fn attached(&self) -> impl Iterator<Item = &&'static str> {
        self.links.keys()
    }

    /// Syscall LSM hooks attached (program name = hook name).
    pub fn lsm_attached(&self) -> impl Iterator<Item = &&'static str> {
        self.lsm_links.keys()
    }

    /// Watches `wanted` and nothing else. `capability_checks`: a capability program is
    /// attached, so privileged syscalls can be judged there. Returns the syscalls newly found
    /// to have no tracepoint on this kernel.
    pub fn set(
        &mut self,
        ebpf: &mut Ebpf,
        wanted: &std::collections::BTreeSet<(&'static str, u32)>,
        capability_checks: bool,
    ) -> Result<Vec<(&'static str, String)>, LoadError> {
        // `io_uring_setup` is judged where the ring is created, without a syscall hook.
        let ring_setup = wanted
            .iter()
            .find(|(n, _)| *n == "io_uring_setup")
            .map(|(_, nr)| *nr);
        let (at_capability, at_entry): (Vec<_>, Vec<_>) = wanted
            .iter()
            .filter(|(n, _)| *n != "io_uring_setup")
            .partition(|(n, _)| capability_checks && AT_CAPABILITY_CHECK.contains(n));
        let mut setup_nr: aya::maps::Array<_, u32> =
            aya::maps::Array::try_from(ebpf.map_mut(map::IOURING_SETUP_NR).ok_or_else(|| {
                LoadError::MissingProgram {
                    name: map::IOURING_SETUP_NR.into(),
                }
            })?)
            .map_err(|e| LoadError::Program {
                name: map::IOURING_SETUP_NR.into(),
                detail: e.to_string(),
            })?;
        setup_nr
            .set(0, ring_setup.map_or(0, |nr| nr + 1), 0)
            .map_err(|e| LoadError::Program {
                name: map::IOURING_SETUP_NR.into(),
                detail: e.to_string(),
            })?;
        toggle_raw(
            ebpf,
            "io_uring_create",
            "io_uring_create",
            ring_setup.is_some(),
            &mut self.ring_create_link,
        )?;
        let map_err = |e: aya::maps::MapError| LoadError::Program {
            name: map::SYSCALL_AT_CAPABILITY.into(),
            detail: e.to_string(),
        };
        let mut map: aya::maps::Array<_, u8> = aya::maps::Array::try_from(
            ebpf.map_mut(map::SYSCALL_AT_CAPABILITY)
                .ok_or_else(|| LoadError::MissingProgram {
                    name: map::SYSCALL_AT_CAPABILITY.into(),
                })?,
        )
        .map_err(map_err)?;
        let now: std::collections::BTreeSet<u32> =
            at_capability.iter().map(|(_, nr)| *nr).collect();
        for nr in now.difference(&self.at_capability) {
            map.set(*nr, 1, 0).map_err(map_err)?;
        }
        for nr in self.at_capability.difference(&now) {
            map.set(*nr, 0, 0).map_err(map_err)?;
        }
        self.at_capability = now;

        let prog: &mut TracePoint = program(ebpf, "sys_enter")?;
        let names: std::collections::BTreeSet<&'static str> =
            at_entry.iter().map(|(n, _)| *n).collect();
        let stale: Vec<&'static str> = self
            .links
            .keys()
            .filter(|n| !names.contains(*n))
            .copied()
            .collect();
        for name in stale {
            if let Some(link) = self.links.remove(name) {
                prog.detach(link)
                    .map_err(|e| program_error("sys_enter", &e))?;
            }
        }
        // 32-bit calls reach no `sys_enter_<name>` tracepoint: one raw tracepoint judges them
        // while any syscall is judged at entry.
        let compat: &mut RawTracePoint = program(ebpf, "compat_sys_enter")?;
        match (names.is_empty(), self.compat_link.take()) {
            (false, None) if cfg!(target_arch = "x86_64") => {
                if compat.fd().is_err() {
                    compat
                        .load()
                        .map_err(|e| program_error("compat_sys_enter", &e))?;
                }
                self.compat_link = Some(
                    compat
                        .attach("sys_enter")
                        .map_err(|e| program_error("compat_sys_enter", &e))?,
                );
            }
            (true, Some(link)) => compat
                .detach(link)
                .map_err(|e| program_error("compat_sys_enter", &e))?,
            (_, link) => self.compat_link = link,
        }
        // io_uring requests doing what a judged syscall does. Kernels before 6.0 name the
        // tracepoint io_uring_submit_sqe.
        let uring_tp =
            if std::path::Path::new("/sys/kernel/tracing/events/io_uring/io_uring_submit_req")
                .exists()
            {
                "io_uring_submit_req"
            } else {
                "io_uring_submit_sqe"
            };
        toggle_raw(
            ebpf,
            "io_uring_submit_req",
            uring_tp,
            !names.is_empty(),
            &mut self.uring_link,
        )?;
        let prog: &mut TracePoint = program(ebpf, "sys_enter")?;
        let mut failed = Vec::new();
        for name in names {
            if self.links.contains_key(name) || self.unavailable.contains(name) {
                continue;
            }
            match prog.attach("syscalls", &format!("sys_enter_{}", tracepoint_name(name))) {
                Ok(link) => {
                    self.links.insert(name, link);
                }
                Err(e) => {
                    self.unavailable.insert(name);
                    failed.push((name, describe(&e)));
                }
            }
        }
        Ok(failed)
    }
}

/// Attaches raw tracepoint program `name` to `tracepoint` when `on`, detaches it otherwise. A
/// kernel without the tracepoint (no io_uring) leaves it off, with a log line.
fn toggle_raw(
    ebpf: &mut Ebpf,
    name: &str,
    tracepoint: &str,
    on: bool,
    link: &mut Option<aya::programs::raw_trace_point::RawTracePointLinkId>,
) -> Result<(), LoadError> {
    let prog: &mut RawTracePoint = program(ebpf, name)?;
    match (on, link.take()) {
        (true, None) => {
            if prog.fd().is_err() {
                prog.load().map_err(|e| program_error(name, &e))?;
            }
            match prog.attach(tracepoint) {
                Ok(l) => *link = Some(l),
                Err(e) => log::warn!("{name} not attached to {tracepoint}: {}", describe(&e)),
            }
        }
        (false, Some(l)) => prog.detach(l).map_err(|e| program_error(name, &e))?,
        (_, l) => *link = l,
    }
    Ok(())
}

/// The tracepoint of a syscall where the kernel's entry point has another name.
pub fn tracepoint_name(syscall: &str) -> &str {
    match syscall {
        "umount2" => "umount",
        "stat" => "newstat",
        "lstat" => "newlstat",
        "fstat" => "newfstat",
        "uname" => "newuname",
        other => other,
    }
}

/// The `cgroup_skb/ingress` program runs for every packet a socket of the host receives, so it
/// is attached only while the policy can drop something there (a CIDR segment under a deny):
/// otherwise it would cost each packet a program run for nothing.
pub struct Ingress {
    cgroup: Option<std::fs::File>,
    link: Option<aya::programs::cgroup_skb::CgroupSkbLinkId>,
}

impl Ingress {
    pub fn new(root: Option<&Path>) -> Self {
        Self {
            cgroup: root.and_then(|r| std::fs::File::open(r).ok()),
            link: None,
        }
    }

    pub fn attached(&self) -> bool {
        self.link.is_some()
    }

    /// Attaches or detaches the program to match `needed`.
    pub fn set(&mut self, ebpf: &mut Ebpf, needed: bool) -> Result<(), LoadError> {
        let Some(cgroup) = &self.cgroup else {
            return Ok(());
        };
        let prog: &mut CgroupSkb = program(ebpf, "ingress")?;
        match (needed, self.link.take()) {
            (true, None) => {
                let link = prog
                    .attach(
                        cgroup,
                        CgroupSkbAttachType::Ingress,
                        CgroupAttachMode::Single,
                    )
                    .map_err(|e| program_error("ingress", &e))?;
                self.link = Some(link);
            }
            (false, Some(link)) => {
                prog.detach(link)
                    .map_err(|e| program_error("ingress", &e))?;
            }
            (_, link) => self.link = link,
        }
        Ok(())
    }
}

/// Cgroup socket programs (program name = attach point), attached once at the cgroup v2 root:
/// one attachment sees every socket of the host, and a container's flows are told apart by
/// its cgroup id in `CGROUP_POLICY`. (Attaching per container cgroup would need an attach per
/// new container, racing its first connect, for a saving of one hash lookup per host connect.)
pub const SOCK_ADDR_HOOKS: &[&str] = &["connect4", "connect6", "sendmsg4", "sendmsg6"];

/// Syscalls whose exit kills a caller a `kill` verdict refused, where cgroup programs may not
/// signal.
const NETWORK_KILL_SYSCALLS: &[&str] = &[
    "sys_exit_connect",
    "sys_exit_sendto",
    "sys_exit_sendmsg",
    "sys_exit_sendmmsg",
];

fn attach_network(
    ebpf: &mut Ebpf,
    root: &Path,
    hooks: &NetworkHooks,
) -> Result<Vec<&'static str>, LoadError> {
    let cgroup = std::fs::File::open(root).map_err(|e| LoadError::Program {
        name: "connect4".into(),
        detail: format!("opening the cgroup v2 root {}: {e}", root.display()),
    })?;
    // bpf_link attachments (5.7+) are always multi and take no flags: Single means flags 0.
    let mode = CgroupAttachMode::Single;
    let mut attached = Vec::new();
    for &name in SOCK_ADDR_HOOKS {
        let prog: &mut CgroupSockAddr = program(ebpf, name)?;
        prog.load().map_err(|e| program_error(name, &e))?;
        prog.attach(&cgroup, mode)
            .map_err(|e| program_error(name, &e))?;
        attached.push(name);
    }
    // Sockets no segment hook can judge (raw, ICMP datagrams, SCTP) are judged at creation.
    let prog: &mut aya::programs::CgroupSock = program(ebpf, "sock_create")?;
    prog.load().map_err(|e| program_error("sock_create", &e))?;
    prog.attach(&cgroup, mode)
        .map_err(|e| program_error("sock_create", &e))?;
    attached.push("sock_create");
    // Loaded now, attached only while a policy has something to judge there (`Ingress`).
    let prog: &mut CgroupSkb = program(ebpf, "ingress")?;
    prog.load().map_err(|e| program_error("ingress", &e))?;
    if hooks.signal == 0 {
        let prog: &mut TracePoint = program(ebpf, "network_kill")?;
        prog.load().map_err(|e| program_error("network_kill", &e))?;
        for tp in NETWORK_KILL_SYSCALLS {
            prog.attach("syscalls", tp)
                .map_err(|e| program_error("network_kill", &e))?;
        }
        attached.push("network_kill");
    }
    Ok(attached)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| LoadError::MissingProgram { name: name.into() })?
        .try_into()
        .map_err(|e: ProgramError| program_error(name, &e))
}

/// BPF LSM programs and their hooks, attached where the kernel allows them: exec and
/// capability rules, and the guard of the sensor's process against containers.
pub const LSM_HOOKS: &[(&str, &str)] = &[
    ("bprm_check_security", "bprm_check_security"),
    ("capable", "capable"),
    ("guard_task_kill", "task_kill"),
    ("guard_ptrace", "ptrace_access_check"),
    ("guard_bpf", "bpf"),
    ("guard_bpf_map", "bpf_map"),
    ("guard_bpf_prog", "bpf_prog"),
];

fn attach_lsm(ebpf: &mut Ebpf, name: &str, hook: &str, btf: &aya::Btf) -> Result<(), LoadError> {
    let prog: &mut aya::programs::Lsm = ebpf
        .program_mut(name)
        .ok_or_else(|| LoadError::MissingProgram { name: name.into() })?
        .try_into()
        .map_err(|e: ProgramError| program_error(name, &e))?;
    prog.load(hook, btf).map_err(|e| program_error(name, &e))?;
    prog.attach().map_err(|e| program_error(name, &e))?;
    Ok(())
}

pub fn attach_raw_tracepoint(
    ebpf: &mut Ebpf,
    program: &str,
    tracepoint: &str,
) -> Result<(), LoadError> {
    let prog: &mut RawTracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| LoadError::MissingProgram {
            name: program.into(),
        })?
        .try_into()
        .map_err(|e: ProgramError| program_error(program, &e))?;
    prog.load().map_err(|e| program_error(program, &e))?;
    prog.attach(tracepoint)
        .map_err(|e| program_error(program, &e))?;
    Ok(())
}

pub fn program_error(name: &str, err: &ProgramError) -> LoadError {
    LoadError::Program {
        name: name.into(),
        detail: describe(err),
    }
}

/// The sensor's thread-group id as the kernel knows it: what the programs compare with to
/// exempt the sensor. In a container without the host's PID namespace, `getpid()` is another
/// number; the `sensor_whoami` program, run by `BPF_PROG_TEST_RUN` in this process's context,
/// returns the kernel's.
pub fn kernel_tgid(ebpf: &mut Ebpf) -> Result<u32, LoadError> {
    use aya::programs::{RawTracePointRunOptions, TestRun as _};
    let prog: &mut RawTracePoint = program(ebpf, "sensor_whoami")?;
    prog.load()
        .map_err(|e| program_error("sensor_whoami", &e))?;
    prog.test_run(RawTracePointRunOptions::new())
        .map_err(|e| program_error("sensor_whoami", &e))?;
    let map_err = |e: aya::maps::MapError| LoadError::Program {
        name: map::WHOAMI.into(),
        detail: e.to_string(),
    };
    let answer: aya::maps::Array<_, u32> =
        aya::maps::Array::try_from(ebpf.map(map::WHOAMI).ok_or_else(|| {
            LoadError::MissingProgram {
                name: map::WHOAMI.into(),
            }
        })?)
        .map_err(map_err)?;
    match answer.get(&0, 0).map_err(map_err)? {
        0 => Err(LoadError::Program {
            name: "sensor_whoami".into(),
            detail: "ran without answering".into(),
        }),
        tgid => Ok(tgid),
    }
}

/// Pins the maps operators inspect with bpftool under `dir` (`/sys/fs/bpf/sensor/<pid>`),
/// replacing what a previous run that died without cleaning up left there.
pub fn pin_maps(ebpf: &Ebpf, dir: &Path, names: &[&str]) -> Result<(), LoadError> {
    let pin_err = |source| LoadError::Pin {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(pin_err)?;
    for name in names {
        let Some(map) = ebpf.map(name) else { continue };
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        map.pin(&path)
            .map_err(|e| pin_err(std::io::Error::other(e.to_string())))?;
    }
    Ok(())
}

/// Removes pin directories of sensors that are no longer running, and `own` if given.
pub fn remove_pins(base: &Path, own: Option<&Path>) {
    if let Some(own) = own {
        let _ = std::fs::remove_dir_all(own);
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    // Fails, as it should, while another sensor still has pins there.
    let _ = std::fs::remove_dir(base);
}

/// The BPF object ids an fdinfo text names (`prog_id:`, `map_id:`, `link_id:`, `btf_id:`), as
/// `SENSOR_OBJECTS` kinds.
fn object_ids(fdinfo: &str) -> Vec<(u8, u32)> {
    use sensor_common::process::{OBJECT_BTF, OBJECT_LINK, OBJECT_MAP, OBJECT_PROG};
    fdinfo
        .lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(':')?;
            let object = match key.trim() {
                "prog_id" => OBJECT_PROG,
                "map_id" => OBJECT_MAP,
                "link_id" => OBJECT_LINK,
                "btf_id" => OBJECT_BTF,
                _ => return None,
            };
            Some((object, value.trim().parse().ok()?))
        })
        .filter(|(_, id)| *id != 0)
        .collect()
}

/// Records every BPF object this process holds (its programs, maps, links, BTF: each open
/// descriptor's fdinfo) in `SENSOR_OBJECTS`, which the kernel programs refuse to hand to a
/// process of a container. Called after every attach: links come and go with the policy.
/// Returns how many objects are guarded.
pub fn guard_own_objects(ebpf: &mut Ebpf) -> Result<usize, LoadError> {
    let map_err = |e: aya::maps::MapError| LoadError::Program {
        name: map::SENSOR_OBJECTS.into(),
        detail: e.to_string(),
    };
    let mut ids = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") {
        for entry in dir.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                ids.extend(object_ids(&text));
            }
        }
    }
    let mut map: aya::maps::HashMap<_, u64, u8> =
        aya::maps::HashMap::try_from(ebpf.map_mut(map::SENSOR_OBJECTS).ok_or_else(|| {
            LoadError::MissingProgram {
                name: map::SENSOR_OBJECTS.into(),
            }
        })?)
        .map_err(map_err)?;
    for (object, id) in &ids {
        map.insert(sensor_common::process::object_key(*object, *id), 1, 0)
            .map_err(map_err)?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn fdinfo_names_the_objects() {
        let link = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\nlink_type:\ttracing\nlink_id:\t7\nprog_tag:\tabc\nprog_id:\t42\n";
        assert_eq!(object_ids(link), [(3, 7), (1, 42)]);
        let map = "map_type:\t1\nkey_size:\t8\nmap_id:\t12\nfrozen:\t0\n";
        assert_eq!(object_ids(map), [(2, 12)]);
        assert!(object_ids("pos:\t0\nflags:\t0100002\n").is_empty());
    }
}
