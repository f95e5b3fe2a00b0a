//! `sched_process_exec`: one event per successful execve, after the new image is in place and
//! before it runs any of its own code; `lsm/bprm_check_security` where BPF LSM runs, to refuse
//! an exec with EPERM before it happens.
//!
//! An exec is judged under each of its names (`sensor_common::exec`): the name as executed,
//! made absolute and normalised; the file that runs, as a path from the process's root (a
//! dentry walk); `argv[0]` when it names another program; a script's interpreter; what a
//! directly executed dynamic loader loads. A deny rule matching any name is a violation; an
//! allow-list must allow every name. A name that must be judged and cannot be (too long,
//! unreadable, no path from the root) fails closed with the ruleset's strongest exec rule.
//! The verdict is reached before any event is reserved: a full ring buffer loses the event
//! (counted), never the enforcement.

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user},
    macros::{lsm, raw_tracepoint},
    programs::{LsmContext, RawTracePointContext},
};
use sensor_common::{
    exec::{
        ARGS_LEN, ExecEvent, FILENAME_LEN, FLAG_ARGS_TRUNCATED, FLAG_DRIFT, FLAG_FILE_UNREACHABLE,
        FLAG_FILENAME_TRUNCATED, FLAG_FILENAME_UNREADABLE, FLAG_LOADER, FLAG_METADATA_CHANGED,
        FLAG_SCRIPT, MATCHED_ARGV0, MATCHED_DRIFT, MATCHED_FILE, MATCHED_INTERPRETER,
        MATCHED_LOADED, MATCHED_NAME, MATCHED_NONE, MATCHED_UNJUDGEABLE, ORIGIN_DELETED,
        ORIGIN_IMAGE, ORIGIN_MEMFD, ORIGIN_TMPFS, ORIGIN_UNKNOWN, ORIGIN_UPPER, ORIGIN_VOLUME,
        OVERLAYFS_SUPER_MAGIC, PATH_LEN, RAMFS_MAGIC, TMPFS_MAGIC,
    },
    kind,
    offsets::{KernelOffsets, OVL_LOWER_ENTRY, OVL_LOWER_INODE, OVL_LOWER_PATH},
    policy::{
        ACTION_AUDIT, ACTION_BLOCK, ACTION_KILL, ACTION_NONE, ENFORCED_LSM, ENFORCED_SIGNAL,
        EXEC_PATH_LEN, ExecRuleset, ExecValue, RULE_ALLOW_LIST, Verdict,
    },
};

use crate::{
    maps::{
        EVENTS, EXEC_PREFIX, EXEC_RULESETS, EXEC_SCRATCH, EXEC_SUFFIX, ExecScratch, Urgency,
        count_lost, submit,
    },
    policy,
    task::{current_task, fill_header, offsets, read_at, read_field},
};

const EPERM: i32 = 1;

/// Longest path a rule can match, without the NUL that exact patterns end with.
const MAX_JUDGED: usize = EXEC_PATH_LEN - 1;
/// Components followed from a file up to the root, mount crossings included.
const WALK_STEPS: usize = 40;
/// Bytes of a path's end that suffix patterns (`*/nc`) are matched against
/// (`sensor_common::policy::SUFFIX_LEN`).
const SUFFIX_LEN: usize = sensor_common::policy::SUFFIX_LEN;
/// Bytes of argv[0] (and of a loader's first argument) read to judge the program they name.
const ARGV0_LEN: usize = 128;
/// Components a judged path may have.
const DEPTH: usize = 32;

/// `resolve`/`normalize` results that are not lengths.
const UNREACHABLE: i64 = -1;
const TOO_LONG: i64 = -2;

/// The root and working directory of the current task (`fs->root`, `fs->pwd`) as (mnt,
/// dentry) pairs.
#[inline(always)]
fn fs_paths(o: &KernelOffsets) -> Option<[(*const u8, *const u8); 2]> {
    let fs: *const u8 = read_field(current_task(), o.task_fs)?;
    let path = |at: u32| -> Option<(*const u8, *const u8)> {
        let base = (fs as usize + at as usize) as *const u8;
        // `path.mnt` is the first member: offset 0, which read_field treats as unknown.
        let mnt: *const u8 = read_at((base as usize + o.path_mnt as usize) as *const u8)?;
        let dentry: *const u8 = read_field(base, o.path_dentry)?;
        Some((mnt, dentry))
    };
    Some([path(o.fs_root)?, path(o.fs_pwd)?])
}

/// The file's (mnt, dentry) (`file->f_path`).
#[inline(always)]
fn file_path(file: *const u8, o: &KernelOffsets) -> Option<(*const u8, *const u8)> {
    let base = (file as usize + o.file_path as usize) as *const u8;
    let mnt: *const u8 = read_at((base as usize + o.path_mnt as usize) as *const u8)?;
    let dentry: *const u8 = read_field(base, o.path_dentry)?;
    Some((mnt, dentry))
}

