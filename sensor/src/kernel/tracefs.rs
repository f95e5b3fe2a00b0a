//! tracefs: where it is mounted and which tracepoints the kernel has.

use std::path::Path;

/// The tracefs mount: `/sys/kernel/tracing`, or the older `/sys/kernel/debug/tracing`.
pub fn root() -> Option<&'static Path> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
}

/// Whether the kernel has tracepoint `category:name`.
pub fn exists(category: &str, name: &str) -> bool {
    root().is_some_and(|r| r.join("events").join(category).join(name).is_dir())
}
