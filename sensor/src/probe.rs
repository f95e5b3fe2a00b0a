//! `sensor probe`: what this kernel allows, learned by loading and attaching small programs
//! (`sensor-ebpf/src/probe.rs`), not by reading version numbers.

use std::{
    fs,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSock, CgroupSockAddr, FEntry, KProbe,
        Lsm, ProgramError, RawTracePoint, TracePoint,
    },
};
use serde::Serialize;

use crate::{
    containers::cgroupfs,
    kernel::{self, Btf, preflight},
    loader,
};

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// Why not, or what exactly was tried.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Enforcement {
    /// What is enforced: `exec`, `capability`, `syscall`, `network`.
    pub control: &'static str,
    /// What a rule with `action: block` does here: `block` (the operation fails with EPERM),
    /// `kill` (falls back to SIGKILL from the kernel) or `audit` (cannot enforce).
    pub block: &'static str,
    /// The hook that does it.
    pub block_via: &'static str,
    /// What `action: kill` does here: `kill` or `audit`.
    pub kill: &'static str,
    pub kill_via: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel: String,
    pub root: bool,
    pub btf: bool,
    pub bpffs: bool,
    pub cgroup_v2: Option<PathBuf>,
    /// Contents of /sys/kernel/security/lsm, when readable.
    pub lsm_list: Option<String>,
    pub checks: Vec<Check>,
    pub enforcement: Vec<Enforcement>,
}

impl Report {
    pub fn ok(&self, name: &str) -> bool {
        self.checks.iter().any(|c| c.name == name && c.ok)
    }
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: ProgramError| loader::describe(&e))
}

fn err(e: ProgramError) -> String {
    loader::describe(&e)
}

/// A temporary empty cgroup to attach cgroup programs to without affecting any process.
struct ScratchCgroup(PathBuf);

