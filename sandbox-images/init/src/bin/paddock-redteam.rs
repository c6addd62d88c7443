//! paddock-redteam: tries one named escape from the sandbox and reports whether it worked.
//!
//! Usage: `paddock-redteam ATTEMPT [ARG]`. Prints one line
//! `paddock-redteam ATTEMPT: succeeded|refused errno=N (NAME) DETAIL` and exits
//! 0 when the attempted action worked (for an attack: an escape), 1 when it was refused or
//! prevented, 2 when the attempt could not be run. The same binary runs on the bare host (to
//! show each attack works there) and as the agent inside the sandbox.

use std::ffi::CString;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;

enum Outcome {
    Succeeded(String),
    Refused(Errno, String),
}

type Attempt = fn(Option<&str>) -> Result<Outcome, String>;

const ATTEMPTS: &[(&str, &str, Attempt)] = &[
    ("write", "create and write PATH", write),
    ("truncate", "truncate the existing file PATH", truncate),
    ("mount", "mount a tmpfs on DIR", mount),
    ("unshare-user", "unshare(CLONE_NEWUSER)", unshare_user),
    ("clone-newuser", "raw clone(CLONE_NEWUSER)", clone_newuser),
    (
        "clone3",
        "raw clone3 (must be ENOSYS in the sandbox)",
        clone3,
    ),
    (
        "spawn",
        "spawn PROGRAM through libc (clone3 → clone fallback)",
        spawn,
    ),
    (
        "ptrace",
        "PTRACE_ATTACH to a child of our own",
        ptrace_child,
    ),
    (
        "ptrace-parent",
        "PTRACE_ATTACH to our parent (paddock-init)",
        ptrace_parent,
    ),
    ("bpf", "create an eBPF array map", bpf),
    ("io-uring", "io_uring_setup", io_uring),
    ("keyctl", "add_key to the process keyring", add_key),
    ("userfaultfd", "userfaultfd()", userfaultfd),
    (
        "perf",
        "perf_event_open a software counter on ourselves",
        perf,
    ),
    ("open-by-handle", "name_to_handle_at on /", name_to_handle),
    (
        "init-module",
        "init_module with an empty image",
        init_module,
    ),
    ("x32", "getpid through its x32-ABI number", x32),
    ("int80", "getpid through the i386 int 0x80 gate", int80),
    (
        "raw-socket",
        "socket(AF_INET, SOCK_RAW, ICMP) (nothing is sent)",
        raw_socket,
    ),
    (
        "packet-socket",
        "socket(AF_PACKET, SOCK_RAW) (nothing is sent)",
        packet_socket,
    ),
    (
        "icmp-socket",
        "socket(AF_INET, SOCK_DGRAM, ICMP) (nothing is sent)",
        icmp_socket,
    ),
    (
        "vsock-socket",
        "socket(AF_VSOCK) to the VM host (nothing is sent)",
        vsock_socket,
    ),
    (
        "tcp-socket",
        "socket(AF_INET, SOCK_STREAM) (nothing is sent)",
        tcp_socket,
    ),
    ("chroot", "chroot(\"/\")", chroot),
    ("setns", "setns into our own network namespace", setns),
    ("personality", "personality(PER_LINUX32)", personality),
    (
        "clock-adjtime",
        "clock_adjtime(CLOCK_REALTIME) read-only query",
        clock_adjtime,
    ),
    (
        "sethostname",
        "sethostname to the current name (a no-op if it works)",
        sethostname,
    ),
    ("tiocsti", "TIOCSTI on stdin", tiocsti),
    (
        "session-leader",
        "lead our own session (setsid was done for us)",
        session_leader,
    ),
    ("ctty", "open /dev/tty (a controlling terminal)", ctty),
    ("caps", "hold any capability (/proc/self/status)", caps),
    (
        "raise-nofile",
        "raise the RLIMIT_NOFILE hard limit",
        raise_nofile,
    ),
    ("core", "core dumps enabled (RLIMIT_CORE > 0)", core),
    (
        "read-environ",
        "read /proc/PID/environ (default: parent)",
        read_environ,
    ),
    ("read-mem", "open /proc/PID/mem (default: parent)", read_mem),
    (
        "zombie",
        "leave a zombie behind (an orphan nobody reaps)",
        zombie,
    ),
    (
        "read-fd0",
        "open /proc/PID/fd/0, the gate's stdin (default: parent)",
        read_fd0,
    ),
    ("read-stdin", "read anything from our stdin", read_stdin),
    (
        "dev-nodes",
        "find a device node beyond the harmless set",
        dev_nodes,
    ),
    ("dev-mem", "open /dev/mem (physical memory)", dev_mem),
    ("dev-kmsg", "open /dev/kmsg (kernel log)", dev_kmsg),
    ("dev-port", "open /dev/port (I/O ports)", dev_port),
    (
        "mknod",
        "mknod a block device (8,0) in a writable dir",
        mknod,
    ),
    (
        "dev-harmless",
        "write /dev/null, read /dev/urandom",
        dev_harmless,
    ),
    (
        "cross-run",
        "reach a victim run: PORT,SOCKET (listener, process, workspace, proxy socket)",
        cross_run,
    ),
    ("relay", "round-trip bytes through ADDR:PORT", relay),
    (
        "victim",
        "be the victim run: listen on PORT, check cross-run reaches itself, stay SECS",
        victim,
    ),
    ("exit", "exit with CODE", exit_with),
    (
        "wait-term",
        "print ready, wait for SIGTERM, exit 42",
        wait_term,
    ),
    ("sleep", "print ready, sleep SECONDS (default 30)", sleep),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprintln!("usage: paddock-redteam ATTEMPT [ARG]");
        for (n, what, _) in ATTEMPTS {
            eprintln!("  {n:16} {what}");
        }
        return ExitCode::from(2);
    };
    let Some((_, _, attempt)) = ATTEMPTS.iter().find(|(n, _, _)| n == name) else {
        eprintln!("paddock-redteam: unknown attempt {name:?}");
        return ExitCode::from(2);
    };
    let result = attempt(args.get(1).map(String::as_str));
    let mut out = std::io::stdout().lock();
    let code = match result {
        Ok(Outcome::Succeeded(detail)) => {
            let _ = writeln!(out, "paddock-redteam {name}: succeeded {detail}");
            0
        }
        Ok(Outcome::Refused(errno, detail)) => {
            let _ = writeln!(
                out,
                "paddock-redteam {name}: refused errno={} ({errno}) {detail}",
                errno as i32
            );
            1
        }
        Err(e) => {
            let _ = writeln!(out, "paddock-redteam {name}: error {e}");
            2
        }
    };
    let _ = out.flush();
    ExitCode::from(code)
}