/// Writes the path of (`mnt`, `dentry`) from the root (`root_mnt`, `root_dentry`) into
/// `s.path`, records where each component starts (`s.stack`, `s.depth`), and returns its
/// length: 0 for the root itself, `UNREACHABLE` when the root is not above the file (another
/// mount namespace, a memfd's internal mount, a disconnected dentry), `TOO_LONG` past
/// `MAX_JUDGED` bytes or `DEPTH` components.
#[inline(always)]
fn resolve_body(
    s: &mut ExecScratch,
    mnt: *const u8,
    dentry: *const u8,
    root_mnt: *const u8,
    root_dentry: *const u8,
) -> i64 {
    let o = offsets();
    let mut mnt = mnt;
    let mut dentry = dentry;
    let mut mount = (mnt as usize).wrapping_sub(o.mount_mnt as usize) as *const u8;
    // The number of components found so far, in memory (see `ExecScratch::v`).
    set(s, AT, 0);
    let mut reached = false;
    for _ in 0..WALK_STEPS {
        if dentry == root_dentry && mnt == root_mnt {
            reached = true;
            break;
        }
        let Some(mnt_root) =
            read_at::<*const u8>((mnt as usize + o.vfsmount_root as usize) as *const u8)
        else {
            return UNREACHABLE;
        };
        if dentry == mnt_root {
            let Some(parent) = read_field::<*const u8>(mount, o.mount_parent) else {
                return UNREACHABLE;
            };
            if parent == mount {
                return UNREACHABLE;
            }
            let Some(point) = read_field::<*const u8>(mount, o.mount_mountpoint) else {
                return UNREACHABLE;
            };
            dentry = point;
            mount = parent;
            mnt = (parent as usize + o.mount_mnt as usize) as *const u8;
            continue;
        }
        let Some(up) = read_field::<*const u8>(dentry, o.dentry_parent) else {
            return UNREACHABLE;
        };
        if up == dentry {
            return UNREACHABLE;
        }
        let n = get(s, AT);
        if n >= DEPTH {
            return TOO_LONG;
        }
        s.dentries[n & (DEPTH - 1)] = dentry as u64;
        set(s, AT, n + 1);
        dentry = up;
    }
    if !reached {
        return TOO_LONG;
    }
    let n = get(s, AT) & 0x3f;
    set(s, LEN, 0);
    for k in 0..DEPTH {
        if k >= n {
            break;
        }
        let de = s.dentries[masked(n.wrapping_sub(1).wrapping_sub(k), DEPTH - 1)] as *const u8;
        let Some(name) = read_field::<*const u8>(de, o.dentry_name) else {
            return UNREACHABLE;
        };
        let len = get(s, LEN) & 0x1ff;
        if len >= MAX_JUDGED {
            return TOO_LONG;
        }
        s.stack[k] = len as u32;
        s.path[len] = b'/';
        let len = (len + 1) & 0xff;
        // SAFETY: the destination has 256 bytes from `len` (< 256) within the 512 of
        // `s.path`; the helper stops at 256 bytes and NUL-terminates.
        let copied = unsafe {
            bpf_probe_read_kernel_str(s.path.as_mut_ptr().add(len).cast(), 256, name.cast())
        };
        if copied <= 0 {
            return UNREACHABLE;
        }
        set(s, LEN, len + (copied - 1) as usize);
    }
    let len = get(s, LEN);
    if len > MAX_JUDGED {
        return TOO_LONG;
    }
    s.depth = n as u32;
    len as i64
}

/// `x & mask`, with `x` hidden from LLVM first: otherwise it turns `(base + i) & mask` in a
/// loop into a running pointer and the verifier never sees the mask.
#[inline(always)]
fn masked(x: usize, mask: usize) -> usize {
    core::hint::black_box(x) & mask
}

/// Copies `len` bytes between kernel buffers (the scratch, a reservation) with one helper
/// call instead of a loop the verifier walks byte by byte. `len` is a constant; the caller
/// keeps both ranges inside their buffers.
#[inline(always)]
fn copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: bpf_probe_read_kernel copies `len` bytes, reporting a fault instead of taking
    // it; the verifier checks that the destination range is within its map value.
    unsafe { bpf_probe_read_kernel(dst.cast(), len as u32, src.cast()) };
}

/// Reads loop state `i` from memory (see `ExecScratch::v`).
#[inline(always)]
fn get(s: &ExecScratch, i: usize) -> usize {
    // SAFETY: a read of the scratch value; volatile so that it stays a load from memory.
    unsafe { core::ptr::read_volatile(&s.v[i & 7]) as usize }
}

#[inline(always)]
fn set(s: &mut ExecScratch, i: usize, x: usize) {
    // SAFETY: a write into the scratch value; volatile so that it stays a store.
    unsafe { core::ptr::write_volatile(&mut s.v[i & 7], x as u32) }
}

// Names of the loop state slots.
const LEN: usize = 0;
const DEPTH_AT: usize = 1;
const COMP_LEN: usize = 2;
const COMP_START: usize = 3;
const C0: usize = 4;
const C1: usize = 5;
const AT: usize = 6;
const AUX: usize = 7;

/// Appends the name in `s.raw[..raw_len]` to the absolute path in `s.path[..start]` (whose
/// component starts are `s.stack[..s.depth]`), resolving `.`, `..` and repeated slashes
/// lexically, and returns the new length (`TOO_LONG` past `MAX_JUDGED`). A name starting with
/// `/` is absolute: pass `start` 0 and `s.depth` 0.
#[inline(always)]
fn normalize_body(s: &mut ExecScratch, start: usize, raw_len: usize) -> i64 {
    if raw_len > 256 {
        return TOO_LONG;
    }
    let raw_len = masked(raw_len, 0x1ff);
    set(s, LEN, start);
    let depth = s.depth as usize;
    set(s, DEPTH_AT, depth);
    set(s, COMP_LEN, 0);
    set(s, COMP_START, 0);
    set(s, C0, 0);
    set(s, C1, 0);
    for i in 0..257usize {
        let end = i >= raw_len;
        let c = if end { b'/' } else { s.raw[i & 0x1ff] };
        let comp_len = get(s, COMP_LEN);
        if c == b'/' {
            let (c0, c1) = (get(s, C0), get(s, C1));
            let comp_start = get(s, COMP_START) & 0x1ff;
            if comp_len == 1 && c0 == b'.' as usize {
                set(s, LEN, comp_start);
            } else if comp_len == 2 && c0 == b'.' as usize && c1 == b'.' as usize {
                set(s, LEN, comp_start);
                let depth = get(s, DEPTH_AT);
                if depth > 0 {
                    let depth = (depth - 1) & (DEPTH - 1);
                    set(s, DEPTH_AT, depth);
                    set(s, LEN, s.stack[depth] as usize);
                }
            } else if comp_len > 0 {
                let depth = get(s, DEPTH_AT);
                if depth >= DEPTH {
                    return TOO_LONG;
                }
                s.stack[depth & (DEPTH - 1)] = comp_start as u32;
                set(s, DEPTH_AT, depth + 1);
            }
            set(s, COMP_LEN, 0);
            if end {
                break;
            }
            continue;
        }
        let len = get(s, LEN) & 0x1ff;
        if len >= MAX_JUDGED {
            return TOO_LONG;
        }
        let mut at = len;
        if comp_len == 0 {
            set(s, COMP_START, len);
            s.path[len] = b'/';
            at = len + 1;
            set(s, C0, c as usize);
        } else if comp_len == 1 {
            set(s, C1, c as usize);
        }
        s.path[at & 0x1ff] = c;
        set(s, LEN, at + 1);
        // Only 0, 1, 2 and "more" matter.
        set(s, COMP_LEN, if comp_len >= 3 { 3 } else { comp_len + 1 });
    }
    let len = get(s, LEN);
    if len > MAX_JUDGED {
        return TOO_LONG;
    }
    s.depth = get(s, DEPTH_AT) as u32;
    len as i64
}

