//! paddock-init: PID 1 of every Paddock agent container.

use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

use paddock_init::kernel::Kernel;
use paddock_init::kernel::real::RealKernel;
use paddock_init::{InitError, args, seccomp, setup, supervise};
use tracing_subscriber::EnvFilter;

/// Exit code when paddock-init itself refuses to start the agent.
const REFUSED: u8 = 125;

fn main() -> ExitCode {
    let filter =
        EnvFilter::try_from_env("PADDOCK_INIT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .init();
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("paddock-init: refusing to run the agent: {e}");
            ExitCode::from(REFUSED)
        }
    }
}

fn run() -> Result<u8, InitError> {
    let args = args::parse(std::env::args_os().skip(1))?;
    let profile = args::load_profile(&args)?;
    if args.print_profile {
        let json =
            serde_json::to_string_pretty(&profile).map_err(|e| InitError::Usage(e.to_string()))?;
        println!("{json}");
        return Ok(0);
    }
    // Everything that can fail on bad input is checked before the first privilege is dropped.
    let filters = seccomp::compile(&profile.seccomp)?;
    let agent = setup::prepare_agent(
        &args.command,
        std::env::vars_os().collect(),
        &profile,
        filters,
        |p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0),
    )?;
    let mut kernel = RealKernel::new();
    let started = setup::run(&mut kernel, &profile, &agent, args.gate)?;
    let code = supervise::supervise(&mut kernel, started.pid)?.exit_code();
    if let Some(nonce) = &started.nonce {
        kernel.close_gate(nonce, code)?;
    }
    Ok(code)
}