/// Turns a raw syscall return into an outcome.
fn check(ret: i64, detail: &str) -> Outcome {
    if ret < 0 {
        Outcome::Refused(Errno::last(), detail.to_owned())
    } else {
        Outcome::Succeeded(format!("{detail} ret={ret}"))
    }
}

fn c(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|e| e.to_string())
}

fn need(arg: Option<&str>, what: &str) -> Result<String, String> {
    arg.map(str::to_owned)
        .ok_or_else(|| format!("needs {what}"))
}

fn close(fd: i64) {
    if let Ok(fd) = i32::try_from(fd)
        && fd >= 0
    {
        // SAFETY: closing a descriptor this process just opened.
        unsafe { libc::close(fd) };
    }
}

fn write(arg: Option<&str>) -> Result<Outcome, String> {
    let path = need(arg, "PATH")?;
    Ok(
        match std::fs::File::create(&path).and_then(|mut f| f.write_all(b"paddock")) {
            Ok(()) => Outcome::Succeeded(path),
            Err(e) => Outcome::Refused(Errno::from_raw(e.raw_os_error().unwrap_or(0)), path),
        },
    )
}

fn truncate(arg: Option<&str>) -> Result<Outcome, String> {
    let path = c(&need(arg, "PATH")?)?;
    // SAFETY: a NUL-terminated path and a length.
    let ret = unsafe { libc::truncate(path.as_ptr(), 0) };
    Ok(check(ret.into(), "truncate"))
}

