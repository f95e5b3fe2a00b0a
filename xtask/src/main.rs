//! Developer tasks: `cargo xtask setup | build | run | test | bench`.

mod bench;
mod containerd;
mod docker;
mod host;
mod podman;
mod setup;
mod test;
mod util;
mod vmtest;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: Debian packages, nightly rust-src, bpf-linker.
    Setup,
    /// Build the sensor (kernel programs embedded).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// rustfmt check and clippy with warnings as errors, user-space and kernel crates.
    Lint,
    /// Set up if needed, build, and run `sensor run ARGS` as root.
    Run {
        /// Arguments for `sensor run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up if needed, run the unit tests, the integration tests as root against a real
    /// dockerd, then the kernel-facing suite in QEMU guests on every supported kernel.
    Test {
        /// Only integration tests (host and guest) whose name contains this.
        filter: Option<String>,
        /// Skip the QEMU guest suite.
        #[arg(long)]
        host_only: bool,
    },
    /// The kernel-facing suite in QEMU guests running Debian's kernels with BPF LSM on.
    Vmtest {
        /// 5.10, 6.1, 6.12, 7.2 or all.
        #[arg(long, default_value = "all")]
        kernel: String,
        /// Only guest tests whose name contains this.
        filter: Option<String>,
        /// Rewrite README.md's kernel table from the guests' `sensor probe --json`.
        #[arg(long)]
        update_readme: bool,
    },
    /// Workloads with the sensor not loaded and loaded, interleaved; prints loaded/unloaded
    /// ratios and writes JSON under target/bench/.
    Bench {
        /// Rounds per workload (each round measures unloaded and loaded once).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
        /// Only workloads whose name contains this.
        filter: Option<String>,
        /// Instead of the workloads: the sensor's memory over this many container start/stop
        /// cycles.
        #[arg(long, default_value_t = 0)]
        churn: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::setup(),
        Cmd::Lint => lint(),
        Cmd::Build { release } => build_sensor(release).map(|_| ()),
        Cmd::Run { args } => run_sensor(&args),
        Cmd::Test { filter, host_only } => test::test(filter.as_deref()).and_then(|()| {
            if host_only {
                eprintln!("xtask: --host-only: the QEMU guest suite was not run");
                Ok(())
            } else {
                vmtest::vmtest("all", filter.as_deref(), false)
            }
        }),
        Cmd::Vmtest {
            kernel,
            filter,
            update_readme,
        } => vmtest::vmtest(&kernel, filter.as_deref(), update_readme),
        Cmd::Bench {
            rounds,
            filter,
            churn,
        } => bench::bench(rounds, filter.as_deref(), churn),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the sensor binary and returns its path.
pub fn build_sensor(release: bool) -> anyhow::Result<std::path::PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["build", "--package", "sensor"]);
    if release {
        cmd.arg("--release");
    }
    util::run(&mut cmd)?;
    Ok(util::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("sensor"))
}

fn run_sensor(args: &[String]) -> anyhow::Result<()> {
    if !util::is_root() {
        anyhow::bail!("the sensor loads eBPF programs: run as root (sudo cargo xtask run)");
    }
    setup::ensure()?;
    host::ensure_bpffs()?;
    let bin = build_sensor(true)?;
    let status = std::process::Command::new(&bin)
        .arg("run")
        .args(args)
        .status()?;
    if !status.success() {
        anyhow::bail!("sensor exited with {status}");
    }
    Ok(())
}

fn lint() -> anyhow::Result<()> {
    setup::ensure()?;
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::run(util::cargo().args([
        "clippy",
        "--package",
        "sensor",
        "--package",
        "sensor-common",
        "--package",
        "xtask",
        "--package",
        "integration-tests",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel crate only builds for the BPF target with nightly's build-std.
    let mut ebpf = std::process::Command::new("rustup");
    ebpf.current_dir(util::workspace_root().join("sensor-ebpf"))
        .env_remove("RUSTC")
        .env_remove("CARGO")
        .args([
            "run",
            setup::NIGHTLY,
            "cargo",
            "clippy",
            "--target",
            "bpfel-unknown-none",
        ])
        .args(["-Z", "build-std=core", "--", "-D", "warnings"]);
    util::run(&mut ebpf)
}
