//! `cargo xtask setup`: installs what the build and the tests need, skipping what is present.

use std::{path::Path, process::Command};

use anyhow::bail;

use crate::util::{self, output, run, succeeds};

/// Debian packages the build, the tests and the benchmarks use.
/// docker.io brings dockerd, containerd and runc; libc6-dev the static glibc for the workload
/// binary run inside containers.
pub const APT_PACKAGES: &[&str] = &[
    "docker.io",
    "busybox-static",
    "jq",
    "bpftool",
    "iproute2",
    "iptables",
    "libc6-dev",
    "util-linux",
    // A real Podman (and its conmon) for the Podman tests; the API service is podman's own.
    "podman",
    // cargo xtask vmtest: guests, their initramfs, and the keys of Debian's other suites.
    "qemu-system-x86",
    "cpio",
    "debian-archive-keyring",
    // promtool, which checks the sensor's /metrics in the tests.
    "prometheus",
];

/// bpf-linker release that links with this nightly's LLVM (see shared/ENVIRONMENT.md).
pub const BPF_LINKER_VERSION: &str = "0.10.4";
pub const NIGHTLY: &str = "nightly";

fn missing_packages() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map(|s| s.trim() != "install ok installed")
                .unwrap_or(true)
        })
        .collect()
}

fn has_nightly_rust_src() -> bool {
    output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .is_ok_and(|s| s.lines().any(|l| l.starts_with("rust-src")))
}

fn has_nightly() -> bool {
    output(Command::new("rustup").args(["toolchain", "list"])).is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with(&format!("{NIGHTLY}-")) || l.starts_with(&format!("{NIGHTLY} ")))
    })
}

fn bpf_linker_ok() -> bool {
    output(Command::new("bpf-linker").arg("--version"))
        .is_ok_and(|s| s.split_whitespace().any(|w| w == BPF_LINKER_VERSION))
}

fn is_debian_family() -> bool {
    Path::new("/etc/debian_version").exists()
}

/// True when nothing needs installing (cheap enough to call before every run/test).
pub fn is_ready() -> bool {
    has_nightly()
        && has_nightly_rust_src()
        && bpf_linker_ok()
        && (!is_debian_family() || missing_packages().is_empty())
}

fn manual_instructions() -> String {
    format!(
        "install these yourself, as root:\n  \
         apt-get update && apt-get install -y --no-install-recommends {}\n  \
         rustup toolchain install {NIGHTLY} --profile minimal --component rust-src\n  \
         cargo install bpf-linker --version {BPF_LINKER_VERSION} --locked",
        APT_PACKAGES.join(" ")
    )
}

pub fn setup() -> anyhow::Result<()> {
    if !util::is_root() {
        bail!(
            "setup installs system packages and must run as root (sudo cargo xtask setup); or {}",
            manual_instructions()
        );
    }
    if !is_debian_family() {
        bail!(
            "this is not a Debian-family host (no /etc/debian_version); {}",
            manual_instructions()
        );
    }
    let missing = missing_packages();
    if missing.is_empty() {
        eprintln!("xtask: Debian packages present: {}", APT_PACKAGES.join(" "));
    } else {
        run(Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if has_nightly() {
        eprintln!("xtask: {NIGHTLY} toolchain present");
    } else {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
        ]))?;
    }
    if has_nightly_rust_src() {
        eprintln!("xtask: rust-src present on {NIGHTLY}");
    } else {
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))?;
    }
    if bpf_linker_ok() {
        eprintln!("xtask: bpf-linker {BPF_LINKER_VERSION} present");
    } else {
        run(util::cargo().args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
        ]))?;
    }
    if !succeeds(Command::new("bpf-linker").arg("--version")) {
        bail!("bpf-linker is installed but not on PATH: add ~/.cargo/bin to PATH");
    }
    Ok(())
}

/// Runs setup only when something is missing.
pub fn ensure() -> anyhow::Result<()> {
    if is_ready() { Ok(()) } else { setup() }
}
