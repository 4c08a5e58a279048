//! The configuration: TOML file -> typed [`Config`], with built-in defaults,
//! validation, and errors that name the file, the line and the key.
//!
//! Every key is documented in `config.example.toml` at the repository root,
//! and that file parses to exactly [`Config::default()`] (tested below).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::{ByteSize, Limits, Rlim};
use crate::protocol::types::{RestartPolicy, RestorePolicy};

/// Where the daemon looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ccmanagerd/config.toml";
/// Smallest `tmux.max_commands_in_flight`: a capture through a paste buffer
/// (tmux < 3.6) sends three commands together.
pub const MIN_COMMANDS_IN_FLIGHT: usize = 4;
/// The socket group used when the config names none.
pub const DEFAULT_SOCKET_GROUP: &str = "ccmanager";

/// The running configuration, shared by every subsystem: cheap to clone and
/// to read (an `Arc` per read); replaced whole on reload.
#[derive(Clone, Debug)]
pub struct ConfigHandle(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Config>>>);

impl ConfigHandle {
    /// A handle on `config`.
    pub fn new(config: Config) -> ConfigHandle {
        ConfigHandle(std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(config))))
    }

    /// The current config.
    pub fn get(&self) -> std::sync::Arc<Config> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the config (reload).
    pub fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(config);
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The control socket, access control and logging.
    pub daemon: DaemonConfig,
    /// The tmux server the daemon owns.
    pub tmux: TmuxConfig,
    /// Global and per-session limits.
    pub limits: LimitsConfig,
    /// The periodic reaper.
    pub cleanup: CleanupConfig,
    /// Health checks and the watchdog.
    pub health: HealthConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// The per-session output logs.
    pub logs: LogsConfig,
    /// Live output over the control socket (`session.subscribe`).
    pub streams: StreamsConfig,
    /// Sessions that come back: restore and restart policies.
    pub sessions: SessionsConfig,
}

/// `[daemon]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Control socket path; `None`: /run/ccmanagerd/ccmanagerd.sock as root,
    /// $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock otherwise.
    pub socket: Option<PathBuf>,
    /// Permission bits of the control socket.
    pub socket_mode: FileMode,
    /// Group of the control socket; its members may connect.
    pub socket_group: String,
    /// `error`, `warn`, `info`, `debug` or `trace` (RUST_LOG and --log-level win).
    pub log_level: LogLevel,
    /// Where the session state file lives; `None`: /var/lib/ccmanagerd as root,
    /// $XDG_STATE_HOME/ccmanagerd (or ~/.local/state/ccmanagerd) otherwise.
    pub state_dir: Option<PathBuf>,
    /// Extra uids allowed to connect (root, the daemon's uid and the socket
    /// group's members always are).
    pub allowed_uids: Vec<u32>,
    /// Extra groups (names) whose members may connect.
    pub allowed_groups: Vec<String>,
    /// Members of this group (and root) see and manage every session; others
    /// only their own. Empty: root only.
    pub admin_group: String,
    /// Longest JSON-RPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most client connections served at once.
    pub max_connections: usize,
    /// Most calls in flight on one connection; a batch of N calls takes N.
    pub max_inflight_per_connection: usize,
    /// Reply bytes waiting to be written on one connection beyond which it
    /// stops reading requests until its client reads.
    pub max_pending_reply_bytes: ByteSize,
    /// A connection whose client accepts no reply byte for this long is closed.
    pub write_timeout: HumanDuration,
    /// Most text one `session.capture` returns; beyond it the reply keeps the
    /// last lines and says `truncated`.
    pub max_capture_bytes: ByteSize,
    /// Most connections one uid may hold at once, so one user cannot take
    /// every slot.
    pub max_connections_per_uid: usize,
    /// Connection slots only root and admin-group members may use: a crowd
    /// of other users can never lock the operator out.
    pub reserved_admin_connections: usize,
    /// A connection silent this long (with nothing in flight) is closed.
    pub idle_timeout: HumanDuration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: HumanDuration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: None,
            socket_mode: FileMode(0o660),
            socket_group: DEFAULT_SOCKET_GROUP.to_string(),
            log_level: LogLevel::Info,
            state_dir: None,
            allowed_uids: Vec::new(),
            allowed_groups: Vec::new(),
            admin_group: String::new(),
            max_message_bytes: 1 << 20,
            max_connections: 256,
            max_inflight_per_connection: 64,
            max_pending_reply_bytes: ByteSize(1 << 20),
            write_timeout: HumanDuration(Duration::from_secs(10)),
            max_capture_bytes: ByteSize(4 << 20),
            max_connections_per_uid: 32,
            reserved_admin_connections: 16,
            idle_timeout: HumanDuration(Duration::from_secs(300)),
            shutdown_timeout: HumanDuration(Duration::from_secs(10)),
        }
    }
}