fn mount(arg: Option<&str>) -> Result<Outcome, String> {
    let dir = c(&need(arg, "DIR")?)?;
    let (src, fstype) = (c("none")?, c("tmpfs")?);
    // SAFETY: NUL-terminated strings; NULL data.
    let ret = unsafe {
        libc::mount(
            src.as_ptr(),
            dir.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        // SAFETY: undoing the mount we just made.
        unsafe { libc::umount2(dir.as_ptr(), libc::MNT_DETACH) };
    }
    Ok(check(ret.into(), "mount tmpfs"))
}

fn unshare_user(_: Option<&str>) -> Result<Outcome, String> {
    // SAFETY: integer flags only; affects only this process.
    let ret = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    Ok(check(ret.into(), "unshare(CLONE_NEWUSER)"))
}

/// Raw `clone` with `flags`; the child exits at once.
fn raw_clone(flags: i64) -> i64 {
    // SAFETY: without CLONE_VM the child gets a copy of our memory and its own stack (stack
    // argument 0), and calls only _exit.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if ret == 0 {
        // SAFETY: child side: leave immediately.
        unsafe { libc::_exit(0) };
    }
    if ret > 0
        && let Ok(pid) = i32::try_from(ret)
    {
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL) };
    }
    ret
}

fn clone_newuser(_: Option<&str>) -> Result<Outcome, String> {
    let flags = i64::from(libc::CLONE_NEWUSER | libc::SIGCHLD);
    Ok(check(raw_clone(flags), "clone(CLONE_NEWUSER)"))
}

fn clone3(_: Option<&str>) -> Result<Outcome, String> {
    // struct clone_args (v0, 64 bytes): flags, pidfd, child_tid, parent_tid, exit_signal, stack,
    // stack_size, tls.
    let mut args = [0u64; 8];
    args[4] = u64::try_from(libc::SIGCHLD).unwrap_or(17);
    // SAFETY: a valid clone_args of the size passed; no CLONE_VM, so the child runs on a copy of
    // our stack and only calls _exit.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), 64usize) };
    if ret == 0 {
        // SAFETY: child side: leave immediately.
        unsafe { libc::_exit(0) };
    }
    if let Ok(pid) = i32::try_from(ret)
        && pid > 0
    {
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    Ok(check(ret, "clone3"))
}

fn spawn(arg: Option<&str>) -> Result<Outcome, String> {
    let program = arg.unwrap_or("/bin/true");
    Ok(match std::process::Command::new(program).status() {
        Ok(s) if s.success() => Outcome::Succeeded(format!("{program} ran")),
        Ok(s) => Outcome::Refused(Errno::UnknownErrno, format!("{program} exited {s}")),
        Err(e) => Outcome::Refused(
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            program.into(),
        ),
    })
}

fn attach(pid: i32) -> Outcome {
    // SAFETY: PTRACE_ATTACH takes a pid and no memory.
    let ret = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
    if ret == 0 {
        // SAFETY: detaching what we attached.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    }
    check(ret, &format!("attach {pid}"))
}

fn ptrace_child(_: Option<&str>) -> Result<Outcome, String> {
    // SAFETY: the child only sleeps in pause() until killed.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        loop {
            // SAFETY: pause has no arguments.
            unsafe { libc::pause() };
        }
    }
    if pid < 0 {
        return Err(format!("fork: {}", Errno::last()));
    }
    let out = attach(pid);
    // SAFETY: killing and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
    }
    Ok(out)
}

fn ptrace_parent(_: Option<&str>) -> Result<Outcome, String> {
    Ok(attach(nix::unistd::getppid().as_raw()))
}

fn bpf(_: Option<&str>) -> Result<Outcome, String> {
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
    let mut attr = [0u32; 32];
    attr[0] = 2; // BPF_MAP_TYPE_ARRAY
    attr[1] = 4;
    attr[2] = 4;
    attr[3] = 1;
    // SAFETY: a zeroed bpf_attr of the size passed.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, 0i32, attr.as_mut_ptr(), 128usize) };
    close(ret);
    Ok(check(ret, "BPF_MAP_CREATE"))
}

