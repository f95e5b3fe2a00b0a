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
use crate::syscalls::args::{Arg, layout};

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
        use crate::syscalls::args::string_args;
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