/// How the tmux server is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LauncherKind {
    /// A transient systemd unit when systemd runs and we are root, else detached.
    Auto,
    /// A detached child in a new session (development, no systemd).
    Detached,
    /// A transient systemd unit (started over D-Bus), outside the daemon's cgroup.
    Systemd,
}

/// `[tmux]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TmuxConfig {
    /// Where the tmux servers live: the server of uid U listens on
    /// `<socket_dir>/<U>/tmux.sock`. `None`: /run/ccmanagerd-tmux as root,
    /// $XDG_RUNTIME_DIR/ccmanagerd/tmux otherwise.
    pub socket_dir: Option<PathBuf>,
    /// The tmux binary (a name looked up in PATH, or a path).
    pub binary: PathBuf,
    /// Scrollback lines kept per pane.
    pub history_limit: u32,
    /// How the servers are started: "auto", "detached" or "systemd".
    pub launcher: LauncherKind,
    /// Under systemd, the server of uid U runs as the unit `<unit_prefix>-<U>.service`.
    pub unit_prefix: String,
    /// Who a session runs as when root creates it without naming a user.
    pub session_user: String,
    /// Whether sessions may run as root (a request's `user`, or root's own
    /// sessions when `session_user` is missing is the only other way).
    pub allow_root_sessions: bool,
    /// Memory cap of each tmux server's unit (scrollback is lines, not bytes).
    pub server_memory_max: ByteSize,
    /// A server with no sessions for this long is stopped ("off": never).
    pub server_idle_stop: OptDuration,
    /// Most commands the daemon has sent to one server and not yet had
    /// answered; more wait (within their timeout).
    pub max_commands_in_flight: usize,
    /// Most bytes of `session.capture` output one server may owe the daemon
    /// (estimated from the pane size) and the daemon may hold before the
    /// reply is handed to its connection; more wait (within their timeout).
    pub max_capture_bytes_in_flight: ByteSize,
    /// Most sessions in one tmux server: a uid's sessions beyond it go to
    /// its next server (tmux's event loop walks every pane of its server on
    /// every event, so one big server makes every request slower).
    pub sessions_per_server: usize,
}

impl Default for TmuxConfig {
    fn default() -> Self {
        TmuxConfig {
            socket_dir: None,
            binary: PathBuf::from("tmux"),
            history_limit: 10_000,
            launcher: LauncherKind::Auto,
            unit_prefix: "ccmanagerd-tmux".to_string(),
            session_user: "ccmanager".to_string(),
            allow_root_sessions: false,
            server_memory_max: ByteSize(2 << 30),
            server_idle_stop: OptDuration(Some(Duration::from_secs(15 * 60))),
            max_commands_in_flight: 64,
            max_capture_bytes_in_flight: ByteSize(16 << 20),
            sessions_per_server: 250,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most sessions in total.
    pub max_sessions: usize,
    /// Most sessions per owner uid.
    pub max_sessions_per_owner: usize,
    /// Applied when a request names no limit.
    pub default: Limits,
    /// The most a request may ask for.
    pub ceiling: Limits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_sessions: 200,
            max_sessions_per_owner: 50,
            default: Limits {
                nofile: Some(Rlim::Value(4096)),
                nproc: Some(Rlim::Value(1024)),
                core: Some(Rlim::Value(0)),
                memory_max: Some(ByteSize(4 << 30)),
                tasks_max: Some(1024),
                cpu_quota: Some(crate::limits::CpuQuota(200)),
                ..Limits::default()
            },
            ceiling: Limits {
                nofile: Some(Rlim::Value(65536)),
                nproc: Some(Rlim::Value(8192)),
                memory_max: Some(ByteSize(16 << 30)),
                tasks_max: Some(8192),
                cpu_quota: Some(crate::limits::CpuQuota(800)),
                ..Limits::default()
            },
        }
    }
}