/// Matches `s.path[..len]` against the ruleset's patterns and folds the result into the
/// verdict being built: the strongest deny so far, the allow-lists this name fails. `what` is
/// the `MATCHED_*` of this name.
#[inline(always)]
fn judge_body(s: &mut ExecScratch, len: usize, what: u8) -> i64 {
    if len > MAX_JUDGED {
        return 0;
    }
    // The root directory itself, as a path: "/".
    let len = if len == 0 {
        s.path[0] = b'/';
        1
    } else {
        len
    };
    copy(
        s.forward.data.path.as_mut_ptr(),
        s.path.as_ptr(),
        EXEC_PATH_LEN,
    );
    // Exact patterns end with the NUL: match it too.
    s.forward.data.path[len & 0xff] = 0;
    s.forward.prefix_len = 32 + 8 * (len as u32 + 1);
    // Suffix patterns are at most SUFFIX_LEN bytes: only the path's end is reversed.
    let tail = if len < SUFFIX_LEN { len } else { SUFFIX_LEN };
    s.reverse.prefix_len = 32 + 8 * tail as u32;
    for i in 0..SUFFIX_LEN {
        let j = masked(len.wrapping_sub(1).wrapping_sub(i), 0x1ff);
        s.reverse.data.path[i] = s.path[j];
    }
    let none = ExecValue::default();
    let fwd = EXEC_PREFIX.get(&s.forward).copied().unwrap_or(none);
    let rev = EXEC_SUFFIX.get(&s.reverse).copied().unwrap_or(none);
    let (deny, rule) = if fwd.deny_action >= rev.deny_action {
        (fwd.deny_action, fwd.deny_rule)
    } else {
        (rev.deny_action, rev.deny_rule)
    };
    let mut decided = false;
    if deny > s.deny_action {
        s.deny_action = deny;
        s.deny_rule = rule;
        s.deny_matched = what;
        decided = true;
    }
    let violated = s.allow_required & !(fwd.allow_mask | rev.allow_mask) & !s.violated;
    if violated != 0 {
        s.violated |= violated;
        if s.allow_matched == MATCHED_NONE {
            s.allow_matched = what;
            decided = s.deny_action == ACTION_NONE || decided;
        }
    }
    if decided {
        copy(s.matched.as_mut_ptr(), s.path.as_ptr(), PATH_LEN);
        s.matched_len = len as u32;
    }
    0
}

/// A name that must be judged and could not be: the ruleset's strongest exec rule.
#[inline(always)]
fn origin(file: *const u8, root_mnt: *const u8, flags: &mut u32, o: &KernelOffsets) -> u8 {
    let Some(inode) = read_field::<*const u8>(file, o.file_inode) else {
        return ORIGIN_UNKNOWN;
    };
    let Some(sb) = read_field::<*const u8>(inode, o.inode_sb) else {
        return ORIGIN_UNKNOWN;
    };
    // s_magic is an unsigned long; only its low 32 bits are the magic.
    let magic = read_field::<u64>(sb, o.sb_magic).unwrap_or(0) & 0xffff_ffff;
    if read_field::<u32>(inode, o.inode_nlink) == Some(0) {
        let memfd = file_path(file, o)
            .and_then(|(_, d)| read_field::<*const u8>(d, o.dentry_name))
            .and_then(|name| {
                let mut head = [0u8; 8];
                // SAFETY: the helper bounds the copy by the buffer.
                let n =
                    unsafe { bpf_probe_read_kernel_str(head.as_mut_ptr().cast(), 8, name.cast()) };
                (n > 0).then_some(head)
            })
            .is_some_and(|h| &h[..6] == b"memfd:");
        return if memfd { ORIGIN_MEMFD } else { ORIGIN_DELETED };
    }
    if magic == TMPFS_MAGIC || magic == RAMFS_MAGIC {
        return ORIGIN_TMPFS;
    }
    let root_sb = read_field::<*const u8>(root_mnt, o.vfsmount_sb);
    if root_sb != Some(sb) {
        return ORIGIN_VOLUME;
    }
    // A root that is not overlayfs has no image layer to tell apart: every file on it is
    // the image's.
    if magic != OVERLAYFS_SUPER_MAGIC || o.ovl_upper_from_inode == 0 {
        return ORIGIN_IMAGE;
    }
    let upper = read_field::<*const u8>(inode, o.ovl_upper_from_inode);
    if upper.is_none_or(|d| d.is_null()) {
        return ORIGIN_IMAGE;
    }
    // Copied up: new (no lower file), written, or only its metadata changed (same size and
    // modification time as the image's file; overlayfs copies the times up).
    let Some(lower) = lower_inode(inode, o) else {
        return ORIGIN_UPPER;
    };
    let same = |at: u32, wide: bool| -> bool {
        if wide {
            read_field::<u64>(inode, at) == read_field::<u64>(lower, at)
        } else {
            read_field::<u32>(inode, at) == read_field::<u32>(lower, at)
        }
    };
    if same(o.inode_size, true) && same(o.inode_mtime_sec, true) && same(o.inode_mtime_nsec, false)
    {
        *flags |= FLAG_METADATA_CHANGED;
        return ORIGIN_IMAGE;
    }
    ORIGIN_UPPER
}

/// The lower (image) inode of an overlayfs inode, by the kernel's layout.
#[inline(always)]
fn lower_inode(inode: *const u8, o: &KernelOffsets) -> Option<*const u8> {
    let at = (inode as usize + o.ovl_lower_from_inode as usize) as *const u8;
    let dentry: *const u8 = match o.ovl_lower_kind {
        OVL_LOWER_INODE => {
            return read_at::<*const u8>(at).filter(|p| !p.is_null());
        }
        OVL_LOWER_PATH => read_field(at, 8)?,
        OVL_LOWER_ENTRY => {
            let oe: *const u8 = read_at(at)?;
            if read_at::<u32>(oe).unwrap_or(0) == 0 {
                return None;
            }
            // `__lowerstack[0].dentry`: after the count (padded to 8) and the layer pointer.
            read_field(oe, 16)?
        }
        _ => return None,
    };
    read_field::<*const u8>(dentry, o.dentry_inode).filter(|p| !p.is_null())
}

