//! Sinks: one JSON object per line.

pub mod container;

use std::io::{self, Write};

use serde::Serialize;

pub use container::ContainerView;

/// One output line: `{"time": ..., "kind": ..., <body fields>}`.
#[derive(Serialize)]
pub struct Line<'a, B: Serialize> {
    pub time: &'a str,
    pub kind: &'static str,
    #[serde(flatten)]
    pub body: B,
}

#[derive(Serialize)]
pub struct Process<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: &'a str,
    pub exe: &'a str,
    pub args: &'a [String],
}

/// A process as non-exec events show it: the executable is the last one the sensor saw it
/// exec (absent for processes that started before the sensor).
#[derive(Serialize)]
pub struct ProcessRef<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<&'a str>,
}

#[derive(Serialize)]
pub struct CapabilityView {
    /// `CAP_SYS_ADMIN`.
    pub name: String,
    pub granted: bool,
    /// A check the kernel makes without auditing it (not a use).
    pub quiet: bool,
    /// Checks this line stands for: 1 for a first occurrence or an enforced violation, the
    /// number of repeats since the last summary for a summary.
    pub count: u64,
}

/// Body of `"kind": "capability"` lines.
#[derive(Serialize)]
pub struct CapabilityBody<'a> {
    pub capability: CapabilityView,
    /// The syscall in progress (`mount`), `null` outside any syscall.
    pub syscall: Option<&'static str>,
    /// Absent on summaries (they aggregate every process of the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef<'a>>,
    pub container: Option<ContainerView<'a>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub summary: bool,
}

#[derive(Serialize)]
pub struct NetworkView {
    /// `tcp`, `udp`, or `other` (ICMP datagram sockets, ...).
    pub protocol: &'static str,
    /// `egress` (the container connects or sends) or `ingress` (a new flow arrives at it).
    pub direction: &'static str,
    /// Addresses as the kernel saw them (IPv4-mapped IPv6 shown as IPv4); `src` of an egress
    /// flow is the container's address when the hook did not see one.
    pub src: Option<String>,
    pub dst: Option<String>,
    /// The destination port (the service), both directions.
    pub port: u16,
    /// The source port of an ingress flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Segment of each end: a container in no segment has `null`, an address in none
    /// `"unknown"`. One in several segments shows the first in policy order.
    pub src_segment: Option<String>,
    pub dst_segment: Option<String>,
    /// Flows this line stands for: 1 for a first occurrence or a kill, the number of repeats
    /// since the last summary for a summary.
    pub count: u64,
}

/// Body of `"kind": "network"` lines.
#[derive(Serialize)]
pub struct NetworkBody<'a> {
    pub network: NetworkView,
    /// Absent on ingress (no process sends an arriving packet) and on summaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef<'a>>,
    pub container: Option<ContainerView<'a>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub summary: bool,
}

#[derive(Serialize)]
pub struct SyscallView {
    /// Name on this architecture (`null` for a number the table does not know).
    pub name: Option<&'static str>,
    pub nr: u32,
    /// The arguments the sensor decodes for this syscall, by name (mount's source, target,
    /// fstype and flags; unshare's flags; ptrace's request and pid; ...).
    pub args: serde_json::Map<String, serde_json::Value>,
    /// All six argument registers as the kernel saw them at entry.
    pub raw_args: [u64; 6],
    /// Where it was judged: `entry` (its own tracepoint), `capability_check` (a privileged
    /// syscall, at the capability check it makes before doing anything), `lsm_hook` (a
    /// privileged syscall refused by the LSM hook that comes before that check), `io_uring`
    /// (an io_uring request doing the same), `fork` (a clone creating namespaces, judged as
    /// `unshare`), `io_uring_create` (`io_uring_setup`).
    pub seen_at: &'static str,
    /// A 32-bit call (`int 0x80`), judged as the native syscall it does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compat: bool,
    /// Summary lines: how many more calls of this kind since the last line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Body of `"kind": "syscall"` lines.
#[derive(Serialize)]
pub struct SyscallBody<'a> {
    pub syscall: SyscallView,
    /// `None` on summary lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef<'a>>,
    pub container: Option<ContainerView<'a>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub summary: bool,
}

/// Body of `"kind": "exec"` lines.
#[derive(Serialize)]
pub struct ExecBody<'a> {
    pub process: Process<'a>,
    pub container: Option<ContainerView<'a>>,
    /// Present when a rule matched.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView<'a>>,
    /// Set when the file name or the arguments were cut to the kernel buffer size.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Set when the executed file is not from the container's image (`origin` says where it
    /// comes from).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
    /// The file that ran, as a path from the process's root directory (a name executed
    /// through a link resolves to its target); absent when it has none (a memfd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a str>,
    /// Container processes: where the file comes from (`image`, `upper`, `memfd`, `deleted`,
    /// `tmpfs`, `volume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
    /// An image file whose mode or owner changed, its content not: not drift.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub metadata_changed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub script: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub loader: bool,
    /// Which name of the exec the rule matched (`name`, `file`, `argv0`, `interpreter`,
    /// `loaded`, `unjudgeable`, `drift`) and that name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<MatchedView<'a>>,
}