/// `[cleanup]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// How often the reaper runs (its first run is shortly after start).
    pub interval: HumanDuration,
    /// Sessions older than this are removed ("off" to disable).
    pub max_age: OptDuration,
    /// Sessions with no output and no input this long are removed ("off").
    pub max_idle: OptDuration,
    /// Exited and lost sessions are removed this long after they ended.
    pub exited_grace: OptDuration,
    /// Sessions whose label starts with this prefix are never reaped ("" = none).
    pub keep_label_prefix: String,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            interval: HumanDuration(Duration::from_secs(300)),
            max_age: OptDuration(Some(Duration::from_secs(7 * 86400))),
            max_idle: OptDuration(None),
            exited_grace: OptDuration(Some(Duration::from_secs(3600))),
            keep_label_prefix: "keep-".to_string(),
        }
    }
}

/// `[health]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often the tmux server and the daemon are checked.
    pub interval: HumanDuration,
    /// Free space (percent) on the state directory's filesystem below which
    /// health is degraded.
    pub disk_warning_free_percent: u8,
    /// ... and below which it is failing.
    pub disk_failing_free_percent: u8,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: HumanDuration(Duration::from_secs(5)),
            disk_warning_free_percent: 10,
            disk_failing_free_percent: 2,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// When set, the metrics are written to this file (atomically) every
    /// health interval, for node_exporter's textfile collector.
    pub textfile: Option<PathBuf>,
}

/// `[logs]`: every byte a session prints, on disk (docs/caps-cleanup-health.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Where the logs live, one directory per session; `None`:
    /// `<state_dir>/logs`.
    pub dir: Option<PathBuf>,
    /// Most disk one session's log takes (segments and indexes); its oldest
    /// bytes are dropped first. Enforced by the session's logger.
    pub max_bytes_per_session: ByteSize,
    /// Most disk all logs take together; the oldest sessions' oldest
    /// segments are dropped first. Enforced by the daemon every
    /// `cleanup.interval`.
    pub max_bytes_total: ByteSize,
}

/// Smallest `logs.max_bytes_per_session`: a segment is an eighth of it.
pub const MIN_LOG_BYTES_PER_SESSION: u64 = 1 << 20;

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            dir: None,
            max_bytes_per_session: ByteSize(32 << 20),
            max_bytes_total: ByteSize(2 << 30),
        }
    }
}

/// `[streams]`: live output over the control socket (docs/protocol.md,
/// "Streams").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Bytes a subscription may have sent and not had acknowledged
    /// (`session.ack`); it pauses there.
    pub window: ByteSize,
    /// Most subscriptions open on one connection.
    pub max_per_connection: usize,
    /// How often a subscription looks at its log without being woken (in
    /// case inotify is short of watches).
    pub poll_interval: HumanDuration,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            window: ByteSize(256 << 10),
            max_per_connection: 128,
            poll_interval: HumanDuration(Duration::from_secs(1)),
        }
    }
}

/// `[sessions]`: what brings a session back (docs/protocol.md, "Sessions
/// that come back").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// `restore` of a session whose create names none.
    pub restore: RestorePolicy,
    /// `restart` of a session whose create names none.
    pub restart: RestartPolicy,
    /// How long after its program exited a session is restarted by its
    /// policy.
    pub restart_delay: HumanDuration,
    /// Most automatic restarts and restores of one session within
    /// `restart_window`; past it the session stays `exited` or `lost`, with
    /// the reason in `state_reason`.
    pub restart_burst: u32,
    /// See `restart_burst`.
    pub restart_window: HumanDuration,
}