fn io_uring(_: Option<&str>) -> Result<Outcome, String> {
    let mut params = [0u8; 120];
    // SAFETY: a zeroed io_uring_params the kernel fills in.
    let ret = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    close(ret);
    Ok(check(ret, "io_uring_setup"))
}

fn add_key(_: Option<&str>) -> Result<Outcome, String> {
    let (kind, desc) = (c("user")?, c("paddock-redteam")?);
    let payload = b"x";
    // SAFETY: NUL-terminated strings and a payload of the length passed;
    // KEY_SPEC_PROCESS_KEYRING (-2) dies with this process.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kind.as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            -2i32,
        )
    };
    Ok(check(ret, "add_key"))
}

fn userfaultfd(_: Option<&str>) -> Result<Outcome, String> {
    // SAFETY: flags only.
    let ret = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
    close(ret);
    Ok(check(ret, "userfaultfd"))
}

fn perf(_: Option<&str>) -> Result<Outcome, String> {
    // struct perf_event_attr: type (u32), size (u32), config (u64), ...; flags word at byte 40
    // with exclude_kernel (bit 5) and exclude_hv (bit 6) so paranoid level 2 allows it.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[40..48].copy_from_slice(&((1u64 << 5) | (1u64 << 6)).to_ne_bytes());
    // SAFETY: an attr of the size it declares; pid 0 (self), cpu -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_mut_ptr(),
            0i32,
            -1i32,
            -1i32,
            0u64,
        )
    };
    close(ret);
    Ok(check(ret, "perf_event_open"))
}

fn name_to_handle(_: Option<&str>) -> Result<Outcome, String> {
    // struct file_handle: handle_bytes, handle_type, then the handle.
    let mut handle = [0u32; 34];
    handle[0] = 128;
    let mut mount_id = 0i32;
    let root = c("/")?;
    // SAFETY: a file_handle with room for the 128 bytes it declares.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            root.as_ptr(),
            handle.as_mut_ptr(),
            &raw mut mount_id,
            0i32,
        )
    };
    Ok(check(ret, "name_to_handle_at"))
}

fn init_module(_: Option<&str>) -> Result<Outcome, String> {
    let params = c("")?;
    // SAFETY: an empty image (NULL, 0) is rejected by the kernel after the permission check.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            std::ptr::null::<u8>(),
            0usize,
            params.as_ptr(),
        )
    };
    Ok(check(ret, "init_module"))
}

fn x32(_: Option<&str>) -> Result<Outcome, String> {
    // SAFETY: getpid takes no arguments in either ABI.
    let ret = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
    Ok(check(ret, "x32 getpid"))
}

fn int80(_: Option<&str>) -> Result<Outcome, String> {
    let mut ret: i64 = 20; // __NR_getpid on i386
    // SAFETY: i386 getpid through int 0x80 takes no arguments and only clobbers eax. In the
    // sandbox the filter kills the process (foreign audit arch) before it returns.
    unsafe {
        std::arch::asm!("int 0x80", inout("rax") ret, options(nostack));
    }
    if ret < 0 {
        let errno = i32::try_from(-ret).unwrap_or(0);
        return Ok(Outcome::Refused(Errno::from_raw(errno), "int 0x80".into()));
    }
    Ok(Outcome::Succeeded(format!("int 0x80 getpid ret={ret}")))
}

fn socket(domain: i32, kind: i32, proto: i32, what: &str) -> Outcome {
    // SAFETY: integer arguments only; the socket is closed unused.
    let ret = unsafe { libc::socket(domain, kind, proto) };
    close(ret.into());
    check(ret.into(), what)
}

fn raw_socket(_: Option<&str>) -> Result<Outcome, String> {
    Ok(socket(
        libc::AF_INET,
        libc::SOCK_RAW,
        libc::IPPROTO_ICMP,
        "raw socket",
    ))
}

