//! `ccmanagerctl`: the operators' command-line client. Human output by
//! default, `--json` for scripts. Exit codes: 0 success, 1 error reply,
//! 2 cannot connect. With `--json`, an error reply is also printed on stdout
//! as `{"error": {code, message, data}}`, so scripts can match `data.kind`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use ccmanagerd::client::{Client, ClientError};
use ccmanagerd::config::Config;
use ccmanagerd::protocol::types::{CleanupReport, Health, Session, Status};
use ccmanagerd::protocol::RpcError;

/// How long one request may take before the CLI gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Control ccmanagerd, the tmux session manager daemon.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, env = "CCMANAGERD_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the raw JSON result instead of a human summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Daemon version, uptime, tmux server and session counts.
    Status,
    /// Check that the daemon answers.
    Ping,
    /// Re-read the config file (same as `systemctl reload ccmanagerd`).
    Reload,
    /// Health checks.
    Health,
    /// Prometheus metrics text.
    Metrics,
    /// List sessions.
    Ls {
        /// Only sessions in this state (running, exited, lost).
        #[arg(long)]
        state: Option<String>,
    },
    /// Create a session running CMD (an argv, never a shell string).
    New {
        /// A label.
        #[arg(long)]
        name: Option<String>,
        /// Working directory (absolute).
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Environment variable, K=V (repeatable).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Size as COLSxROWS, e.g. 120x40.
        #[arg(long, value_name = "COLSxROWS")]
        size: Option<String>,
        /// Exempt from cleanup.
        #[arg(long)]
        keep: bool,
        /// A limit, NAME=VALUE (e.g. nofile=1024, memory_max=2G; repeatable).
        #[arg(long = "limit", value_name = "NAME=VALUE")]
        limits: Vec<String>,
        /// The program and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        argv: Vec<String>,
    },
    /// Show one session.
    Show {
        /// Session id.
        id: String,
    },
    /// Kill sessions (the whole process tree of each).
    Kill {
        /// Session ids.
        ids: Vec<String>,
        /// Kill every session you can see.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Do not ask for confirmation with --all.
        #[arg(long, short)]
        yes: bool,
    },
    /// Type text into a session.
    Send {
        /// Session id.
        id: String,
        /// Literal text.
        text: Option<String>,
        /// Named keys sent after the text (e.g. C-c, Up; repeatable).
        #[arg(long = "key", value_name = "KEY")]
        keys: Vec<String>,
        /// Press Enter at the end.
        #[arg(long)]
        enter: bool,
    },
    /// Print a session's screen (and scrollback with --lines).
    Capture {
        /// Session id.
        id: String,
        /// Scrollback lines above the visible screen.
        #[arg(long, default_value_t = 0)]
        lines: u32,
        /// Keep colour escape sequences.
        #[arg(long)]
        escapes: bool,
    },
    /// Resize a session's pane, e.g. `resize ID 120x40`.
    Resize {
        /// Session id.
        id: String,
        /// COLSxROWS.
        size: String,
    },
    /// Attach this terminal to a session (detach with the tmux prefix, C-b d).
    Attach {
        /// Session id.
        id: String,
    },
    /// Remove old, idle and dead sessions now.
    Cleanup {
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send a raw JSON-RPC request and print the result.
    Call {
        /// Method name, e.g. daemon.status.
        method: String,
        /// Params as JSON (an object), e.g. '{"id":"abc"}'.
        params: Option<String>,
    },
}

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
    /// The daemon's error object, when the failure is an error reply.
    rpc: Option<RpcError>,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Connect { path, source } => Failure {
                code: 2,
                message: format!(
                    "cannot connect to ccmanagerd at {}: {source}\nhint: is the daemon running? try `systemctl start ccmanagerd`, or point --socket / CCMANAGERD_SOCKET at it",
                    path.display()
                ),
                rpc: None,
            },
            ClientError::Rpc(e) => Failure { code: 1, message: e.message.clone(), rpc: Some(e) },
            other => Failure { code: 1, message: other.to_string(), rpc: None },
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure { code: 1, message: message.into(), rpc: None }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_out = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if let Some(e) = f.rpc.as_ref().filter(|_| json_out) {
                println!("{}", json!({"error": e}));
            }
            eprintln!("ccmanagerctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let socket = cli.socket.clone().unwrap_or_else(|| Config::default().socket_path());
    let mut client = Client::connect(&socket, Some(REQUEST_TIMEOUT))?;
    let json_out = cli.json;
    let mut call = |method: &str, params: Value| -> Result<Value, Failure> {
        Ok(client.call(method, params)?)
    };
    let print_json =
        |v: &Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    match cli.command {
        Command::Ping => {
            let v = call("daemon.ping", json!({}))?;
            if json_out {
                print_json(&v)
            } else {
                println!("{}", v.as_str().unwrap_or("?"))
            }
        }
        Command::Status => {
            let v = call("daemon.status", json!({}))?;
            if json_out {
                print_json(&v)
            } else {
                print_status(&decode(v)?)
            }
        }
        Command::Reload => {
            let v = call("daemon.reload", json!({}))?;
            if json_out {
                print_json(&v)
            } else {
                println!("reloaded");
                for key in v["needs_restart"].as_array().into_iter().flatten() {
                    println!("needs a restart to take effect: {}", key.as_str().unwrap_or("?"));
                }
            }
        }
        Command::Health => {
            let v = call("health.check", json!({}))?;
            if json_out {
                print_json(&v)
            } else {
                print_health(&decode(v)?)
            }
        }
        Command::Metrics => {
            let v = call("daemon.metrics", json!({}))?;
            if json_out {
                print_json(&v)
            } else {
                print!("{}", v["text"].as_str().unwrap_or(""))
            }
        }
        Command::Ls { state } => {
            let params = match state {
                Some(s) => json!({"state": s}),
                None => json!({}),
            };
            let v = call("session.list", params)?;
            if json_out {
                print_json(&v)
            } else {
                let sessions: Vec<Session> = decode(v["sessions"].clone())?;
                print_table(&sessions);
            }
        }
        Command::New { name, cwd, env, size, keep, limits, argv } => {
            let mut params = json!({"command": argv});
            if let Some(n) = name {
                params["name"] = json!(n)
            }
            if let Some(c) = cwd {
                params["cwd"] = json!(c)
            }
            if keep {
                params["keep"] = json!(true)
            }
            if !env.is_empty() {
                let mut map = serde_json::Map::new();
                for kv in env {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| usage(format!("--env {kv:?}: expected K=V")))?;
                    map.insert(k.to_string(), json!(v));
                }
                params["env"] = Value::Object(map);
            }
            if let Some(s) = size {
                let (cols, rows) = parse_size(&s)?;
                params["cols"] = json!(cols);
                params["rows"] = json!(rows);
            }
            if !limits.is_empty() {
                let mut map = serde_json::Map::new();
                for kv in limits {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| usage(format!("--limit {kv:?}: expected NAME=VALUE")))?;
                    let value = v.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(v));
                    map.insert(k.to_string(), value);
                }
                params["limits"] = Value::Object(map);
            }
            let v = call("session.create", params)?;
            if json_out {
                print_json(&v)
            } else {
                println!("{}", v["id"].as_str().unwrap_or("?"))
            }
        }
        Command::Show { id } => {
            let v = call("session.get", json!({"id": id}))?;
            if json_out {
                print_json(&v)
            } else {
                print_session(&decode(v)?)
            }
        }
        Command::Kill { ids, all, yes } => {
            let ids = if all {
                let v = call("session.list", json!({}))?;
                let sessions: Vec<Session> = decode(v["sessions"].clone())?;
                if sessions.is_empty() {
                    println!("no sessions");
                    return Ok(());
                }
                if !yes && !confirm(&format!("kill all {} sessions?", sessions.len()))? {
                    return Err(usage(
                        "not confirmed; nothing killed (use --yes to skip the question)",
                    ));
                }
                sessions.into_iter().map(|s| s.id).collect()
            } else if ids.is_empty() {
                return Err(usage("name the sessions to kill, or use --all"));
            } else {
                ids
            };
            let mut failed = None;
            for id in ids {
                match call("session.kill", json!({"id": id})) {
                    Ok(v) if json_out => print_json(&v),
                    Ok(_) => println!("killed {id}"),
                    Err(f) => {
                        eprintln!("ccmanagerctl: {id}: {}", f.message);
                        failed = Some(f.code);
                    }
                }
            }
            if let Some(code) = failed {
                return Err(Failure {
                    code,
                    message: "some sessions were not killed".into(),
                    rpc: None,
                });
            }
        }
        Command::Send { id, text, keys, enter } => {
            let mut params = json!({"id": id, "enter": enter});
            if let Some(t) = text {
                params["text"] = json!(t)
            }
            if !keys.is_empty() {
                params["keys"] = json!(keys)
            }
            let v = call("session.send", params)?;
            if json_out {
                print_json(&v)
            }
        }
        Command::Capture { id, lines, escapes } => {
            let v = call("session.capture", json!({"id": id, "lines": lines, "escapes": escapes}))?;
            if json_out {
                print_json(&v)
            } else {
                print!("{}", v["text"].as_str().unwrap_or(""))
            }
        }
        Command::Resize { id, size } => {
            let (cols, rows) = parse_size(&size)?;
            let v = call("session.resize", json!({"id": id, "cols": cols, "rows": rows}))?;
            if json_out {
                print_json(&v)
            }
        }
        Command::Attach { id } => {
            let v = call("session.attach", json!({"id": id}))?;
            let argv: Vec<String> = decode(v["argv"].clone())?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| usage("the daemon sent an empty attach command"))?;
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new(program).args(args).exec();
            return Err(usage(format!("cannot run {program}: {err}")));
        }
        Command::Cleanup { dry_run } => {
            let v = call("cleanup.run", json!({"dry_run": dry_run}))?;
            if json_out {
                print_json(&v)
            } else {
                let report: CleanupReport = decode(v)?;
                let verb = if dry_run { "would remove" } else { "removed" };
                if report.removed.is_empty() {
                    println!("nothing to remove");
                }
                for r in report.removed {
                    println!("{verb} {} ({})", r.id, r.reason);
                }
            }
        }
        Command::Call { method, params } => {
            let params = match params {
                Some(p) => serde_json::from_str(&p)
                    .map_err(|e| usage(format!("params are not valid JSON: {e}")))?,
                None => json!({}),
            };
            print_json(&call(&method, params)?);
        }
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Failure> {
    serde_json::from_value(v).map_err(|e| usage(format!("unexpected reply from the daemon: {e}")))
}

