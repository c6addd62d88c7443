//! paddock-init: the setup sequence, the kernel interface it runs on, and the agent's supervisor.
//!
//! The order of the setup steps is the security argument, so it lives in one place
//! ([`setup::run`]) and runs against a [`kernel::Kernel`]; unit tests replay it on a recording
//! fake and assert the exact order, integration tests run the real binary.

pub mod args;
pub mod error;
pub mod gate;
pub mod kernel;
pub mod landlock_rules;
pub mod relay;
pub mod seccomp;
pub mod setup;
pub mod supervise;
pub mod syscalls;

pub use error::InitError;
