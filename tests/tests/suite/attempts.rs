//! Every attempt `paddock-redteam` offers, run as the agent in the full sandbox (the launcher
//! with the real profile): each escape is refused. Where Docker can show it, the same attempt
//! succeeds in a plain container without Paddock's hardening, so each check can fail.

use paddock::sandbox::RunStatus;

use super::support::{IMAGE, Plain, SERIAL, docker, exited, plain, sandboxed, show, text};

/// What the attempt must do inside the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Exit 1: the kernel or the sandbox refused it.
    Refused,
    /// Exit 0: an allowed neighbour that must keep working (shows the harness is live).
    Works,
    /// Killed by the seccomp filter (SIGSYS) before it could return.
    Killed,
}

/// Attempts that are tools for other tests, not escapes.
const HELPERS: &[&str] = &[
    "relay",
    "exit",
    "wait-term",
    "sleep",
    // Covered by `cross_run.rs` (two sandboxes at once).
    "cross-run",
    "victim",
];

async fn check(name: &str, arg: Option<&str>, expect: Expect, control: Option<Plain>) {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let mut cmd = vec!["paddock-redteam", name];
    cmd.extend(arg);
    let o = sandboxed(engine, &format!("att-{name}"), &cmd).await;
    let out = text(&o.stdout);
    match expect {
        Expect::Refused => {
            assert_eq!(exited(&o), Some(1), "{name} not refused: {}", show(&o));
            assert!(
                out.contains(&format!("paddock-redteam {name}: refused")),
                "{}",
                show(&o)
            );
        }
        Expect::Works => assert_eq!(exited(&o), Some(0), "{name}: {}", show(&o)),
        Expect::Killed => {
            // SIGSYS (31) kills it: paddock-init reports 128 + 31; nothing was printed.
            assert_eq!(exited(&o), Some(128 + 31), "{name}: {}", show(&o));
            assert!(!out.contains("succeeded"), "{}", show(&o));
        }
    }
    if let Some(mode) = control {
        let script = match arg {
            Some(a) => format!("paddock-redteam {name} {a}; exit $?"),
            None if name == "zombie" => format!("exec paddock-redteam {name}"),
            None => format!("paddock-redteam {name}; exit $?"),
        };
        let (code, all) = plain(mode, &script);
        assert_eq!(
            code, 0,
            "control: {name} should work without the sandbox: {all}"
        );
    }
}

