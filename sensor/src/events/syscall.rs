//! Decoder of syscall records (`sensor_common::syscall`) and of the arguments worth naming:
//! mount source/target/type/flags, unshare/setns/clone namespace flags, ptrace request and
//! target, bpf command. Other syscalls show their raw arguments only.

use sensor_common::{
    kind,
    policy::Verdict,
    syscall::{ARGS, STRINGS, SyscallEvent},
};
use serde_json::{Map, Value, json};

use super::{DecodeError, Header, c_string, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub header: Header,
    pub nr: u32,
    pub args: [u64; ARGS],
    /// String arguments 0..STRINGS the kernel read from the caller's memory.
    pub strings: [Option<String>; STRINGS],
    pub verdict: Verdict,
    /// `sensor_common::syscall::SEEN_AT_*`.
    pub seen_at: u8,
    /// A 32-bit call (`int 0x80`), judged as the native syscall `nr`.
    pub compat: bool,
}

pub fn decode(bytes: &[u8]) -> Result<Syscall, DecodeError> {
    let raw: SyscallEvent = read_struct(bytes, kind::SYSCALL)?;
    let strings = std::array::from_fn(|i| {
        (raw.strings_read & (1 << i) != 0).then(|| c_string(&raw.strings[i]))
    });
    Ok(Syscall {
        header: Header::from(&raw.header),
        nr: raw.nr,
        args: raw.args,
        strings,
        verdict: raw.verdict,
        seen_at: raw.seen_at,
        compat: raw.compat != 0,
    })
}