impl ScratchCgroup {
    fn new(root: &Path) -> Result<Self, String> {
        let path = root.join(format!("sensor-probe-{}", std::process::id()));
        fs::create_dir(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(Self(path))
    }

    fn file(&self) -> Result<fs::File, String> {
        fs::File::open(&self.0).map_err(|e| e.to_string())
    }
}

impl Drop for ScratchCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// Probes the running kernel. Needs root for everything but the file checks.
pub fn run(btf_path: &Path) -> Report {
    preflight::ensure_pseudo_filesystems();
    let cgroup_v2 = cgroupfs::v2_mount().ok().flatten();
    let mut report = Report {
        kernel: kernel::release(),
        root: preflight::require_root().is_ok(),
        btf: btf_path.is_file(),
        bpffs: preflight::bpffs_mounted(),
        cgroup_v2: cgroup_v2.clone(),
        lsm_list: fs::read_to_string("/sys/kernel/security/lsm")
            .ok()
            .map(|s| s.trim().to_owned()),
        checks: Vec::new(),
        enforcement: Vec::new(),
    };
    report.checks.push(check(
        "ring_buffer",
        match aya::sys::is_map_supported(aya::maps::MapType::RingBuf) {
            Ok(true) => Ok("BPF_MAP_TYPE_RINGBUF can be created".into()),
            Ok(false) => {
                Err("BPF_MAP_TYPE_RINGBUF is not supported (kernel older than 5.8)".into())
            }
            Err(e) => Err(e.to_string()),
        },
    ));
    let btf = if report.btf {
        loader::read_btf(btf_path).map_err(|e| e.to_string())
    } else {
        Err(format!("{} is missing", btf_path.display()))
    };
    let opened = btf.as_ref().map_err(Clone::clone).and_then(|btf| {
        loader::open(btf, 4096, loader::Globals::default())
            .map(|(ebpf, _, _)| ebpf)
            .map_err(|e| e.to_string())
    });
    let (mut ebpf, btf) = match (opened, btf) {
        (Ok(ebpf), Ok(btf)) => (ebpf, btf),
        (Err(e), _) | (_, Err(e)) => {
            report.checks.push(Check {
                name: "load",
                ok: false,
                detail: format!("cannot create the sensor's maps: {e}"),
            });
            report.enforcement = enforcement(&report);
            return report;
        }
    };
    let kernel_btf = aya::Btf::from_sys_fs().ok();
    let probes: Vec<(&'static str, Result<String, String>)> = vec![
        (
            "tracepoint",
            probe_tracepoint(&mut ebpf, "probe_tracepoint", "sched", "sched_process_fork"),
        ),
        (
            "tracepoint_cap_capable",
            probe_tracepoint(&mut ebpf, "probe_tracepoint", "capability", "cap_capable"),
        ),
        ("raw_tracepoint", probe_raw_tracepoint(&mut ebpf)),
        ("tp_btf", probe_tp_btf(&mut ebpf, kernel_btf.as_ref())),
        (
            "lsm",
            probe_lsm(&mut ebpf, kernel_btf.as_ref(), report.lsm_list.as_deref()),
        ),
        ("fentry", probe_fentry(&mut ebpf, kernel_btf.as_ref(), &btf)),
        ("kprobe", probe_kprobe(&mut ebpf)),
        (
            "send_signal_tracing",
            probe_load::<TracePoint>(&mut ebpf, "probe_tracepoint_signal"),
        ),
        (
            "cgroup_sock_addr",
            probe_cgroup(&mut ebpf, cgroup_v2.as_deref(), CgroupKind::Connect4),
        ),
        (
            "send_signal_cgroup_sock_addr",
            probe_load::<CgroupSockAddr>(&mut ebpf, "probe_connect4_signal"),
        ),
        (
            "task_helpers_cgroup_sock_addr",
            probe_load::<CgroupSockAddr>(&mut ebpf, "probe_connect4_task"),
        ),
        (
            "pid_helper_cgroup_sock_addr",
            probe_load::<CgroupSockAddr>(&mut ebpf, "probe_connect4_pid"),
        ),
        (
            "cgroup_sock",
            probe_cgroup(&mut ebpf, cgroup_v2.as_deref(), CgroupKind::Sock),
        ),
        (
            "cgroup_skb",
            probe_cgroup(&mut ebpf, cgroup_v2.as_deref(), CgroupKind::Skb),
        ),
    ];
    for (name, result) in probes {
        report.checks.push(check(name, result));
    }
    report.enforcement = enforcement(&report);
    report
}

fn probe_tracepoint(
    ebpf: &mut Ebpf,
    name: &str,
    category: &str,
    tp: &str,
) -> Result<String, String> {
    let prog: &mut TracePoint = program(ebpf, name)?;
    if prog.fd().is_err() {
        prog.load().map_err(err)?;
    }
    let link = prog.attach(category, tp).map_err(err)?;
    prog.detach(link).map_err(err)?;
    Ok(format!("attached to {category}:{tp}"))
}

fn probe_raw_tracepoint(ebpf: &mut Ebpf) -> Result<String, String> {
    let prog: &mut RawTracePoint = program(ebpf, "probe_raw_tracepoint")?;
    prog.load().map_err(err)?;
    let link = prog.attach("sched_process_free").map_err(err)?;
    prog.detach(link).map_err(err)?;
    Ok("attached to sched_process_free".into())
}

fn probe_tp_btf(ebpf: &mut Ebpf, btf: Option<&aya::Btf>) -> Result<String, String> {
    let btf = btf.ok_or("no kernel BTF")?;
    let prog: &mut BtfTracePoint = program(ebpf, "probe_tp_btf")?;
    prog.load("sched_process_fork", btf).map_err(err)?;
    let link = prog.attach().map_err(err)?;
    prog.detach(link).map_err(err)?;
    Ok("attached to sched_process_fork".into())
}

fn probe_lsm(
    ebpf: &mut Ebpf,
    btf: Option<&aya::Btf>,
    lsm_list: Option<&str>,
) -> Result<String, String> {
    let btf = btf.ok_or("no kernel BTF")?;
    if let Some(list) = lsm_list
        && !list.split(',').any(|l| l == "bpf")
    {
        return Err(format!(
            "the bpf LSM is not active (/sys/kernel/security/lsm: {list}); boot with lsm=...,bpf"
        ));
    }
    let prog: &mut Lsm = program(ebpf, "probe_lsm")?;
    prog.load("capable", btf).map_err(err)?;
    let link = prog.attach().map_err(err)?;
    prog.detach(link).map_err(err)?;
    Ok("loaded and attached lsm/capable".into())
}

fn probe_fentry(ebpf: &mut Ebpf, btf: Option<&aya::Btf>, our_btf: &Btf) -> Result<String, String> {
    let btf = btf.ok_or("no kernel BTF")?;
    if !our_btf.has_func("security_capable") {
        return Err("security_capable is not in the kernel BTF".into());
    }
    let prog: &mut FEntry = program(ebpf, "probe_fentry")?;
    prog.load("security_capable", btf).map_err(err)?;
    let link = prog.attach().map_err(err)?;
    prog.detach(link).map_err(err)?;
    Ok("loaded and attached fentry/security_capable".into())
}

fn probe_kprobe(ebpf: &mut Ebpf) -> Result<String, String> {
    let prog: &mut KProbe = program(ebpf, "probe_kprobe")?;
    prog.load().map_err(err)?;
    let link = prog.attach("security_capable", 0).map_err(err)?;
    prog.detach(link).map_err(err)?;
    Ok("attached to security_capable".into())
}

fn probe_load<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<String, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
    T: Loadable + 'a,
{
    let prog: &mut T = program(ebpf, name)?;
    prog.load_it().map_err(err)?;
    Ok(format!("the verifier accepted {name}"))
}

/// Program types whose `load` takes no argument.
pub trait Loadable {
    fn load_it(&mut self) -> Result<(), ProgramError>;
}

impl Loadable for TracePoint {
    fn load_it(&mut self) -> Result<(), ProgramError> {
        self.load()
    }
}

impl Loadable for CgroupSockAddr {
    fn load_it(&mut self) -> Result<(), ProgramError> {
        self.load()
    }
}

enum CgroupKind {
    Connect4,
    Sock,
    Skb,
}

fn probe_cgroup(ebpf: &mut Ebpf, root: Option<&Path>, kind: CgroupKind) -> Result<String, String> {
    let root = root.ok_or("no cgroup v2 mount")?;
    let scratch = ScratchCgroup::new(root)?;
    let cgroup = scratch.file()?;
    // bpf_link attachments (5.7+) are always multi and take no flags: Single means flags 0.
    let mode = CgroupAttachMode::Single;
    let what = match kind {
        CgroupKind::Connect4 => {
            let prog: &mut CgroupSockAddr = program(ebpf, "probe_connect4")?;
            prog.load().map_err(err)?;
            let link = prog.attach(cgroup.as_fd(), mode).map_err(err)?;
            prog.detach(link).map_err(err)?;
            "cgroup/connect4"
        }
        CgroupKind::Sock => {
            let prog: &mut CgroupSock = program(ebpf, "probe_sock_create")?;
            prog.load().map_err(err)?;
            let link = prog.attach(cgroup.as_fd(), mode).map_err(err)?;
            prog.detach(link).map_err(err)?;
            "cgroup/sock_create"
        }
        CgroupKind::Skb => {
            let prog: &mut CgroupSkb = program(ebpf, "probe_skb")?;
            prog.load().map_err(err)?;
            let link = prog
                .attach(
                    cgroup.as_fd(),
                    aya::programs::CgroupSkbAttachType::Egress,
                    mode,
                )
                .map_err(err)?;
            prog.detach(link).map_err(err)?;
            "cgroup_skb/egress"
        }
    };
    Ok(format!("attached {what} to an empty scratch cgroup"))
}

/// What each control gets on this kernel, from the checks: the strongest hook that loaded.
fn enforcement(r: &Report) -> Vec<Enforcement> {
    let lsm = r.ok("lsm");
    let signal = r.ok("send_signal_tracing") && r.ok("raw_tracepoint");
    let (kill, kill_audit) = ("kill", "audit");
    let tracing_kill = |via: &'static str| {
        if signal {
            (kill, via)
        } else {
            (kill_audit, "none")
        }
    };
    let block = |lsm_hook: &'static str, fallback: (&'static str, &'static str)| {
        if lsm { ("block", lsm_hook) } else { fallback }
    };
    // Where BPF LSM runs, `kill` refuses the exec at bprm_check_security and kills the caller.
    let exec_kill = if lsm {
        (
            kill,
            "lsm/bprm_check_security; argv[0] at sched_process_exec",
        )
    } else {
        tracing_kill("sched_process_exec")
    };
    let cap_kill = if lsm {
        (kill, "lsm/capable")
    } else if r.ok("fentry") {
        tracing_kill("fexit/security_capable")
    } else if r.ok("tracepoint_cap_capable") {
        tracing_kill("capability:cap_capable")
    } else {
        (kill_audit, "none")
    };
    // Privileged syscalls are judged at their capability check, the others at their own
    // syscalls:sys_enter_<name> tracepoint.
    let sys_kill = tracing_kill("capability check or sys_enter_<name>");
    let net_kill = if r.ok("send_signal_cgroup_sock_addr") {
        (kill, "cgroup/connect4,6 + sendmsg4,6")
    } else {
        tracing_kill(
            "cgroup/connect4,6 + sendmsg4,6, SIGKILL at syscalls:sys_exit_connect/sendto/sendmsg",
        )
    };
    let net_block = if r.ok("cgroup_sock_addr") {
        ("block", "cgroup/connect4,6 + sendmsg4,6")
    } else {
        net_kill
    };
    let row = |control,
               (block, block_via): (&'static str, &'static str),
               (kill, kill_via): (&'static str, &'static str)| Enforcement {
        control,
        block,
        block_via,
        kill,
        kill_via,
    };
    vec![
        row(
            "exec",
            block("lsm/bprm_check_security", exec_kill),
            exec_kill,
        ),
        row("capability", block("lsm/capable", cap_kill), cap_kill),
        row(
            "syscall",
            block(
                "lsm (sb_mount, sb_umount, ptrace_access_check, bpf, ..., capable); others kill",
                sys_kill,
            ),
            sys_kill,
        ),
        row("network", net_block, net_kill),
    ]
}

