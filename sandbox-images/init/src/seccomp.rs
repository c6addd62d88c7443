//! Compiles the profile's seccomp policy into BPF programs: an arch/x32 guard built by hand, one
//! seccompiler filter per error number.
//!
//! seccompiler checks the audit arch but matches only x86_64 syscall numbers, so an x32-ABI alias
//! (`nr | 0x4000_0000`) of a refused call would pass its filter. The hand-built guard refuses every
//! x32 number and kills any other arch (i386 through `int 0x80`).

use std::collections::BTreeMap;

use paddock_policy::sandbox::{ArgOp, ArgWidth, DenyErrno, SeccompPolicy, SyscallRule};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

use crate::{InitError, syscalls};

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
// seccomp return values (linux/seccomp.h).
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// The x32 marker bit as the 32-bit value BPF compares (`seccomp_data.nr` is an `int`).
const X32_BIT: u32 = 0x4000_0000;

const fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The guard: kill on a foreign arch, `EPERM` on every x32 syscall number, else allow.
#[must_use]
pub fn arch_guard() -> BpfProgram {
    vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
        jump(BPF_JMP_JSET_K, X32_BIT, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_ERRNO | DenyErrno::Eperm.raw()),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]
}

/// All programs to install, in installation order.
///
/// # Errors
/// [`InitError::UnknownSyscall`] for a name this build cannot map, [`InitError::Seccomp`] when
/// seccompiler refuses a rule.
pub fn compile(policy: &SeccompPolicy) -> Result<Vec<BpfProgram>, InitError> {
    if policy.arch != "x86_64" || !cfg!(target_arch = "x86_64") {
        return Err(InitError::Seccomp(format!(
            "arch {:?} is not supported by this build",
            policy.arch
        )));
    }
    if !policy.deny_x32 {
        return Err(InitError::Seccomp(
            "the x32 guard cannot be disabled".into(),
        ));
    }
    let mut programs = vec![arch_guard()];
    for errno in [DenyErrno::Eperm, DenyErrno::Enosys] {
        let rules: Vec<&SyscallRule> = policy.rules.iter().filter(|r| r.errno == errno).collect();
        if rules.is_empty() {
            continue;
        }
        programs.push(compile_one(&rules, errno)?);
    }
    Ok(programs)
}

fn compile_one(rules: &[&SyscallRule], errno: DenyErrno) -> Result<BpfProgram, InitError> {
    // None: refused unconditionally; Some(chain): refused when any rule in the chain matches.
    let mut by_nr: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for rule in rules {
        let nr = syscalls::number(&rule.syscall)
            .ok_or_else(|| InitError::UnknownSyscall(rule.syscall.clone()))?;
        let entry = by_nr.entry(nr).or_insert_with(|| Some(Vec::new()));
        if rule.when.is_empty() {
            *entry = None;
            continue;
        }
        if let Some(chain) = entry {
            let conditions = rule
                .when
                .iter()
                .map(|m| {
                    let len = match m.width {
                        ArgWidth::Dword => SeccompCmpArgLen::Dword,
                        ArgWidth::Qword => SeccompCmpArgLen::Qword,
                    };
                    let (op, value) = match m.op {
                        ArgOp::Eq(v) => (SeccompCmpOp::Eq, v),
                        ArgOp::Ne(v) => (SeccompCmpOp::Ne, v),
                        ArgOp::MaskedEq { mask, value } => (SeccompCmpOp::MaskedEq(mask), value),
                    };
                    SeccompCondition::new(m.index, len, op, value)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| InitError::Seccomp(format!("{}: {e}", rule.syscall)))?;
            chain.push(
                SeccompRule::new(conditions)
                    .map_err(|e| InitError::Seccomp(format!("{}: {e}", rule.syscall)))?,
            );
        }
    }
    let map = by_nr
        .into_iter()
        .map(|(nr, chain)| (nr, chain.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Errno(errno.raw()),
        TargetArch::x86_64,
    )
    .map_err(|e| InitError::Seccomp(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| InitError::Seccomp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::sandbox::{SandboxProfile, X32_SYSCALL_BIT};

    #[test]
    fn default_policy_compiles_into_guard_eperm_and_enosys_filters() {
        let programs = compile(&SandboxProfile::agent_default().seccomp).unwrap();
        assert_eq!(programs.len(), 3);
        assert_eq!(programs[0], arch_guard());
        for p in &programs {
            assert!(
                p.len() < 4096,
                "BPF programs are limited to 4096 instructions"
            );
        }
    }

    #[test]
    fn every_default_name_is_known() {
        for name in SandboxProfile::agent_default().seccomp.syscall_names() {
            assert!(syscalls::number(name).is_some(), "{name}");
        }
    }

    #[test]
    fn unknown_names_fail_closed() {
        let mut p = SandboxProfile::agent_default().seccomp;
        p.rules[0].syscall = "frobnicate".into();
        assert!(matches!(compile(&p), Err(InitError::UnknownSyscall(_))));
    }

    #[test]
    fn x32_bit_matches_the_policy() {
        assert_eq!(u64::from(X32_BIT), X32_SYSCALL_BIT);
    }

    #[test]
    fn x32_guard_cannot_be_switched_off() {
        let mut p = SandboxProfile::agent_default().seccomp;
        p.deny_x32 = false;
        assert!(compile(&p).is_err());
    }

    /// Runs the guard on a synthetic `seccomp_data` with a tiny classic-BPF interpreter.
    fn run(prog: &[sock_filter], nr: u32, arch: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = &prog[pc];
            match ins.code {
                BPF_LD_W_ABS => acc = if ins.k == DATA_NR { nr } else { arch },
                BPF_JMP_JEQ_K | BPF_JMP_JSET_K => {
                    let hit = if ins.code == BPF_JMP_JEQ_K {
                        acc == ins.k
                    } else {
                        acc & ins.k != 0
                    };
                    pc += usize::from(if hit { ins.jt } else { ins.jf });
                }
                BPF_RET_K => return ins.k,
                other => panic!("opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn guard_refuses_x32_and_foreign_arch_but_allows_native() {
        let g = arch_guard();
        assert_eq!(run(&g, 39, AUDIT_ARCH_X86_64), SECCOMP_RET_ALLOW);
        assert_eq!(
            run(&g, 0x4000_0000 | 39, AUDIT_ARCH_X86_64),
            SECCOMP_RET_ERRNO | 1
        );
        assert_eq!(
            run(&g, 0x4000_0000 | 522, AUDIT_ARCH_X86_64),
            SECCOMP_RET_ERRNO | 1
        );
        // AUDIT_ARCH_I386.
        assert_eq!(run(&g, 20, 3 | 0x4000_0000), SECCOMP_RET_KILL_PROCESS);
    }
}