fn packet_socket(_: Option<&str>) -> Result<Outcome, String> {
    Ok(socket(libc::AF_PACKET, libc::SOCK_RAW, 0, "packet socket"))
}

fn icmp_socket(_: Option<&str>) -> Result<Outcome, String> {
    Ok(socket(
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_ICMP,
        "icmp socket",
    ))
}

fn vsock_socket(_: Option<&str>) -> Result<Outcome, String> {
    Ok(socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0, "vsock socket"))
}

fn tcp_socket(_: Option<&str>) -> Result<Outcome, String> {
    Ok(socket(libc::AF_INET, libc::SOCK_STREAM, 0, "tcp socket"))
}

fn chroot(_: Option<&str>) -> Result<Outcome, String> {
    let root = c("/")?;
    // SAFETY: NUL-terminated path.
    let ret = unsafe { libc::chroot(root.as_ptr()) };
    Ok(check(ret.into(), "chroot /"))
}

fn setns(_: Option<&str>) -> Result<Outcome, String> {
    let file = std::fs::File::open("/proc/self/ns/net").map_err(|e| e.to_string())?;
    // SAFETY: an open namespace descriptor and a type.
    let ret = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    Ok(check(ret.into(), "setns(net)"))
}

fn personality(_: Option<&str>) -> Result<Outcome, String> {
    // SAFETY: integer argument; restored below when it worked.
    let old = unsafe { libc::personality(0x0008) }; // PER_LINUX32
    if old >= 0 {
        // SAFETY: restoring the previous persona.
        unsafe { libc::personality(u64::try_from(old).unwrap_or(0)) };
    }
    Ok(check(old.into(), "personality(PER_LINUX32)"))
}

fn clock_adjtime(_: Option<&str>) -> Result<Outcome, String> {
    // struct timex is 208 bytes on x86_64; modes = 0 is a read-only query.
    let mut tx = [0u64; 26];
    // SAFETY: a zeroed timex of the right size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clock_adjtime,
            libc::CLOCK_REALTIME,
            tx.as_mut_ptr(),
        )
    };
    Ok(check(ret, "clock_adjtime(query)"))
}

fn sethostname(_: Option<&str>) -> Result<Outcome, String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(|e| e.to_string())?;
    let bytes = name.trim_end().as_bytes();
    // SAFETY: the buffer and its length; the name is unchanged if the call works.
    let ret = unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) };
    Ok(check(ret.into(), "sethostname(same name)"))
}

fn tiocsti(_: Option<&str>) -> Result<Outcome, String> {
    let byte: u8 = b'\n';
    // SAFETY: TIOCSTI reads one byte from the pointer.
    let ret = unsafe { libc::ioctl(0, libc::TIOCSTI, &raw const byte) };
    Ok(check(ret.into(), "ioctl(0, TIOCSTI)"))
}

fn session_leader(_: Option<&str>) -> Result<Outcome, String> {
    let pid = nix::unistd::getpid();
    let sid = nix::unistd::getsid(None).map_err(|e| e.to_string())?;
    Ok(if sid == pid {
        Outcome::Succeeded(format!("sid={sid}"))
    } else {
        Outcome::Refused(Errno::EPERM, format!("sid={sid} pid={pid}"))
    })
}

fn ctty(_: Option<&str>) -> Result<Outcome, String> {
    Ok(match std::fs::File::open("/dev/tty") {
        Ok(_) => Outcome::Succeeded("controlling terminal".into()),
        Err(e) => Outcome::Refused(
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            "/dev/tty".into(),
        ),
    })
}

fn caps(_: Option<&str>) -> Result<Outcome, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let lines: Vec<&str> = status.lines().filter(|l| l.starts_with("Cap")).collect();
    let any = lines.iter().any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|v| !v.trim_start_matches('0').is_empty())
    });
    let detail = lines.join(" ").replace('\t', "");
    Ok(if any {
        Outcome::Succeeded(detail)
    } else {
        Outcome::Refused(Errno::EPERM, detail)
    })
}