/// A name that must be judged and could not be: the ruleset's strongest exec rule.
#[inline(always)]
fn unjudgeable(s: &mut ExecScratch) {
    if s.exec_action > s.deny_action {
        s.deny_action = s.exec_action;
        s.deny_rule = s.exec_rule;
        s.deny_matched = MATCHED_UNJUDGEABLE;
        s.matched_len = 0;
    }
}

/// Reads the kernel string at `src` into `s.raw`; its length, or `None`.
#[inline(always)]
fn read_raw(s: &mut ExecScratch, src: *const u8) -> Option<usize> {
    // SAFETY: the helper bounds the copy by the 512-byte destination and NUL-terminates.
    let n = unsafe { bpf_probe_read_kernel_str(s.raw.as_mut_ptr().cast(), 512, src.cast()) };
    if n <= 0 {
        return None;
    }
    Some((n - 1) as usize)
}

#[inline(always)]
fn ptr(v: u64) -> *const u8 {
    v as usize as *const u8
}

/// Judges the name in `s.raw[..raw_len]`: absolute as given, or relative to the working
/// directory. Names reaching a file through /proc or a descriptor (`/dev/fd/3`,
/// `/proc/1/cwd/x`) are not names a rule can mean: they are judged by the file they resolve to.
/// `/proc/<pid>/root/x` is `/x`. Returns the judged length, or -1 when there is no name to
/// judge (a failure to judge one is recorded as `unjudgeable`).
#[inline(always)]
fn judge_name_body(s: &mut ExecScratch, raw_len: usize, what: u8) -> i64 {
    let start = if raw_len > 0 && s.raw[0] == b'/' {
        s.depth = 0;
        0
    } else {
        let n = resolve(
            s,
            ptr(s.pwd_mnt),
            ptr(s.pwd_dentry),
            ptr(s.root_mnt),
            ptr(s.root_dentry),
        );
        if n < 0 {
            unjudgeable(s);
            return -1;
        }
        n as usize
    };
    let n = normalize(s, start & 0x1ff, raw_len);
    if n < 0 {
        unjudgeable(s);
        return -1;
    }
    let mut len = n as usize;
    s.name_base = 0;
    if len > 5 && starts_with(&s.path, b"/dev/fd/") {
        return -1;
    }
    if len > 6 && starts_with(&s.path, b"/proc/") {
        // The component after the pid: `root` is the process's root directory; anything else
        // (cwd, exe, fd, map_files) is a link to a file judged by its path.
        let third = (s.stack[2] as usize) & 0xff;
        if s.depth < 3
            || !(s.path[third + 1] == b'r'
                && s.path[third + 2] == b'o'
                && s.path[third + 3] == b'o'
                && s.path[third + 4] == b't'
                && (third + 5 == len || s.path[third + 5] == b'/'))
        {
            return -1;
        }
        let cut = third + 5;
        let rest = masked(len - cut.min(len), 0xff);
        s.name_base = (last_component(s) - cut.min(last_component(s))).max(1) as u32;
        // Through the raw buffer: the helper must not copy a range onto itself.
        copy(
            s.raw.as_mut_ptr(),
            s.path.as_ptr().wrapping_add(cut & 0xff),
            256,
        );
        copy(s.path.as_mut_ptr(), s.raw.as_ptr(), 256);
        len = rest;
    }
    if s.name_base == 0 {
        s.name_base = last_component(s) as u32;
    }
    judge(s, len, what);
    len as i64
}

#[inline(always)]
fn starts_with(buf: &[u8; 512], prefix: &[u8]) -> bool {
    let mut ok = true;
    for (i, b) in prefix.iter().enumerate() {
        ok &= buf[i] == *b;
    }
    ok
}

/// Where the last component of the path just resolved or normalised starts (just past its
/// `/`), from the component starts the walk recorded.
#[inline(always)]
fn last_component(s: &ExecScratch) -> usize {
    let depth = s.depth as usize;
    if depth == 0 {
        return 1;
    }
    (s.stack[(depth - 1) & (DEPTH - 1)] as usize + 1) & 0xff
}

/// Stage 1: the file that runs — its path from the root (judged), its origin and identity.
#[inline(always)]
fn stage_file_body(s: &mut ExecScratch, bprm: *const u8) -> i64 {
    let o = offsets();
    s.file_len = 0;
    s.file_base = 0;
    s.file_inode = 0;
    s.origin = ORIGIN_UNKNOWN;
    let Some(file) = read_field::<*const u8>(bprm, o.bprm_file) else {
        s.flags |= FLAG_FILE_UNREACHABLE;
        return 0;
    };
    match file_path(file, &o) {
        Some((mnt, dentry)) => {
            let n = resolve(s, mnt, dentry, ptr(s.root_mnt), ptr(s.root_dentry));
            if n >= 0 {
                let n = (n as usize).min(MAX_JUDGED);
                judge(s, n, MATCHED_FILE);
                copy(s.file.as_mut_ptr(), s.path.as_ptr(), PATH_LEN);
                s.file_len = if n == 0 { 1 } else { n as u32 };
                s.file_base = last_component(s) as u32;
            } else {
                s.flags |= FLAG_FILE_UNREACHABLE;
            }
        }
        None => s.flags |= FLAG_FILE_UNREACHABLE,
    }
    let mut flags = 0;
    s.origin = origin(file, ptr(s.root_mnt), &mut flags, &o);
    s.flags |= flags;
    s.file_inode = read_field::<*const u8>(file, o.file_inode).map_or(0, |i| i as u64);
    0
}

/// Stage 2: the name as executed. Sets `s.name_len` (-1: no name to judge).
#[inline(always)]
fn stage_name_body(s: &mut ExecScratch, bprm: *const u8) -> i64 {
    let o = offsets();
    s.name_len = -1;
    let name: Option<*const u8> = read_field(bprm, o.bprm_filename);
    match name.and_then(|n| read_raw(s, n)) {
        Some(n) if n < FILENAME_LEN - 1 => {
            let len = judge_name(s, n, MATCHED_NAME);
            s.name_len = len as i32;
        }
        _ => unjudgeable(s),
    }
    // Neither a name nor a file to judge (a memfd by its descriptor): nothing a rule can say
    // yes to.
    if s.name_len < 0 && s.file_len == 0 {
        unjudgeable(s);
    }
    0
}

