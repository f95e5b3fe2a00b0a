//! Decoder of `sched_process_exec` records (`sensor_common::exec`).

use sensor_common::{
    exec::{
        ExecEvent, FLAG_ARGS_TRUNCATED, FLAG_DRIFT, FLAG_FILENAME_TRUNCATED, FLAG_LOADER,
        FLAG_METADATA_CHANGED, FLAG_SCRIPT, MATCHED_ARGV0, MATCHED_DRIFT, MATCHED_FILE,
        MATCHED_INTERPRETER, MATCHED_LOADED, MATCHED_NAME, MATCHED_UNJUDGEABLE, ORIGIN_DELETED,
        ORIGIN_IMAGE, ORIGIN_MEMFD, ORIGIN_TMPFS, ORIGIN_UPPER, ORIGIN_VOLUME,
    },
    kind,
};

use super::{DecodeError, Header, c_string, read_struct};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub header: Header,
    /// The file name given to execve (`linux_binprm::filename`).
    pub filename: String,
    pub args: Vec<String>,
    pub truncated: bool,
    /// The file is not from the container's image (`origin` says where from).
    pub drift: bool,
    /// The executed file's path from the process's root; `None` when it has none (a memfd).
    pub file: Option<String>,
    /// Where the file comes from, for container processes: `image`, `upper`, `memfd`,
    /// `deleted`, `tmpfs`, `volume`.
    pub origin: Option<&'static str>,
    /// An image file whose mode or owner changed, its content not.
    pub metadata_changed: bool,
    /// A `#!` script (judged as itself and as its interpreter).
    pub script: bool,
    /// A dynamic loader run as a program (judged as what it loads).
    pub loader: bool,
    /// Which of the exec's names decided the verdict, and that name.
    pub matched: Option<(&'static str, Option<String>)>,
    /// Exec rules' verdict.
    pub verdict: sensor_common::policy::Verdict,
}

/// Name of an `ORIGIN_*`.
pub fn origin_name(origin: u8) -> Option<&'static str> {
    Some(match origin {
        ORIGIN_IMAGE => "image",
        ORIGIN_UPPER => "upper",
        ORIGIN_MEMFD => "memfd",
        ORIGIN_DELETED => "deleted",
        ORIGIN_TMPFS => "tmpfs",
        ORIGIN_VOLUME => "volume",
        _ => return None,
    })
}

/// Name of a `MATCHED_*`.
pub fn matched_name(matched: u8) -> Option<&'static str> {
    Some(match matched {
        MATCHED_NAME => "name",
        MATCHED_FILE => "file",
        MATCHED_ARGV0 => "argv0",
        MATCHED_INTERPRETER => "interpreter",
        MATCHED_LOADED => "loaded",
        MATCHED_UNJUDGEABLE => "unjudgeable",
        MATCHED_DRIFT => "drift",
        _ => return None,
    })
}

pub fn decode(bytes: &[u8]) -> Result<Exec, DecodeError> {
    let raw: ExecEvent = read_struct(bytes, kind::EXEC)?;
    let name_len = (raw.filename_len as usize).min(raw.filename.len());
    let args_len = (raw.args_len as usize).min(raw.args.len());
    let args = split_args(&raw.args[..args_len]);
    let path = |bytes: &[u8], len: u16| {
        let len = usize::from(len).min(bytes.len());
        (len > 0).then(|| c_string(&bytes[..len]))
    };
    let matched = matched_name(raw.matched)
        .filter(|_| raw.verdict.action != 0)
        .map(|by| (by, path(&raw.matched_path, raw.matched_len)));
    Ok(Exec {
        header: Header::from(&raw.header),
        filename: c_string(&raw.filename[..name_len]),
        args,
        truncated: raw.flags & (FLAG_FILENAME_TRUNCATED | FLAG_ARGS_TRUNCATED) != 0,
        drift: raw.flags & FLAG_DRIFT != 0,
        file: path(&raw.file, raw.file_len),
        origin: origin_name(raw.origin),
        metadata_changed: raw.flags & FLAG_METADATA_CHANGED != 0,
        script: raw.flags & FLAG_SCRIPT != 0,
        loader: raw.flags & FLAG_LOADER != 0,
        matched,
        verdict: raw.verdict,
    })
}

/// The argument block is the NUL-terminated strings of argv, back to back.
fn split_args(block: &[u8]) -> Vec<String> {
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    if block.is_empty() {
        return Vec::new();
    }
    block
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use sensor_common::exec::{ARGS_LEN, FILENAME_LEN, PATH_LEN};

    use super::*;
    use crate::events::{Event, decode as decode_any, test_util};

    fn record(filename: &[u8], args: &[u8], flags: u32) -> Vec<u8> {
        let mut ev = ExecEvent {
            header: test_util::header(kind::EXEC, std::mem::size_of::<ExecEvent>()),
            filename_len: filename.len() as u32,
            args_len: args.len() as u32,
            flags,
            file_len: 8,
            matched_len: 0,
            verdict: Default::default(),
            origin: ORIGIN_UPPER,
            matched: 0,
            _pad: [0; 6],
            filename: [0; FILENAME_LEN],
            file: [0; PATH_LEN],
            matched_path: [0; PATH_LEN],
            args: [0xaa; ARGS_LEN],
        };
        ev.file[..8].copy_from_slice(b"/busybox");
        ev.filename[..filename.len()].copy_from_slice(filename);
        ev.args[..args.len()].copy_from_slice(args);
        test_util::bytes_of(&ev)
    }

    #[test]
    fn decodes_filename_and_args() {
        let Event::Exec(e) = decode_any(&record(b"/bin/echo", b"echo\0hello world\0", 0)).unwrap()
        else {
            panic!("not an exec event")
        };
        assert_eq!(e.filename, "/bin/echo");
        assert_eq!(e.args, ["echo", "hello world"]);
        assert_eq!(e.header.pid, 100);
        assert_eq!(e.header.comm, "true");
        assert!(!e.truncated);
        assert_eq!(e.file.as_deref(), Some("/busybox"));
        assert_eq!(e.origin, Some("upper"));
        assert_eq!(e.matched, None, "no verdict, no matched name");
    }

    #[test]
    fn garbage_after_lengths_is_ignored() {
        // args_len says 3 bytes: the 0xaa filler after them must not appear.
        let e = decode(&record(b"/x", b"ab\0", FLAG_ARGS_TRUNCATED)).unwrap();
        assert_eq!(e.args, ["ab"]);
        assert!(e.truncated);
    }

    #[test]
    fn lengths_beyond_the_buffer_are_clamped() {
        let mut bytes = record(b"/x", b"", 0);
        // filename_len sits right after the 64-byte header.
        bytes[64..68].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = decode(&bytes).unwrap();
        assert_eq!(e.filename, "/x");
        assert!(e.args.is_empty());
    }
}
