//! `ccmanagerd`: parse flags, load the config, set up logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use ccmanagerd::reload::Options;

/// Exit status for an unusable config (sysexits.h `EX_CONFIG`). The unit
/// names it in `RestartPreventExitStatus=`: restarting cannot fix a config,
/// so the service ends `failed` at once instead of restarting in a loop.
const EX_CONFIG: u8 = 78;

/// At most this many waiting clients are answered before exiting (the
/// socket unit's `Backlog=`).
const MAX_ANSWERED: usize = 1024;

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
    match raw.next().as_deref().and_then(std::ffi::OsStr::to_str) {
        Some(ccmanagerd::limits::wrapper::MODE) => ccmanagerd::limits::wrapper::main(raw.collect()),
        Some(ccmanagerd::logs::args::MODE) => ccmanagerd::logs::logger::main(raw.collect()),
        _ => {}
    }
    let args = Args::parse();
    let mut options = Options {
        config_path: args.config.clone(),
        socket: args.socket.clone(),
        tmux_dir: args.tmux_dir.clone(),
        log: None,
    };
    // Before any thread exists: take the activation socket and clear LISTEN_*.
    let activated = match ccmanagerd::systemd::take_listen_fd() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("ccmanagerd: bad socket activation environment: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A bad --log-level is a bad config value: the same exit codes.
    if let Some(Err(e)) = args.log_level.as_deref().map(ccmanagerd::logging::check_filter) {
        eprintln!("ccmanagerd: invalid --log-level: {e}");
        if args.check_config {
            return ExitCode::FAILURE;
        }
        if let Some(listener) = activated {
            answer_waiting_clients(listener);
        }
        return ExitCode::from(EX_CONFIG);
    }
    let config = match options.load_config() {
        Ok(c) => c,
        Err(e) if args.check_config => {
            eprintln!("ccmanagerd: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            // stderr is the journal under systemd: `systemctl status` shows it.
            eprintln!("ccmanagerd: invalid configuration: {e}");
            ccmanagerd::systemd::status(&format!("invalid configuration: {e}"));
            if let Some(listener) = activated {
                answer_waiting_clients(listener);
            }
            return ExitCode::from(EX_CONFIG);
        }
    };
    if args.check_config {
        match options.effective_config_path() {
            Some(p) => println!("{}: ok", p.display()),
            None => println!("no config file; the built-in defaults are valid"),
        }
        return ExitCode::SUCCESS;
    }
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

/// Under socket activation, the clients whose connections started this
/// daemon wait in the listening socket's backlog. Tell them it cannot start,
/// rather than leave them hanging until their timeout (and, still queued,
/// trigger one start after another). The reason itself goes to the journal
/// only: not everyone who may connect may read the config.
fn answer_waiting_clients(listener: std::os::fd::OwnedFd) {
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    use ccmanagerd::protocol::envelope::{failure, ErrorKind, RpcError};

    let listener = UnixListener::from(listener);
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let error = RpcError::app(
        ErrorKind::InvalidConfig,
        "ccmanagerd cannot start: its configuration is invalid (the reason: `systemctl status ccmanagerd` or `journalctl -u ccmanagerd`)",
    );
    let line = failure(&serde_json::Value::Null, &error) + "\n";
    for _ in 0..MAX_ANSWERED {
        let Ok((mut client, _)) = listener.accept() else { break };
        // A small write to a new connection never blocks; never wait on one.
        let _ = client.set_nonblocking(true);
        let _ = client.write_all(line.as_bytes());
    }
}