/// Stage 3: `argv[0]`, when its last component names another program than the name and the
/// file (a multi-call binary runs what `argv[0]` says): judged in the directory of the name
/// (or of the file, for a name through a descriptor). A leading `-` (a login shell) is not
/// part of it.
#[inline(always)]
fn stage_argv0_body(s: &mut ExecScratch) -> i64 {
    set(s, AT, 0);
    set(s, AUX, 0);
    for i in 0..ARGV0_LEN {
        let c = s.args[i];
        if c == 0 {
            break;
        }
        if c == b'/' {
            set(s, AT, i + 1);
        }
        set(s, AUX, i + 1);
    }
    let end = get(s, AUX) & 0x1ff;
    let mut base = get(s, AT) & 0xff;
    if s.args[base] == b'-' {
        base += 1;
    }
    if end <= base {
        return 0;
    }
    // An argv[0] longer than read here names something this cannot judge.
    if end >= ARGV0_LEN {
        unjudgeable(s);
        return 0;
    }
    let arg_len = masked(end - base, 0x7f);
    let file_len = (s.file_len as usize) & 0x1ff;
    let file_base = (s.file_base as usize) & 0xff;
    // The directory part: of the name (still in s.path), else of the file.
    let name_len = s.name_len;
    let dir_end = if name_len >= 0 {
        (s.name_base as usize) & 0xff
    } else if file_len > 0 {
        copy(s.path.as_mut_ptr(), s.file.as_ptr(), PATH_LEN);
        file_base
    } else {
        return 0;
    };
    set(s, AT, base);
    set(s, AUX, arg_len);
    if name_len >= 0 {
        let n = name_len as usize & 0x1ff;
        if same_name(s, 0, dir_end, n - dir_end.min(n)) {
            return 0;
        }
    }
    if file_len > 0 && same_name(s, 1, file_base, file_len - file_base.min(file_len)) {
        return 0;
    }
    if dir_end + arg_len > MAX_JUDGED {
        unjudgeable(s);
        return 0;
    }
    copy(
        s.path.as_mut_ptr().wrapping_add(dir_end & 0xff),
        s.args.as_ptr().wrapping_add(base & 0xff),
        256,
    );
    judge(s, dir_end + arg_len, MATCHED_ARGV0);
    0
}

/// Whether the `len` bytes at `at` of `s.path` (`file` 0) or `s.file` (1) are the bytes of
/// `s.args` at slot `AT`, `AUX` of them.
#[inline(always)]
fn same_name_body(s: &mut ExecScratch, file: usize, at: usize, len: usize) -> bool {
    let base = get(s, AT) & 0xff;
    let arg_len = get(s, AUX) & 0x7f;
    if len != arg_len || len > 64 {
        return false;
    }
    // Both names into 64-byte words, zero-padded, compared as words: no byte loop.
    let mut a = [0u64; 8];
    let mut b = [0u64; 8];
    let from = if file != 0 {
        s.file.as_ptr().wrapping_add(at & 0xff)
    } else {
        s.path.as_ptr().wrapping_add(at & 0xff)
    };
    copy(a.as_mut_ptr().cast(), from, 64);
    copy(
        b.as_mut_ptr().cast(),
        s.args.as_ptr().wrapping_add(base),
        64,
    );
    let mut same = true;
    for w in 0..8 {
        // Bytes past the name are masked off: a word holds bytes 8w..8w+8.
        let keep = if len >= 8 * (w + 1) {
            u64::MAX
        } else if len <= 8 * w {
            0
        } else {
            u64::MAX >> (8 * (8 * (w + 1) - len))
        };
        same &= (a[w] & keep) == (b[w] & keep);
    }
    same
}

/// Stage 4: a script's interpreter (`#!`), as its line names it.
#[inline(always)]
fn stage_interpreter_body(s: &mut ExecScratch, bprm: *const u8) -> i64 {
    let o = offsets();
    let interp: Option<*const u8> = read_field(bprm, o.bprm_interp);
    let name: Option<*const u8> = read_field(bprm, o.bprm_filename);
    let (Some(i), Some(n)) = (interp, name) else {
        return 0;
    };
    if i == n {
        return 0;
    }
    s.flags |= FLAG_SCRIPT;
    match read_raw(s, i) {
        Some(len) if len < FILENAME_LEN - 1 => {
            judge_name(s, len, MATCHED_INTERPRETER);
        }
        _ => unjudgeable(s),
    }
    0
}

/// Stage 5: a dynamic loader run as a program (`ld-linux-x86-64.so.2`, `ld-musl-x86_64.so.1`:
/// `ld-` and a `.so`) loads the program its first argument names; with an option first
/// (`--preload`, `--library-path DIR`), the program cannot be told without parsing the
/// loader's options, and that fails closed.
#[inline(always)]
fn stage_loader_body(s: &mut ExecScratch) -> i64 {
    let base = (s.file_base as usize) & 0xff;
    if s.file_len <= 3
        || !(s.file[base] == b'l'
            && s.file[(base + 1) & 0xff] == b'd'
            && s.file[(base + 2) & 0xff] == b'-')
    {
        return 0;
    }
    set(s, C0, 0);
    for i in 0..64usize {
        let at = masked(base + 3 + i, 0xff);
        if s.file[at] == 0 {
            break;
        }
        if s.file[at] == b'.'
            && s.file[masked(at + 1, 0xff)] == b's'
            && s.file[masked(at + 2, 0xff)] == b'o'
        {
            set(s, C0, 1);
        }
    }
    if get(s, C0) == 0 {
        return 0;
    }
    s.flags |= FLAG_LOADER;
    set(s, AT, 0);
    for i in 0..ARGV0_LEN {
        if s.args[i] == 0 {
            set(s, AT, i + 1);
            break;
        }
    }
    let start = get(s, AT) & 0x1ff;
    if start == 0 || s.args[start] == 0 {
        // `ld.so` alone prints its help.
        return 0;
    }
    if s.args[start] == b'-' {
        unjudgeable(s);
        return 0;
    }
    set(s, AUX, 0);
    for i in 0..ARGV0_LEN {
        let c = s.args[masked(start + i, 0x3ff)];
        s.raw[i] = c;
        if c == 0 {
            break;
        }
        set(s, AUX, i + 1);
    }
    let len = get(s, AUX) & 0x1ff;
    if len >= ARGV0_LEN - 1 {
        unjudgeable(s);
        return 0;
    }
    judge_name(s, len, MATCHED_LOADED);
    0
}

