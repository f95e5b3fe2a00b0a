//! Rebuild the kernel programs when the bpf-linker binary changes (cargo cannot see that
//! dependency on its own), and declare the `bpf_target_arch` cfg the programs branch on.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    aya_build::emit_bpf_target_arch_cfg().expect("bpf_target_arch cfg");
}