fn raise_nofile(_: Option<&str>) -> Result<Outcome, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    Ok(
        match setrlimit(Resource::RLIMIT_NOFILE, soft, hard.saturating_add(1)) {
            Ok(()) => Outcome::Succeeded(format!("hard {hard} -> {}", hard.saturating_add(1))),
            Err(e) => Outcome::Refused(e, format!("hard {hard}")),
        },
    )
}

fn core(_: Option<&str>) -> Result<Outcome, String> {
    use nix::sys::resource::{Resource, getrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_CORE).map_err(|e| e.to_string())?;
    Ok(if soft > 0 || hard > 0 {
        Outcome::Succeeded(format!("core soft={soft} hard={hard}"))
    } else {
        Outcome::Refused(Errno::EPERM, "core 0".into())
    })
}

fn proc_target(arg: Option<&str>) -> String {
    arg.map_or_else(|| nix::unistd::getppid().to_string(), str::to_owned)
}

fn read_environ(arg: Option<&str>) -> Result<Outcome, String> {
    let path = format!("/proc/{}/environ", proc_target(arg));
    Ok(match std::fs::read(&path) {
        Ok(bytes) => Outcome::Succeeded(format!("{path}: {} bytes", bytes.len())),
        Err(e) => Outcome::Refused(Errno::from_raw(e.raw_os_error().unwrap_or(0)), path),
    })
}

fn read_mem(arg: Option<&str>) -> Result<Outcome, String> {
    let path = format!("/proc/{}/mem", proc_target(arg));
    Ok(match std::fs::File::open(&path) {
        Ok(_) => Outcome::Succeeded(path),
        Err(e) => Outcome::Refused(Errno::from_raw(e.raw_os_error().unwrap_or(0)), path),
    })
}

fn zombie(_: Option<&str>) -> Result<Outcome, String> {
    let (rd, wr) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    // SAFETY: single-threaded; the children only sleep, write to a pipe and _exit.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above.
        let grandchild = unsafe { libc::fork() };
        if grandchild == 0 {
            // Wait until our parent is gone, then report who adopted us.
            std::thread::sleep(Duration::from_millis(200));
            let report = format!("{} {}", std::process::id(), nix::unistd::getppid());
            let _ = nix::unistd::write(&wr, report.as_bytes());
            // SAFETY: leave without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    if child < 0 {
        return Err(format!("fork: {}", Errno::last()));
    }
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    drop(wr);
    let mut report = String::new();
    std::fs::File::from(rd)
        .read_to_string(&mut report)
        .map_err(|e| e.to_string())?;
    let mut parts = report.split_whitespace();
    let (Some(gpid), Some(adopter)) = (parts.next(), parts.next()) else {
        return Err(format!("no report from the grandchild: {report:?}"));
    };
    // Give the adopter time to reap the grandchild, then look for its corpse.
    std::thread::sleep(Duration::from_millis(500));
    let stat = std::fs::read_to_string(format!("/proc/{gpid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    let detail = format!("orphan={gpid} adopted_by={adopter}");
    Ok(if state == Some("Z") {
        Outcome::Succeeded(format!("{detail} left as a zombie"))
    } else {
        Outcome::Refused(Errno::ECHILD, format!("{detail} reaped"))
    })
}

fn relay(arg: Option<&str>) -> Result<Outcome, String> {
    let addr: std::net::SocketAddr = need(arg, "ADDR:PORT")?
        .parse()
        .map_err(|e| format!("address: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err("relay attempts only target loopback".into());
    }
    let mut s = match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Outcome::Refused(
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                format!("connect {addr}"),
            ));
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    // The relay may close at once (no proxy behind it): that is a refusal, not an error.
    if let Err(e) = s
        .write_all(b"paddock-redteam ping")
        .and_then(|()| s.shutdown(std::net::Shutdown::Write))
    {
        return Ok(Outcome::Refused(
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            "connection closed while sending".into(),
        ));
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    Ok(if reply.is_empty() {
        Outcome::Refused(Errno::ECONNRESET, "empty reply".into())
    } else {
        Outcome::Succeeded(format!("reply={reply:?}"))
    })
}

fn exit_with(arg: Option<&str>) -> Result<Outcome, String> {
    let code: u8 = need(arg, "CODE")?
        .parse()
        .map_err(|e| format!("code: {e}"))?;
    std::process::exit(i32::from(code));
}

fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready pid={}", std::process::id());
    let _ = out.flush();
}

fn wait_term(_: Option<&str>) -> Result<Outcome, String> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| e.to_string())?;
    ready();
    let sig = set.wait().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "got {sig}");
    let _ = out.flush();
    std::process::exit(42);
}