macro_rules! attempts {
    ($($(#[$m:meta])* $test:ident: $name:literal $(($arg:literal))? => $expect:ident, $control:expr;)*) => {
        /// Every attempt name this file covers.
        const COVERED: &[&str] = &[$($name),*];
        $(
            $(#[$m])*
            #[tokio::test]
            async fn $test() {
                check($name, None $(.or(Some($arg)))?, Expect::$expect, $control).await;
            }
        )*
    };
}

attempts! {
    write_to_the_root_filesystem: "write" ("/etc/paddock-escape") => Refused, Some(Plain::Root);
    write_to_the_read_only_task_mount: "write" ("/paddock/escape") => Refused, None;
    write_in_the_workspace_works: "write" ("/workspace/ok") => Works, None;
    truncate_a_system_file: "truncate" ("/etc/passwd") => Refused, Some(Plain::Root);
    mount_a_tmpfs: "mount" ("/tmp") => Refused, None;
    unshare_a_user_namespace: "unshare-user" => Refused, Some(Plain::Privileged);
    clone_into_a_user_namespace: "clone-newuser" => Refused, Some(Plain::Privileged);
    clone3_is_enosys: "clone3" => Refused, Some(Plain::Privileged);
    spawning_a_program_still_works: "spawn" => Works, None;
    ptrace_a_child: "ptrace" => Refused, Some(Plain::Privileged);
    ptrace_the_parent: "ptrace-parent" => Refused, None;
    bpf_map_create: "bpf" => Refused, None;
    io_uring_setup: "io-uring" => Refused, Some(Plain::Privileged);
    keyctl_add_key: "keyctl" => Refused, Some(Plain::Privileged);
    userfaultfd: "userfaultfd" => Refused, None;
    perf_event_open: "perf" => Refused, Some(Plain::Privileged);
    open_by_handle: "open-by-handle" => Refused, None;
    load_a_kernel_module: "init-module" => Refused, None;
    x32_abi_syscall: "x32" => Refused, None;
    i386_int80_syscall: "int80" => Killed, Some(Plain::Privileged);
    raw_socket: "raw-socket" => Refused, Some(Plain::Root);
    packet_socket: "packet-socket" => Refused, Some(Plain::Root);
    icmp_socket: "icmp-socket" => Refused, Some(Plain::Privileged);
    vsock_socket: "vsock-socket" => Refused, Some(Plain::Privileged);
    tcp_socket_on_loopback_works: "tcp-socket" => Works, None;
    chroot: "chroot" => Refused, Some(Plain::Root);
    setns: "setns" => Refused, None;
    personality_linux32: "personality" => Refused, Some(Plain::Privileged);
    clock_adjtime: "clock-adjtime" => Refused, Some(Plain::Privileged);
    sethostname: "sethostname" => Refused, None;
    tiocsti: "tiocsti" => Refused, None;
    // The neighbour of tiocsti/ctty: paddock-init made the agent lead its own session (setsid).
    session_leader: "session-leader" => Works, None;
    controlling_terminal: "ctty" => Refused, None;
    hold_a_capability: "caps" => Refused, Some(Plain::Privileged);
    raise_nofile: "raise-nofile" => Refused, None;
    core_dumps: "core" => Refused, Some(Plain::Privileged);
    read_the_parents_environment: "read-environ" => Refused, Some(Plain::Privileged);
    read_init_environment: "read-environ" ("1") => Refused, Some(Plain::Privileged);
    read_the_parents_memory: "read-mem" => Refused, Some(Plain::Privileged);
    read_init_memory: "read-mem" ("1") => Refused, Some(Plain::Privileged);
    read_the_gates_stdin: "read-fd0" => Refused, Some(Plain::Privileged);
    read_init_stdin: "read-fd0" ("1") => Refused, Some(Plain::Privileged);
    the_agent_reads_nothing_on_stdin: "read-stdin" => Refused, None;
    leave_a_zombie: "zombie" => Refused, Some(Plain::Privileged);
    device_nodes_beyond_the_harmless_set: "dev-nodes" => Refused, Some(Plain::Privileged);
    // No control: a host without /dev/mem or /dev/port cannot hand them to a container.
    open_dev_mem: "dev-mem" => Refused, None;
    open_dev_kmsg: "dev-kmsg" => Refused, Some(Plain::RootWithDevice("/dev/kmsg", "SYSLOG"));
    open_dev_port: "dev-port" => Refused, None;
    mknod_a_block_device: "mknod" => Refused, Some(Plain::Root);
    harmless_devices_work: "dev-harmless" => Works, None;
}

/// A new attempt in `paddock-redteam` fails this suite until it is covered above.
#[tokio::test]
async fn every_attempt_the_binary_offers_is_covered() {
    let _g = SERIAL.lock().await;
    if docker().await.is_none() {
        return;
    }
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "paddock-redteam",
            IMAGE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage exits 2");
    let listing = text(&out.stderr);
    let offered: Vec<&str> = listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(offered.len() > 30, "{listing}");
    let missing: Vec<&&str> = offered
        .iter()
        .filter(|n| !COVERED.contains(n) && !HELPERS.contains(n))
        .collect();
    assert!(missing.is_empty(), "attempts without a test: {missing:?}");
}

/// The neighbour of every refusal above: the harness reports an agent's own exit status, so a
/// refusal is the attempt's verdict and not a broken run.
#[tokio::test]
async fn the_harness_reports_the_agents_status() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let o = sandboxed(engine, "exit3", &["paddock-redteam", "exit", "3"]).await;
    assert_eq!(o.status, RunStatus::Exited(3), "{}", show(&o));
    assert!(o.agent_reported);
}