/// Most `sessions.restart_burst` (the times are kept per session).
pub const MAX_RESTART_BURST: u32 = 100;

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            restore: RestorePolicy::Never,
            restart: RestartPolicy::Never,
            restart_delay: HumanDuration(Duration::from_secs(1)),
            restart_burst: 5,
            restart_window: HumanDuration(Duration::from_secs(60)),
        }
    }
}

/// A log level name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    #[allow(missing_docs)]
    Error,
    #[allow(missing_docs)]
    Warn,
    #[allow(missing_docs)]
    Info,
    #[allow(missing_docs)]
    Debug,
    #[allow(missing_docs)]
    Trace,
}

impl LogLevel {
    /// The name as tracing's filter syntax spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// File permission bits written as an octal string, e.g. `"0660"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected an octal mode string such as \"0660\"")
        })?;
        match u32::from_str_radix(&s, 8) {
            Ok(m) if m <= 0o777 && !s.is_empty() => Ok(FileMode(m)),
            _ => Err(serde::de::Error::custom(format!(
                "invalid mode {s:?}: expected octal permission bits such as \"0660\""
            ))),
        }
    }
}

/// A duration written for humans: `"90s"`, `"30m"`, `"7d"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration string such as \"30s\""))?;
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => Ok(HumanDuration(d)),
            _ => Err(serde::de::Error::custom(format!(
                "invalid duration {s:?}: expected a positive duration such as \"90s\", \"30m\" or \"7d\""
            ))),
        }
    }
}

/// A [`HumanDuration`] that may also be `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptDuration(pub Option<Duration>);

impl Serialize for OptDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => HumanDuration(d).serialize(s),
            None => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for OptDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration string such as \"7d\", or \"off\"")
        })?;
        if s == "off" {
            return Ok(OptDuration(None));
        }
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => Ok(OptDuration(Some(d))),
            _ => Err(serde::de::Error::custom(format!(
                "invalid duration {s:?}: expected a positive duration such as \"90s\", \"30m\" or \"7d\", or \"off\""
            ))),
        }
    }
}