fn sleep(arg: Option<&str>) -> Result<Outcome, String> {
    let secs: u64 = arg
        .unwrap_or("30")
        .parse()
        .map_err(|e| format!("seconds: {e}"))?;
    ready();
    std::thread::sleep(Duration::from_secs(secs));
    Ok(Outcome::Succeeded("slept".into()))
}

fn read_fd0(arg: Option<&str>) -> Result<Outcome, String> {
    let path = format!("/proc/{}/fd/0", proc_target(arg));
    Ok(match std::fs::File::open(&path) {
        Ok(_) => Outcome::Succeeded(path),
        Err(e) => Outcome::Refused(Errno::from_raw(e.raw_os_error().unwrap_or(0)), path),
    })
}

fn read_stdin(_: Option<&str>) -> Result<Outcome, String> {
    let mut buf = [0u8; 256];
    Ok(match std::io::stdin().read(&mut buf) {
        Ok(0) => Outcome::Refused(Errno::ENODATA, "stdin is empty".into()),
        Ok(n) => Outcome::Succeeded(format!("read {n} bytes from stdin")),
        Err(e) => Outcome::Refused(
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            "stdin".into(),
        ),
    })
}

/// Device nodes every container has and that give nothing away.
const HARMLESS_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/console",
    "/dev/ptmx",
    "/dev/pts/ptmx",
];

fn dev_nodes(_: Option<&str>) -> Result<Outcome, String> {
    use std::os::unix::fs::FileTypeExt;
    let mut found = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                dirs.push(path);
            } else if (ft.is_block_device() || ft.is_char_device())
                && !HARMLESS_DEVICES.contains(&path.to_string_lossy().as_ref())
                && !path.starts_with("/dev/pts")
            {
                found.push(path.display().to_string());
            }
        }
    }
    found.sort();
    Ok(if found.is_empty() {
        Outcome::Refused(Errno::ENOENT, "only harmless device nodes".into())
    } else {
        found.truncate(8);
        Outcome::Succeeded(format!("device nodes: {}", found.join(" ")))
    })
}

fn open_device(path: &str) -> Outcome {
    match std::fs::File::open(path) {
        Ok(_) => Outcome::Succeeded(format!("opened {path}")),
        Err(e) => Outcome::Refused(Errno::from_raw(e.raw_os_error().unwrap_or(0)), path.into()),
    }
}

fn dev_mem(_: Option<&str>) -> Result<Outcome, String> {
    Ok(open_device("/dev/mem"))
}

fn dev_kmsg(_: Option<&str>) -> Result<Outcome, String> {
    Ok(open_device("/dev/kmsg"))
}

fn dev_port(_: Option<&str>) -> Result<Outcome, String> {
    Ok(open_device("/dev/port"))
}

fn mknod(arg: Option<&str>) -> Result<Outcome, String> {
    // The first writable place: the workspace in a sandbox, /tmp or / elsewhere.
    let dir = match arg {
        Some(d) => d.to_owned(),
        None => ["/workspace", "/tmp", "/"]
            .into_iter()
            .find(|d| {
                let probe = format!(
                    "{}/.paddock-probe-{}",
                    d.trim_end_matches('/'),
                    std::process::id()
                );
                let ok = std::fs::write(&probe, b"").is_ok();
                let _ = std::fs::remove_file(&probe);
                ok
            })
            .ok_or("no writable directory")?
            .to_owned(),
    };
    let path = c(&format!("{}/paddock-sda", dir.trim_end_matches('/')))?;
    // SAFETY: a NUL-terminated path, a mode and a device number.
    let ret = unsafe { libc::mknod(path.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(8, 0)) };
    if ret == 0 {
        // SAFETY: removing the node we just made.
        unsafe { libc::unlink(path.as_ptr()) };
    }
    Ok(check(
        ret.into(),
        &format!("mknod {}", path.to_string_lossy()),
    ))
}

