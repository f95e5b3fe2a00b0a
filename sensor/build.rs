//! Builds the kernel programs (`sensor-ebpf`) with the nightly toolchain and bpf-linker, so that
//! `loader.rs` can embed the object with `include_bytes_aligned!`.

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root_dir = format!("{manifest_dir}/../sensor-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "sensor-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the kernel programs; run `cargo xtask setup` if bpf-linker or rust-src is missing")
}