/// A config file that could not be used: names the file, the line and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bad TOML, an unknown key or a bad value.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when unknown).
        line: usize,
        /// The key as `section.key` (or the section when the key is unknown).
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate_span(text, span.start),
                None => (0, String::from("(file)")),
            };
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                key,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate().map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_owned(),
            line: find_key_line(text, &key),
            key,
            message,
        })?;
        Ok(config)
    }

    /// Cross-field rules that a single value's type cannot express.
    fn validate(&self) -> Result<(), (String, String)> {
        let d = &self.daemon;
        let positive = [
            ("daemon.max_message_bytes", d.max_message_bytes),
            ("daemon.max_connections", d.max_connections),
            ("daemon.max_inflight_per_connection", d.max_inflight_per_connection),
            ("daemon.max_connections_per_uid", d.max_connections_per_uid),
            ("limits.max_sessions", self.limits.max_sessions),
            ("limits.max_sessions_per_owner", self.limits.max_sessions_per_owner),
            ("tmux.history_limit", self.tmux.history_limit as usize),
            ("daemon.max_pending_reply_bytes", d.max_pending_reply_bytes.0 as usize),
            ("daemon.max_capture_bytes", d.max_capture_bytes.0 as usize),
            ("tmux.max_capture_bytes_in_flight", self.tmux.max_capture_bytes_in_flight.0 as usize),
            ("tmux.sessions_per_server", self.tmux.sessions_per_server),
            ("streams.window", self.streams.window.0 as usize),
            ("streams.max_per_connection", self.streams.max_per_connection),
            ("sessions.restart_burst", self.sessions.restart_burst as usize),
            ("sessions.restart_window", self.sessions.restart_window.0.as_millis() as usize),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((key.to_string(), "must be greater than 0".to_string()));
            }
        }
        if self.sessions.restart_burst > MAX_RESTART_BURST {
            return Err((
                "sessions.restart_burst".into(),
                format!("{} is above the most, {MAX_RESTART_BURST}", self.sessions.restart_burst),
            ));
        }
        for (key, path) in [
            ("daemon.socket", &d.socket),
            ("daemon.state_dir", &d.state_dir),
            ("tmux.socket_dir", &self.tmux.socket_dir),
            ("metrics.textfile", &self.metrics.textfile),
            ("logs.dir", &self.logs.dir),
        ] {
            if let Some(p) = path {
                if !p.is_absolute() {
                    return Err((
                        key.to_string(),
                        format!("{} is not an absolute path", p.display()),
                    ));
                }
            }
        }
        if let Err(e) = self.limits.default.check_ceiling(&self.limits.ceiling) {
            return Err((
                format!("limits.default.{}", e.field),
                format!("{} is above limits.ceiling.{} = {}", e.requested, e.field, e.ceiling),
            ));
        }
        let h = &self.health;
        if h.disk_failing_free_percent > h.disk_warning_free_percent
            || h.disk_warning_free_percent > 100
        {
            return Err((
                "health.disk_failing_free_percent".to_string(),
                "must be at most health.disk_warning_free_percent, which must be at most 100"
                    .to_string(),
            ));
        }
        if d.reserved_admin_connections >= d.max_connections {
            return Err((
                "daemon.max_connections".to_string(),
                format!(
                    "must be more than daemon.reserved_admin_connections = {}, or nobody but admins could connect",
                    d.reserved_admin_connections
                ),
            ));
        }
        if self.tmux.max_commands_in_flight < MIN_COMMANDS_IN_FLIGHT {
            return Err((
                "tmux.max_commands_in_flight".to_string(),
                format!("must be at least {MIN_COMMANDS_IN_FLIGHT} (a capture sends 3 commands at once)"),
            ));
        }
        // A loop period of nanoseconds would spin a core (and the watchdog
        // needs the health loop to breathe).
        for (key, value, min) in [
            ("cleanup.interval", self.cleanup.interval.0, MIN_LOOP_INTERVAL),
            ("health.interval", self.health.interval.0, MIN_LOOP_INTERVAL),
            ("daemon.write_timeout", d.write_timeout.0, MIN_LOOP_INTERVAL),
            ("daemon.idle_timeout", d.idle_timeout.0, MIN_LOOP_INTERVAL),
            ("streams.poll_interval", self.streams.poll_interval.0, MIN_LOOP_INTERVAL),
        ] {
            if value < min {
                return Err((key.to_string(), format!("must be at least {min:?}")));
            }
        }
        for (key, path) in [
            ("daemon.socket", &d.socket),
            ("daemon.state_dir", &d.state_dir),
            ("tmux.socket_dir", &self.tmux.socket_dir),
            ("metrics.textfile", &self.metrics.textfile),
            ("logs.dir", &self.logs.dir),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().as_encoded_bytes().contains(&0)) {
                return Err((key.to_string(), "must not contain a NUL byte".to_string()));
            }
        }
        let logs = &self.logs;
        if logs.max_bytes_per_session.0 < MIN_LOG_BYTES_PER_SESSION {
            return Err((
                "logs.max_bytes_per_session".to_string(),
                format!("must be at least {MIN_LOG_BYTES_PER_SESSION} (1M)"),
            ));
        }
        if logs.max_bytes_total.0 < logs.max_bytes_per_session.0 {
            return Err((
                "logs.max_bytes_total".to_string(),
                "must be at least logs.max_bytes_per_session".to_string(),
            ));
        }
        if logs.dir.as_ref().is_some_and(|p| p.to_string_lossy().chars().any(char::is_control)) {
            return Err(("logs.dir".to_string(), "must not contain a control character".into()));
        }
        let prefix = &self.tmux.unit_prefix;
        let unit_ok = !prefix.is_empty()
            && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !unit_ok {
            return Err((
                "tmux.unit_prefix".to_string(),
                "must be a unit name prefix of [A-Za-z0-9-_.]".to_string(),
            ));
        }
        Ok(())
    }
}

