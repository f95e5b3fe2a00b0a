//! Ways around the sensor's controls, re-enacted by the adversarial tests. Built statically so
//! that it runs in a busybox image (`/usr/local/bin/attack`) and on the host. Each mode prints
//! one JSON line saying what happened (`{"mode", "ok", "errno", ...}`) unless it is killed
//! first, which is what the tests look for (exit status 137).

use std::{
    ffi::CString,
    io::Write as _,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const USAGE: &str = "usage: attack MODE ARGS
  int80 NAME                 one 32-bit (int 0x80) syscall: setresuid16 (setresuid(0,0,0), i386 164),
                             unshare (CLONE_NEWUTS), mount (tmpfs on /tmp), bpf (BPF_MAP_GET_FD_BY_ID 1),
                             getpid
  clone-into-cgroup DIR PATH ARGS...
                             clone3(CLONE_INTO_CGROUP) into the cgroup directory DIR; the child first
                             unshares its UTS namespace (a runtime's setup), then execs PATH ARGS
  exec-argv0 PATH ARGV0 ARGS...
                             execve(PATH, [ARGV0, ARGS...])
  exec-memfd PATH ARGS...    copies PATH into a memfd and executes it by its descriptor (fexecve)
  clone-files NAME           a child sharing the file table (CLONE_FILES) does NAME (memfd: memfd_create,
                             raw: a raw IP socket), is killed or not; the parent reports whether the
                             descriptor reached it, then executes /bin/true
  iouring-open PATH          opens PATH with io_uring, under a personality registered before the
                             process dropped CAP_DAC_OVERRIDE (the ring's credentials are the old ones)
  iouring-symlink TARGET LINK  symlinkat through io_uring (IORING_OP_SYMLINKAT)
  iouring-socket KIND        a socket of KIND (as for socket) created through io_uring (IORING_OP_SOCKET)
  socket KIND [ADDR]         socket(2) of KIND (raw-icmp, packet, inet-packet, ping, sctp, udp) and, with ADDR, one
                             datagram to it
  open PATH                  open(2) PATH read-only
  bpf-by-id OBJECT ID [int80]  bpf(BPF_<OBJECT>_GET_FD_BY_ID) of ID (OBJECT: prog, map, link, btf),
                             natively or as a 32-bit call
  net-admin                  sets the loopback interface's flags to what they are (SIOCSIFFLAGS: a
                             CAP_NET_ADMIN operation that changes nothing)
  bpf-own                    loads a trivial socket filter, then asks for it by its id (a process using
                             its own BPF objects)
  fsopen                     fsopen(\"tmpfs\"): the first step of a mount through the new mount API
  open-tree PATH             open_tree(PATH, OPEN_TREE_CLONE): a detached copy of a mount, to attach
  clone-newuts               clone(CLONE_NEWUTS); the child then sets the hostname (CAP_SYS_ADMIN) and
                             reports it
  vm-read                    process_vm_readv of a child's memory";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn report(mode: &str, r: Result<i64, i32>, extra: &str) {
    let (ok, errno) = match r {
        Ok(_) => (true, "null".to_string()),
        Err(e) => (false, e.to_string()),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{{\"mode\":\"{mode}\",\"ok\":{ok},\"errno\":{errno}{extra}}}"
    )
    .unwrap();
    out.flush().unwrap();
}

fn check(ret: i64) -> Result<i64, i32> {
    if ret < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(ret)
    }
}

/// Memory below 4 GiB: 32-bit syscalls take 32-bit pointers.
fn low_memory(len: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED, "mmap MAP_32BIT");
    p.cast()
}

fn low_cstr(s: &str) -> u32 {
    let p = low_memory(4096);
    // SAFETY: the mapping is 4096 bytes and the strings used here are short.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
        *p.add(s.len()) = 0;
    }
    p as usize as u32
}

/// A 32-bit syscall through `int 0x80`: the i386 table, the compat entry path.
fn int80(nr: u32, a: u32, b: u32, c: u32, d: u32, e: u32) -> i64 {
    let ret: i32;
    // SAFETY: int 0x80 with the i386 calling convention; rbx is saved and restored around it
    // (LLVM reserves it), every other register the kernel may change is declared.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "mov ebx, {a:e}",
            "int 0x80",
            "pop rbx",
            a = in(reg) a,
            inlateout("eax") nr => ret,
            in("ecx") b,
            in("edx") c,
            in("esi") d,
            in("edi") e,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
        );
    }
    ret as i64
}

