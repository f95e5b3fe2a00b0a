//! Workloads run inside containers by the benchmarks and tests. Built statically so that it
//! runs in a busybox image. Each mode prints one JSON object line on stdout, e.g.
//! `{"workload", "ops", "ns_per_op"}` for the timed loops, `{"workload", "ok", "errno", ...}`
//! for the single network attempts.

use std::{
    io::{ErrorKind, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    process::Command,
    time::{Duration, Instant},
};

const USAGE: &str = "usage: workload MODE ARGS
  getpid N                      N getpid syscalls
  fork-exec N PATH              N fork+exec+wait of PATH
  setuid-loop SECONDS           setuid(0) as fast as possible for SECONDS
  tcp-server PORT [ADDR]        listen on ADDR:PORT (default 0.0.0.0), accept and close forever
  connect N ADDR:PORT           N TCP connect+close (closed with RST: SO_LINGER 0)
  connect-loopback N            N TCP connect+close to an in-process listener on 127.0.0.1
  tcp-connect ADDR:PORT [MS]    one TCP connect with a timeout (default 3000 ms)
  udp-send ADDR:PORT            one unconnected UDP datagram (send_to; SO_BROADCAST set)
  udp-recv PORT SECONDS [ADDR]  count the UDP datagrams received on ADDR:PORT during SECONDS
  syscall NAME [DIR]            one call of NAME (unshare, mount, umount2, setns, bpf, ptrace,
                                chroot, pivot_root) with fixed arguments, print its outcome
  syscall-loop N NAME           N calls of a harmless form of NAME (unshare(0), setns into
                                its own UTS namespace)
ADDR:PORT is an IP socket address: 10.1.2.3:80, [::1]:80, [::ffff:10.1.2.3]:80";

/// Listen backlog for the TCP servers: connect loops must not fill the accept queue.
const BACKLOG: libc::c_int = 4096;

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage())
}

fn opt_arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    match args.get(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| usage()),
    }
}

/// A JSON string literal (quoted and escaped), or `null`.
fn json_str(s: Option<&str>) -> String {
    s.map_or_else(
        || "null".to_string(),
        |s| serde_json::to_string(s).expect("string to JSON"),
    )
}

