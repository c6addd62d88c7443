//! The agent's seccomp filter as data: each refused syscall, the arguments that make it refused, and why.
//!
//! The filter is a deny list on top of Docker's default profile: everything not named here is
//! allowed, everything named here returns an error to the caller (never kills), so tools that
//! probe for a feature see a clean `EPERM`/`ENOSYS` and carry on.

use serde::{Deserialize, Serialize};

/// Error the kernel returns for a refused call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyErrno {
    /// `EPERM`: "operation not permitted".
    Eperm,
    /// `ENOSYS`: "function not implemented"; used where libc must fall back to an older call.
    Enosys,
}

impl DenyErrno {
    /// The errno value on Linux.
    #[must_use]
    pub const fn raw(self) -> u32 {
        match self {
            Self::Eperm => 1,
            Self::Enosys => 38,
        }
    }
}

/// Width of a compared syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgWidth {
    /// The low 32 bits (C `int` arguments).
    Dword,
    /// All 64 bits (C `long`/pointer-sized arguments).
    Qword,
}

/// Comparison applied to one syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgOp {
    /// The argument equals the value.
    Eq(u64),
    /// The argument differs from the value.
    Ne(u64),
    /// `arg & mask == value`.
    MaskedEq {
        /// Bits compared.
        mask: u64,
        /// Expected value of those bits.
        value: u64,
    },
}

/// One condition on one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgMatch {
    /// Argument index, 0..=5.
    pub index: u8,
    /// Compared width.
    pub width: ArgWidth,
    /// Comparison.
    pub op: ArgOp,
}

/// One refusal: the syscall is refused when every condition in `when` holds (always, when empty).
/// Several rules for the same syscall are alternatives (any one refuses the call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallRule {
    /// Syscall name as in `<asm/unistd_64.h>`.
    pub syscall: String,
    /// Error returned.
    pub errno: DenyErrno,
    /// Conditions, all of which must hold (empty: always refused).
    #[serde(default)]
    pub when: Vec<ArgMatch>,
    /// Why it is refused (for reviewers and the refusal log).
    pub why: String,
}

/// The whole seccomp part of the profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompPolicy {
    /// Only `x86_64` is supported; the filter kills any other audit arch (i386 via `int 0x80`).
    pub arch: String,
    /// Refuse every x32-ABI syscall (`nr & 0x4000_0000`); seccompiler's rules match only the
    /// x86_64 numbers, so without this guard every rule could be bypassed through x32 aliases.
    pub deny_x32: bool,
    /// The refusals.
    pub rules: Vec<SyscallRule>,
}

/// Bit marking an x32-ABI syscall number on x86_64.
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;

