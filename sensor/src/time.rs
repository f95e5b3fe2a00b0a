//! Event time: kernel boot-clock nanoseconds → RFC 3339 UTC with nanoseconds.

/// Converts `bpf_ktime_get_boot_ns()` values to wall-clock time. The offset between
/// CLOCK_REALTIME and CLOCK_BOOTTIME is re-read on `refresh` so that NTP steps are followed.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    realtime_minus_boot_ns: i128,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on every supported kernel.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_BOOTTIME now, the clock of the kernel's event timestamps.
pub fn boottime_ns() -> u64 {
    now_ns(libc::CLOCK_BOOTTIME) as u64
}

impl Clock {
    pub fn new() -> Self {
        let mut c = Self {
            realtime_minus_boot_ns: 0,
        };
        c.refresh();
        c
    }

    pub fn refresh(&mut self) {
        self.realtime_minus_boot_ns = now_ns(libc::CLOCK_REALTIME) - now_ns(libc::CLOCK_BOOTTIME);
    }

    pub fn rfc3339(&self, boot_ns: u64) -> String {
        rfc3339_from_unix_ns(i128::from(boot_ns) + self.realtime_minus_boot_ns)
    }

    pub fn now_rfc3339(&self) -> String {
        rfc3339_from_unix_ns(now_ns(libc::CLOCK_REALTIME))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// `1970-01-01T00:00:00.000000000Z` format.
pub fn rfc3339_from_unix_ns(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Howard Hinnant's days-since-epoch → proleptic Gregorian date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339_from_unix_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_from_unix_ns(1_000_000_001),
            "1970-01-01T00:00:01.000000001Z"
        );
        // 2000-02-29 (leap day) 12:34:56.5
        assert_eq!(
            rfc3339_from_unix_ns(951_827_696_500_000_000),
            "2000-02-29T12:34:56.500000000Z"
        );
        // 2026-11-30T05:28:16Z
        assert_eq!(
            rfc3339_from_unix_ns(1_796_016_496_000_000_000),
            "2026-11-30T05:28:16.000000000Z"
        );
        assert_eq!(rfc3339_from_unix_ns(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn clock_is_close_to_now() {
        let c = Clock::new();
        let boot = now_ns(libc::CLOCK_BOOTTIME) as u64;
        let a = c.rfc3339(boot);
        let b = c.now_rfc3339();
        // Same second (allowing a boundary crossing by comparing minutes).
        assert_eq!(a[..16], b[..16], "{a} vs {b}");
    }
}
