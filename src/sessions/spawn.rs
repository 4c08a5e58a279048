//! Starting a session's program in its owner's server: `new-session` with
//! the exec-wrapper (`ccmanagerd __exec`) as the pane's command, the
//! metadata copy, the cgroup scope, and the wrapper's report through a
//! status FIFO, so that a missing program or a cwd the owner cannot enter
//! fails the create with the reason, and leaves nothing behind.
//!
//! What reaches tmux, and why each is safe: the session name is ours
//! (`ccmanager_sess_<id>`, tmux format-expands `-s`); the size is numbers;
//! the request's environment goes through `-e` (not expanded, checked by
//! hand on 3.3a) under a `CCMANAGERD_ENV_` prefix that only the wrapper
//! strips right before its exec; the argv goes after the wrapper's `--` as
//! separate arguments (tmux execs several arguments directly, no shell);
//! the cwd is an argument of the wrapper, never `new-session -c` (which
//! format-expands, so `#(cmd)` would run a command).

use std::path::{Path, PathBuf};

use super::record::Record;
use super::server::{Server, META_OPTION};
use crate::error::{Error, Result};
use crate::limits::spawn_status::{self, SpawnFailure, Stage, StatusPipe};
use crate::limits::Limits;
use crate::logs::args::LogArgs;
use crate::protocol::types::Session;
use crate::systemd::Bus;
use crate::tmux::Cmd;
use crate::users::Account;

/// Mode of the FIFO directory: root's, each FIFO in it its session owner's,
/// so no owner can plant or swap one for another.
const SPAWN_DIR_MODE: u32 = 0o711;

/// Starts programs in panes; see the module documentation.
pub struct Spawner {
    /// The daemon's own binary (the exec-wrapper).
    pub exe: PathBuf,
    /// Where status FIFOs are made.
    spawn_dir: PathBuf,
    /// The connection to systemd, when per-session cgroup scopes are used.
    scopes: Option<Bus>,
    /// Whether per-session cgroup scopes are used.
    pub cgroups: bool,
    /// The logger `pipe-pane` runs.
    pub logger: crate::logs::args::Program,
}

impl Spawner {
    /// A spawner whose FIFOs live in `spawn_dir` (created here).
    pub fn new(exe: PathBuf, spawn_dir: PathBuf, scopes: Option<Bus>) -> anyhow::Result<Spawner> {
        use anyhow::Context;
        let me = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let mode = if me == 0 { SPAWN_DIR_MODE } else { 0o700 };
        crate::dirs::ensure_owned(&spawn_dir, me, gid, mode)
            .with_context(|| format!("preparing {}", spawn_dir.display()))?;
        let logger = crate::logs::args::Program::beside(&exe);
        Ok(Spawner { exe, spawn_dir, cgroups: scopes.is_some(), scopes, logger })
    }

    /// The scope a session with `limits` will run in, if any (saved with
    /// its intent, before it exists).
    pub fn planned_scope(&self, id: &str, limits: &Limits) -> Option<String> {
        self.scopes
            .as_ref()
            .filter(|_| limits.has_cgroup_caps())
            .map(|_| crate::limits::cgroup::scope_name(id))
    }

    fn fifo(&self, id: &str) -> PathBuf {
        self.spawn_dir.join(format!("{id}.status"))
    }

    /// Runs `session` in `server` as `account`; the record it returns has
    /// the tmux ids, the pid and the scope.
    pub async fn spawn(
        &self,
        server: &Server,
        session: &Session,
        limits: &Limits,
        account: &Account,
        launch: &Launch<'_>,
    ) -> Result<Record> {
        let client = server.client()?;
        let tap = launch.log.and_then(|args| self.tap(session, account, args, launch.fresh_log));
        let scopes = self.scopes.as_ref().filter(|_| limits.has_cgroup_caps());
        let scope_unit =
            scopes.map(|_| crate::limits::cgroup::scope_name_of_run(&session.id, session.restarts));
        let command = launch.command.unwrap_or(&session.command);
        let fifo = self.fifo(&session.id);
        let pipe = open_status(&fifo, account)
            .map_err(|e| Error::Internal(format!("status pipe {}: {e}", fifo.display())))?;
        let mut cmd = Cmd::new("new-session")
            .flag("-d")
            .opt("-s", session.tmux_session.clone())
            .opt("-x", session.cols.unwrap_or(super::DEFAULT_COLS).to_string())
            .opt("-y", session.rows.unwrap_or(super::DEFAULT_ROWS).to_string())
            .flag("-P")
            .opt("-F", "#{session_id} #{window_id} #{pane_id} #{pane_pid}");
        for var in crate::limits::exec_args::env_args(&session.env) {
            cmd = cmd.opt("-e", var);
        }
        cmd = cmd.args(crate::limits::exec_args::wrapper_argv(
            &self.exe,
            limits,
            scope_unit.as_deref(),
            session.cwd.as_deref(),
            Some(pipe.path()),
            launch.banner.as_deref(),
            command,
        ));
        let out = match tap {
            // One line: tmux sets the pipe up before it reads the new pane.
            Some(tap) => {
                let mut replies = client
                    .run_line(&[cmd, tap])
                    .await
                    .map_err(super::server::tmux_err)?
                    .into_iter();
                let out = replies
                    .next()
                    .unwrap_or_else(|| Err(crate::tmux::TmuxError::Unavailable("no reply".into())));
                let out = out.map_err(super::server::tmux_err)?;
                if let Some(Err(e)) = replies.next() {
                    tracing::warn!(session_id = %session.id, error = %e, "cannot log the session's output (pipe-pane); adoption will try again");
                }
                out
            }
            None => client.run(&cmd).await.map_err(super::server::tmux_err)?,
        };
        let line = out.first().unwrap_or_default();
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 4 {
            return Err(Error::Internal(format!("unexpected new-session output {line:?}")));
        }
        let pid: Option<u32> = f[3].parse().ok();
        let mut record = Record::new(session.clone(), None);
        record.tmux_id = Some(f[0].to_string());
        record.window = Some(f[1].to_string());
        record.pane = Some(f[2].to_string());
        // The pane's process is the exec-wrapper; the program's pid comes on
        // the status pipe (below).
        record.pane_pid = pid;
        record.session.pid = pid;
        // The metadata copy is set only once new-session has answered. Sent
        // in the same round trip (pipelined), it made tmux lose the first
        // output of a program that exits at once (5 runs in 15 of
        // `shell_metacharacters_reach_the_program_literally`: a blank pane).
        let meta =
            serde_json::to_string(&record.stored()).map_err(|e| Error::Internal(e.to_string()))?;
        let set_meta = Cmd::new("set-option").opt("-t", f[0]).arg(META_OPTION).arg(meta);
        let started = async {
            client.run(&set_meta).await.map_err(super::server::tmux_err)?;
            if let (Some(bus), Some(unit), Some(pid)) = (scopes, &scope_unit, pid) {
                // The pid is the server's claim: never move someone else's.
                if !super::procs::owned_by(pid, account.uid) {
                    return Err(Error::SpawnFailed(format!(
                        "the tmux server of uid {} reported pane pid {pid}, which is not that user's",
                        account.uid
                    )));
                }
                crate::limits::cgroup::place(bus, unit, pid, limits)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                record.scope = Some(unit.clone());
            }
            pipe.wait(spawn_status::WAIT).await.map_err(spawn_error)
        }
        .await;
        match started {
            Ok(started) => {
                if let Some(program) = started.pid.filter(|p| is_program(*p, pid, account.uid)) {
                    record.session.pid = Some(program);
                }
                Ok(record)
            }
            Err(e) => {
                // Nothing half-made stays: the session goes, with its processes.
                let _ = client.run(&Cmd::new("kill-session").opt("-t", f[0])).await;
                if let Some(unit) = &record.scope {
                    self.stop_scope(&session.id, unit).await;
                }
                Err(e)
            }
        }
    }

