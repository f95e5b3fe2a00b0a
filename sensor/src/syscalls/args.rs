//! The arguments worth naming of the syscalls the sensor decodes: their names, which are
//! strings the kernel reads from the caller (the compiler asks for those), and the flag and
//! enum names the event decoder prints.

use sensor_common::syscall::STRINGS;

/// What an argument is, for the decoder.
#[derive(Clone, Copy)]
pub enum Arg {
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
pub fn layout(name: &str) -> &'static [Arg] {
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
