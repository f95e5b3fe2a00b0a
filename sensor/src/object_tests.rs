//! The embedded kernel object against the daemon's expectations, without root or a kernel:
//! every map and global the daemon opens by name (`sensor_common::names`) exists in it, each
//! map's key and value sizes are those of the types the daemon reads and writes it with, and
//! each global's BTF size is its shared type's. A renamed map, a changed `#[repr(C)]` type on
//! one side only, or a global the programs no longer define fails here, not at load time on a
//! host.

use std::mem::size_of;

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use sensor_common::{
    capability::{CapConfig, CapKey, CapRuleset},
    names::{global, map},
    network::{AddrKey, CidrKeyData, FlowKey, NetKey, NetworkHooks},
    offsets::KernelOffsets,
    policy::{CgroupPolicy, ExecKeyData, ExecRuleset, ExecValue, PolicyConfig},
    process::ProcessRuleset,
    syscall::{SysCountKey, SysKey, SysValue},
};

use crate::{kernel::btf::Btf, loader::OBJECT};

/// An LPM trie's key: the prefix length, then the data.
const fn lpm<T>() -> usize {
    4 + size_of::<T>()
}

/// (map, key size, value size) as the daemon uses each; a ring buffer has neither.
const MAPS: &[(&str, usize, usize)] = &[
    (map::EVENTS, 0, 0),
    (map::CONTROL, 0, 0),
    (map::LOST, 4, 8),
    (map::POLICY, 4, size_of::<PolicyConfig>()),
    (map::CGROUP_POLICY, 8, size_of::<CgroupPolicy>()),
    (
        map::EXEC_PREFIX,
        lpm::<ExecKeyData>(),
        size_of::<ExecValue>(),
    ),
    (
        map::EXEC_SUFFIX,
        lpm::<ExecKeyData>(),
        size_of::<ExecValue>(),
    ),
    (map::EXEC_RULESETS, 4, size_of::<ExecRuleset>()),
    (map::CAP_SEEN, size_of::<CapKey>(), 8),
    (map::CAP_RULESETS, 4, size_of::<CapRuleset>()),
    // The daemon reads a process's identity as its container's cgroup id.
    (map::PROC_IDENTITY, 4, 8),
    (map::WHOAMI, 4, 4),
    (map::SENSOR_OBJECTS, 8, 1),
    (map::PROCESS_RULESETS, 4, size_of::<ProcessRuleset>()),
    (map::NET_ADDRS, size_of::<AddrKey>(), 8),
    (map::NET_CIDRS, lpm::<CidrKeyData>(), 8),
    (map::NET_FLOWS, size_of::<FlowKey>(), 8),
    (map::NET_SEEN, size_of::<NetKey>(), 8),
    (
        map::SYSCALL_RULES,
        size_of::<SysKey>(),
        size_of::<SysValue>(),
    ),
    (map::SYSCALL_LSM, 4, 1),
    (map::SYSCALL_AT_CAPABILITY, 4, 1),
    (map::COMPAT_SYSCALLS, 4, 2),
    (map::IOURING_SYSCALLS, 4, 2),
    (map::IOURING_SETUP_NR, 4, 4),
    (map::SYSCALL_COUNTS, size_of::<SysCountKey>(), 8),
];

#[test]
fn every_map_the_daemon_opens_exists_with_the_daemons_sizes() {
    let parsed = aya_obj::Object::parse(OBJECT).expect("the embedded object parses");
    let mut wrong = Vec::new();
    for &(name, key, value) in MAPS {
        match parsed.maps.get(name) {
            None => wrong.push(format!("{name}: missing")),
            Some(m) if (m.key_size() as usize, m.value_size() as usize) != (key, value) => wrong
                .push(format!(
                    "{name}: the object has key {} / value {} bytes, the daemon {key} / {value}",
                    m.key_size(),
                    m.value_size()
                )),
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_global_the_daemon_sets_exists_with_its_types_btf_size() {
    let elf = object::File::parse(OBJECT).expect("the embedded object is ELF");
    let btf = elf
        .section_by_name(".BTF")
        .and_then(|s| s.data().ok())
        .map(|d| Btf::parse(d).expect("the object's BTF parses"))
        .expect("the object has BTF");
    let symbols: Vec<&str> = elf.symbols().filter_map(|s| s.name().ok()).collect();
    // (global, its type's name in the object's BTF, the shared type's size); `None` for a
    // plain integer.
    let globals: &[(&str, Option<&str>, usize)] = &[
        (
            global::OFFSETS,
            Some("KernelOffsets"),
            size_of::<KernelOffsets>(),
        ),
        (global::WAKEUP_BYTES, None, 8),
        (
            global::CAP_CONFIG,
            Some("CapConfig"),
            size_of::<CapConfig>(),
        ),
        (
            global::NETWORK_HOOKS,
            Some("NetworkHooks"),
            size_of::<NetworkHooks>(),
        ),
    ];
    for &(name, ty, size) in globals {
        assert!(
            symbols.contains(&name),
            "global {name} is not in the object"
        );
        if let Some(ty) = ty {
            assert_eq!(
                btf.struct_size(ty).map(|s| s as usize),
                Some(size),
                "global {name}: BTF size of {ty} in the object against the daemon's"
            );
        }
    }
}