fn int80_mode(name: &str) {
    const CLONE_NEWUTS: u32 = 0x0400_0000;
    let r = match name {
        // i386 164 is setresuid (16-bit ids); x86_64 164 is settimeofday.
        "setresuid16" => int80(164, 0, 0, 0, 0, 0),
        "unshare" => int80(310, CLONE_NEWUTS, 0, 0, 0, 0),
        "mount" => {
            let src = low_cstr("none");
            let target = low_cstr("/tmp");
            let fstype = low_cstr("tmpfs");
            int80(21, src, target, fstype, 0, 0)
        }
        "bpf" => {
            // BPF_MAP_GET_FD_BY_ID (14) of map id 1: whatever map it is, the call needs
            // CAP_SYS_ADMIN and would hand out a descriptor.
            let attr = low_memory(4096);
            // SAFETY: the mapping is 4096 bytes; the first u32 is map_id.
            unsafe { *(attr as *mut u32) = 1 };
            int80(357, 14, attr as usize as u32, 128, 0, 0)
        }
        "getpid" => int80(20, 0, 0, 0, 0, 0),
        _ => usage(),
    };
    let r = if r < 0 { Err((-r) as i32) } else { Ok(r) };
    report(&format!("int80-{name}"), r, "");
}

/// bpf(cmd, attr, 128) natively, or through int 0x80 with `attr` below 4 GiB.
fn bpf_call(cmd: u32, attr: &[u8; 128], compat: bool) -> Result<i64, i32> {
    bpf_call_with(u64::from(cmd), attr, compat)
}

/// `bpf_call` with the whole register for `cmd`: the kernel reads its low 32 bits (an `int`).
fn bpf_call_with(cmd: u64, attr: &[u8; 128], compat: bool) -> Result<i64, i32> {
    if compat {
        let low = low_memory(4096);
        // SAFETY: the mapping is 4096 bytes, the attribute 128.
        unsafe { std::ptr::copy_nonoverlapping(attr.as_ptr(), low, 128) };
        let r = int80(357, cmd as u32, low as usize as u32, 128, 0, 0);
        return if r < 0 { Err((-r) as i32) } else { Ok(r) };
    }
    // SAFETY: bpf(2) with a live 128-byte attribute.
    check(unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), 128) })
}

fn bpf_by_id(object: &str, id: u32, how: Option<&str>) {
    let cmd = match object {
        "prog" => 13,
        "map" => 14,
        "btf" => 19,
        "link" => 30,
        _ => usage(),
    };
    let mut attr = [0u8; 128];
    attr[..4].copy_from_slice(&id.to_ne_bytes());
    // `int80`: the 32-bit call; `hibits`: the command with its register's upper half set.
    let (cmd, compat) = match how {
        Some("int80") => (cmd as u64, true),
        Some("hibits") => (cmd as u64 | 1 << 32, false),
        _ => (cmd as u64, false),
    };
    report(
        &format!("bpf-{object}-by-id"),
        bpf_call_with(cmd, &attr, compat),
        "",
    );
}

/// bpf(BPF_OBJ_GET) of a pinned object's path.
fn bpf_pin(path: &str) {
    let c = CString::new(path).unwrap();
    let mut attr = [0u8; 128];
    attr[..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes());
    report("bpf-pin", bpf_call(7, &attr, false), "");
}

/// BPF_PROG_LOAD of a two-instruction program of `prog_type` (r0 = `r0`; exit). Before 5.11
/// BPF memory is charged to RLIMIT_MEMLOCK, shared by all of root's processes (the sensor's
/// maps included): lifted first, as any BPF loader does.
fn prog_load(prog_type: u32, r0: u32) -> Result<i64, i32> {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a live struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    let insns: [u64; 2] = [(u64::from(r0) << 32) | 0xb7, 0x95];
    let license = CString::new("GPL").unwrap();
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    bpf_call(5, &attr, false)
}

/// An XDP program (XDP_PASS): what rewrites a container's packets once attached to its
/// interface.
fn bpf_xdp() {
    report("bpf-xdp", prog_load(6, 2), "");
}

