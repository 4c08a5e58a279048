//! A session as the daemon tracks it ([`Record`]) and its state transitions:
//! pure functions of what tmux reported and the clock, unit-tested without
//! tmux. Ownership is decided here too: a session found in the server of
//! uid U belongs to U, whatever its tmux metadata claims.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::panes::PaneInfo;
use super::store::{Stored, StoredRef};
use crate::protocol::types::{Session, SessionState};

/// How long a pane may show dead without an exit status before the session
/// is reported `exited` with an unknown status.
pub const DEAD_STATUS_GRACE: Duration = Duration::from_secs(3);

/// Which tmux server a session lives in: its uid's, and which of that
/// uid's servers (a uid's sessions are spread over servers of at most
/// `tmux.sessions_per_server` sessions each: tmux's event loop walks every
/// pane of its server on every event, so one server per uid made every
/// request cost more as sessions grew).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    /// The uid the server and its sessions run as.
    pub uid: u32,
    /// 0 for the uid's first server.
    pub shard: u32,
}

impl std::fmt::Display for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.shard {
            0 => write!(f, "uid {}", self.uid),
            n => write!(f, "uid {} (server {n})", self.uid),
        }
    }
}

/// A session as the daemon tracks it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The wire view.
    pub session: Session,
    /// tmux ids (`$N`, `@N`, `%N`), known while the session exists in tmux.
    pub tmux_id: Option<String>,
    /// See `tmux_id`.
    pub window: Option<String>,
    /// See `tmux_id`.
    pub pane: Option<String>,
    /// The pane's own process as tmux reports it (`pane_pid`): the
    /// exec-wrapper, parent of the program (`session.pid`), and the root of
    /// the tree `session.kill` ends. Not saved: every listing has it.
    pub pane_pid: Option<u32>,
    /// systemd scope holding the session's processes, if any.
    pub scope: Option<String>,
    /// Last input sent through the daemon.
    pub last_input: Option<SystemTime>,
    /// When tmux first showed the pane dead without an exit status yet.
    pub dead_seen: Option<SystemTime>,
    /// Reserved by a create that has not finished: refreshes leave it alone.
    pub spawning: bool,
    /// A create's intent, saved before `new-session` and not yet known to
    /// have its tmux session (see [`Stored::pending`]).
    pub pending: bool,
    /// The server's epoch when this record was created or found: a listing
    /// taken before it may not show the session (see `Server::epoch`).
    pub epoch: u64,
    /// Which of its uid's servers it lives in.
    pub shard: u32,
    /// A restore is due: the host rebooted since it was saved, and its
    /// policy brings it back (see `super::revive`).
    pub restore_due: bool,
    /// When it was last brought back automatically (unix seconds, newest
    /// last), for `sessions.restart_burst`.
    pub auto_restarts: Vec<u64>,
    /// When it stopped running, precisely (`ended_at` has seconds; the
    /// restart delay needs better). Not saved: after a daemon restart
    /// `ended_at` stands in.
    pub ended: Option<SystemTime>,
}

/// RFC 3339 UTC, seconds precision.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses what [`rfc3339`] wrote.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