/// A JSON number or `null`.
fn json_num(n: Option<i32>) -> String {
    n.map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// `"ok":…,"errno":…,"error":…` for the result of one network attempt; `errno` is the raw OS
/// error (EPERM = 1, ECONNREFUSED = 111, ...), `null` when there is none.
fn outcome<T>(r: &std::io::Result<T>) -> String {
    let (errno, error) = match r {
        Ok(_) => (None, None),
        Err(e) if e.kind() == ErrorKind::TimedOut => (e.raw_os_error(), Some("timed out".into())),
        Err(e) => (e.raw_os_error(), Some(e.to_string())),
    };
    format!(
        "\"ok\":{},\"errno\":{},\"error\":{}",
        r.is_ok(),
        json_num(errno),
        json_str(error.as_deref())
    )
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

fn print_rate(name: &str, n: u64, start: Instant) {
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    print_line(&format!(
        "{{\"workload\":\"{name}\",\"ops\":{n},\"ns_per_op\":{ns:.3}}}"
    ));
}

/// Binds a TCP listener with a large backlog (std's default may be small): on Linux `listen`
/// again on a listening socket just updates its backlog.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // SAFETY: listen on a socket this function owns.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(listener)
}

/// Accepts forever, closing each connection at once.
fn accept_loop(listener: &TcpListener) -> ! {
    loop {
        // Errors (ECONNABORTED after a client's RST, EMFILE, ...) only lose that connection.
        drop(listener.accept());
    }
}

/// SO_LINGER {on, 0}: the close sends RST and leaves no TIME_WAIT, so many rounds of connect
/// loops do not exhaust the ephemeral ports.
fn linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket `s` owns, with a pointer to a live `linger` and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// N connect+close to `addr`; panics (exit code 101) on the first failure.
fn connect_loop(name: &str, n: u64, addr: SocketAddr) {
    let start = Instant::now();
    for i in 0..n {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr} (#{i}): {e}"));
        linger_zero(&s);
        drop(s);
    }
    print_rate(name, n, start);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or_else(|| usage());
    match name {
        "getpid" => {
            let n: u64 = arg(&args, 2);
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: getpid has no arguments and no side effects. The raw syscall avoids
                // any libc caching of the pid.
                unsafe { libc::syscall(libc::SYS_getpid) };
            }
            print_rate(name, n, start);
        }
        "fork-exec" => {
            let n: u64 = arg(&args, 2);
            let path = args.get(3).unwrap_or_else(|| usage());
            let start = Instant::now();
            for _ in 0..n {
                let status = Command::new(path).status().expect("spawn");
                assert!(status.success(), "{path} failed: {status}");
            }
            print_rate(name, n, start);
        }
        "setuid-loop" => {
            // A capability check (CAP_SETUID) per call, as fast as possible for N seconds;
            // prints how many calls were made so a test can compare with what the sensor
            // counted.
            let secs: u64 = arg(&args, 2);
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut calls: u64 = 0;
            while Instant::now() < deadline {
                for _ in 0..1000 {
                    // SAFETY: setuid to the current uid (root): no effect but the check.
                    unsafe { libc::setuid(0) };
                }
                calls += 1000;
            }
            print_line(&format!("{{\"workload\":\"setuid-loop\",\"ops\":{calls}}}"));
        }
        "tcp-server" => {
            let port: u16 = arg(&args, 2);
            let ip: std::net::IpAddr = opt_arg(&args, 3, [0, 0, 0, 0].into());
            let listener = listen(SocketAddr::new(ip, port))
                .unwrap_or_else(|e| panic!("listen on {ip} port {port}: {e}"));
            let local = listener.local_addr().expect("local_addr").to_string();
            print_line(&format!(
                "{{\"workload\":\"tcp-server\",\"listening\":{}}}",
                json_str(Some(&local))
            ));
            accept_loop(&listener);
        }
        "connect" => {
            let n: u64 = arg(&args, 2);
            let addr: SocketAddr = arg(&args, 3);
            connect_loop(name, n, addr);
        }
        "connect-loopback" => {
            let n: u64 = arg(&args, 2);
            let listener = listen(([127, 0, 0, 1], 0).into()).expect("listen on 127.0.0.1");
            let addr = listener.local_addr().expect("local_addr");
            std::thread::spawn(move || accept_loop(&listener));
            connect_loop(name, n, addr);
        }
        "tcp-connect" => {
            let addr: SocketAddr = arg(&args, 2);
            let ms: u64 = opt_arg(&args, 3, 3000);
            let start = Instant::now();
            // connect_timeout rejects a zero timeout: 0 means the shortest one.
            let r = TcpStream::connect_timeout(&addr, Duration::from_millis(ms.max(1)));
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            if let Ok(s) = &r {
                linger_zero(s);
            }
            print_line(&format!(
                "{{\"workload\":\"tcp-connect\",{},\"ms\":{elapsed:.3}}}",
                outcome(&r)
            ));
        }
        "udp-send" => {
            let addr: SocketAddr = arg(&args, 2);
            let local: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            // `dstopts`: an IPv6 destination-options extension header on the datagram.
            let dstopts = args.get(3).is_some_and(|a| a == "dstopts");
            // Never connect(): the datagram goes through sendmsg with an explicit address.
            // SO_BROADCAST: a broadcast address is the policy's to refuse, not the kernel's.
            let r = UdpSocket::bind(local)
                .and_then(|s| s.set_broadcast(true).map(|()| s))
                .and_then(|s| {
                    if dstopts {
                        set_dstopts(&s).map(|()| s)
                    } else {
                        Ok(s)
                    }
                })
                .and_then(|s| s.send_to(b"workload", addr));
            print_line(&format!("{{\"workload\":\"udp-send\",{}}}", outcome(&r)));
        }
        "udp-recv" => {
            let port: u16 = arg(&args, 2);
            let secs: u64 = arg(&args, 3);
            let ip: std::net::IpAddr = opt_arg(&args, 4, [0, 0, 0, 0].into());
            let socket = UdpSocket::bind(SocketAddr::new(ip, port))
                .unwrap_or_else(|e| panic!("bind UDP {ip} port {port}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut received: u64 = 0;
            let mut buf = [0u8; 65536];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                socket.set_read_timeout(Some(left)).expect("SO_RCVTIMEO");
                match socket.recv_from(&mut buf) {
                    Ok(_) => received += 1,
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(e) => panic!("recv_from: {e}"),
                }
            }
            print_line(&format!(
                "{{\"workload\":\"udp-recv\",\"received\":{received}}}"
            ));
        }
        "syscall" => {
            let which = args.get(2).unwrap_or_else(|| usage());
            let dir = args.get(3).map_or("/mnt", String::as_str);
            let r = one_syscall(which, dir);
            print_line(&format!(
                "{{\"workload\":\"syscall\",\"name\":{},{}}}",
                json_str(Some(which)),
                outcome(&r)
            ));
        }
        "syscall-loop" => {
            let n: u64 = arg(&args, 2);
            let which = args.get(3).unwrap_or_else(|| usage());
            // setns into the namespace the process is already in: a real call with its
            // CAP_SYS_ADMIN check, and no change.
            let uts = std::fs::File::open("/proc/self/ns/uts").expect("/proc/self/ns/uts");
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: harmless forms: unshare(0) changes nothing; setns to its own UTS
                // namespace changes nothing.
                unsafe {
                    match which.as_str() {
                        "unshare" => libc::syscall(libc::SYS_unshare, 0),
                        "setns" => {
                            libc::syscall(libc::SYS_setns, uts.as_raw_fd(), libc::CLONE_NEWUTS)
                        }
                        _ => usage(),
                    }
                };
            }
            print_rate(&format!("{which}_loop"), n, start);
        }
        _ => usage(),
    }
}

