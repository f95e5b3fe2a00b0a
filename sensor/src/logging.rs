//! Human log lines on stderr (events go to stdout): `<RFC 3339 time> <LEVEL> <message>`.

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::time::Clock;

struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // aya's own debug output (relocations, BTF fixups) only at trace.
        let level = if metadata.target().starts_with("aya") && self.level < LevelFilter::Trace {
            self.level.min(LevelFilter::Info)
        } else {
            self.level
        };
        metadata.level() <= level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let time = Clock::new().now_rfc3339();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        // Kernel-side log records (aya-log) carry their program's module as target.
        let target = record.target();
        if target.starts_with("sensor") {
            eprintln!("{time} {level} {}", record.args());
        } else {
            eprintln!("{time} {level} [{target}] {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger; `level` is one of error, warn, info, debug, trace.
pub fn init(level: LevelFilter) {
    let _ = log::set_boxed_logger(Box::new(StderrLogger { level }));
    log::set_max_level(level);
}