/// The shortest period of the daemon's loops and timeouts.
pub const MIN_LOOP_INTERVAL: Duration = Duration::from_millis(100);

impl Config {
    /// The control socket path, resolving the uid-dependent default.
    pub fn socket_path(&self) -> PathBuf {
        self.daemon.socket.clone().unwrap_or_else(|| runtime_base().join("ccmanagerd.sock"))
    }

    /// The directory of the tmux servers (one subdirectory per uid),
    /// resolving the uid-dependent default.
    pub fn tmux_socket_dir(&self) -> PathBuf {
        self.tmux.socket_dir.clone().unwrap_or_else(|| {
            if is_root() {
                PathBuf::from("/run/ccmanagerd-tmux")
            } else {
                runtime_base().join("tmux")
            }
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.daemon.state_dir {
            return dir.clone();
        }
        if is_root() {
            return PathBuf::from("/var/lib/ccmanagerd");
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(runtime_base);
        base.join("ccmanagerd")
    }
}

impl Config {
    /// The directory of the session logs: `logs.dir`, else `<state_dir>/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.logs.dir.clone().unwrap_or_else(|| self.state_dir().join("logs"))
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// /run/ccmanagerd as root, $XDG_RUNTIME_DIR/ccmanagerd (or
/// /tmp/ccmanagerd-UID when unset) otherwise.
fn runtime_base() -> PathBuf {
    if is_root() {
        return PathBuf::from("/run/ccmanagerd");
    }
    user_runtime_base()
}

/// The runtime directory of a daemon run by a user (not root):
/// $XDG_RUNTIME_DIR/ccmanagerd, or /tmp/ccmanagerd-UID when that is unset.
/// `ccmanagerctl` looks for the per-user socket here.
pub fn user_runtime_base() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(dir) => dir.join("ccmanagerd"),
        None => std::env::temp_dir().join(format!("ccmanagerd-{}", nix::unistd::geteuid())),
    }
}

/// Line number (1-based) and `section.key` of the byte offset `at` in `text`.
fn locate_span(text: &str, at: usize) -> (usize, String) {
    let at = at.min(text.len());
    let line = text[..at].matches('\n').count() + 1;
    let mut section = String::new();
    for l in text.lines().take(line) {
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let this_line = text.lines().nth(line - 1).unwrap_or("").trim();
    let key = match this_line.split_once('=') {
        Some((k, _)) if !this_line.starts_with('[') => k.trim().trim_matches('"').to_string(),
        _ => String::new(),
    };
    let full = match (section.is_empty(), key.is_empty()) {
        (true, true) => String::from("(top level)"),
        (true, false) => key,
        (false, true) => format!("[{section}]"),
        (false, false) => format!("{section}.{key}"),
    };
    (line, full)
}

/// Line (1-based) on which `section.key` is set, or 0 when it is not in the text.
fn find_key_line(text: &str, dotted: &str) -> usize {
    let (section, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        } else if current == section {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == key {
                    return i + 1;
                }
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/test.toml"))
    }

    #[test]
    fn example_file_parses_to_exactly_the_defaults() {
        let text = include_str!("../config.example.toml");
        let parsed = parse(text).expect("config.example.toml must parse");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err =
            parse("[daemon]\nlog_level = \"info\"\nsockett = \"/x\"\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/test.toml:3: daemon.sockett:"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err = parse("[deamon]\nsocket = \"/x\"\n").unwrap_err().to_string();
        assert!(err.contains("/etc/test.toml:1"), "{err}");
        assert!(err.contains("deamon"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[cleanup]\nmax_age = \"7 fortnights\"\n", "/etc/test.toml:2: cleanup.max_age:"),
            ("[daemon]\nsocket_mode = \"0999\"\n", "/etc/test.toml:2: daemon.socket_mode:"),
            (
                "[limits.default]\nmemory_max = \"lots\"\n",
                "/etc/test.toml:2: limits.default.memory_max:",
            ),
            ("[limits]\nmax_sessions = -3\n", "/etc/test.toml:2: limits.max_sessions:"),
            ("[tmux]\nhistory_limit = \"big\"\n", "/etc/test.toml:2: tmux.history_limit:"),
            ("[daemon]\nlog_level = \"loud\"\n", "/etc/test.toml:2: daemon.log_level:"),
        ];
        for (text, prefix) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{text:?} gave {err}");
        }
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let err = parse("[limits]\n\nmax_sessions = 0\n").unwrap_err().to_string();
        assert_eq!(err, "/etc/test.toml:3: limits.max_sessions: must be greater than 0");
        let err = parse("[limits.default]\nnofile = 100000\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/test.toml:2: limits.default.nofile:"), "{err}");
        let err = parse("[daemon]\nsocket = \"relative.sock\"\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/test.toml:2: daemon.socket:"), "{err}");
        let err = parse("[health]\ninterval = \"1ns\"\n").unwrap_err().to_string();
        assert_eq!(err, "/etc/test.toml:2: health.interval: must be at least 100ms");
        let err = parse("[cleanup]\ninterval = \"10ms\"\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/test.toml:2: cleanup.interval: must be at least"), "{err}");
        let err = parse("[daemon]\nsocket = \"/run/a\\u0000b\"\n").unwrap_err().to_string();
        assert!(err.contains("daemon.socket: must not contain a NUL byte"), "{err}");
    }