fn bpf_own() {
    // A socket filter (r0 = 0).
    let fd = match prog_load(1, 0) {
        Ok(fd) => fd as u32,
        Err(e) => return report("bpf-own-load", Err(e), ""),
    };
    // BPF_OBJ_GET_INFO_BY_FD: bpf_prog_info.id is its second u32.
    let mut info = [0u8; 256];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&fd.to_ne_bytes());
    attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    if let Err(e) = bpf_call(15, &attr, false) {
        return report("bpf-own-info", Err(e), "");
    }
    let id = u32::from_ne_bytes([info[4], info[5], info[6], info[7]]);
    let mut attr = [0u8; 128];
    attr[..4].copy_from_slice(&id.to_ne_bytes());
    report(
        "bpf-own",
        bpf_call(13, &attr, false),
        &format!(",\"id\":{id}"),
    );
}

fn cstrings(args: &[String]) -> Vec<CString> {
    args.iter()
        .map(|a| CString::new(a.as_str()).expect("NUL in argument"))
        .collect()
}

fn execv(path: &str, argv: &[CString]) -> ! {
    let path = CString::new(path).unwrap();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and a NULL-terminated array, alive for the call.
    unsafe { libc::execv(path.as_ptr(), ptrs.as_ptr()) };
    report(
        "exec",
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        "",
    );
    std::process::exit(126)
}

fn clone_into_cgroup(dir: &str, path: &str, args: &[String]) {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let cgroup = std::fs::File::open(dir).unwrap_or_else(|e| panic!("opening {dir}: {e}"));
    let mut ca = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with a valid clone_args of its size; no CLONE_VM, so the child has its own
    // copy of the address space, like fork.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw mut ca,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        report("clone-into-cgroup", check(-1), "");
        std::process::exit(1);
    }
    if pid == 0 {
        // The child: a runtime's setup first (CAP_SYS_ADMIN), then the container's program.
        // SAFETY: unshare of the UTS namespace affects only this process.
        let r = check(unsafe { libc::unshare(libc::CLONE_NEWUTS) } as i64);
        report("setup-unshare", r, "");
        let mut argv = vec![path.to_string()];
        argv.extend_from_slice(args);
        execv(path, &cstrings(&argv));
    }
    let mut status = 0;
    // SAFETY: waiting for the child just created.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    let signal = if libc::WIFSIGNALED(status) {
        libc::WTERMSIG(status)
    } else {
        0
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    report(
        "clone-into-cgroup",
        Ok(0),
        &format!(",\"child_signal\":{signal},\"child_exit\":{code}"),
    );
}

fn exec_memfd(path: &str, args: &[String]) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let name = CString::new("payload").unwrap();
    // SAFETY: memfd_create with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor this function owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(&data).unwrap();
    let mut argv = vec![path.to_string()];
    argv.extend_from_slice(args);
    let argv = cstrings(&argv);
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: fexecve of a descriptor this process holds, with NULL-terminated arrays.
    unsafe { libc::fexecve(file.as_raw_fd(), ptrs.as_ptr(), env.as_ptr()) };
    report("exec-memfd", check(-1), "");
    std::process::exit(126);
}

fn clone_files(what: &str) {
    // The child shares the file table: a descriptor it obtains is the parent's too.
    let mut stack = vec![0u8; 64 * 1024];
    let what_c = CString::new(what).unwrap();
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the CString's pointer, alive until the parent's waitpid returns.
        let what = unsafe { std::ffi::CStr::from_ptr(arg as *const libc::c_char) };
        let fd = match what.to_bytes() {
            b"memfd" => {
                let name = CString::new("x").unwrap();
                // SAFETY: memfd_create with a NUL-terminated name.
                unsafe { libc::memfd_create(name.as_ptr(), 0) }
            }
            // SAFETY: socket(2) with constant arguments.
            b"raw" => unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) },
            _ => -1,
        };
        // Park the descriptor number where the parent can find it: as the exit code.
        if fd < 0 { 255 } else { fd }
    }
    // SAFETY: clone with a private stack of 64 KiB for `child`, sharing only the file table.
    let pid = unsafe {
        libc::clone(
            child,
            stack.as_mut_ptr().add(stack.len()).cast(),
            libc::CLONE_FILES | libc::SIGCHLD,
            what_c.as_ptr() as *mut libc::c_void,
        )
    };
    assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: waiting for the child just created.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let killed = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL;
    // Whatever the child got, it is in the shared table: the lowest descriptor above stdio.
    let mut held = Vec::new();
    for fd in 3..64 {
        // SAFETY: F_GETFD on a descriptor number only queries it.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
            held.push(format!("\"{}\"", link.display()));
        }
    }
    report(
        &format!("clone-files-{what}"),
        Ok(0),
        &format!(
            ",\"child_killed\":{killed},\"parent_holds\":[{}]",
            held.join(",")
        ),
    );
    // Then something the sensor judges: an exec.
    execv("/bin/true", &cstrings(&["/bin/true".to_string()]));
}