// Linux ABI constants used in argument rules (stable kernel UAPI values).
/// `CLONE_NEWTIME`.
pub const CLONE_NEWTIME: u64 = 0x0000_0080;
/// `CLONE_NEWNS`.
pub const CLONE_NEWNS: u64 = 0x0002_0000;
/// `CLONE_NEWCGROUP`.
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
/// `CLONE_NEWUTS`.
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
/// `CLONE_NEWIPC`.
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
/// `CLONE_NEWUSER`.
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
/// `CLONE_NEWPID`.
pub const CLONE_NEWPID: u64 = 0x2000_0000;
/// `CLONE_NEWNET`.
pub const CLONE_NEWNET: u64 = 0x4000_0000;
/// Every namespace flag `clone` accepts.
pub const CLONE_NAMESPACE_FLAGS: [(u64, &str); 8] = [
    (CLONE_NEWNS, "CLONE_NEWNS"),
    (CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    (CLONE_NEWUTS, "CLONE_NEWUTS"),
    (CLONE_NEWIPC, "CLONE_NEWIPC"),
    (CLONE_NEWUSER, "CLONE_NEWUSER"),
    (CLONE_NEWPID, "CLONE_NEWPID"),
    (CLONE_NEWNET, "CLONE_NEWNET"),
    (CLONE_NEWTIME, "CLONE_NEWTIME"),
];
/// `AF_UNIX`.
pub const AF_UNIX: u64 = 1;
/// `AF_INET`.
pub const AF_INET: u64 = 2;
/// `AF_NETLINK`.
pub const AF_NETLINK: u64 = 16;
/// `AF_VSOCK`: host/guest sockets of a virtual machine, not bound by network namespaces.
pub const AF_VSOCK: u64 = 40;
/// `AF_INET6`.
pub const AF_INET6: u64 = 10;
/// `AF_PACKET`.
pub const AF_PACKET: u64 = 17;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u64 = 2;
/// `SOCK_RAW`.
pub const SOCK_RAW: u64 = 3;
/// `SOCK_PACKET` (obsolete link-level socket type on `AF_INET`).
pub const SOCK_PACKET: u64 = 10;
/// Low bits of the socket type (the rest are `SOCK_NONBLOCK`/`SOCK_CLOEXEC`).
pub const SOCK_TYPE_MASK: u64 = 0xf;
/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u64 = 1;
/// `IPPROTO_ICMPV6`.
pub const IPPROTO_ICMPV6: u64 = 58;
/// `TIOCSTI`: push a byte into a terminal's input queue.
pub const TIOCSTI: u64 = 0x5412;
/// `TIOCLINUX`: console ioctls, including selection paste into a virtual console.
pub const TIOCLINUX: u64 = 0x541c;
/// `personality(0xffffffff)` only queries the persona.
pub const PERSONALITY_QUERY: u64 = 0xffff_ffff;
/// `PER_LINUX`, the default persona.
pub const PER_LINUX: u64 = 0;

/// Syscalls refused outright with `EPERM`, one line each: name, why.
pub const DENY_ALWAYS: &[(&str, &str)] = &[
    // Mounts: any of these rearranges what paths mean and could expose or cover host files.
    (
        "mount",
        "mounting can cover or expose any path behind landlock's back",
    ),
    (
        "umount2",
        "unmounting can reveal what the runtime deliberately covered",
    ),
    (
        "fsopen",
        "new mount API: creates a filesystem context to mount",
    ),
    ("fsconfig", "new mount API: configures a filesystem context"),
    ("fsmount", "new mount API: turns a context into a mount"),
    (
        "fspick",
        "new mount API: reopens an existing mount for reconfiguration",
    ),
    ("move_mount", "new mount API: attaches a mount anywhere"),
    ("open_tree", "new mount API: clones a mount tree"),
    (
        "mount_setattr",
        "changes mount flags (e.g. drops nosuid/ro)",
    ),
    ("pivot_root", "swaps the root filesystem"),
    (
        "chroot",
        "chroot tricks are the classic way out of path-based confinement",
    ),
    // Namespaces: user namespaces hand out capabilities over fresh kernel attack surface.
    (
        "unshare",
        "new namespaces (user namespaces above all) reach kernel code unprivileged users never could",
    ),
    (
        "setns",
        "joins another namespace through an inherited or opened ns file",
    ),
    // Looking into or steering other processes.
    (
        "ptrace",
        "reads and writes other processes of the same uid, including paddock-init",
    ),
    ("process_vm_readv", "reads another process's memory"),
    ("process_vm_writev", "writes another process's memory"),
    (
        "pidfd_getfd",
        "steals a file descriptor out of another process",
    ),
    (
        "kcmp",
        "compares kernel objects of other processes (an ASLR/info leak)",
    ),
    // Kernel attack surface with a long exploit history.
    (
        "bpf",
        "eBPF programs and maps: large verifier attack surface",
    ),
    (
        "perf_event_open",
        "performance counters: side channels and a long CVE record",
    ),
    (
        "userfaultfd",
        "stalls kernel page faults at will, a standard exploit primitive",
    ),
    (
        "io_uring_setup",
        "io_uring bypasses per-syscall filtering and has a long CVE record",
    ),
    (
        "io_uring_enter",
        "io_uring: submits work for an existing ring",
    ),
    (
        "io_uring_register",
        "io_uring: registers buffers and files for a ring",
    ),
    (
        "keyctl",
        "kernel keyrings are not namespaced: other users' keys and a long CVE record",
    ),
    ("add_key", "kernel keyrings: adds keys"),
    (
        "request_key",
        "kernel keyrings: looks up or asks userspace for keys",
    ),
    // Whole-machine controls.
    ("init_module", "loads kernel code"),
    ("finit_module", "loads kernel code from a file"),
    ("delete_module", "unloads kernel code"),
    ("kexec_load", "replaces the running kernel"),
    ("kexec_file_load", "replaces the running kernel from a file"),
    ("reboot", "restarts or halts the machine"),
    ("swapon", "adds swap, which changes memory accounting"),
    ("swapoff", "removes swap"),
    (
        "settimeofday",
        "sets the system clock (TLS, logs and leases depend on it)",
    ),
    ("clock_settime", "sets a system clock"),
    ("clock_adjtime", "adjusts a system clock"),
    ("adjtimex", "adjusts the system clock"),
    ("sethostname", "renames the host"),
    ("setdomainname", "renames the NIS domain"),
    ("acct", "switches process accounting to a file"),
    ("quotactl", "manipulates disk quotas"),
    (
        "quotactl_fd",
        "manipulates disk quotas through a file descriptor",
    ),
    (
        "open_by_handle_at",
        "opens files by handle, bypassing every path check (the 'shocker' escape)",
    ),
    (
        "name_to_handle_at",
        "mints file handles for open_by_handle_at",
    ),
    (
        "lookup_dcookie",
        "reads kernel directory-entry cookies (profiling interface)",
    ),
    ("vhangup", "hangs up the current terminal"),
    ("ioperm", "direct access to I/O ports"),
    ("iopl", "direct access to all I/O ports"),
    (
        "syslog",
        "reads or clears the kernel log (addresses and other users' messages)",
    ),
    (
        "uselib",
        "obsolete loader interface, only ever used in exploits",
    ),
    ("fanotify_init", "watches filesystem events across mounts"),
];

/// Syscall whose flags live in memory that seccomp cannot read; `ENOSYS` makes libc fall back to
/// `clone`, whose namespace flags the filter checks.
pub const ENOSYS_ALWAYS: &[(&str, &str)] = &[(
    "clone3",
    "flags sit in a struct seccomp cannot inspect; ENOSYS makes libc fall back to clone",
)];

impl SeccompPolicy {
    /// The filter every agent runs under.
    #[must_use]
    pub fn agent_default() -> Self {
        let mut rules: Vec<SyscallRule> = DENY_ALWAYS
            .iter()
            .map(|(name, why)| always(name, DenyErrno::Eperm, why))
            .collect();
        rules.extend(
            ENOSYS_ALWAYS
                .iter()
                .map(|(name, why)| always(name, DenyErrno::Enosys, why)),
        );
        // clone: any namespace flag makes a new namespace (same surface as unshare).
        for (flag, flag_name) in CLONE_NAMESPACE_FLAGS {
            rules.push(SyscallRule {
                syscall: "clone".into(),
                errno: DenyErrno::Eperm,
                when: vec![masked(0, ArgWidth::Qword, flag, flag)],
                why: format!("clone with {flag_name} creates a namespace"),
            });
        }
        // socket: only the families an agent needs. Others are ways out that no network
        // namespace closes (AF_VSOCK reaches the hypervisor host) or rarely used kernel code
        // with a CVE record (AF_RDS, AF_TIPC, AF_ALG, ...).
        rules.push(rule(
            "socket",
            vec![
                ne(0, ArgWidth::Dword, AF_UNIX),
                ne(0, ArgWidth::Dword, AF_INET),
                ne(0, ArgWidth::Dword, AF_INET6),
                ne(0, ArgWidth::Dword, AF_NETLINK),
            ],
            "address families other than unix, IPv4, IPv6 and netlink (vsock reaches the VM host)",
        ));
        // Within the allowed families: link-level and raw IP sockets craft packets past any
        // proxy; ICMP "ping" sockets are open to every container through ping_group_range.
        rules.push(rule(
            "socket",
            vec![eq(0, ArgWidth::Dword, AF_PACKET)],
            "AF_PACKET sockets read and write link-level frames",
        ));
        for family in [AF_INET, AF_INET6] {
            rules.push(rule(
                "socket",
                vec![
                    eq(0, ArgWidth::Dword, family),
                    masked(1, ArgWidth::Dword, SOCK_TYPE_MASK, SOCK_RAW),
                ],
                "raw IP sockets craft arbitrary packets",
            ));
            rules.push(rule(
                "socket",
                vec![
                    eq(0, ArgWidth::Dword, family),
                    masked(1, ArgWidth::Dword, SOCK_TYPE_MASK, SOCK_PACKET),
                ],
                "SOCK_PACKET is the obsolete link-level socket type",
            ));
        }
        rules.push(rule(
            "socket",
            vec![
                eq(0, ArgWidth::Dword, AF_INET),
                masked(1, ArgWidth::Dword, SOCK_TYPE_MASK, SOCK_DGRAM),
                eq(2, ArgWidth::Dword, IPPROTO_ICMP),
            ],
            "ICMP sockets are open to all containers (ping_group_range): a non-proxy path",
        ));
        rules.push(rule(
            "socket",
            vec![
                eq(0, ArgWidth::Dword, AF_INET6),
                masked(1, ArgWidth::Dword, SOCK_TYPE_MASK, SOCK_DGRAM),
                eq(2, ArgWidth::Dword, IPPROTO_ICMPV6),
            ],
            "ICMPv6 sockets: a non-proxy path",
        ));
        // ioctl: typing into a terminal someone else reads from.
        rules.push(rule(
            "ioctl",
            vec![eq(1, ArgWidth::Dword, TIOCSTI)],
            "TIOCSTI injects keystrokes into a terminal",
        ));
        rules.push(rule(
            "ioctl",
            vec![eq(1, ArgWidth::Dword, TIOCLINUX)],
            "TIOCLINUX can paste into a virtual console",
        ));
        // personality: only the default persona and the query; other personas disable ASLR or
        // switch to legacy ABIs.
        rules.push(rule(
            "personality",
            vec![
                ne(0, ArgWidth::Dword, PER_LINUX),
                ne(0, ArgWidth::Dword, PERSONALITY_QUERY),
            ],
            "non-default personas disable ASLR or enable legacy ABIs",
        ));
        Self {
            arch: "x86_64".into(),
            deny_x32: true,
            rules,
        }
    }

    /// Every syscall name the policy mentions, sorted and deduplicated.
    #[must_use]
    pub fn syscall_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.rules.iter().map(|r| r.syscall.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The rules of one syscall that return `errno`.
    pub fn rules_for<'a>(
        &'a self,
        syscall: &'a str,
        errno: DenyErrno,
    ) -> impl Iterator<Item = &'a SyscallRule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.syscall == syscall && r.errno == errno)
    }

    /// Whether `syscall` is refused with `errno` unconditionally.
    #[must_use]
    pub fn denies_always(&self, syscall: &str, errno: DenyErrno) -> bool {
        self.rules_for(syscall, errno).any(|r| r.when.is_empty())
    }
}

fn always(name: &str, errno: DenyErrno, why: &str) -> SyscallRule {
    SyscallRule {
        syscall: name.into(),
        errno,
        when: Vec::new(),
        why: why.into(),
    }
}

fn rule(name: &str, when: Vec<ArgMatch>, why: &str) -> SyscallRule {
    SyscallRule {
        syscall: name.into(),
        errno: DenyErrno::Eperm,
        when,
        why: why.into(),
    }
}

const fn eq(index: u8, width: ArgWidth, value: u64) -> ArgMatch {
    ArgMatch {
        index,
        width,
        op: ArgOp::Eq(value),
    }
}

const fn ne(index: u8, width: ArgWidth, value: u64) -> ArgMatch {
    ArgMatch {
        index,
        width,
        op: ArgOp::Ne(value),
    }
}

const fn masked(index: u8, width: ArgWidth, mask: u64, value: u64) -> ArgMatch {
    ArgMatch {
        index,
        width,
        op: ArgOp::MaskedEq { mask, value },
    }
}
