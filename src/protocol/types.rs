//! Result types on the wire: the Session object, daemon status, health and
//! cleanup reports. Fields may be added; none may be renamed or dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// The prefix of every tmux session the daemon owns.
pub const SESSION_PREFIX: &str = "ccmanager_sess_";
/// Longest session id.
pub const MAX_ID_LEN: usize = 32;

/// Whether `id` matches `[a-z0-9]{1,32}`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Lifecycle state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Its program runs.
    Running,
    /// Its program ended; `exit_status` says how. Output stays readable.
    Exited,
    /// Its tmux session vanished (e.g. the tmux server died).
    Lost,
}

impl SessionState {
    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Running => "running",
            SessionState::Exited => "exited",
            SessionState::Lost => "lost",
        }
    }
}

/// Whether a session is re-created once its tmux session is gone with its
/// server (`session.create {restore}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestorePolicy {
    /// Never: it stays `lost` (its log readable) until cleanup.
    #[default]
    Never,
    /// After the host rebooted (the kernel's boot id changed).
    OnBoot,
    /// After a reboot, and whenever its tmux server died.
    Always,
}

/// Whether a session's program is run again when it exits
/// (`session.create {restart}`), like systemd's `Restart=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// Never: an agent that exits has usually finished.
    #[default]
    Never,
    /// When it exits with a non-zero status or is killed by a signal.
    OnFailure,
    /// Whenever it exits.
    Always,
}

/// Why a session's program was last started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestartReason {
    /// Restored after the host rebooted (`restore: on_boot|always`).
    Reboot,
    /// Restored after its tmux server died (`restore: always`).
    ServerDied,
    /// Its program exited and its `restart` policy ran it again.
    Exited,
    /// `session.restart`.
    Requested,
}

impl RestartReason {
    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Reboot => "reboot",
            RestartReason::ServerDied => "server_died",
            RestartReason::Exited => "exited",
            RestartReason::Requested => "requested",
        }
    }
}

/// A session as the protocol shows it.
///
/// ```json
/// {"id": "a1b2c3", "name": "my-label", "tmux_session": "ccmanager_sess_a1b2c3",
///  "command": ["claude"], "cwd": "/srv/work", "state": "running",
///  "exit_status": null, "pid": 4242, "created_at": "2026-11-20T10:00:00Z",
///  "last_activity_at": "2026-11-20T10:05:00Z", "owner_uid": 1000,
///  "limits": {"nofile": 4096}, "keep": false, "cols": 80, "rows": 24}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    /// `[a-z0-9]{1,32}`.
    pub id: String,
    /// The optional label given at create.
    pub name: Option<String>,
    /// Always `ccmanager_sess_<id>`.
    pub tmux_session: String,
    /// The argv the session runs.
    pub command: Vec<String>,
    /// Working directory of the program.
    pub cwd: Option<PathBuf>,
    /// Lifecycle state.
    pub state: SessionState,
    /// Exit status once `exited` (128+N for a signal N).
    pub exit_status: Option<i32>,
    /// PID of the session's program (the pane's process).
    pub pid: Option<u32>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC: the last output or input tmux saw.
    pub last_activity_at: Option<String>,
    /// When it exited or was found lost (RFC 3339 UTC).
    #[serde(default)]
    pub ended_at: Option<String>,
    /// uid of the peer that created it.
    pub owner_uid: u32,
    /// uid the program runs as (its tmux server's uid).
    #[serde(default)]
    pub uid: u32,
    /// Login name of `uid` ("" when it has no passwd entry).
    #[serde(default)]
    pub user: String,
    /// Found in its owner's tmux server without having been created by the
    /// daemon (planted by a program, or from a lost state file): it belongs
    /// to the server's uid and its metadata is only what tmux claimed.
    #[serde(default)]
    pub adopted: bool,
    /// The limits applied (defaults merged with the request).
    pub limits: Limits,
    /// Exempt from cleanup.
    #[serde(default)]
    pub keep: bool,
    /// Pane width.
    #[serde(default)]
    pub cols: Option<u16>,
    /// Pane height.
    #[serde(default)]
    pub rows: Option<u16>,
    /// Extra environment given at create (names and values).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether it is re-created after a reboot or its server's death.
    #[serde(default)]
    pub restore: RestorePolicy,
    /// What a restore (and `session.restart {resume: true}`) runs instead
    /// of `command`, e.g. `["claude", "--continue"]`.
    #[serde(default)]
    pub resume_command: Option<Vec<String>>,
    /// Whether its program is run again when it exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How many times its program was started again (restores, restarts by
    /// policy and by `session.restart`).
    #[serde(default)]
    pub restarts: u32,
    /// When its program was last started again (RFC 3339 UTC).
    #[serde(default)]
    pub restarted_at: Option<String>,
    /// When it was last restored after a reboot or its server's death.
    #[serde(default)]
    pub restored_at: Option<String>,
    /// Why its program was last started again.
    #[serde(default)]
    pub restart_reason: Option<RestartReason>,
    /// Why it stays `exited` or `lost` although its policy would bring it
    /// back (the restart limit was hit; a restore failed), in words.
    #[serde(default)]
    pub state_reason: Option<String>,
}