fn unix_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Record {
    /// A record with no tmux ids yet.
    pub fn new(session: Session, scope: Option<String>) -> Record {
        Record {
            session,
            tmux_id: None,
            window: None,
            pane: None,
            pane_pid: None,
            scope,
            last_input: None,
            dead_seen: None,
            spawning: false,
            pending: false,
            epoch: 0,
            shard: 0,
            restore_due: false,
            auto_restarts: Vec::new(),
            ended: None,
        }
    }

    /// A record as it was saved.
    pub fn from_stored(stored: Stored) -> Record {
        let mut r = Record::new(stored.session, stored.scope);
        r.pending = stored.pending;
        r.shard = stored.shard;
        r.restore_due = stored.restore_due;
        r.auto_restarts = stored.auto_restarts;
        r
    }

    /// What the state file keeps.
    pub fn stored(&self) -> Stored {
        Stored {
            session: self.session.clone(),
            scope: self.scope.clone(),
            pending: self.pending,
            shard: self.shard,
            restore_due: self.restore_due,
            auto_restarts: self.auto_restarts.clone(),
        }
    }

    /// [`Record::stored`] without the copy (for the journal).
    pub fn stored_ref(&self) -> StoredRef<'_> {
        StoredRef {
            session: &self.session,
            scope: &self.scope,
            pending: self.pending,
            shard: self.shard,
            restore_due: self.restore_due,
            auto_restarts: &self.auto_restarts,
        }
    }

    /// The uid of the tmux server this session lives in.
    pub fn server_uid(&self) -> u32 {
        self.session.uid
    }

    /// The tmux server this session lives in.
    pub fn server_key(&self) -> ServerKey {
        ServerKey { uid: self.session.uid, shard: self.shard }
    }

    /// A session the daemon did not create, found in the server of `uid`
    /// (`user`): planted by a program there, or known only from tmux after
    /// the state file was lost. `claimed` is the `@ccm_meta` copy tmux held,
    /// if it parsed; it may describe the command, name and size, but never
    /// the owner, the limits or the cleanup exemption.
    pub fn adopted(
        id: &str,
        pane: &PaneInfo,
        claimed: Option<&Stored>,
        server: ServerKey,
        user: &str,
    ) -> Record {
        let uid = server.uid;
        let created = pane.created.map(unix_time).unwrap_or_else(SystemTime::now);
        // What a program wrote into tmux: kept only if a request could have
        // said it (no control characters to reach an operator's terminal).
        let claimed = claimed.map(|m| &m.session);
        let name =
            claimed.and_then(|c| c.name.clone()).filter(|n| super::validate::name(n).is_ok());
        let command = claimed
            .map(|c| c.command.clone())
            .filter(|c| super::validate::command(c).is_ok())
            .unwrap_or_default();
        let cwd = claimed.and_then(|c| c.cwd.clone()).filter(|d| super::validate::cwd(d).is_ok());
        // tmux has the creation time in seconds; the claim is as precise as
        // the daemon wrote it. A claim from the future (which would keep a
        // session from ever reaching max_age) is not taken.
        let created = claimed
            .and_then(|c| parse_time(&c.created_at))
            .filter(|t| *t <= SystemTime::now())
            .unwrap_or(created);
        let session = Session {
            id: id.to_string(),
            name,
            tmux_session: pane.session_name.clone(),
            command,
            cwd,
            state: SessionState::Running,
            exit_status: None,
            pid: pane.pid,
            created_at: rfc3339(created),
            last_activity_at: None,
            ended_at: None,
            owner_uid: uid,
            uid,
            user: user.to_string(),
            adopted: true,
            limits: Default::default(),
            keep: false,
            cols: pane.width,
            rows: pane.height,
            env: Default::default(),
            // Nothing a program claimed is run again by the daemon.
            restore: Default::default(),
            resume_command: None,
            restart: Default::default(),
            restarts: 0,
            restarted_at: None,
            restored_at: None,
            restart_reason: None,
            state_reason: None,
        };
        let mut r = Record::new(session, None);
        r.shard = server.shard;
        r
    }

    /// Brings the record in line with its pane as tmux lists it.
    pub fn apply_pane(&mut self, p: &PaneInfo, now: SystemTime) {
        self.tmux_id = Some(p.session_id.clone());
        self.window = Some(p.window.clone());
        self.pane = Some(p.pane.clone());
        let s = &mut self.session;
        // `pid` is the program's, which the spawn (or the exit watcher, for
        // an adopted session) learnt; the pane's pid stands in until then,
        // and replaces it when the pane's process changed.
        if self.pane_pid != p.pid {
            if self.pane_pid.is_some() || s.pid.is_none() {
                s.pid = p.pid;
            }
            self.pane_pid = p.pid;
        }
        s.cols = p.width.or(s.cols);
        s.rows = p.height.or(s.rows);
        let activity = p.activity.map(unix_time).into_iter().chain(self.last_input).max();
        if let Some(a) = activity {
            s.last_activity_at = Some(rfc3339(a));
        }
        // Exited once tmux has the exit status (so `exited` carries it), or
        // once the pane has shown dead without one for DEAD_STATUS_GRACE:
        // tmux 3.3 can take a while to reap, and a session must not stay
        // `running` forever.
        let status = p.exit_status();
        let dead_long = p.dead
            && self.dead_seen.get_or_insert(now).elapsed().unwrap_or_default() >= DEAD_STATUS_GRACE;
        if !p.dead {
            self.dead_seen = None;
        }
        let s = &mut self.session;
        if p.dead && (status.is_some() || dead_long) {
            // tmux marks the pane dead when its pty closes and fills in the
            // status once it has reaped the process: take the status
            // whenever it appears.
            if s.exit_status.is_none() && status.is_some() {
                s.exit_status = status;
                tracing::info!(session_id = %s.id, exit_status = s.exit_status, "the program of session {} exited with status {}", s.id, status.unwrap_or_default());
            }
            s.ended_at.get_or_insert_with(|| rfc3339(now));
            s.state = SessionState::Exited;
            self.ended.get_or_insert(now);
        } else {
            s.state = SessionState::Running;
            s.exit_status = None;
            s.ended_at = None;
            self.ended = None;
        }
    }

    /// Its tmux session is gone: `lost`. Returns whether that is news.
    pub fn mark_lost(&mut self, now: SystemTime) -> bool {
        if self.session.state == SessionState::Lost {
            return false;
        }
        self.session.state = SessionState::Lost;
        self.session.ended_at = Some(rfc3339(now));
        self.ended = Some(now);
        self.session.pid = None;
        self.pane_pid = None;
        self.pane = None;
        self.tmux_id = None;
        self.window = None;
        true
    }

    /// Whether tmux showed the pane dead but has not reaped it yet.
    pub fn waits_for_status(&self, p: &PaneInfo) -> bool {
        p.dead && p.exit_status().is_none() && self.session.state != SessionState::Exited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pane(dead: bool, status: Option<i32>) -> PaneInfo {
        PaneInfo {
            pane: "%3".into(),
            pid: Some(42),
            dead,
            dead_status: status,
            dead_signal: None,
            activity: Some(1_700_000_000),
            width: Some(100),
            height: Some(30),
            window: "@2".into(),
            session_id: "$1".into(),
            created: Some(1_600_000_000),
            pipe: true,
            session_name: "ccmanager_sess_ab".into(),
        }
    }

    fn record() -> Record {
        let claimed = None;
        let key = ServerKey { uid: 1000, shard: 0 };
        let mut r = Record::adopted("ab", &pane(false, None), claimed, key, "alice");
        r.session.adopted = false;
        r
    }

    #[test]
    fn a_live_pane_is_running_and_fills_the_tmux_ids() {
        let mut r = record();
        r.apply_pane(&pane(false, None), SystemTime::now());
        assert_eq!(r.session.state, SessionState::Running);
        assert_eq!(r.pane.as_deref(), Some("%3"));
        assert_eq!(r.tmux_id.as_deref(), Some("$1"));
        assert_eq!((r.session.cols, r.session.rows), (Some(100), Some(30)));
        assert_eq!(r.session.last_activity_at.as_deref(), Some("2023-11-14T22:13:20Z"));
    }

    #[test]
    fn a_dead_pane_with_status_is_exited_and_keeps_the_first_status() {
        let mut r = record();
        let now = SystemTime::now();
        r.apply_pane(&pane(true, Some(7)), now);
        assert_eq!(r.session.state, SessionState::Exited);
        assert_eq!(r.session.exit_status, Some(7));
        assert!(r.session.ended_at.is_some());
        r.apply_pane(&pane(true, Some(9)), now);
        assert_eq!(r.session.exit_status, Some(7));
    }

    #[test]
    fn a_dead_pane_without_status_waits_for_the_grace() {
        let mut r = record();
        let now = SystemTime::now();
        r.apply_pane(&pane(true, None), now);
        assert_eq!(r.session.state, SessionState::Running, "tmux has not reaped yet");
        assert!(r.waits_for_status(&pane(true, None)));
        r.dead_seen = Some(now - DEAD_STATUS_GRACE - Duration::from_millis(1));
        r.apply_pane(&pane(true, None), now);
        assert_eq!(r.session.state, SessionState::Exited);
        assert_eq!(r.session.exit_status, None, "unknown status");
    }

    #[test]
    fn the_program_pid_survives_listings_of_the_pane_pid() {
        let mut r = record();
        r.pane_pid = None;
        r.session.pid = Some(43); // the program, as the spawn learnt it
        r.apply_pane(&pane(false, None), SystemTime::now());
        assert_eq!((r.pane_pid, r.session.pid), (Some(42), Some(43)));
        r.apply_pane(&pane(false, None), SystemTime::now());
        assert_eq!(r.session.pid, Some(43));
        let mut other = pane(false, None);
        other.pid = Some(50);
        r.apply_pane(&other, SystemTime::now());
        assert_eq!((r.pane_pid, r.session.pid), (Some(50), Some(50)), "a new pane process");
        let mut fresh = Record::new(r.session.clone(), None);
        fresh.session.pid = None;
        fresh.apply_pane(&pane(false, None), SystemTime::now());
        assert_eq!(fresh.session.pid, Some(42), "the pane's pid stands in");
    }

    #[test]
    fn lost_is_reported_once_and_drops_the_pane() {
        let mut r = record();
        r.apply_pane(&pane(false, None), SystemTime::now());
        assert!(r.mark_lost(SystemTime::now()));
        assert_eq!(r.session.state, SessionState::Lost);
        assert_eq!((r.pane.clone(), r.session.pid), (None, None));
        assert!(!r.mark_lost(SystemTime::now()));
    }

    #[test]
    fn adoption_takes_the_owner_from_the_server_never_from_the_claim() {
        let mut claim = record().stored();
        claim.session.owner_uid = 0;
        claim.session.uid = 0;
        claim.session.keep = true;
        claim.session.command = vec!["claude".into()];
        claim.session.limits.nofile = Some(crate::limits::Rlim::Value(99));
        let key = ServerKey { uid: 1001, shard: 2 };
        let r = Record::adopted("zz", &pane(false, None), Some(&claim), key, "bob");
        assert_eq!((r.session.owner_uid, r.session.uid), (1001, 1001));
        assert_eq!(r.server_key(), key);
        assert_eq!(r.session.user, "bob");
        assert!(r.session.adopted);
        assert!(!r.session.keep, "a planted session cannot exempt itself from cleanup");
        assert_eq!(r.session.limits, Default::default());
        assert_eq!(r.session.command, vec!["claude".to_string()], "informational only");
        assert_eq!(r.session.created_at, "2020-09-13T12:26:40Z");
        claim.session.name = Some("\u{1b}]0;owned\u{7}".into());
        claim.session.command = vec!["a\u{1b}[2J".into()];
        let r = Record::adopted("zz", &pane(false, None), Some(&claim), key, "bob");
        assert_eq!((r.session.name, r.session.command), (None, vec![]), "escapes are dropped");
    }
}