/// A minimal io_uring: setup, map the rings, submit one SQE, wait for its CQE.
mod uring {
    use super::check;

    #[repr(C)]
    #[derive(Default)]
    pub struct SqringOffsets {
        pub head: u32,
        pub tail: u32,
        pub ring_mask: u32,
        pub ring_entries: u32,
        pub flags: u32,
        pub dropped: u32,
        pub array: u32,
        pub resv1: u32,
        pub user_addr: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    pub struct CqringOffsets {
        pub head: u32,
        pub tail: u32,
        pub ring_mask: u32,
        pub ring_entries: u32,
        pub overflow: u32,
        pub cqes: u32,
        pub flags: u32,
        pub resv1: u32,
        pub user_addr: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    pub struct Params {
        pub sq_entries: u32,
        pub cq_entries: u32,
        pub flags: u32,
        pub sq_thread_cpu: u32,
        pub sq_thread_idle: u32,
        pub features: u32,
        pub wq_fd: u32,
        pub resv: [u32; 3],
        pub sq_off: SqringOffsets,
        pub cq_off: CqringOffsets,
    }

    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct Sqe {
        pub opcode: u8,
        pub flags: u8,
        pub ioprio: u16,
        pub fd: i32,
        pub off: u64,
        pub addr: u64,
        pub len: u32,
        pub op_flags: u32,
        pub user_data: u64,
        pub buf_index: u16,
        pub personality: u16,
        pub splice_fd_in: i32,
        pub addr3: u64,
        pub pad2: u64,
    }

    pub const OP_OPENAT: u8 = 18;
    pub const OP_SYMLINKAT: u8 = 38;
    pub const OP_SOCKET: u8 = 45;
    const REGISTER_PERSONALITY: u32 = 9;
    const ENTER_GETEVENTS: u32 = 1;

    pub struct Ring {
        fd: i32,
        params: Params,
        sq: *mut u8,
        cq: *mut u8,
        sqes: *mut Sqe,
    }

    impl Ring {
        pub fn new() -> Result<Self, i32> {
            let mut params = Params::default();
            // SAFETY: io_uring_setup with a valid params struct.
            let fd =
                check(unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, &raw mut params) })?
                    as i32;
            let map = |len: usize, off: i64| {
                // SAFETY: mapping the ring regions the kernel offers at these offsets.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED | libc::MAP_POPULATE,
                        fd,
                        off,
                    )
                };
                assert!(p != libc::MAP_FAILED, "mmap ring");
                p.cast::<u8>()
            };
            let sq_len = params.sq_off.array as usize + params.sq_entries as usize * 4;
            let cq_len = params.cq_off.cqes as usize + params.cq_entries as usize * 16;
            let sq = map(sq_len, 0);
            let cq = map(cq_len, 0x800_0000);
            let sqes = map(params.sq_entries as usize * 64, 0x1000_0000).cast::<Sqe>();
            Ok(Self {
                fd,
                params,
                sq,
                cq,
                sqes,
            })
        }

        /// Registers the current credentials; returns the personality id.
        pub fn register_personality(&self) -> Result<u16, i32> {
            // SAFETY: io_uring_register without an argument for this opcode.
            let id = check(unsafe {
                libc::syscall(
                    libc::SYS_io_uring_register,
                    self.fd,
                    REGISTER_PERSONALITY,
                    std::ptr::null::<u8>(),
                    0,
                )
            })?;
            Ok(id as u16)
        }

        /// Submits one SQE and returns its CQE result.
        pub fn run(&self, sqe: Sqe) -> Result<i64, i32> {
            // SAFETY: the offsets come from the kernel's params and index the mapped rings;
            // one submission at a time, so index 0 of the SQE array is ours.
            unsafe {
                *self.sqes = sqe;
                let tail = self.sq.add(self.params.sq_off.tail as usize).cast::<u32>();
                let mask = *self
                    .sq
                    .add(self.params.sq_off.ring_mask as usize)
                    .cast::<u32>();
                let array = self.sq.add(self.params.sq_off.array as usize).cast::<u32>();
                let t = std::ptr::read_volatile(tail);
                *array.add((t & mask) as usize) = 0;
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                std::ptr::write_volatile(tail, t + 1);
                check(libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.fd,
                    1u32,
                    1u32,
                    ENTER_GETEVENTS,
                    std::ptr::null::<u8>(),
                    0usize,
                ))?;
                let head = self.cq.add(self.params.cq_off.head as usize).cast::<u32>();
                let cmask = *self
                    .cq
                    .add(self.params.cq_off.ring_mask as usize)
                    .cast::<u32>();
                let h = std::ptr::read_volatile(head);
                let cqe = self
                    .cq
                    .add(self.params.cq_off.cqes as usize + ((h & cmask) as usize) * 16);
                let res = *cqe.add(8).cast::<i32>();
                std::ptr::write_volatile(head, h + 1);
                if res < 0 { Err(-res) } else { Ok(res as i64) }
            }
        }
    }
}