/// Prepares the scratch for judging under ruleset `ruleset`; false when the task's root
/// cannot be read (then every name is unjudgeable).
#[inline(always)]
fn begin_body(s: &mut ExecScratch, ruleset: u32) -> i64 {
    s.deny_action = ACTION_NONE;
    s.deny_rule = 0;
    s.deny_matched = MATCHED_NONE;
    s.allow_matched = MATCHED_NONE;
    s.violated = 0;
    s.matched_len = 0;
    s.forward.data.ruleset = ruleset;
    s.reverse.data.ruleset = ruleset;
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let rs = unsafe { EXEC_RULESETS.get(ruleset) }
        .copied()
        .unwrap_or(ExecRuleset::default());
    s.allow_required = rs.allow_required;
    s.exec_action = rs.exec_action;
    s.exec_rule = rs.exec_rule;
    s.drift_action = rs.drift_action;
    s.drift_rule = rs.drift_rule;
    s.drift_origins = rs.drift_origins;
    let o = offsets();
    match fs_paths(&o) {
        Some([root, pwd]) => {
            s.root_mnt = root.0 as u64;
            s.root_dentry = root.1 as u64;
            s.pwd_mnt = pwd.0 as u64;
            s.pwd_dentry = pwd.1 as u64;
            1
        }
        None => {
            s.root_mnt = 0;
            s.root_dentry = 0;
            unjudgeable(s);
            0
        }
    }
}

// The verifier checks a static function once per call site and per state of its caller, which
// multiplies quickly; a global function is checked once, with unknown arguments. The
// functions above are called through these global wrappers, which take only numbers and find
// the scratch themselves.

#[inline(always)]
fn scratch() -> Option<&'static mut ExecScratch> {
    let s = EXEC_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch, exclusively ours for the duration of the program (BPF programs
    // are not preempted by another program on the same CPU for these program types).
    Some(unsafe { &mut *s })
}

macro_rules! global {
    ($(#[$doc:meta])* $name:ident => $body:ident($($arg:ident: $ty:ty as $into:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub extern "C" fn $name($($arg: u64),*) -> i64 {
            match scratch() {
                Some(s) => $body(s, $($arg as $into as $ty),*) as i64,
                None => -1,
            }
        }
    };
}

global!(exec_resolve => resolve_body(mnt: *const u8 as usize, dentry: *const u8 as usize, root_mnt: *const u8 as usize, root_dentry: *const u8 as usize) -> i64);
global!(exec_normalize => normalize_body(start: usize as usize, raw_len: usize as usize) -> i64);
global!(exec_judge => judge_body(len: usize as usize, what: u8 as u8) -> i64);
global!(exec_judge_name => judge_name_body(raw_len: usize as usize, what: u8 as u8) -> i64);
global!(exec_same_name => same_name_body(file: usize as usize, at: usize as usize, len: usize as usize) -> bool);
global!(exec_stage_file => stage_file_body(bprm: *const u8 as usize) -> i64);
global!(exec_stage_name => stage_name_body(bprm: *const u8 as usize) -> i64);
global!(exec_stage_argv0 => stage_argv0_body() -> i64);
global!(exec_stage_interpreter => stage_interpreter_body(bprm: *const u8 as usize) -> i64);
global!(exec_stage_loader => stage_loader_body() -> i64);
global!(exec_begin => begin_body(ruleset: u32 as u32) -> i64);
global!(exec_read_argv => read_argv_body() -> i64);
global!(exec_read_inputs => read_inputs_body(bprm: *const u8 as usize, args: usize as usize) -> i64);

#[inline(always)]
fn resolve(
    _s: &mut ExecScratch,
    mnt: *const u8,
    dentry: *const u8,
    root_mnt: *const u8,
    root_dentry: *const u8,
) -> i64 {
    exec_resolve(
        mnt as u64,
        dentry as u64,
        root_mnt as u64,
        root_dentry as u64,
    )
}
#[inline(always)]
fn normalize(_s: &mut ExecScratch, start: usize, raw_len: usize) -> i64 {
    exec_normalize(start as u64, raw_len as u64)
}
#[inline(always)]
fn judge(_s: &mut ExecScratch, len: usize, what: u8) -> i64 {
    exec_judge(len as u64, what as u64)
}
#[inline(always)]
fn judge_name(_s: &mut ExecScratch, raw_len: usize, what: u8) -> i64 {
    exec_judge_name(raw_len as u64, what as u64)
}
#[inline(always)]
fn same_name(_s: &mut ExecScratch, file: usize, at: usize, len: usize) -> bool {
    exec_same_name(file as u64, at as u64, len as u64) == 1
}
#[inline(always)]
fn stage_file(s: &mut ExecScratch, bprm: *const u8) -> i64 {
    exec_stage_file(launder(s, bprm))
}
#[inline(always)]
fn stage_name(s: &mut ExecScratch, bprm: *const u8) -> i64 {
    exec_stage_name(launder(s, bprm))
}
#[inline(always)]
fn stage_argv0(_s: &mut ExecScratch) -> i64 {
    exec_stage_argv0()
}
#[inline(always)]
fn stage_interpreter(s: &mut ExecScratch, bprm: *const u8) -> i64 {
    exec_stage_interpreter(launder(s, bprm))
}
#[inline(always)]
fn stage_loader(_s: &mut ExecScratch) -> i64 {
    exec_stage_loader()
}
#[inline(always)]
fn begin(_s: &mut ExecScratch, ruleset: u32) -> i64 {
    exec_begin(ruleset as u64)
}
#[inline(always)]
fn read_inputs(s: &mut ExecScratch, bprm: *const u8, args: usize) -> i64 {
    exec_read_inputs(launder(s, bprm), args as u64)
}

/// A kernel pointer as a plain number, which is all a global function may take on 5.10 (an
/// LSM hook's `bprm` is a typed pointer to the verifier): written to the scratch and read back.
#[inline(always)]
fn launder(s: &mut ExecScratch, p: *const u8) -> u64 {
    // SAFETY: volatile accesses of the scratch value, so that the number is a load from memory.
    unsafe {
        core::ptr::write_volatile(&mut s.bprm, p as u64);
        core::ptr::read_volatile(&s.bprm)
    }
}