/// Human-readable report.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let yes = |b: bool| if b { "yes" } else { "no" };
    out.push_str(&format!("kernel            {}\n", r.kernel));
    out.push_str(&format!("root              {}\n", yes(r.root)));
    out.push_str(&format!("BTF               {}\n", yes(r.btf)));
    out.push_str(&format!("bpffs             {}\n", yes(r.bpffs)));
    out.push_str(&format!(
        "cgroup v2         {}\n",
        r.cgroup_v2
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not mounted".into())
    ));
    out.push_str(&format!(
        "active LSMs       {}\n\n",
        r.lsm_list.as_deref().unwrap_or("unknown")
    ));
    for c in &r.checks {
        out.push_str(&format!("{:<30} {:<4} {}\n", c.name, yes(c.ok), c.detail));
    }
    out.push_str(
        "\nenforcement on this kernel (what each rule action does, and which hook does it):\n",
    );
    for e in &r.enforcement {
        out.push_str(&format!(
            "  {:<11} block → {:<5} via {:<40} kill → {:<5} via {}\n",
            e.control, e.block, e.block_via, e.kill, e.kill_via
        ));
    }
    out.push_str(if r.ok("lsm") {
        "  kill where a BPF LSM hook is named: the operation is refused, then the caller is killed
"
    } else {
        "  kill without BPF LSM: SIGKILL is delivered when the judged call returns; the call itself
  completes (a mount is made, a socket opened), the process never runs another instruction
"
    });
    out
}
