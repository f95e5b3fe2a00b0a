//! Workloads run inside containers by the benchmarks and tests. Built statically so that it
//! runs in a busybox image. Prints one JSON object: `{"workload", "ops", "ns_per_op"}`.

use std::{process::Command, time::Instant};

fn usage() -> ! {
    eprintln!("usage: workload getpid N | fork-exec N PATH | setuid-loop SECONDS");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or_else(|| usage());
    let n: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage());
    let start = Instant::now();
    if name == "setuid-loop" {
        // A capability check (CAP_SETUID) per call, as fast as possible for N seconds;
        // prints how many calls were made so a test can compare with what the sensor counted.
        let deadline = start + std::time::Duration::from_secs(n);
        let mut calls: u64 = 0;
        while Instant::now() < deadline {
            for _ in 0..1000 {
                // SAFETY: setuid to the current uid (root): no effect but the check.
                unsafe { libc::setuid(0) };
            }
            calls += 1000;
        }
        println!("{{\"workload\":\"setuid-loop\",\"ops\":{calls}}}");
        return;
    }
    match name {
        "getpid" => {
            for _ in 0..n {
                // SAFETY: getpid has no arguments and no side effects. The raw syscall avoids
                // any libc caching of the pid.
                unsafe { libc::syscall(libc::SYS_getpid) };
            }
        }
        "fork-exec" => {
            let path = args.get(3).unwrap_or_else(|| usage());
            for _ in 0..n {
                let status = Command::new(path).status().expect("spawn");
                assert!(status.success(), "{path} failed: {status}");
            }
        }
        _ => usage(),
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{{\"workload\":\"{name}\",\"ops\":{n},\"ns_per_op\":{ns:.3}}}");
}