fn drop_dac_override() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data slots.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &raw mut h, d.as_mut_ptr()),
            0
        );
        const CAP_DAC_OVERRIDE: u32 = 1;
        let bit = 1u32 << CAP_DAC_OVERRIDE;
        d[0].effective &= !bit;
        d[0].permitted &= !bit;
        assert_eq!(
            libc::syscall(libc::SYS_capset, &raw mut h, d.as_mut_ptr()),
            0
        );
    }
}

fn iouring_open(path: &str) {
    let ring = match uring::Ring::new() {
        Ok(r) => r,
        Err(e) => return report("iouring-setup", Err(e), ""),
    };
    let personality = ring.register_personality().expect("register personality");
    // From here the process itself cannot override file permissions; the ring can.
    drop_dac_override();
    // SAFETY: open(2) of a NUL-terminated path.
    let direct =
        check(unsafe { libc::open(CString::new(path).unwrap().as_ptr(), libc::O_RDONLY) as i64 });
    let c = CString::new(path).unwrap();
    let sqe = uring::Sqe {
        opcode: uring::OP_OPENAT,
        fd: libc::AT_FDCWD,
        addr: c.as_ptr() as u64,
        op_flags: libc::O_RDONLY as u32,
        personality,
        ..uring::Sqe::default()
    };
    let r = ring.run(sqe);
    report(
        "iouring-open",
        r,
        &format!(",\"direct_ok\":{}", direct.is_ok()),
    );
}

fn iouring_symlink(target: &str, link: &str) {
    let ring = match uring::Ring::new() {
        Ok(r) => r,
        Err(e) => return report("iouring-setup", Err(e), ""),
    };
    let t = CString::new(target).unwrap();
    let l = CString::new(link).unwrap();
    let sqe = uring::Sqe {
        opcode: uring::OP_SYMLINKAT,
        fd: libc::AT_FDCWD,
        addr: t.as_ptr() as u64,
        off: l.as_ptr() as u64,
        ..uring::Sqe::default()
    };
    report("iouring-symlink", ring.run(sqe), "");
}

fn iouring_socket(kind: &str) {
    let (family, ty, proto) = socket_kind(kind);
    let ring = match uring::Ring::new() {
        Ok(r) => r,
        Err(e) => return report("iouring-setup", Err(e), ""),
    };
    let sqe = uring::Sqe {
        opcode: uring::OP_SOCKET,
        fd: family,
        off: ty as u64,
        len: proto as u32,
        ..uring::Sqe::default()
    };
    report(&format!("iouring-socket-{kind}"), ring.run(sqe), "");
}

/// (family, type, protocol) of a socket KIND.
fn socket_kind(kind: &str) -> (i32, i32, i32) {
    match kind {
        "raw-icmp" => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        "packet" => (
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        ),
        "ping" => (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
        "sctp" => (libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP),
        "udp" => (libc::AF_INET, libc::SOCK_DGRAM, 0),
        // The obsolete spelling of a packet socket: the kernel makes it AF_PACKET.
        "inet-packet" => (
            libc::AF_INET,
            // SOCK_PACKET: deprecated in libc, which is the point.
            10,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        ),
        _ => usage(),
    }
}

fn socket_mode(kind: &str, addr: Option<&str>) {
    let (family, ty, proto) = socket_kind(kind);
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(family, ty, proto) };
    if fd < 0 {
        return report(&format!("socket-{kind}"), check(-1), "");
    }
    let Some(addr) = addr else {
        return report(&format!("socket-{kind}"), Ok(fd as i64), "");
    };
    let ip: std::net::Ipv4Addr = addr.parse().unwrap_or_else(|_| usage());
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // An ICMP echo request: type 8, code 0, checksum, id, sequence.
    let mut packet = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
    let sum = !(u16::from_be_bytes([8, 0]) as u32 + 0x1234 + 1) as u16;
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    // SAFETY: sendto on the socket just created, with a live buffer and address.
    let r = check(unsafe {
        libc::sendto(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&raw const sin).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        ) as i64
    });
    report(&format!("socket-{kind}-send"), r, "");
}