/// What an argument is, for the decoder.
#[derive(Clone, Copy)]
enum Arg {
    /// A string the kernel reads from the caller (argument index < STRINGS).
    Str(&'static str),
    Int(&'static str),
    Flags(&'static str, &'static [(u64, &'static str)]),
    Enum(&'static str, &'static [(u64, &'static str)]),
}

const CLONE_NS: &[(u64, &str)] = &[
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
    (0x0000_0080, "CLONE_NEWTIME"),
    (0x0000_0200, "CLONE_FS"),
    (0x0000_0400, "CLONE_FILES"),
    (0x0000_0100, "CLONE_VM"),
    (0x0000_0800, "CLONE_SIGHAND"),
    (0x0001_0000, "CLONE_THREAD"),
    (0x0008_0000, "CLONE_SYSVSEM"),
];

const MOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (16, "MS_SYNCHRONOUS"),
    (32, "MS_REMOUNT"),
    (64, "MS_MANDLOCK"),
    (128, "MS_DIRSYNC"),
    (1024, "MS_NOATIME"),
    (2048, "MS_NODIRATIME"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (1 << 17, "MS_PRIVATE"),
    (1 << 18, "MS_SLAVE"),
    (1 << 19, "MS_SHARED"),
    (1 << 20, "MS_UNBINDABLE"),
    (1 << 21, "MS_RELATIME"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
];

const UMOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MNT_FORCE"),
    (2, "MNT_DETACH"),
    (4, "MNT_EXPIRE"),
    (8, "UMOUNT_NOFOLLOW"),
];

const PTRACE_REQUESTS: &[(u64, &str)] = &[
    (0, "PTRACE_TRACEME"),
    (1, "PTRACE_PEEKTEXT"),
    (2, "PTRACE_PEEKDATA"),
    (3, "PTRACE_PEEKUSER"),
    (4, "PTRACE_POKETEXT"),
    (5, "PTRACE_POKEDATA"),
    (6, "PTRACE_POKEUSER"),
    (7, "PTRACE_CONT"),
    (8, "PTRACE_KILL"),
    (9, "PTRACE_SINGLESTEP"),
    (12, "PTRACE_GETREGS"),
    (13, "PTRACE_SETREGS"),
    (16, "PTRACE_ATTACH"),
    (17, "PTRACE_DETACH"),
    (24, "PTRACE_SYSCALL"),
    (0x4200, "PTRACE_SETOPTIONS"),
    (0x4204, "PTRACE_GETREGSET"),
    (0x4205, "PTRACE_SETREGSET"),
    (0x4206, "PTRACE_SEIZE"),
    (0x4207, "PTRACE_INTERRUPT"),
];

const BPF_COMMANDS: &[(u64, &str)] = &[
    (0, "BPF_MAP_CREATE"),
    (1, "BPF_MAP_LOOKUP_ELEM"),
    (2, "BPF_MAP_UPDATE_ELEM"),
    (3, "BPF_MAP_DELETE_ELEM"),
    (4, "BPF_MAP_GET_NEXT_KEY"),
    (5, "BPF_PROG_LOAD"),
    (6, "BPF_OBJ_PIN"),
    (7, "BPF_OBJ_GET"),
    (8, "BPF_PROG_ATTACH"),
    (9, "BPF_PROG_DETACH"),
    (10, "BPF_PROG_TEST_RUN"),
    (11, "BPF_PROG_GET_NEXT_ID"),
    (12, "BPF_MAP_GET_NEXT_ID"),
    (13, "BPF_PROG_GET_FD_BY_ID"),
    (14, "BPF_MAP_GET_FD_BY_ID"),
    (15, "BPF_OBJ_GET_INFO_BY_FD"),
    (16, "BPF_PROG_QUERY"),
    (17, "BPF_RAW_TRACEPOINT_OPEN"),
    (18, "BPF_BTF_LOAD"),
    (28, "BPF_LINK_CREATE"),
];

/// The arguments each decoded syscall names, in order. Strings must be arguments 0..STRINGS
/// (the kernel reads only those).
fn layout(name: &str) -> &'static [Arg] {
    use Arg::*;
    match name {
        "mount" => &[
            Str("source"),
            Str("target"),
            Str("fstype"),
            Flags("flags", MOUNT_FLAGS),
        ],
        "umount2" => &[Str("target"), Flags("flags", UMOUNT_FLAGS)],
        "pivot_root" => &[Str("new_root"), Str("put_old")],
        "chroot" | "swapon" | "acct" => &[Str("path")],
        "unshare" => &[Flags("flags", CLONE_NS)],
        "setns" => &[Int("fd"), Flags("nstype", CLONE_NS)],
        "ptrace" => &[Enum("request", PTRACE_REQUESTS), Int("pid")],
        "bpf" => &[Enum("cmd", BPF_COMMANDS)],
        "delete_module" => &[Str("name")],
        "init_module" => &[Int("image"), Int("len"), Str("params")],
        "finit_module" => &[Int("fd"), Str("params")],
        "perf_event_open" => &[Int("attr"), Int("pid"), Int("cpu")],
        "open_by_handle_at" | "name_to_handle_at" => &[Int("dirfd")],
        "keyctl" => &[Int("operation")],
        "add_key" | "request_key" => &[Str("type"), Str("description")],
        "kexec_file_load" => &[Int("kernel_fd"), Int("initrd_fd")],
        "reboot" => &[Int("magic"), Int("magic2"), Int("cmd")],
        "userfaultfd" => &[Int("flags")],
        _ => &[],
    }
}

/// Bit i set: argument i of syscall `name` is a string the kernel should read.
pub fn string_args(name: &str) -> u8 {
    let mut mask = 0;
    for (i, arg) in layout(name).iter().enumerate() {
        if matches!(arg, Arg::Str(_)) && i < STRINGS {
            mask |= 1 << i;
        }
    }
    mask
}

/// Names of the bits of `value` in `table`, and what is left as a hex number.
fn flag_names(value: u64, table: &[(u64, &str)]) -> Value {
    let mut names = Vec::new();
    let mut rest = value;
    for (bit, name) in table {
        if value & bit == *bit && *bit != 0 {
            names.push(Value::from(*name));
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(Value::from(format!("{rest:#x}")));
    }
    Value::Array(names)
}

/// The named arguments of a call of syscall `name` (only those of the table above; the raw
/// values are always on the line too).
pub fn decoded_args(name: &str, call: &Syscall) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, arg) in layout(name).iter().enumerate() {
        let raw = call.args[i];
        let (key, value) = match *arg {
            Arg::Str(key) => (
                key,
                match call.strings.get(i).and_then(Option::as_ref) {
                    Some(s) => Value::from(s.as_str()),
                    None => Value::Null,
                },
            ),
            // Syscall ints are C ints: show negative values (fds, pids) as such.
            Arg::Int(key) => (key, json!(raw as i64)),
            Arg::Flags(key, table) => (key, flag_names(raw, table)),
            Arg::Enum(key, table) => (
                key,
                match table.iter().find(|(v, _)| *v == raw) {
                    Some((_, name)) => Value::from(*name),
                    None => json!(raw),
                },
            ),
        };
        out.insert(key.to_owned(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, decode as decode_any, test_util};

    fn record(nr: u32, args: [u64; ARGS], strings: &[&str]) -> SyscallEvent {
        let mut ev = SyscallEvent {
            header: test_util::header(kind::SYSCALL, std::mem::size_of::<SyscallEvent>()),
            nr,
            strings_read: 0,
            seen_at: 1,
            compat: 0,
            _pad: 0,
            args,
            verdict: Verdict::default(),
            strings: [[0; sensor_common::syscall::STRING_LEN]; STRINGS],
        };
        for (i, s) in strings.iter().enumerate() {
            ev.strings[i][..s.len()].copy_from_slice(s.as_bytes());
            ev.strings_read |= 1 << i;
        }
        ev
    }

    #[test]
    fn decodes_a_mount() {
        let ev = record(
            165,
            [1, 2, 3, 4096 | 16384 | 2, 0, 0],
            &["none", "/mnt", "tmpfs"],
        );
        let Event::Syscall(call) = decode_any(&test_util::bytes_of(&ev)).unwrap() else {
            panic!("kind")
        };
        let args = decoded_args("mount", &call);
        assert_eq!(
            Value::Object(args),
            json!({"source": "none", "target": "/mnt", "fstype": "tmpfs",
                   "flags": ["MS_NOSUID", "MS_BIND", "MS_REC"]})
        );
    }

    #[test]
    fn decodes_namespace_ptrace_and_bpf_arguments() {
        let call = decode(&test_util::bytes_of(&record(
            272,
            [0x1000_0000 | 0x0002_0000 | 0x8000_0000_0000, 0, 0, 0, 0, 0],
            &[],
        )))
        .unwrap();
        assert_eq!(
            decoded_args("unshare", &call)["flags"],
            json!(["CLONE_NEWNS", "CLONE_NEWUSER", "0x800000000000"])
        );
        let call = decode(&test_util::bytes_of(&record(
            101,
            [16, 1234, 0, 0, 0, 0],
            &[],
        )))
        .unwrap();
        assert_eq!(
            Value::Object(decoded_args("ptrace", &call)),
            json!({"request": "PTRACE_ATTACH", "pid": 1234})
        );
        let call = decode(&test_util::bytes_of(&record(321, [5, 0, 0, 0, 0, 0], &[]))).unwrap();
        assert_eq!(decoded_args("bpf", &call)["cmd"], json!("BPF_PROG_LOAD"));
        let call = decode(&test_util::bytes_of(&record(
            308,
            [u64::MAX, 0x0400_0000, 0, 0, 0, 0],
            &[],
        )))
        .unwrap();
        assert_eq!(
            Value::Object(decoded_args("setns", &call)),
            json!({"fd": -1, "nstype": ["CLONE_NEWUTS"]})
        );
    }

    #[test]
    fn string_arguments_are_the_first_three() {
        assert_eq!(string_args("mount"), 0b111);
        assert_eq!(string_args("umount2"), 0b1);
        assert_eq!(string_args("finit_module"), 0b10);
        assert_eq!(string_args("unshare"), 0);
        assert_eq!(string_args("getpid"), 0);
        // An unreadable string is null, not missing.
        let call = decode(&test_util::bytes_of(&record(165, [0; ARGS], &[]))).unwrap();
        assert_eq!(decoded_args("mount", &call)["source"], Value::Null);
    }
}