/// Judges the exec of `bprm` under every name (`with_args`: argv[0] and the loader's program
/// too, from the new image's arguments already in `s.args`). Leaves the verdict's parts in `s`.
#[inline(always)]
fn judge_exec(s: &mut ExecScratch, bprm: *const u8, ruleset: u32, with_args: bool) {
    if begin(s, ruleset) == 0 {
        return;
    }
    stage_file(s, bprm);
    stage_name(s, bprm);
    if with_args {
        stage_argv0(s);
    }
    stage_interpreter(s, bprm);
    if with_args {
        stage_loader(s);
    }
    // Drift.
    let origin = s.origin;
    if s.container != 0
        && s.drift_action > s.deny_action
        && origin < 8
        && s.drift_origins & (1 << origin) != 0
    {
        s.deny_action = s.drift_action;
        s.deny_rule = s.drift_rule;
        s.deny_matched = MATCHED_DRIFT;
    }
}

/// The verdict `s` holds (`matched`: which name decided it).
#[inline(always)]
fn verdict(s: &ExecScratch, ruleset: u32, generation: u8, enforce: bool) -> (Verdict, u8) {
    let mut v = Verdict {
        ruleset,
        generation,
        mode: u8::from(enforce),
        ..Verdict::default()
    };
    v.action = s.deny_action;
    v.rule = s.deny_rule;
    let mut matched = s.deny_matched;
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    if s.violated != 0
        && let Some(rs) = unsafe { EXEC_RULESETS.get(ruleset) }.copied()
    {
        let allow_action = if s.violated & rs.allow_kill != 0 {
            ACTION_KILL
        } else if s.violated & rs.allow_block != 0 {
            ACTION_BLOCK
        } else {
            ACTION_AUDIT
        };
        v.allow_violated = s.violated;
        if allow_action > v.action {
            v.action = allow_action;
            v.rule = RULE_ALLOW_LIST;
            matched = s.allow_matched;
        }
    }
    if v.action == ACTION_NONE {
        matched = MATCHED_NONE;
    }
    (v, matched)
}

/// Copies the judged state into a reserved exec event.
#[inline(always)]
fn fill(event: &mut ExecEvent, s: &ExecScratch, v: Verdict, matched: u8) {
    fill_header(
        &mut event.header,
        kind::EXEC,
        core::mem::size_of::<ExecEvent>(),
        &offsets(),
    );
    event.flags = s.flags;
    let origin = if s.container != 0 {
        s.origin
    } else {
        ORIGIN_UNKNOWN
    };
    if origin != ORIGIN_IMAGE && origin != ORIGIN_UNKNOWN {
        event.flags |= FLAG_DRIFT;
    }
    if s.container == 0 {
        event.flags &= !FLAG_METADATA_CHANGED;
    }
    event.file_len = s.file_len as u16;
    event.matched_len = if matched == MATCHED_DRIFT {
        0
    } else {
        s.matched_len as u16
    };
    event.verdict = v;
    event.origin = origin;
    event.matched = matched;
    event._pad = [0; 6];
    event.filename_len = s.filename_len;
    event.args_len = s.args_len;
    // SAFETY: constant-size copies between kernel buffers of at least that size (the per-CPU
    // scratch and the reservation); the helper reports faults instead of taking them.
    unsafe {
        bpf_probe_read_kernel(
            event.filename.as_mut_ptr().cast(),
            FILENAME_LEN as u32,
            s.filename.as_ptr().cast(),
        );
        bpf_probe_read_kernel(
            event.file.as_mut_ptr().cast(),
            PATH_LEN as u32,
            s.file.as_ptr().cast(),
        );
        bpf_probe_read_kernel(
            event.matched_path.as_mut_ptr().cast(),
            PATH_LEN as u32,
            s.matched.as_ptr().cast(),
        );
        bpf_probe_read_kernel(
            event.args.as_mut_ptr().cast(),
            ARGS_LEN as u32,
            s.args.as_ptr().cast(),
        );
    }
}

/// Reads the exec's file name and (`args`) the new image's arguments into the scratch.
#[inline(always)]
fn read_inputs_body(s: &mut ExecScratch, bprm: *const u8, args: usize) -> i64 {
    let o = offsets();
    s.flags = 0;
    s.filename_len = 0;
    s.args_len = 0;
    s.args[0] = 0;
    let name: Option<*const u8> = read_field(bprm, o.bprm_filename);
    // SAFETY: the helper bounds the copy by the buffer and NUL-terminates.
    let n = name.map_or(-1, |n| unsafe {
        bpf_probe_read_kernel_str(
            s.filename.as_mut_ptr().cast(),
            FILENAME_LEN as u32,
            n.cast(),
        )
    });
    if n > 0 {
        s.filename_len = (n - 1) as u32;
        if n as usize >= FILENAME_LEN {
            s.flags |= FLAG_FILENAME_TRUNCATED;
        }
    } else {
        s.filename[0] = 0;
        s.flags |= FLAG_FILENAME_UNREADABLE;
    }
    if args == 0 {
        return 0;
    }
    let mm: Option<*const u8> = read_field(current_task(), o.task_mm);
    if let Some(mm) = mm {
        let start: u64 = read_field(mm, o.mm_arg_start).unwrap_or(0);
        let end: u64 = read_field(mm, o.mm_arg_end).unwrap_or(0);
        if end > start {
            let mut len = end - start;
            if len > ARGS_LEN as u64 {
                len = ARGS_LEN as u64;
                s.flags |= FLAG_ARGS_TRUNCATED;
            }
            // SAFETY: `len` is at most ARGS_LEN, the size of the destination; the helper reads
            // user memory without faulting and reports an error instead.
            let ret = unsafe {
                bpf_probe_read_user(
                    s.args.as_mut_ptr().cast(),
                    len as u32,
                    start as *const core::ffi::c_void,
                )
            };
            if ret == 0 {
                s.args_len = len as u32;
                // argv[0] and the loader's argument are read up to a NUL: bound them.
                s.args[ARGS_LEN - 1] = 0;
            } else {
                s.args[0] = 0;
            }
        }
    }
    0
}

/// How many of argv's strings `read_argv` copies.
const ARGV_MAX: usize = 32;