fn clone_newuts() {
    let mut stack = vec![0u8; 64 * 1024];
    extern "C" fn child(_: *mut libc::c_void) -> libc::c_int {
        let name = b"evaded";
        // SAFETY: sethostname with a live buffer of that length.
        let r = check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } as i64);
        report("child-sethostname", r, "");
        0
    }
    // SAFETY: clone with a private 64 KiB stack, in a new UTS namespace.
    let pid = unsafe {
        libc::clone(
            child,
            stack.as_mut_ptr().add(stack.len()).cast(),
            libc::CLONE_NEWUTS | libc::SIGCHLD,
            std::ptr::null_mut(),
        )
    };
    if pid < 0 {
        return report("clone-newuts", check(-1), "");
    }
    let mut status = 0;
    // SAFETY: waiting for the child just created.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    report("clone-newuts", Ok(0), "");
}

fn vm_read() {
    // SAFETY: fork; the child only sleeps until killed.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: pause in the child.
        unsafe { libc::pause() };
        std::process::exit(0);
    }
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: (&raw const buf).cast_mut().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: process_vm_readv into a live local buffer.
    let r = check(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) } as i64);
    // SAFETY: the child is ours.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    report("vm-read", r, "");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or_else(|| usage());
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    match mode {
        "int80" => int80_mode(arg(2)),
        "clone-into-cgroup" => clone_into_cgroup(arg(2), arg(3), &args[4..]),
        "exec-argv0" => {
            let mut argv = vec![arg(3).to_string()];
            argv.extend_from_slice(&args[4..]);
            execv(arg(2), &cstrings(&argv));
        }
        "exec-memfd" => exec_memfd(arg(2), &args[3..]),
        "clone-files" => clone_files(arg(2)),
        "iouring-open" => iouring_open(arg(2)),
        "iouring-symlink" => iouring_symlink(arg(2), arg(3)),
        "iouring-socket" => iouring_socket(arg(2)),
        "socket" => socket_mode(arg(2), args.get(3).map(String::as_str)),
        "fsopen" => {
            let t = CString::new("tmpfs").unwrap();
            // SAFETY: fsopen with a NUL-terminated filesystem name.
            let r = check(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), 0) });
            report("fsopen", r, "");
        }
        "open-tree" => {
            let p = CString::new(arg(2)).unwrap();
            const OPEN_TREE_CLONE: u32 = 1;
            // SAFETY: open_tree with a NUL-terminated path.
            let r = check(unsafe {
                libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    OPEN_TREE_CLONE,
                )
            });
            report("open-tree", r, "");
        }
        "clone-newuts" => clone_newuts(),
        "bpf-by-id" => bpf_by_id(
            arg(2),
            arg(3).parse().unwrap_or_else(|_| usage()),
            args.get(4).map(String::as_str),
        ),
        "bpf-own" => bpf_own(),
        "bpf-xdp" => bpf_xdp(),
        "bpf-pin" => bpf_pin(arg(2)),
        "net-admin" => net_admin(),
        "ip-transparent" => ip_transparent(),
        "vm-read" => vm_read(),
        "open" => {
            let c = CString::new(arg(2)).unwrap();
            // SAFETY: open(2) of a NUL-terminated path.
            let r = check(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) } as i64);
            report("open", r, "");
        }
        _ => usage(),
    }
}

/// SIOCGIFFLAGS then SIOCSIFFLAGS of `lo` with the flags it has: the CAP_NET_ADMIN check of an
/// interface change, without changing anything.
/// setsockopt(IP_TRANSPARENT) on a UDP socket: CAP_NET_RAW's way to send from any address.
fn ip_transparent() {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return report("ip-transparent", check(-1), "");
    }
    let one: libc::c_int = 1;
    // SAFETY: setsockopt(2) reading a live int.
    let r = check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_IP,
            libc::IP_TRANSPARENT,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } as i64);
    report("ip-transparent", r, "");
}

fn net_admin() {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return report("net-admin", check(-1), "");
    }
    // SAFETY: an all-zero ifreq is valid; the name is NUL-terminated within IFNAMSIZ.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: the ioctls read and write the ifreq just built.
    let r = check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) } as i64)
        .and_then(|_| check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) } as i64));
    report("net-admin", r, "");
}