/// A field of [`Session`], as `session.list {"fields": [...]}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SessionField {
    Id,
    Name,
    TmuxSession,
    Command,
    Cwd,
    State,
    ExitStatus,
    Pid,
    CreatedAt,
    LastActivityAt,
    EndedAt,
    OwnerUid,
    Uid,
    User,
    Adopted,
    Limits,
    Keep,
    Cols,
    Rows,
    Env,
    Restore,
    ResumeCommand,
    Restart,
    Restarts,
    RestartedAt,
    RestoredAt,
    RestartReason,
    StateReason,
}

impl SessionField {
    /// Every field, in the order a full [`Session`] serialises them.
    pub const ALL: [SessionField; 28] = [
        SessionField::Id,
        SessionField::Name,
        SessionField::TmuxSession,
        SessionField::Command,
        SessionField::Cwd,
        SessionField::State,
        SessionField::ExitStatus,
        SessionField::Pid,
        SessionField::CreatedAt,
        SessionField::LastActivityAt,
        SessionField::EndedAt,
        SessionField::OwnerUid,
        SessionField::Uid,
        SessionField::User,
        SessionField::Adopted,
        SessionField::Limits,
        SessionField::Keep,
        SessionField::Cols,
        SessionField::Rows,
        SessionField::Env,
        SessionField::Restore,
        SessionField::ResumeCommand,
        SessionField::Restart,
        SessionField::Restarts,
        SessionField::RestartedAt,
        SessionField::RestoredAt,
        SessionField::RestartReason,
        SessionField::StateReason,
    ];
}

/// A [`Session`] with only some of its fields, serialised without building
/// the whole object (a dashboard polling 1000 sessions for their state
/// should not pay for their commands, limits and environments).
pub struct Projected<'a> {
    /// The session.
    pub session: &'a Session,
    /// The fields to write, in this order (a repeated field is written once).
    pub fields: &'a [SessionField],
}

impl Serialize for Projected<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = self.session;
        let mut map = serializer.serialize_map(None)?;
        for (i, field) in self.fields.iter().enumerate() {
            if self.fields[..i].contains(field) {
                continue;
            }
            match field {
                SessionField::Id => map.serialize_entry("id", &s.id)?,
                SessionField::Name => map.serialize_entry("name", &s.name)?,
                SessionField::TmuxSession => {
                    map.serialize_entry("tmux_session", &s.tmux_session)?
                }
                SessionField::Command => map.serialize_entry("command", &s.command)?,
                SessionField::Cwd => map.serialize_entry("cwd", &s.cwd)?,
                SessionField::State => map.serialize_entry("state", &s.state)?,
                SessionField::ExitStatus => map.serialize_entry("exit_status", &s.exit_status)?,
                SessionField::Pid => map.serialize_entry("pid", &s.pid)?,
                SessionField::CreatedAt => map.serialize_entry("created_at", &s.created_at)?,
                SessionField::LastActivityAt => {
                    map.serialize_entry("last_activity_at", &s.last_activity_at)?
                }
                SessionField::EndedAt => map.serialize_entry("ended_at", &s.ended_at)?,
                SessionField::OwnerUid => map.serialize_entry("owner_uid", &s.owner_uid)?,
                SessionField::Uid => map.serialize_entry("uid", &s.uid)?,
                SessionField::User => map.serialize_entry("user", &s.user)?,
                SessionField::Adopted => map.serialize_entry("adopted", &s.adopted)?,
                SessionField::Limits => map.serialize_entry("limits", &s.limits)?,
                SessionField::Keep => map.serialize_entry("keep", &s.keep)?,
                SessionField::Cols => map.serialize_entry("cols", &s.cols)?,
                SessionField::Rows => map.serialize_entry("rows", &s.rows)?,
                SessionField::Env => map.serialize_entry("env", &s.env)?,
                SessionField::Restore => map.serialize_entry("restore", &s.restore)?,
                SessionField::ResumeCommand => {
                    map.serialize_entry("resume_command", &s.resume_command)?
                }
                SessionField::Restart => map.serialize_entry("restart", &s.restart)?,
                SessionField::Restarts => map.serialize_entry("restarts", &s.restarts)?,
                SessionField::RestartedAt => {
                    map.serialize_entry("restarted_at", &s.restarted_at)?
                }
                SessionField::RestoredAt => map.serialize_entry("restored_at", &s.restored_at)?,
                SessionField::RestartReason => {
                    map.serialize_entry("restart_reason", &s.restart_reason)?
                }
                SessionField::StateReason => {
                    map.serialize_entry("state_reason", &s.state_reason)?
                }
            }
        }
        map.end()
    }
}

