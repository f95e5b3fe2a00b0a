//! Checks made before anything is loaded, each failing with one line that says what to do.

use std::path::{Path, PathBuf};

/// Oldest kernel the sensor supports: the BPF ring buffer and `bpf_ktime_get_boot_ns` are 5.8.
pub const MIN_KERNEL: (u32, u32) = (5, 8);

pub const DEFAULT_BTF: &str = "/sys/kernel/btf/vmlinux";
pub const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("the sensor loads eBPF programs and must run as root (uid 0); run it with sudo")]
    NotRoot,
    #[error(
        "kernel {release} is older than {}.{}, the oldest the sensor supports (it needs the BPF ring buffer); upgrade the kernel",
        MIN_KERNEL.0,
        MIN_KERNEL.1
    )]
    KernelTooOld { release: String },
    #[error(
        "no kernel BTF at {}: the sensor needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (distribution kernels since 5.x have it), or --btf FILE pointing at this kernel's BTF",
        path.display()
    )]
    NoBtf { path: PathBuf },
    #[error(
        "bpffs is not mounted at {BPFFS}: mount it with `mount -t bpf bpf {BPFFS}` and start the sensor again"
    )]
    NoBpffs,
    #[error(
        "no cgroup v2 hierarchy is mounted, so processes cannot be attributed to containers: mount it with `mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified on hybrid hosts)"
    )]
    NoCgroupV2,
}

pub fn require_root() -> Result<(), PreflightError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(PreflightError::NotRoot)
    }
}

pub fn require_kernel_version() -> Result<(), PreflightError> {
    check_kernel_version(&super::release())
}

fn check_kernel_version(release: &str) -> Result<(), PreflightError> {
    match super::parse_version(release) {
        Some(v) if v < MIN_KERNEL => Err(PreflightError::KernelTooOld {
            release: release.to_owned(),
        }),
        _ => Ok(()),
    }
}

pub fn require_btf(path: &Path) -> Result<(), PreflightError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(PreflightError::NoBtf {
            path: path.to_owned(),
        })
    }
}

pub fn bpffs_mounted() -> bool {
    let path = std::ffi::CString::new(BPFFS).expect("no NUL in constant");
    // SAFETY: statfs on a valid C string into a zeroed out-struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

pub fn require_bpffs() -> Result<(), PreflightError> {
    if bpffs_mounted() {
        Ok(())
    } else {
        Err(PreflightError::NoBpffs)
    }
}

pub fn require_cgroup_v2() -> Result<PathBuf, PreflightError> {
    crate::containers::cgroupfs::v2_mount()
        .ok()
        .flatten()
        .ok_or(PreflightError::NoCgroupV2)
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones use memcg. Raising the
/// limit can fail without CAP_SYS_RESOURCE, which is fine on 5.11+; on older kernels the map
/// creation that follows reports the real problem.
pub fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK ({}); not needed on kernels 5.11 and later",
            std::io::Error::last_os_error()
        );
    }
}

/// Mounts a pseudo-filesystem the sensor reads (tracefs for tracepoint ids, securityfs for the
/// active LSM list) when it is missing, as other eBPF agents do. Failure is reported by the
/// feature that needs it, not here.
pub fn ensure_mounted(fstype: &str, target: &str) {
    let marker = match fstype {
        "tracefs" => "events",
        "securityfs" => "lsm",
        _ => return,
    };
    let target_path = Path::new(target);
    if target_path.join(marker).exists() || !target_path.is_dir() {
        return;
    }
    let (Ok(src), Ok(dst), Ok(ty)) = (
        std::ffi::CString::new(fstype),
        std::ffi::CString::new(target),
        std::ffi::CString::new(fstype),
    ) else {
        return;
    };
    // SAFETY: valid NUL-terminated strings; no mount data.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        log::info!("mounted {fstype} at {target}");
    } else {
        log::debug!(
            "could not mount {fstype} at {target}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// tracefs and securityfs, where the sensor expects them.
pub fn ensure_pseudo_filesystems() {
    ensure_mounted("tracefs", "/sys/kernel/tracing");
    ensure_mounted("securityfs", "/sys/kernel/security");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_kernels_get_one_clear_line() {
        let err = check_kernel_version("4.19.0-26-amd64")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "kernel 4.19.0-26-amd64 is older than 5.8, the oldest the sensor supports (it needs the BPF ring buffer); upgrade the kernel"
        );
        assert!(check_kernel_version("5.7.19").is_err());
        for ok in [
            "5.8.0",
            "5.10.0-32-amd64",
            "6.18.44-fc-v669",
            "7.2.13+deb14-amd64",
        ] {
            assert!(check_kernel_version(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn missing_btf_names_the_file_and_the_fix() {
        let err = require_btf(Path::new("/nonexistent/vmlinux"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/vmlinux") && err.contains("CONFIG_DEBUG_INFO_BTF"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }
}