/// The raw result of a syscall as an io::Result.
fn check(ret: libc::c_long) -> std::io::Result<libc::c_long> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// One call of a syscall the sensor's syscall rules name, with fixed arguments the tests
/// look for in the events: mount("none", DIR, "tmpfs", MS_NOSUID) (unmounted again at once),
/// unshare(CLONE_NEWUSER),
/// setns(<own UTS namespace>, CLONE_NEWUTS), bpf(BPF_MAP_CREATE, {}), ptrace(PTRACE_TRACEME),
/// umount2(DIR, MNT_DETACH), chroot("/"), pivot_root(DIR, DIR). DIR defaults to /mnt.
fn one_syscall(which: &str, dir: &str) -> std::io::Result<libc::c_long> {
    let _ = std::fs::create_dir_all(dir);
    let dir = std::ffi::CString::new(dir).expect("directory without NUL");
    // SAFETY: each call gets valid NUL-terminated strings or null pointers as the kernel
    // expects; the attr buffer outlives the bpf call.
    unsafe {
        match which {
            "mount" => {
                let r = check(libc::syscall(
                    libc::SYS_mount,
                    c"none".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID,
                    std::ptr::null::<u8>(),
                ));
                if r.is_ok() {
                    // Leave nothing mounted behind.
                    libc::umount2(dir.as_ptr(), libc::MNT_DETACH);
                }
                r
            }
            "umount2" => check(libc::syscall(
                libc::SYS_umount2,
                dir.as_ptr(),
                libc::MNT_DETACH,
            )),
            "unshare" => check(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
            "setns" => {
                let f = std::fs::File::open("/proc/self/ns/uts")?;
                check(libc::syscall(
                    libc::SYS_setns,
                    f.as_raw_fd(),
                    libc::CLONE_NEWUTS,
                ))
            }
            "bpf" => {
                let attr = [0u8; 128];
                check(libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), attr.len()))
            }
            "ptrace" => check(libc::syscall(
                libc::SYS_ptrace,
                libc::PTRACE_TRACEME,
                0,
                0,
                0,
            )),
            "chroot" => check(libc::syscall(libc::SYS_chroot, c"/".as_ptr())),
            "pivot_root" => check(libc::syscall(
                libc::SYS_pivot_root,
                dir.as_ptr(),
                dir.as_ptr(),
            )),
            _ => usage(),
        }
    }
}

/// IPV6_DSTOPTS: every datagram of `socket` carries a destination-options header (one PadN
/// option filling its 8 bytes), so the transport header is not right after the IPv6 one.
fn set_dstopts(socket: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // next header (the kernel's), length 0 (8 bytes), PadN of 4 bytes.
    let header: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];
    // SAFETY: setsockopt(2) reading the 8 bytes above.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_DSTOPTS,
            header.as_ptr().cast(),
            header.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
