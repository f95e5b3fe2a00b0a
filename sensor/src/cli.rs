//! Command line: one subcommand per user task.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    containers::{cgroup_path::DEFAULT_CONTAINERD_NAMESPACES, enrich::Sockets},
    daemon,
    kernel::preflight,
    probe,
};

#[derive(Parser)]
#[command(
    name = "sensor",
    version,
    about = "eBPF runtime enforcement sensor for containers"
)]
pub struct Cli {
    /// Log level on stderr: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info", env = "SENSOR_LOG")]
    log_level: log::LevelFilter,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the programs and report events as JSON lines on stdout until SIGINT/SIGTERM.
    Run(RunArgs),
    /// List the containers the running sensor sees (cgroup id, runtime, id, name, image, pod).
    /// Without a running sensor, scans cgroups and runtimes directly and says so.
    Containers {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        runtimes: RuntimeArgs,
    },
    /// Policy files: check, print the default.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print which program types, hooks and helpers this kernel allows, and the enforcement
    /// that makes possible.
    Probe {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = preflight::DEFAULT_BTF)]
        btf: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate policy files: exit 0 when valid, else every error as FILE:LINE:COL.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the embedded default policy.
    Default,
    /// Time compiling and installing a synthetic policy into the kernel maps (root; nothing
    /// is attached or enforced).
    Bench {
        #[arg(long, default_value_t = 5000)]
        rules: usize,
        #[arg(long, default_value_t = 200)]
        containers: usize,
        #[arg(long, default_value = preflight::DEFAULT_BTF)]
        btf: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Audit,
    Enforce,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Policy file (YAML). Without it the embedded default policy runs (`sensor policy default`).
    /// Reloaded on SIGHUP and when the file changes.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Override the policy's mode: audit (report only) or enforce.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Kernel BTF to read structure layouts from.
    #[arg(long, default_value = preflight::DEFAULT_BTF)]
    btf: PathBuf,
    /// Size of the kernel → daemon event ring buffer, in MiB (a power of two).
    #[arg(long, default_value_t = 8)]
    ring_buffer_mib: u32,
    /// Longest time, in milliseconds, a routine event waits in the kernel buffer before the
    /// daemon reads it (violations and new containers wake it at once).
    #[arg(long, default_value_t = 100)]
    batch_ms: u64,
    /// Seconds between summaries of repeated capability checks (each first check is reported
    /// at once).
    #[arg(long, default_value_t = 10)]
    summary_interval_s: u64,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464; port 0 picks one).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Append events to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    runtimes: RuntimeArgs,
}

#[derive(clap::Args)]
struct ApiArgs {
    /// Unix socket of the daemon's API (`sensor containers`, `/metrics`).
    #[arg(long, default_value = "/run/sensor/sensor.sock")]
    api_socket: PathBuf,
}

/// Where container metadata comes from. An empty path disables a runtime.
#[derive(clap::Args)]
struct RuntimeArgs {
    /// Docker Engine API socket.
    #[arg(long, default_value = "/var/run/docker.sock")]
    docker_socket: String,
    /// Podman's Docker-compatible API socket.
    #[arg(long, default_value = "/run/podman/podman.sock")]
    podman_socket: String,
    /// containerd's CRI socket (Kubernetes pods: name, namespace, labels).
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: String,
    /// CRI-O's CRI socket.
    #[arg(long, default_value = "/var/run/crio/crio.sock")]
    crio_socket: String,
    /// Bound on each runtime API call, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    runtime_timeout_ms: u64,
    /// Bound on a new container's metadata lookup, and on how long its first event waits for
    /// it, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    metadata_wait_ms: u64,
    /// containerd namespaces whose `/<namespace>/<id>` cgroups are containers.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_CONTAINERD_NAMESPACES.iter().map(|s| s.to_string()))]
    containerd_namespaces: Vec<String>,
}

impl RuntimeArgs {
    fn sockets(&self) -> Sockets {
        Sockets {
            docker: PathBuf::from(&self.docker_socket),
            podman: PathBuf::from(&self.podman_socket),
            containerd: PathBuf::from(&self.containerd_socket),
            crio: PathBuf::from(&self.crio_socket),
        }
    }
}

/// Runs the CLI; errors are printed as one line (`sensor: error: ...`) and exit with 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.log_level);
    let result = match cli.command {
        Command::Run(args) => daemon::run(daemon::RunOptions {
            btf: args.btf,
            ring_buffer_mib: args.ring_buffer_mib,
            batch: Duration::from_millis(args.batch_ms.max(1)),
            summary_interval: Duration::from_secs(args.summary_interval_s.max(1)),
            metrics_addr: args.metrics_addr,
            output: args.output,
            sockets: args.runtimes.sockets(),
            runtime_timeout: Duration::from_millis(args.runtimes.runtime_timeout_ms.max(1)),
            metadata_wait: Duration::from_millis(args.runtimes.metadata_wait_ms),
            containerd_namespaces: args.runtimes.containerd_namespaces,
            api_socket: args.api.api_socket,
            policy: args.policy,
            mode: args.mode.map(|m| match m {
                ModeArg::Audit => crate::policy::Mode::Audit,
                ModeArg::Enforce => crate::policy::Mode::Enforce,
            }),
        }),
        Command::Policy { command } => return policy_command(command),
        Command::Containers {
            json,
            api,
            runtimes,
        } => crate::inventory::run(&crate::inventory::Options {
            json,
            api_socket: api.api_socket,
            sockets: runtimes.sockets(),
            runtime_timeout: Duration::from_millis(runtimes.runtime_timeout_ms.max(1)),
            metadata_wait: Duration::from_millis(runtimes.metadata_wait_ms),
            containerd_namespaces: runtimes.containerd_namespaces,
        }),
        Command::Probe { json, btf } => run_probe(json, &btf),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sensor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_probe(json: bool, btf: &std::path::Path) -> anyhow::Result<()> {
    preflight::require_root()?;
    let report = probe::run(btf);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", probe::render_text(&report));
    }
    Ok(())
}

fn policy_command(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Bench {
            rules,
            containers,
            btf,
        } => match crate::policy_bench::run(&btf, rules, containers) {
            Ok(r) => {
                println!(
                    "{{\"rules\":{},\"containers\":{},\"rulesets\":{},\"parse_ms\":{:.1},\"compile_and_install_ms\":{:.1}}}",
                    r.rules, r.containers, r.rulesets, r.parse_ms, r.compile_and_install_ms
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sensor: error: {e:#}");
                ExitCode::FAILURE
            }
        },
        PolicyCommand::Default => {
            print!("{}", crate::policy::DEFAULT);
            ExitCode::SUCCESS
        }
        PolicyCommand::Check { files } => {
            let mut ok = true;
            for file in files {
                let source = match crate::policy::Source::read(&file) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{}: cannot read: {e}", file.display());
                        ok = false;
                        continue;
                    }
                };
                match crate::policy::parse_source(&source) {
                    Ok(parsed) => {
                        for w in &parsed.warnings {
                            eprintln!("{}:{w} (warning)", source.origin);
                        }
                        println!(
                            "{}: valid ({} rules, mode {})",
                            source.origin,
                            parsed.policy.rules.len(),
                            parsed.policy.mode.as_str()
                        );
                    }
                    Err(rejected) => {
                        for line in rejected.lines() {
                            eprintln!("{line}");
                        }
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
