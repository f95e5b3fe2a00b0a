//! Names of the kernel objects the daemon opens, defined once. The kernel side names each by
//! its identifier (`#[map] static POLICY` in `sensor-ebpf/src/maps.rs`); a unit test of the
//! daemon (`sensor/src/object_tests.rs`, no root needed) parses the embedded object and checks that
//! every name here exists in it, with the key and value sizes the daemon's types have.

/// Maps (`sensor-ebpf/src/maps.rs`).
pub mod map {
    pub const EVENTS: &str = "EVENTS";
    pub const CONTROL: &str = "CONTROL";
    pub const LOST: &str = "LOST";
    pub const POLICY: &str = "POLICY";
    pub const CGROUP_POLICY: &str = "CGROUP_POLICY";
    pub const EXEC_PREFIX: &str = "EXEC_PREFIX";
    pub const EXEC_SUFFIX: &str = "EXEC_SUFFIX";
    pub const EXEC_RULESETS: &str = "EXEC_RULESETS";
    pub const CAP_SEEN: &str = "CAP_SEEN";
    pub const CAP_RULESETS: &str = "CAP_RULESETS";
    pub const PROC_IDENTITY: &str = "PROC_IDENTITY";
    pub const WHOAMI: &str = "WHOAMI";
    pub const SENSOR_OBJECTS: &str = "SENSOR_OBJECTS";
    pub const PROCESS_RULESETS: &str = "PROCESS_RULESETS";
    pub const NET_ADDRS: &str = "NET_ADDRS";
    pub const NET_CIDRS: &str = "NET_CIDRS";
    pub const NET_FLOWS: &str = "NET_FLOWS";
    pub const NET_SEEN: &str = "NET_SEEN";
    pub const SYSCALL_RULES: &str = "SYSCALL_RULES";
    pub const SYSCALL_LSM: &str = "SYSCALL_LSM";
    pub const SYSCALL_AT_CAPABILITY: &str = "SYSCALL_AT_CAPABILITY";
    pub const COMPAT_SYSCALLS: &str = "COMPAT_SYSCALLS";
    pub const IOURING_SYSCALLS: &str = "IOURING_SYSCALLS";
    pub const IOURING_SETUP_NR: &str = "IOURING_SETUP_NR";
    pub const SYSCALL_COUNTS: &str = "SYSCALL_COUNTS";
}

/// Globals the daemon sets at load time (`EbpfLoader::override_global`).
pub mod global {
    pub const OFFSETS: &str = "OFFSETS";
    pub const WAKEUP_BYTES: &str = "WAKEUP_BYTES";
    pub const CAP_CONFIG: &str = "CAP_CONFIG";
    pub const NETWORK_HOOKS: &str = "NETWORK_HOOKS";
}