/// A process of a container placed outside its container's cgroup by a process of a
/// container (`"kind": "escape"`). `process` is the one that did it; its policy, and the
/// moved process's, stay their container's.
#[derive(Serialize)]
pub struct EscapeBody<'a> {
    pub escape: EscapeView<'a>,
    pub process: ProcessRef<'a>,
    pub container: Option<ContainerView<'a>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView<'a>>,
}

#[derive(Serialize)]
pub struct EscapeView<'a> {
    /// The process moved (or created there).
    pub pid: u32,
    /// `attach` (written to a `cgroup.procs`) or `clone` (`clone3(CLONE_INTO_CGROUP)`).
    pub via: &'static str,
    pub to_cgroup: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_path: Option<&'a str>,
}

#[derive(Serialize)]
pub struct TamperBody<'a> {
    pub tamper: TamperView,
    pub process: ProcessRef<'a>,
    pub container: Option<ContainerView<'a>>,
    #[serde(flatten)]
    pub verdict: VerdictView<'a>,
}

#[derive(Serialize)]
pub struct TamperView {
    /// The sensor's object asked for: `prog`, `map`, `link` or `btf` and its id; `signal` and
    /// the signal number; `ptrace` and the access mode.
    pub object: &'static str,
    pub id: u32,
}

#[derive(Serialize)]
pub struct MatchedView<'a> {
    pub by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
}

/// What a rule did: `action` is what happened (`audit` in audit mode), `would` what enforce
/// mode would have done.
#[derive(Serialize)]
pub struct VerdictView<'a> {
    pub rule: &'a str,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would: Option<&'static str>,
    pub mode: &'static str,
    /// Enforce mode, block or kill: whether the kernel did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforced: Option<bool>,
    /// How: `signal` (SIGKILL from the kernel; `block` falls back to it without BPF LSM) or
    /// `lsm` (the operation was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforced_by: Option<&'static str>,
}

impl VerdictView<'static> {
    /// What rule `rule` with `action` did under the mode in force (`enforce`): the action, or
    /// `audit` with what enforce mode `would` have done. `enforced` and `enforced_by` are left
    /// for the caller that knows what the kernel did.
    pub fn new(rule: &'static str, action: crate::policy::Action, enforce: bool) -> Self {
        use crate::policy::{Action, Mode};
        Self {
            rule,
            action: if enforce {
                action.as_str()
            } else {
                Action::Audit.as_str()
            },
            would: (!enforce && action != Action::Audit).then(|| action.as_str()),
            mode: if enforce {
                Mode::Enforce.as_str()
            } else {
                Mode::Audit.as_str()
            },
            enforced: None,
            enforced_by: None,
        }
    }
}

/// Body of `"kind": "posture"` lines.
#[derive(Serialize)]
pub struct PostureBody<'a> {
    pub finding: &'static str,
    pub detail: &'a str,
    pub container: ContainerView<'a>,
    #[serde(flatten)]
    pub verdict: VerdictView<'a>,
}

/// Body of `"kind": "policy"` lines.
#[derive(Serialize)]
pub struct PolicyBody<'a> {
    /// `loaded` or `rejected`.
    pub event: &'static str,
    pub origin: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_ms: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub warnings: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub errors: &'a [String],
}

/// Body of `"kind": "container"` lines.
#[derive(Serialize)]
pub struct ContainerBody<'a> {
    /// `start` or `stop`.
    pub event: &'static str,
    pub container: ContainerView<'a>,
    /// `start` of a container that existed before the sensor started.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub at_startup: bool,
    /// `start`: milliseconds from the container's cgroup creation to its metadata being ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_ms: Option<f64>,
    /// `start` without metadata: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_error: Option<&'a str>,
}

/// Where event lines go.
pub trait Sink {
    fn write_line(&mut self, line: &impl Serialize) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// JSON lines on any writer (stdout, a file).
pub struct JsonLines<W: Write> {
    out: io::BufWriter<W>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(w: W) -> Self {
        Self {
            out: io::BufWriter::with_capacity(64 * 1024, w),
        }
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn write_line(&mut self, line: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_line_shape() {
        let args = vec!["/bin/true".to_string()];
        let line = Line {
            time: "2026-01-01T00:00:00.000000000Z",
            kind: "exec",
            body: ExecBody {
                process: Process {
                    pid: 2,
                    ppid: 1,
                    uid: 0,
                    gid: 0,
                    comm: "true",
                    exe: "/bin/true",
                    args: &args,
                },
                container: None,
                verdict: None,
                truncated: false,
                drift: false,
                file: None,
                origin: None,
                metadata_changed: false,
                script: false,
                loader: false,
                matched: None,
            },
        };
        let mut sink = JsonLines::new(Vec::new());
        sink.write_line(&line).unwrap();
        sink.flush().unwrap();
        let text = String::from_utf8(sink.out.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"time":"2026-01-01T00:00:00.000000000Z","kind":"exec","#,
                r#""process":{"pid":2,"ppid":1,"uid":0,"gid":0,"comm":"true","exe":"/bin/true","args":["/bin/true"]},"#,
                r#""container":null}"#,
                "\n"
            )
        );
    }
}