    #[test]
    fn budgets_must_be_usable() {
        let err = parse("[tmux]\nmax_commands_in_flight = 2\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/test.toml:2: tmux.max_commands_in_flight: must be at least 4"),
            "{err}"
        );
        let err = parse("[daemon]\nmax_pending_reply_bytes = 0\n").unwrap_err().to_string();
        assert!(err.contains("daemon.max_pending_reply_bytes: must be greater than 0"), "{err}");
        let c = parse("[daemon]\nmax_capture_bytes = \"64K\"\nwrite_timeout = \"2s\"\n").unwrap();
        assert_eq!(c.daemon.max_capture_bytes.0, 64 << 10);
        assert_eq!(c.daemon.write_timeout.0, Duration::from_secs(2));
    }

    #[test]
    fn log_caps_must_be_usable() {
        let err = parse("[logs]\nmax_bytes_per_session = \"512K\"\n").unwrap_err().to_string();
        assert!(err.contains("logs.max_bytes_per_session: must be at least 1048576"), "{err}");
        let err = parse("[logs]\nmax_bytes_total = \"16M\"\n").unwrap_err().to_string();
        assert!(
            err.contains("logs.max_bytes_total: must be at least logs.max_bytes_per_session"),
            "{err}"
        );
        let err = parse("[logs]\ndir = \"logs\"\n").unwrap_err().to_string();
        assert!(err.contains("logs.dir: logs is not an absolute path"), "{err}");
        let c = parse("[logs]\ndir = \"/srv/logs\"\nmax_bytes_total = \"64M\"\n").unwrap();
        assert_eq!(c.logs_dir(), std::path::PathBuf::from("/srv/logs"));
        assert_eq!(parse("").unwrap().logs.max_bytes_per_session.0, 32 << 20);
    }

    #[test]
    fn durations_accept_human_forms_and_off() {
        let c =
            parse("[cleanup]\ninterval = \"90s\"\nmax_age = \"3d\"\nmax_idle = \"off\"\n").unwrap();
        assert_eq!(c.cleanup.interval.0, Duration::from_secs(90));
        assert_eq!(c.cleanup.max_age.0, Some(Duration::from_secs(3 * 86400)));
        assert_eq!(c.cleanup.max_idle.0, None);
        assert!(parse("[cleanup]\ninterval = \"off\"\n").is_err());
        assert!(parse("[cleanup]\ninterval = \"0s\"\n").is_err());
    }
}
