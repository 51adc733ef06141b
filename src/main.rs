//! The `sandcrab` command line: `run` (the agent in CI), `serve` (the agent-server),
//! `doctor`, `report` (report.html from a run's outputs or a trajectory), and the hidden `forward` (the TCP forwarder of a remote engine's bridge container).

use std::process::ExitCode as ProcessExit;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use sandcrab::config::ci::CiConfig;
use sandcrab::config::{self, RunArgs, ServeArgs};
use sandcrab::error::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "sandcrab",
    version,
    about = "Runs a coding agent in CI and reports back."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent on a repository and write result.json, trajectory.jsonl, changes.patch
    /// and report.md. Exit codes: 0 finished, 1 the agent failed, 2 bad input or setup,
    /// 130 interrupted.
    Run(Box<RunArgs>),
    /// Check what runs need here (git, a Docker engine, a static binary); --sweep removes the
    /// containers and networks that crashed runs left behind.
    Doctor(sandcrab::doctor::DoctorArgs),
    /// Render report.html from an output folder of `sandcrab run`, a conversation folder or a
    /// trajectory file (sandcrab's or the OpenHands SDK's); prints the page's path.
    Report {
        /// The --out folder of a run, a conversation folder, or a trajectory.jsonl.
        path: std::path::PathBuf,
        /// Where to write the page (default: report.html beside the inputs).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Serve the OpenHands-compatible agent-server API (REST + WebSocket) on HOST:PORT.
    Serve(ServeArgs),
    /// Forward TCP LISTEN=TARGET pairs (the bridge container of a remote Docker engine).
    #[command(hide = true)]
    Forward {
        #[arg(required = true)]
        pairs: Vec<String>,
    },
}

fn main() -> ProcessExit {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ProcessExit::from(if e.use_stderr() {
                ExitCode::BadInput as u8
            } else {
                0
            });
        }
    };
    init_logging();
    let code = match cli.command {
        Command::Run(args) => run(*args, matches.subcommand_matches("run")),
        Command::Serve(args) => serve(args),
        Command::Doctor(args) => block_on(async { Ok(sandcrab::doctor::doctor(args).await) })
            .unwrap_or_else(|e| fail(&e)),
        Command::Report { path, out } => report(&path, out.as_deref()),
        Command::Forward { pairs } => forward(&pairs),
    };
    ProcessExit::from(code as u8)
}

/// `sandcrab run`: on GitHub Actions the CI flow, elsewhere the plain run. `matches` tell
/// which flags were given (action inputs only fill the others). Signals are watched before
/// anything else happens, so a cancel at any moment removes what the run created.
fn run(mut args: RunArgs, matches: Option<&clap::ArgMatches>) -> ExitCode {
    let empty = clap::ArgMatches::default();
    let matches = matches.unwrap_or(&empty);
    let work = async move {
        sandcrab::cancel::watch_signals(sandcrab::workspace::release::cleanup_all)
            .context("cannot watch SIGINT/SIGTERM")?;
        sandcrab::cancel::hold_at(config::test_hold_at());
        let ci = CiConfig::resolve(&mut args, matches)?;
        sandcrab::ci::run(args, ci).await
    };
    block_on(work).unwrap_or_else(|e| fail(&e))
}

fn serve(args: ServeArgs) -> ExitCode {
    match args.into_config() {
        Ok(config) => match block_on(sandcrab::server::serve(config)) {
            Ok(()) => ExitCode::Finished,
            Err(e) => fail(&e),
        },
        Err(e) => fail(&anyhow::Error::new(e)),
    }
}

fn report(path: &std::path::Path, out: Option<&std::path::Path>) -> ExitCode {
    match sandcrab::report::html::load::report_command(path, out) {
        Ok(written) => {
            println!("{}", written.display());
            ExitCode::Finished
        }
        Err(e) => fail(&e),
    }
}

fn forward(pairs: &[String]) -> ExitCode {
    use sandcrab::workspace::docker::forward;
    let parsed: anyhow::Result<Vec<_>> = pairs.iter().map(|p| forward::Forward::parse(p)).collect();
    match parsed.and_then(|f| block_on(forward::run(f))) {
        Ok(()) => ExitCode::Finished,
        Err(e) => fail(&e),
    }
}

/// Runs `future` on a new multi-threaded runtime.
fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| anyhow::Error::new(e).context("cannot start the async runtime"))?;
    runtime.block_on(future)
}

/// Prints one line — what failed and why — and returns the exit code for it (130 for a run
/// stopped during its setup).
fn fail(error: &anyhow::Error) -> ExitCode {
    if let Some(stopped) = error.downcast_ref::<sandcrab::error::Interrupted>() {
        eprintln!("sandcrab: {stopped}");
        return ExitCode::Interrupted;
    }
    eprintln!("sandcrab: error: {error:#}");
    ExitCode::BadInput
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_new(config::log_filter())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
