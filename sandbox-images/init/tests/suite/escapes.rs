//! Each escape is refused inside paddock-init and, where the host allows it, works without it.

use super::support::{Sandbox, bare, is_root, landlock_or_skip, path_str};

const EPERM: i32 = 1;
const EACCES: i32 = 13;
const ENXIO: i32 = 6;
const ENOSYS: i32 = 38;
const ENOTTY: i32 = 25;
const EAFNOSUPPORT: i32 = 97;

/// When the bare-host baseline must succeed.
#[derive(Clone, Copy)]
enum Baseline {
    /// Only as root (the attack needs privileges the test user may lack).
    AsRoot,
}

fn refused_in_sandbox_and_works_bare(name: &str, arg: Option<&str>, errno: i32, base: Baseline) {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let inside = sb.attempt(name, arg);
    assert!(
        inside.refused_with(errno),
        "{name} inside the sandbox: {inside:?}"
    );
    match base {
        Baseline::AsRoot if !is_root() => eprintln!("{name}: baseline needs root; not checked"),
        Baseline::AsRoot => {
            let outside = bare(name, arg);
            assert!(outside.succeeded(), "{name} on the bare host: {outside:?}");
        }
    }
}

macro_rules! escape {
    ($test:ident, $name:literal, $errno:expr) => {
        #[test]
        fn $test() {
            refused_in_sandbox_and_works_bare($name, None, $errno, Baseline::AsRoot);
        }
    };
}

escape!(unshare_user_namespace, "unshare-user", EPERM);
escape!(clone_with_namespace_flag, "clone-newuser", EPERM);
escape!(ptrace_own_child, "ptrace", EPERM);
escape!(bpf_map, "bpf", EPERM);
escape!(io_uring, "io-uring", EPERM);
escape!(keyring, "keyctl", EPERM);
escape!(userfaultfd, "userfaultfd", EPERM);
escape!(perf_event, "perf", EPERM);
escape!(file_handles, "open-by-handle", EPERM);
escape!(raw_ip_socket, "raw-socket", EPERM);
escape!(packet_socket, "packet-socket", EPERM);
escape!(chroot, "chroot", EPERM);
escape!(setns, "setns", EPERM);
escape!(personality, "personality", EPERM);
escape!(clock_adjust, "clock-adjtime", EPERM);
escape!(capabilities_all_zero, "caps", EPERM);
escape!(core_dumps_off, "core", EPERM);

#[test]
fn mount_is_refused() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let target = sb.path("workspace");
    let inside = sb.attempt("mount", Some(path_str(&target)));
    assert!(inside.refused_with(EPERM), "{inside:?}");
    if is_root() {
        let outside = bare("mount", Some(path_str(&target)));
        assert!(outside.succeeded(), "{outside:?}");
    }
}

#[test]
fn writes_only_inside_the_writable_paths() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let inside = sb.path("workspace/edit.txt");
    let scratch = sb.path("scratch/tmp.txt");
    let outside = sb.path("new-outside.txt");
    assert!(sb.attempt("write", Some(path_str(&inside))).succeeded());
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "paddock");
    assert!(sb.attempt("write", Some(path_str(&scratch))).succeeded());
    let denied = sb.attempt("write", Some(path_str(&outside)));
    assert!(denied.refused_with(EACCES), "{denied:?}");
    assert!(!outside.exists());
    // The same write works without paddock-init.
    assert!(bare("write", Some(path_str(&outside))).succeeded());
}

#[test]
fn truncating_a_file_outside_is_refused() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let victim = sb.path("outside.txt");
    let denied = sb.attempt("truncate", Some(path_str(&victim)));
    assert!(denied.refused_with(EACCES), "{denied:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");
    assert!(bare("truncate", Some(path_str(&victim))).succeeded());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "");
}

#[test]
fn clone3_is_enosys_and_libc_falls_back_to_clone() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let clone3 = sb.attempt("clone3", None);
    assert!(clone3.refused_with(ENOSYS), "{clone3:?}");
    assert!(bare("clone3", None).succeeded());
    // Ordinary process creation still works (glibc retries with clone on ENOSYS).
    let spawn = sb.attempt("spawn", Some("/bin/true"));
    assert!(spawn.succeeded(), "{spawn:?}");
}

#[test]
fn x32_syscalls_are_refused_by_the_guard() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let inside = sb.attempt("x32", None);
    assert!(inside.refused_with(EPERM), "{inside:?}");
    // Bare, the kernel either runs it or (without CONFIG_X86_X32_ABI) says ENOSYS: never EPERM,
    // so the EPERM above comes from the guard.
    let outside = bare("x32", None);
    assert!(
        outside.succeeded() || outside.refused_with(ENOSYS),
        "{outside:?}"
    );
}

#[test]
fn i386_syscalls_kill_the_agent() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let inside = sb.attempt("int80", None);
    assert_eq!(inside.code, 128 + 31, "killed by SIGSYS: {inside:?}");
    let outside = bare("int80", None);
    assert!(
        outside.succeeded() || outside.refused_with(ENOSYS),
        "{outside:?}"
    );
}

#[test]
fn icmp_sockets_are_refused_tcp_sockets_are_not() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let icmp = sb.attempt("icmp-socket", None);
    assert!(icmp.refused_with(EPERM), "{icmp:?}");
    let tcp = sb.attempt("tcp-socket", None);
    assert!(tcp.succeeded(), "{tcp:?}");
}

#[test]
fn vsock_sockets_are_refused() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let inside = sb.attempt("vsock-socket", None);
    assert!(inside.refused_with(EPERM), "{inside:?}");
    // Bare: a socket where the vsock transport is loaded, EAFNOSUPPORT where not; never EPERM.
    let outside = bare("vsock-socket", None);
    assert!(
        outside.succeeded() || outside.refused_with(EAFNOSUPPORT),
        "{outside:?}"
    );
}

#[test]
fn tiocsti_is_refused_by_the_filter() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let inside = sb.attempt("tiocsti", None);
    assert!(inside.refused_with(EPERM), "{inside:?}");
    // Bare, stdin (/dev/null) is not a terminal: ENOTTY, so EPERM above is the filter's.
    assert!(bare("tiocsti", None).refused_with(ENOTTY));
}

#[test]
fn agent_leads_its_own_session_without_a_terminal() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    assert!(sb.attempt("session-leader", None).succeeded());
    assert!(!bare("session-leader", None).succeeded());
    assert!(sb.attempt("ctty", None).refused_with(ENXIO));
}

#[test]
fn init_memory_and_environment_are_unreadable() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    for name in ["read-environ", "read-mem"] {
        let inside = sb.attempt(name, None);
        assert!(inside.refused_with(EACCES), "{name}: {inside:?}");
        // Bare, the red-team reads its parent's (this test's) environment and memory.
        let outside = bare(name, None);
        assert!(outside.succeeded(), "{name}: {outside:?}");
    }
    let attach = sb.attempt("ptrace-parent", None);
    assert!(attach.refused_with(EPERM), "{attach:?}");
}

#[test]
fn module_loading_and_hostname_are_refused() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    for name in ["init-module", "sethostname"] {
        let inside = sb.attempt(name, None);
        assert!(inside.refused_with(EPERM), "{name}: {inside:?}");
    }
}

#[test]
fn hard_limits_cannot_be_raised() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let inside = sb.attempt("raise-nofile", None);
    assert!(inside.refused_with(EPERM), "{inside:?}");
    assert!(inside.stdout.contains("hard 4096"), "{inside:?}");
}