fn parse_size(s: &str) -> Result<(u16, u16), Failure> {
    let bad = || usage(format!("size {s:?}: expected COLSxROWS, e.g. 120x40"));
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((c.parse().map_err(|_| bad())?, r.parse().map_err(|_| bad())?))
}

fn confirm(question: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| usage(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// "3d 4h" style age from an RFC 3339 time until now.
fn age(rfc3339: Option<&str>) -> String {
    let Some(t) = rfc3339.and_then(|s| humantime::parse_rfc3339(s).ok()) else { return "-".into() };
    let secs = SystemTime::now().duration_since(t).unwrap_or_default().as_secs();
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

fn print_status(s: &Status) {
    println!("ccmanagerd {} (pid {}), up {}s, health {}", s.version, s.pid, s.uptime_s, s.health);
    if let Some(sock) = &s.socket {
        println!("socket:   {}", sock.display());
    }
    match (s.tmux.pid, &s.tmux.socket) {
        (Some(pid), Some(sock)) => println!(
            "tmux:     pid {pid}, {}, {}",
            sock.display(),
            if s.tmux.alive { "alive" } else { "not answering" }
        ),
        _ => println!("tmux:     not running"),
    }
    let c = &s.sessions;
    println!(
        "sessions: {} total, {} running, {} exited, {} lost",
        c.total, c.running, c.exited, c.lost
    );
}

fn print_health(h: &Health) {
    println!("health: {}", h.status);
    for c in &h.checks {
        println!("  {:<8} {:<16} {}", c.status, c.name, c.detail);
    }
}

fn print_table(sessions: &[Session]) {
    println!("{:<10} {:<16} {:<8} {:>7} {:>7}  COMMAND", "ID", "NAME", "STATE", "AGE", "IDLE");
    for s in sessions {
        let state = match (s.state.as_str(), s.exit_status) {
            ("exited", Some(code)) => format!("exit:{code}"),
            (st, _) => st.to_string(),
        };
        println!(
            "{:<10} {:<16} {:<8} {:>7} {:>7}  {}",
            s.id,
            s.name.as_deref().unwrap_or("-"),
            state,
            age(Some(&s.created_at)),
            age(s.last_activity_at.as_deref()),
            s.command.join(" ")
        );
    }
}

fn print_session(s: &Session) {
    println!("id:            {}", s.id);
    println!("name:          {}", s.name.as_deref().unwrap_or("-"));
    println!("tmux session:  {}", s.tmux_session);
    println!("command:       {}", serde_json::to_string(&s.command).unwrap_or_default());
    println!(
        "cwd:           {}",
        s.cwd.as_ref().map(|p| p.display().to_string()).unwrap_or("-".into())
    );
    println!("state:         {}", s.state.as_str());
    if let Some(code) = s.exit_status {
        println!("exit status:   {code}");
    }
    println!("pid:           {}", s.pid.map(|p| p.to_string()).unwrap_or("-".into()));
    println!("created:       {} ({} ago)", s.created_at, age(Some(&s.created_at)));
    println!("last activity: {}", s.last_activity_at.as_deref().unwrap_or("-"));
    println!("owner uid:     {}", s.owner_uid);
    println!("keep:          {}", s.keep);
    println!("limits:        {}", serde_json::to_string(&s.limits).unwrap_or_default());
}
