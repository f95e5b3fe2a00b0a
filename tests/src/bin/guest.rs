//! Test runner inside a QEMU guest (`cargo xtask vmtest`): runs the kernel-facing suite
//! (`integration_tests::kernel_suite`) and prints one line per test for the host to collect:
//! `GUEST-TEST <name> ok | skipped: <why> | FAILED: <why>`. Exits non-zero when a test failed.
//! Built statically: the guest has no libc beyond what the sensor binary brings.

use std::{panic, process::ExitCode};

use integration_tests::kernel_suite::{Outcome, TESTS};

fn main() -> ExitCode {
    let filter = std::env::args().nth(1).filter(|f| !f.is_empty());
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("GUEST-KERNEL {}", release.trim());
    println!(
        "GUEST-NOTE no container runtime runs in the guest: containers are stood in for by cgroups \
         named as Docker, containerd, CRI-O and Podman name theirs; tests that need dockerd run on the host only"
    );
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, test) in TESTS {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        println!("GUEST-TEST-START {name}");
        let started = std::time::Instant::now();
        match panic::catch_unwind(test) {
            Ok(Outcome::Pass) => {
                passed += 1;
                println!(
                    "GUEST-TEST {name} ok ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(Outcome::Skip(why)) => {
                skipped += 1;
                println!("GUEST-TEST {name} skipped: {why}");
            }
            Err(e) => {
                failed += 1;
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                println!(
                    "GUEST-TEST {name} FAILED: {}",
                    msg.lines().next().unwrap_or("")
                );
                // The rest (the sensor's stderr, ...) for the console log.
                for line in msg.lines().skip(1).take(40) {
                    println!("GUEST-DETAIL {line}");
                }
            }
        }
    }
    println!("GUEST-RESULT passed={passed} failed={failed} skipped={skipped}");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
