//! `ccmanagerd`: parse flags, load the config, set up logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use ccmanagerd::reload::Options;

/// A daemon that owns the tmux servers (one per session uid) and the long-lived terminal sessions in them.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Config file (default: /etc/ccmanagerd/config.toml when it exists, else built-in defaults).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Control socket path (overrides daemon.socket).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Directory of the tmux servers, one per session uid (overrides tmux.socket_dir).
    #[arg(long, value_name = "DIR")]
    tmux_dir: Option<PathBuf>,
    /// Log level or filter (overrides daemon.log_level; RUST_LOG syntax).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Validate the config and exit 0 (valid) or 1 (invalid).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let mut raw = std::env::args_os().skip(1);
    if raw.next().as_deref() == Some(std::ffi::OsStr::new(ccmanagerd::limits::wrapper::MODE)) {
        ccmanagerd::limits::wrapper::main(raw.collect());
    }
    let args = Args::parse();
    let mut options = Options {
        config_path: args.config.clone(),
        socket: args.socket.clone(),
        tmux_dir: args.tmux_dir.clone(),
        log: None,
    };
    let config = match options.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ccmanagerd: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        match options.effective_config_path() {
            Some(p) => println!("{}: ok", p.display()),
            None => println!("no config file; the built-in defaults are valid"),
        }
        return ExitCode::SUCCESS;
    }
    // Before any thread exists: take the activation socket and clear LISTEN_*.
    let activated = match ccmanagerd::systemd::take_listen_fd() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("ccmanagerd: bad socket activation environment: {e}");
            return ExitCode::FAILURE;
        }
    };
    options.log = Some(ccmanagerd::logging::init(
        config.daemon.log_level.as_str(),
        args.log_level.as_deref(),
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let socket_path = config.socket_path();
        let listener = match activated {
            Some(fd) => ccmanagerd::server::socket::from_activation(fd, &socket_path)?,
            None => ccmanagerd::server::socket::bind(
                &socket_path,
                config.daemon.socket_mode,
                &config.daemon.socket_group,
            )
            .with_context(|| format!("cannot serve on {}", socket_path.display()))?,
        };
        ccmanagerd::app::start_and_run(config, options, listener).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