/// `daemon.status` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    /// Crate version.
    pub version: String,
    /// Daemon pid.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_s: u64,
    /// The tmux server.
    pub tmux: TmuxStatus,
    /// Session counts.
    pub sessions: SessionCounts,
    /// `ok`, `degraded` or `failing`.
    pub health: String,
    /// The control socket the daemon serves.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

/// The tmux part of [`Status`]: one server per session uid.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct TmuxStatus {
    /// Whether every server that holds live sessions answers.
    pub alive: bool,
    /// tmux version string (of the binary).
    #[serde(default)]
    pub version: Option<String>,
    /// The servers, by uid.
    #[serde(default)]
    pub servers: Vec<ServerStatus>,
}

/// One tmux server in [`TmuxStatus`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ServerStatus {
    /// The uid it runs as (and every session in it).
    pub uid: u32,
    /// Login name of `uid`.
    pub user: String,
    /// Server pid while it runs.
    pub pid: Option<u32>,
    /// Its socket.
    pub socket: PathBuf,
    /// Whether its control connection is up.
    pub alive: bool,
    /// Sessions in it the daemon knows (any state).
    pub sessions: usize,
    /// Its systemd unit, when it runs in one.
    #[serde(default)]
    pub unit: Option<String>,
    /// Its tmux version, while it runs.
    #[serde(default)]
    pub version: Option<String>,
    /// Why the last attempt to start it failed, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ServerStatus {
    /// Needed (it holds live sessions, or its last start failed) but not
    /// connected.
    pub fn is_down(&self) -> bool {
        !self.alive && (self.sessions > 0 || self.error.is_some())
    }
}

/// Session counts by state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SessionCounts {
    /// All sessions the daemon knows.
    pub total: usize,
    /// Running.
    pub running: usize,
    /// Exited.
    pub exited: usize,
    /// Lost.
    #[serde(default)]
    pub lost: usize,
}

/// `daemon.reload` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReloadResult {
    /// Always true on success (an invalid config is an error reply).
    pub reloaded: bool,
    /// Settings applied live.
    pub applied: Vec<String>,
    /// Settings that changed but take effect only after a restart.
    pub needs_restart: Vec<String>,
}

/// One `health.check` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// Short stable name, e.g. `tmux_server`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// `ok`, `degraded` or `failing` for this check.
    pub status: String,
    /// Extra figures (latency and so on).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `health.check` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// The worst of the checks.
    pub status: String,
    /// Every check.
    pub checks: Vec<Check>,
}

/// One removal of `cleanup.run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Removal {
    /// Session id.
    pub id: String,
    /// `max_age`, `idle` or `exited` (lost sessions also go as `exited`).
    pub reason: String,
}

/// `cleanup.run` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CleanupReport {
    /// What was (or, in a dry run, would be) removed.
    pub removed: Vec<Removal>,
    /// Whether this was a dry run.
    #[serde(default)]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Session {
        serde_json::from_value(serde_json::json!({
            "id": "a1", "name": "n", "tmux_session": "ccmanager_sess_a1",
            "command": ["cat"], "cwd": "/tmp", "state": "exited", "exit_status": 3,
            "pid": 7, "created_at": "2026-11-20T10:00:00Z",
            "last_activity_at": "2026-11-20T10:05:00Z", "ended_at": "2026-11-20T10:06:00Z",
            "owner_uid": 1000, "uid": 1001, "user": "alice", "adopted": true, "limits": {"nofile": 64}, "keep": true, "cols": 100,
            "rows": 30, "env": {"A": "b"}, "restore": "on_boot", "resume_command": ["c", "-r"],
            "restart": "on_failure", "restarts": 2, "restarted_at": "2026-11-20T10:06:00Z",
            "restored_at": null, "restart_reason": "exited",
            "state_reason": "restart limit hit: 5 restarts within 1m"
        }))
        .unwrap()
    }

    /// Adding a field to Session without a SessionField fails here.
    #[test]
    fn every_field_projects_exactly_as_the_whole_session() {
        let s = sample();
        let whole = serde_json::to_value(&s).unwrap();
        let all =
            serde_json::to_value(Projected { session: &s, fields: &SessionField::ALL }).unwrap();
        assert_eq!(all, whole);
        assert_eq!(
            serde_json::to_string(&Projected { session: &s, fields: &SessionField::ALL }).unwrap(),
            serde_json::to_string(&s).unwrap(),
            "same order as the full object"
        );
        for f in SessionField::ALL {
            let name = serde_json::to_value(f).unwrap();
            let one = serde_json::to_value(Projected { session: &s, fields: &[f, f] }).unwrap();
            let obj = one.as_object().unwrap();
            assert_eq!(obj.len(), 1, "{name}");
            let key = name.as_str().unwrap();
            assert_eq!(obj[key], whole[key], "{key}");
        }
    }
}