/// At bprm_check_security the new image has no memory yet: the arguments are read as the
/// caller passed them to execve/execveat, from its argv array in the memory it still has.
/// Copies the caller's argv strings, NUL-separated as in the new image's memory, into
/// `s.args`. A 32-bit caller's array holds 4-byte pointers.
#[inline(always)]
fn read_argv_body(s: &mut ExecScratch) -> i64 {
    let o = offsets();
    let (nr, compat) = crate::task::current_call(&o);
    let args = crate::task::syscall_args(&o);
    let argv = match nr {
        crate::nr::EXECVE => args[1],
        crate::nr::EXECVEAT => args[2],
        _ => return 0,
    };
    if argv == 0 {
        return 0;
    }
    let width = if compat { 4 } else { 8 };
    let mut at = 0usize;
    for i in 0..ARGV_MAX {
        let slot = (argv as usize).wrapping_add(i * width) as *const core::ffi::c_void;
        let mut ptr = 0u64;
        // SAFETY: the helper reads user memory without faulting; `width` <= 8 bytes of `ptr`.
        if unsafe { bpf_probe_read_user((&raw mut ptr).cast(), width as u32, slot) } != 0
            || ptr == 0
        {
            break;
        }
        // Each string starts in the buffer's first half and is read up to half its size:
        // bounds the verifier proves without relating them.
        if at >= ARGS_LEN / 2 {
            s.flags |= FLAG_ARGS_TRUNCATED;
            break;
        }
        // SAFETY: at most ARGS_LEN/2 bytes from below ARGS_LEN/2, inside `s.args`; the helper
        // NUL-terminates.
        let n = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_user_str(
                s.args
                    .as_mut_ptr()
                    .wrapping_add(masked(at, ARGS_LEN / 2 - 1))
                    .cast(),
                (ARGS_LEN / 2) as u32,
                ptr as *const core::ffi::c_void,
            )
        };
        if n <= 0 {
            break;
        }
        at += n as usize;
        if n as usize >= ARGS_LEN / 2 {
            s.flags |= FLAG_ARGS_TRUNCATED;
            break;
        }
    }
    s.args_len = at.min(ARGS_LEN) as u32;
    s.args[ARGS_LEN - 1] = 0;
    0
}

/// Raw tracepoint: `TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let bprm: *const u8 = ctx.arg(2);
    let Some(s) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU scratch, exclusively ours for the duration of this program.
    let s = unsafe { &mut *s };
    let tgid = crate::process::current_tgid();
    let cgroup = crate::process::subject_cgroup();
    let active = policy::active(cgroup);
    // Containers are judged (and their files' origins told) always; the host when its rules
    // ask. Without a ruleset the names are still resolved for the event.
    s.container = u8::from(policy::has_entry(cgroup));
    read_inputs(s, bprm, 1);
    judge_exec(s, bprm, active.map_or(0, |a| a.ruleset), true);
    // The runtime re-executing itself while it sets the container up (runc init from a
    // sealed copy of its binary) is not the container; its code starts at the next exec.
    let runtime = crate::process::still_runtime(tgid, s.file_inode, s.origin == ORIGIN_MEMFD);
    let (mut v, matched) = match active {
        Some(a) if !runtime => verdict(s, a.ruleset, a.generation, a.enforce),
        _ => (Verdict::default(), MATCHED_NONE),
    };
    // The runtime's own re-exec is the runtime's, not the container's: no event.
    if runtime {
        return 0;
    }
    // `block` is refused earlier by bprm_check_security where BPF LSM runs; an exec that got
    // here anyway is killed: the new image dies before running any code.
    if v.mode == 1 && v.action >= ACTION_BLOCK && crate::process::kill_current() {
        v.enforced = ENFORCED_SIGNAL;
    }
    // A process doomed by an earlier kill (the child of a killed clone, a sharer of a killed
    // process's file table) dies at its exec.
    if s.container != 0 {
        crate::process::doomed();
    }
    match EVENTS.reserve::<ExecEvent>(0) {
        Some(mut entry) => {
            // SAFETY: the reservation is `size_of::<ExecEvent>()` bytes, exclusively ours until
            // submit; `fill` writes every field the decoder reads.
            let event = unsafe { &mut *entry.as_mut_ptr() };
            fill(event, s, v, matched);
            let urgency = if v.action != ACTION_NONE {
                Urgency::Now
            } else {
                Urgency::Batch
            };
            submit(entry, urgency);
        }
        None => count_lost(kind::EXEC),
    }
    0
}

/// LSM hook `bprm_check_security(struct linux_binprm *bprm)`, where the kernel allows BPF
/// LSM: an exec that a `block` or `kill` rule denies fails with EPERM (and under `kill` the
/// caller dies too). Called once per file of the exec: a script, then its interpreter, so a
/// script is judged (origin included) as itself here. The exec never happens, so this hook
/// reports it (`sched_process_exec` will not fire).
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    let bprm: *const u8 = ctx.arg(0);
    // Another LSM program already refused: keep its answer.
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    let cgroup = crate::process::subject_cgroup();
    let Some(active) = policy::active(cgroup) else {
        return 0;
    };
    if !active.enforce {
        return 0;
    }
    let Some(s) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU scratch, exclusively ours for the duration of this program.
    let s = unsafe { &mut *s };
    s.container = u8::from(policy::has_entry(cgroup));
    // The arguments are read only for an exec the rules deny (the event reports it).
    read_inputs(s, bprm, 0);
    judge_exec(s, bprm, active.ruleset, false);
    let tgid = crate::process::current_tgid();
    if crate::process::in_runtime_setup(tgid)
        && runtime_file(s.file_inode, s.origin == ORIGIN_MEMFD, tgid)
    {
        return 0;
    }
    let (mut v, matched) = verdict(s, active.ruleset, active.generation, true);
    // `audit` verdicts are reported at sched_process_exec.
    if v.action < ACTION_BLOCK {
        return 0;
    }
    v.enforced = ENFORCED_LSM;
    exec_read_argv();
    // `kill`: the exec is refused and its caller dies; the event says it was killed.
    if v.action == ACTION_KILL && crate::process::kill_current() {
        v.enforced = ENFORCED_SIGNAL;
    }
    match EVENTS.reserve::<ExecEvent>(0) {
        Some(mut entry) => {
            // SAFETY: as in sched_process_exec.
            let event = unsafe { &mut *entry.as_mut_ptr() };
            fill(event, s, v, matched);
            submit(entry, Urgency::Now);
        }
        None => count_lost(kind::EXEC),
    }
    -EPERM
}

/// Whether a runtime in setup executing this file stays the runtime (checked, not changed:
/// `sched_process_exec` updates the mark).
#[inline(always)]
fn runtime_file(file_inode: u64, anonymous: bool, tgid: u32) -> bool {
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    match unsafe { crate::maps::RUNTIME_SETUP.get(tgid) }.copied() {
        Some(exe) => file_inode != 0 && (exe == file_inode || anonymous),
        None => false,
    }
}