    /// Makes the new session's log directory (removing an old one of that
    /// name when `fresh`; a restart continues its log) and returns the `pipe-pane` that taps its pane; on failure the
    /// session starts unlogged (with a warning) and the supervisor's next
    /// full refresh tries again.
    fn tap(
        &self,
        session: &Session,
        account: &Account,
        args: &LogArgs,
        fresh: bool,
    ) -> Option<Cmd> {
        let made = crate::logs::setup::prepare_session(&args.dir, account.uid, account.gid, fresh)
            .map_err(|e| format!("{}: {e}", args.dir.display()))
            .and_then(|()| {
                let target = format!("={}:", session.tmux_session);
                crate::logs::setup::pipe_pane(&self.logger, &target, args)
            });
        match made {
            Ok(cmd) => Some(cmd),
            Err(e) => {
                tracing::warn!(session_id = %session.id, error = %e, "cannot log the session's output; it starts without its log");
                None
            }
        }
    }

    /// Kills every process of a session's scope and stops it.
    pub async fn stop_scope(&self, id: &str, unit: &str) {
        let Some(bus) = &self.scopes else { return };
        if let Err(e) = crate::limits::cgroup::stop(bus, unit).await {
            tracing::warn!(session_id = %id, unit, error = %e, "stopping the session scope failed");
        }
    }
}

/// How [`Spawner::spawn`] starts a session's program.
#[derive(Debug, Default)]
pub struct Launch<'a> {
    /// Where the output log goes (none: unlogged).
    pub log: Option<&'a LogArgs>,
    /// A new session's log starts afresh; a restart's continues.
    pub fresh_log: bool,
    /// What runs instead of the session's `command` (a restore's
    /// `resume_command`).
    pub command: Option<&'a [String]>,
    /// The marker the exec-wrapper prints before the program starts.
    pub banner: Option<String>,
}

/// Whether `program`, which the wrapper reported (a claim of the session's
/// owner, like anything on the pipe), may be reported as the session's pid
/// (a client may signal it): a child of the pane's process `pane` running
/// as `uid`, or a pid that names no process any more (a program that exited
/// at once, already reaped; like the pid of any exited session, it is
/// history).
fn is_program(program: u32, pane: Option<u32>, uid: u32) -> bool {
    if pane.is_none() || program <= 1 {
        return false;
    }
    match super::procs::stat(program) {
        Some(p) => Some(p.ppid) == pane && super::procs::owned_by(program, uid),
        None => true,
    }
}

fn open_status(fifo: &Path, account: &Account) -> std::io::Result<StatusPipe> {
    spawn_status::create_fifo(fifo, account.uid, account.gid)?;
    StatusPipe::open(fifo)
}

/// The request is to blame for a cwd, a program or a limit the owner cannot
/// use: an invalid-params error naming the field; anything else is a spawn
/// failure.
fn spawn_error(e: SpawnFailure) -> Error {
    match &e {
        SpawnFailure::Failed { what: Stage::Cwd, detail } => {
            Error::InvalidParams(format!("cwd: cannot enter it as the session's user: {detail}"))
        }
        SpawnFailure::Failed { what: Stage::Exec, detail } => {
            Error::InvalidParams(format!("command[0]: cannot run it: {detail}"))
        }
        SpawnFailure::Failed { what: Stage::Rlimit, detail } => {
            Error::InvalidParams(format!("limits: {detail}"))
        }
        _ => Error::SpawnFailed(e.to_string()),
    }
}