fn dev_harmless(_: Option<&str>) -> Result<Outcome, String> {
    let mut buf = [0u8; 16];
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .and_then(|mut f| f.write_all(b"paddock"))
        .and_then(|()| std::fs::File::open("/dev/urandom"))
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("harmless devices: {e}"))?;
    Ok(Outcome::Succeeded("/dev/null and /dev/urandom work".into()))
}

/// Marker in the victim's command line and the file it leaves in its workspace.
const VICTIM_MARK: &str = "victim";
const VICTIM_FILE: &str = "/workspace/paddock-victim-secret";

/// Each way into another run; the list of what was reached (empty: nothing).
fn reach(port: u16, socket: &str, own_pid: u32) -> Vec<String> {
    let mut reached = Vec::new();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reached.push(format!("listener {addr} said {reply:?}"));
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == own_pid {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline
                .split(|&b| b == 0)
                .any(|a| a == VICTIM_MARK.as_bytes())
            {
                reached.push(format!("process {pid}"));
            }
        }
    }
    if std::fs::metadata(VICTIM_FILE).is_ok() {
        reached.push(format!("file {VICTIM_FILE}"));
    }
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        reached.push(format!("socket {socket}"));
    }
    reached
}

fn parse_target(arg: Option<&str>) -> Result<(u16, String), String> {
    let arg = need(arg, "PORT,SOCKET")?;
    let (port, socket) = arg.split_once(',').ok_or("needs PORT,SOCKET")?;
    let port = port.parse().map_err(|e| format!("port: {e}"))?;
    Ok((port, socket.to_owned()))
}

fn cross_run(arg: Option<&str>) -> Result<Outcome, String> {
    let (port, socket) = parse_target(arg)?;
    let reached = reach(port, &socket, std::process::id());
    Ok(if reached.is_empty() {
        Outcome::Refused(
            Errno::ENOENT,
            "no listener, process, file or socket of another run".into(),
        )
    } else {
        Outcome::Succeeded(reached.join("; "))
    })
}

/// ARG: `PORT,SOCKET[,SECS]`. Leaves a file, a listener and a marked process for an attacker to
/// find, shows that all three and its own proxy socket SOCKET are reachable from inside its own
/// run, then stays up SECS seconds (default 20). Succeeds when the self-check reached all four.
fn victim(arg: Option<&str>) -> Result<Outcome, String> {
    let (port, rest) = parse_target(arg)?;
    let (socket, secs) = match rest.split_once(',') {
        Some((s, t)) => (
            s.to_owned(),
            t.parse::<u64>().map_err(|e| format!("secs: {e}"))?,
        ),
        None => (rest, 20),
    };
    std::fs::write(VICTIM_FILE, b"victim").map_err(|e| format!("{VICTIM_FILE}: {e}"))?;
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind: {e}"))?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"pong");
        }
    });
    // The scan skips its own pid: a child with the marker stands in for the victim's processes.
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(me)
        .args(["sleep", &secs.to_string(), VICTIM_MARK])
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    // Give the child time to exec so the scan sees its command line.
    std::thread::sleep(Duration::from_millis(200));
    let reached = reach(port, &socket, std::process::id());
    let mut kinds: Vec<&str> = reached
        .iter()
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "victim ready kinds={}: {}",
        kinds.len(),
        reached.join("; ")
    );
    let _ = out.flush();
    drop(out);
    let _ = child.wait();
    Ok(if kinds.len() == 4 {
        Outcome::Succeeded("listener, file, socket and process reachable from inside".into())
    } else {
        Outcome::Refused(
            Errno::ENOENT,
            format!("self-check reached only {reached:?}"),
        )
    })
}
