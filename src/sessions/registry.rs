//! The registry: every session the daemon knows, by id, across all tmux
//! servers, with who may see it, the caps, and what is not saved yet.
//! One short mutex; nothing here waits on tmux.
//!
//! Per-request work does not grow with the number of sessions: the counts
//! (by state, by uid), the listing order (oldest first) and the index of
//! tmux windows are kept up to date on every change ([`Records`]), and a
//! change marks only its own session for the journal.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::value::RawValue;
use tokio::sync::Notify;

use super::persist::Persist;
use super::record::{Record, ServerKey};
use super::store::{EntryRef, Stored};
use super::validate;
use crate::error::{Error, Result};
use crate::protocol::results::ProjectedList;
use crate::protocol::types::{Session, SessionCounts, SessionField, SessionState};

/// Who asks, as far as sessions are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The peer's uid.
    pub uid: u32,
    /// Root or a member of `daemon.admin_group`: sees and manages every session.
    pub admin: bool,
}

impl Caller {
    /// Whether this caller may see `session`: admins see all; others the
    /// sessions they created and the sessions that run as them.
    pub fn sees(&self, session: &Session) -> bool {
        self.admin || session.owner_uid == self.uid || session.uid == self.uid
    }
}

/// The caps a new session must fit in.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// `limits.max_sessions`.
    pub total: usize,
    /// `limits.max_sessions_per_owner`, counted by the uid sessions run as.
    pub per_uid: usize,
    /// `tmux.sessions_per_server`: a uid's next server is used past it.
    pub per_server: usize,
}

impl Caps {
    /// The caps `config` sets.
    pub fn of(config: &crate::config::Config) -> Caps {
        Caps {
            total: config.limits.max_sessions,
            per_uid: config.limits.max_sessions_per_owner,
            per_server: config.tmux.sessions_per_server,
        }
    }
}

/// Which cap a reservation hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapHit {
    /// `limits.max_sessions`.
    Total(usize),
    /// `limits.max_sessions_per_owner` for this uid.
    PerUid(usize, u32),
}

impl CapHit {
    /// The config key of the cap (metrics label).
    pub fn limit(&self) -> &'static str {
        match self {
            CapHit::Total(_) => "max_sessions",
            CapHit::PerUid(..) => "max_sessions_per_owner",
        }
    }

    /// What a refused request is told.
    pub fn message(&self) -> String {
        match self {
            CapHit::Total(n) => format!("limit reached: limits.max_sessions = {n} sessions exist"),
            CapHit::PerUid(n, uid) => {
                format!("limit reached: limits.max_sessions_per_owner = {n} sessions for uid {uid}")
            }
        }
    }
}

/// Sessions of one uid, or of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UidCount {
    /// In any state.
    pub all: usize,
    /// Not lost (they need the server, and count against the caps).
    pub live: usize,
}

/// The fields of a record that change after it is made and are journaled:
/// exit status, ended, pid, size, pending, name.
type Durable = (
    Option<i32>,
    bool,
    Option<u32>,
    Option<u16>,
    Option<u16>,
    bool,
    Option<String>,
    // Restarts: how many, why one is not made, a restore due, the scope.
    (u32, bool, bool, Option<String>),
);

/// What of a record the indexes and the journal depend on.
#[derive(PartialEq)]
struct Shape {
    state: SessionState,
    key: ServerKey,
    window: Option<String>,
    created_at: String,
    /// What the journal keeps, besides what never changes after insert
    /// (activity times are not journaled: they are kept by snapshots and
    /// read again from tmux).
    durable: Durable,
}

impl Shape {
    fn of(r: &Record) -> Shape {
        let s = &r.session;
        Shape {
            state: s.state,
            key: r.server_key(),
            window: r.window.clone(),
            created_at: s.created_at.clone(),
            durable: (
                s.exit_status,
                s.ended_at.is_some(),
                s.pid,
                s.cols,
                s.rows,
                r.pending,
                s.name.clone(),
                (s.restarts, s.state_reason.is_some(), r.restore_due, r.scope.clone()),
            ),
        }
    }
}

/// The records and their indexes; see the module documentation. Reached
/// through [`Registry::lock`].
#[derive(Default)]
pub struct Records {
    map: HashMap<String, Record>,
    /// `(created_at, id)`: the listing order.
    order: BTreeSet<(String, String)>,
    /// `(server, window id)` -> session id.
    windows: HashMap<(ServerKey, String), String>,
    counts: SessionCounts,
    per_uid: HashMap<u32, UidCount>,
    per_server: HashMap<ServerKey, UidCount>,
    /// Sessions whose saved form changed since the last save.
    dirty: HashSet<String>,
    /// Bumped on every change that a request waits for (its removal, a
    /// create's intent); other changes (state found in tmux, the end of a
    /// create) ride along with the next save, at most
    /// [`super::persist::LAZY`] later: they are tmux's to tell again after
    /// a crash.
    generation: u64,
    /// A session stopped running since the lock was taken (exited or lost):
    /// the reviver looks whether it comes back.
    ended: bool,
}

impl Records {
    /// The record `id`.
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.map.get(id)
    }

    /// Whether `id` exists.
    pub fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    /// Every record, in no order.
    pub fn values(&self) -> impl Iterator<Item = &Record> {
        self.map.values()
    }

    /// Counts by state.
    pub fn counts(&self) -> SessionCounts {
        self.counts.clone()
    }

    /// Sessions running as `uid` (in all its servers).
    pub fn uid_count(&self, uid: u32) -> UidCount {
        self.per_uid.get(&uid).copied().unwrap_or_default()
    }

    /// Sessions of the server `key`.
    pub fn server_count(&self, key: ServerKey) -> UidCount {
        self.per_server.get(&key).copied().unwrap_or_default()
    }

    /// The session in window `window` of the server `key`.
    pub fn by_window(&self, key: ServerKey, window: &str) -> Option<&Record> {
        let id = self.windows.get(&(key, window.to_string()))?;
        self.map.get(id)
    }

    fn index(&mut self, shape: &Shape, id: &str) {
        match shape.state {
            SessionState::Running => self.counts.running += 1,
            SessionState::Exited => self.counts.exited += 1,
            SessionState::Lost => self.counts.lost += 1,
        }
        let live = shape.state != SessionState::Lost;
        for c in [
            self.per_uid.entry(shape.key.uid).or_default(),
            self.per_server.entry(shape.key).or_default(),
        ] {
            c.all += 1;
            c.live += usize::from(live);
        }
        if let Some(w) = &shape.window {
            self.windows.insert((shape.key, w.clone()), id.to_string());
        }
    }

    fn unindex(&mut self, shape: &Shape, id: &str) {
        let n = match shape.state {
            SessionState::Running => &mut self.counts.running,
            SessionState::Exited => &mut self.counts.exited,
            SessionState::Lost => &mut self.counts.lost,
        };
        *n = n.saturating_sub(1);
        let live = shape.state != SessionState::Lost;
        let forget = |c: &mut UidCount| {
            c.all = c.all.saturating_sub(1);
            c.live = c.live.saturating_sub(usize::from(live));
            c.all == 0
        };
        if self.per_uid.get_mut(&shape.key.uid).is_some_and(forget) {
            self.per_uid.remove(&shape.key.uid);
        }
        if self.per_server.get_mut(&shape.key).is_some_and(forget) {
            self.per_server.remove(&shape.key);
        }
        if let Some(w) = &shape.window {
            let key = (shape.key, w.clone());
            if self.windows.get(&key).is_some_and(|i| i == id) {
                self.windows.remove(&key);
            }
        }
    }

    fn mark(&mut self, id: &str, urgent: bool) -> u64 {
        self.dirty.insert(id.to_string());
        if urgent {
            self.generation += 1;
        }
        self.generation
    }

    fn put(&mut self, record: Record, dirty: Option<bool>) -> u64 {
        let id = record.session.id.clone();
        if let Some(old) = self.map.remove(&id) {
            let shape = Shape::of(&old);
            self.unindex(&shape, &id);
            self.order.remove(&(shape.created_at, id.clone()));
        }
        let shape = Shape::of(&record);
        self.index(&shape, &id);
        self.order.insert((shape.created_at, id.clone()));
        self.map.insert(id.clone(), record);
        self.counts.total = self.map.len();
        match dirty {
            Some(urgent) => self.mark(&id, urgent),
            None => self.generation,
        }
    }

    /// Inserts or replaces a record; returns the generation to wait for
    /// until it is durable (saved at once).
    pub fn insert(&mut self, record: Record) -> u64 {
        self.put(record, Some(true))
    }

    /// Inserts or replaces a record that nobody waits for (saved with the
    /// next save).
    pub fn insert_lazy(&mut self, record: Record) {
        self.put(record, Some(false));
    }

    /// Inserts a record as it was loaded from disk (nothing to save).
    pub fn insert_loaded(&mut self, record: Record) {
        self.put(record, None);
    }

    /// Removes `id`; returns the record and the generation to wait for
    /// until its removal is durable (saved at once).
    pub fn remove(&mut self, id: &str) -> (Option<Record>, u64) {
        self.remove_as(id, true)
    }

    /// Removes `id`, which nobody waits for (saved with the next save).
    pub fn remove_lazy(&mut self, id: &str) -> Option<Record> {
        self.remove_as(id, false).0
    }

    fn remove_as(&mut self, id: &str, urgent: bool) -> (Option<Record>, u64) {
        let Some(old) = self.map.remove(id) else { return (None, self.generation) };
        let shape = Shape::of(&old);
        self.unindex(&shape, id);
        self.order.remove(&(shape.created_at, id.to_string()));
        self.counts.total = self.map.len();
        let gen = self.mark(id, urgent);
        (Some(old), gen)
    }

    /// Which cap one more live session of `uid` would exceed, if any;
    /// `starting` (in total, of `uid`) are not live yet but will be (lost
    /// sessions being started again).
    pub fn cap_hit(&self, uid: u32, caps: Caps, starting: (usize, usize)) -> Option<CapHit> {
        let c = self.counts();
        if c.total - c.lost + starting.0 >= caps.total {
            return Some(CapHit::Total(caps.total));
        }
        if self.uid_count(uid).live + starting.1 >= caps.per_uid {
            return Some(CapHit::PerUid(caps.per_uid, uid));
        }
        None
    }

    /// Marks the records `which` selects for the next save, which a caller
    /// waits for; returns the generation to wait for.
    pub fn save_where(&mut self, which: impl Fn(&Record) -> bool) -> u64 {
        for id in self.ids_where(which) {
            self.mark(&id, true);
        }
        self.generation += 1;
        self.generation
    }

    /// Applies `f` to the record `id`, keeping the indexes right and
    /// marking it for the next save when its saved form changed (nobody
    /// waits for it).
    pub fn modify<R>(&mut self, id: &str, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
        let rec = self.map.get_mut(id)?;
        let before = Shape::of(rec);
        let out = f(rec);
        let after = Shape::of(rec);
        if before != after {
            if (before.state, before.key, &before.window) != (after.state, after.key, &after.window)
            {
                self.unindex(&before, id);
                self.index(&after, id);
            }
            if before.created_at != after.created_at {
                self.order.remove(&(before.created_at.clone(), id.to_string()));
                self.order.insert((after.created_at.clone(), id.to_string()));
            }
            if before.durable != after.durable || before.state != after.state {
                self.mark(id, false);
            }
            if before.state != after.state && after.state != SessionState::Running {
                self.ended = true;
            }
        }
        Some(out)
    }

    /// The ids `which` selects (a scan: for rare operations only).
    pub fn ids_where(&self, which: impl Fn(&Record) -> bool) -> Vec<String> {
        self.map.values().filter(|r| which(r)).map(|r| r.session.id.clone()).collect()
    }

    /// Whether something waits to be saved.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The generation of the last change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The journal lines of everything changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.dirty.len() * 512);
        for id in std::mem::take(&mut self.dirty) {
            match self.map.get(&id) {
                Some(r) => EntryRef::Put(r.stored_ref()).encode(&mut out),
                None => EntryRef::Del(&id).encode(&mut out),
            }
        }
        out
    }

    /// Up to `n` records' saved forms, in listing order, after `cursor`;
    /// the cursor to go on from.
    fn stored_after(
        &self,
        cursor: Option<&(String, String)>,
        n: usize,
        out: &mut Vec<Stored>,
    ) -> Option<(String, String)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = cursor.map_or(Unbounded, |c| Excluded(c.clone()));
        let mut last = None;
        for key in self.order.range((from, Unbounded)).take(n) {
            if let Some(r) = self.map.get(&key.1) {
                out.push(r.stored());
            }
            last = Some(key.clone());
        }
        last
    }

    /// The sessions `caller` may see (in `state`, if given), oldest first.
    pub fn listed<'a>(
        &'a self,
        caller: &'a Caller,
        state: Option<SessionState>,
    ) -> impl Iterator<Item = &'a Session> + 'a {
        self.order
            .iter()
            .filter_map(|(_, id)| self.map.get(id))
            .map(|r| &r.session)
            .filter(move |s| caller.sees(s))
            .filter(move |s| state.is_none_or(|st| s.state == st))
    }

    /// `created_at` of the oldest session.
    pub fn oldest_created_at(&self) -> Option<&str> {
        self.order.first().map(|(t, _)| t.as_str())
    }

    /// Live sessions by server (those that need their server).
    pub fn live_by_server(&self) -> impl Iterator<Item = (ServerKey, usize)> + '_ {
        self.per_server.iter().filter(|(_, c)| c.live > 0).map(|(k, c)| (*k, c.live))
    }

    /// The server a new session of `uid` goes to: the first of the uid's
    /// servers with fewer than `per_server` live sessions.
    pub fn shard_for(&self, uid: u32, per_server: usize) -> u32 {
        (0..)
            .find(|&shard| self.server_count(ServerKey { uid, shard }).live < per_server.max(1))
            .unwrap_or(0)
    }
}

/// The records, locked; wakes the persister on unlock when something
/// changed.
pub struct Locked<'a> {
    guard: MutexGuard<'a, Records>,
    persist: &'a Persist,
    revive: &'a Notify,
    generation: u64,
    was_clean: bool,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Records;
    fn deref(&self) -> &Records {
        &self.guard
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Records {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if std::mem::take(&mut self.guard.ended) {
            self.revive.notify_one();
        }
        if self.guard.generation != self.generation {
            self.persist.wake();
        } else if self.was_clean && self.guard.is_dirty() {
            self.persist.nudge();
        }
    }
}

/// See the module documentation.
pub struct Registry {
    records: Mutex<Records>,
    persist: Arc<Persist>,
    /// Woken when a session stops running (see `super::revive`).
    revive: Notify,
}

impl Registry {
    /// An empty registry saving through `persist`.
    pub fn new(persist: Arc<Persist>) -> Registry {
        Registry { records: Mutex::new(Records::default()), persist, revive: Notify::new() }
    }

    /// The records, locked. Keep the guard short and never hold it across
    /// an await.
    pub fn lock(&self) -> Locked<'_> {
        let guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let (generation, was_clean) = (guard.generation, !guard.is_dirty());
        Locked { guard, persist: &self.persist, revive: &self.revive, generation, was_clean }
    }

    /// Resolves once a session stopped running since the last call (a
    /// permit is kept, so no stop is missed between two waits).
    pub async fn session_ended(&self) {
        self.revive.notified().await
    }

    /// The persister (health reads what is saved).
    pub fn persist(&self) -> &Arc<Persist> {
        &self.persist
    }

    /// A snapshot of every record and the generation it covers, copied a
    /// chunk at a time so that requests are served meanwhile (10,000
    /// records took 20 ms to copy at once). A change made during the copy
    /// is marked for the journal after it: the journal, replayed over the
    /// snapshot, ends at the change whatever the snapshot caught of it.
    pub fn snapshot(&self) -> (Vec<Stored>, u64) {
        const CHUNK: usize = 512;
        let gen = {
            let mut records = self.lock();
            records.dirty.clear();
            records.generation
        };
        let mut out = Vec::new();
        let mut cursor = None;
        while let Some(next) = self.lock().stored_after(cursor.as_ref(), CHUNK, &mut out) {
            cursor = Some(next);
        }
        (out, gen)
    }

    /// Waits until the change of generation `gen` is durable.
    pub async fn durable(&self, gen: u64) -> Result<()> {
        super::persist::durable(self, gen).await
    }

    /// Counts by state.
    pub fn counts(&self) -> SessionCounts {
        self.lock().counts()
    }

    /// Sessions of the server `key`, any state.
    pub fn count_in(&self, key: ServerKey) -> usize {
        self.lock().server_count(key).all
    }

    /// A copy of every record (for cleanup).
    pub fn all_records(&self) -> Vec<Record> {
        self.lock().values().cloned().collect()
    }

    /// The record `id` if it exists and `caller` may see it.
    pub fn find(&self, caller: &Caller, id: &str) -> Result<Record> {
        validate::id(id)?;
        self.lock()
            .get(id)
            .filter(|r| caller.sees(&r.session))
            .cloned()
            .ok_or_else(|| Error::SessionNotFound(id.to_string()))
    }

    /// `session.list`, as values.
    pub fn list(&self, caller: &Caller, state: Option<SessionState>) -> Vec<Session> {
        self.lock().listed(caller, state).cloned().collect()
    }

    /// `session.list`, serialised straight from the registry (the result
    /// `{"sessions": [...]}`, each session with only `fields`), oldest first
    /// from the kept order: no copies, no sort.
    pub fn list_encoded(
        &self,
        caller: &Caller,
        state: Option<SessionState>,
        fields: &[SessionField],
    ) -> Result<Box<RawValue>> {
        let records = self.lock();
        let list = ProjectedList::new(records.listed(caller, state), fields);
        serde_json::value::to_raw_value(&list)
            .map_err(|e| Error::Internal(format!("encoding the session list: {e}")))
    }

    /// Inserts `record` if the caps allow one more session running as its
    /// uid (lost sessions do not count), in the uid's first server with
    /// room; returns that server and the generation that saves the record.
    pub fn reserve(
        &self,
        mut record: Record,
        caps: Caps,
    ) -> std::result::Result<(ServerKey, u64), CapHit> {
        let mut records = self.lock();
        let uid = record.server_uid();
        if let Some(hit) = records.cap_hit(uid, caps, (0, 0)) {
            return Err(hit);
        }
        record.shard = records.shard_for(uid, caps.per_server);
        let key = record.server_key();
        Ok((key, records.insert(record)))
    }

    /// Removes `id`; returns the record it held.
    pub fn remove(&self, id: &str) -> Option<Record> {
        self.lock().remove(id).0
    }

    /// Marks `lost` every session `which` selects (their server is gone,
    /// or this daemon may not own it), logging `why` for each that was not
    /// lost already. A create's intent that never got its session is
    /// dropped instead.
    pub fn mark_lost_where(&self, why: &str, which: impl Fn(&Record) -> bool) {
        let now = std::time::SystemTime::now();
        let mut records = self.lock();
        for id in records.ids_where(which) {
            if records.get(&id).is_some_and(|r| r.pending && !r.spawning) {
                records.remove_lazy(&id);
                tracing::warn!(session_id = %id, "a create cut off before its session existed: dropped");
                continue;
            }
            let news = records.modify(&id, |rec| rec.mark_lost(now)).unwrap_or(false);
            if news {
                tracing::warn!(session_id = %id, "session {id} is lost: {why}");
            }
        }
    }

    /// Applies `f` to the record `id`, if it exists.
    pub fn update<R>(&self, id: &str, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
        self.lock().modify(id, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::record::Record;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::store::Store::open(dir.path()).unwrap();
        (dir, Registry::new(Arc::new(Persist::new(store))))
    }

    fn record(id: &str, uid: u32, created: &str) -> Record {
        let s: Session = serde_json::from_value(serde_json::json!({
            "id": id, "name": null, "tmux_session": format!("ccmanager_sess_{id}"),
            "command": ["sleep", "1"], "cwd": "/", "state": "running", "exit_status": null,
            "pid": null, "created_at": created, "last_activity_at": null,
            "ended_at": null, "owner_uid": uid, "uid": uid, "user": "u", "limits": {}, "keep": false
        }))
        .unwrap();
        Record::new(s, None)
    }

    #[test]
    fn counts_order_and_window_index_follow_every_change() {
        let (_d, reg) = registry();
        let caps = Caps { total: 3, per_uid: 2, per_server: 10 };
        reg.reserve(record("b", 1, "2026-01-02T00:00:00Z"), caps).unwrap();
        reg.reserve(record("a", 1, "2026-01-01T00:00:00Z"), caps).unwrap();
        assert_eq!(
            reg.reserve(record("c", 1, "2026-01-03T00:00:00Z"), caps),
            Err(CapHit::PerUid(2, 1))
        );
        reg.reserve(record("c", 2, "2026-01-03T00:00:00Z"), caps).unwrap();
        assert_eq!(
            reg.reserve(record("d", 3, "2026-01-04T00:00:00Z"), caps),
            Err(CapHit::Total(3))
        );
        let all = Caller { uid: 0, admin: true };
        let ids: Vec<String> = reg.list(&all, None).into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["a", "b", "c"], "oldest first");
        let k = |uid| ServerKey { uid, shard: 0 };
        reg.update("a", |r| r.window = Some("@4".into()));
        assert_eq!(
            reg.lock().by_window(k(1), "@4").map(|r| r.session.id.clone()),
            Some("a".into())
        );
        assert!(reg.lock().by_window(k(2), "@4").is_none(), "window ids are per server");
        reg.update("a", |r| r.mark_lost(std::time::SystemTime::now()));
        assert!(reg.lock().by_window(k(1), "@4").is_none(), "a lost session has no window");
        let c = reg.counts();
        assert_eq!((c.total, c.running, c.lost), (3, 2, 1));
        assert_eq!(reg.lock().uid_count(1), UidCount { all: 2, live: 1 });
        reg.reserve(record("d", 3, "2026-01-04T00:00:00Z"), caps).unwrap();
        reg.remove("b");
        assert_eq!(reg.lock().uid_count(1), UidCount { all: 1, live: 0 });
        assert_eq!(reg.counts().total, 3);
        assert_eq!(reg.lock().oldest_created_at(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn a_snapshot_in_chunks_has_every_record_once() {
        let (_d, reg) = registry();
        for i in 0..1300 {
            reg.lock().insert(record(
                &format!("r{i:04}"),
                1,
                &format!("2026-01-01T00:{:02}:00Z", i % 60),
            ));
        }
        let (all, gen) = reg.snapshot();
        let ids: std::collections::BTreeSet<String> =
            all.iter().map(|s| s.session.id.clone()).collect();
        assert_eq!((all.len(), ids.len(), gen), (1300, 1300, 1300));
        assert!(!reg.lock().is_dirty());
    }

    #[test]
    fn a_uid_s_sessions_fill_its_servers_in_order() {
        let (_d, reg) = registry();
        let caps = Caps { total: 100, per_uid: 100, per_server: 2 };
        let mut shards = vec![];
        for i in 0..5 {
            let (key, _) =
                reg.reserve(record(&format!("s{i}"), 7, "2026-01-01T00:00:00Z"), caps).unwrap();
            shards.push(key.shard);
        }
        assert_eq!(shards, [0, 0, 1, 1, 2]);
        reg.remove("s0");
        let (key, _) = reg.reserve(record("t", 7, "2026-01-01T00:00:00Z"), caps).unwrap();
        assert_eq!(key, ServerKey { uid: 7, shard: 0 }, "the first server with room");
        assert_eq!(reg.lock().server_count(key).live, 2);
        assert_eq!(reg.lock().uid_count(7).live, 5);
    }

    #[test]
    fn only_changes_to_what_is_saved_go_to_the_journal() {
        let (_d, reg) = registry();
        let gen = reg.lock().insert(record("a", 1, "2026-01-01T00:00:00Z"));
        assert!(!reg.lock().take_dirty().is_empty());
        reg.update("a", |r| r.session.last_activity_at = Some("2026-01-05T00:00:00Z".into()));
        assert!(!reg.lock().is_dirty(), "activity is not journaled");
        reg.update("a", |r| r.session.cols = Some(120));
        assert_eq!(reg.lock().generation(), gen, "nobody waits for a resize");
        let lines = String::from_utf8(reg.lock().take_dirty()).unwrap();
        assert!(lines.starts_with("{\"put\":") && lines.contains("120"), "{lines}");
        let (_, gen2) = reg.lock().remove("a");
        assert!(gen2 > gen, "a removal is waited for");
        assert_eq!(String::from_utf8(reg.lock().take_dirty()).unwrap(), "{\"del\":\"a\"}\n");
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release --lib registry::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn list_10000() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::store::Store::open(dir.path()).unwrap();
        let reg = Registry::new(Arc::new(Persist::new(store)));
        for i in 0..10_000 {
            let s: Session = serde_json::from_value(serde_json::json!({
                "id": format!("id{i:06}"), "name": null, "tmux_session": format!("ccmanager_sess_id{i:06}"),
                "command": ["sleep", "100000"], "cwd": "/root", "state": "running", "exit_status": null,
                "pid": 100000 + i, "created_at": "2026-01-01T00:00:00Z", "last_activity_at": "2026-01-01T00:00:00Z",
                "ended_at": null, "owner_uid": 0, "uid": 0, "user": "root",
                "limits": {"nofile": 4096, "nproc": 1024, "core": 0, "memory_max": "4G", "tasks_max": 1024, "cpu_quota": "200%"},
                "keep": false, "cols": 80, "rows": 24, "env": {}
            }))
            .unwrap();
            reg.lock().insert_loaded(Record::new(s, None));
        }
        let all = Caller { uid: 0, admin: true };
        let five = [
            SessionField::Id,
            SessionField::TmuxSession,
            SessionField::CreatedAt,
            SessionField::State,
            SessionField::Pid,
        ];
        for (what, fields) in [("5 fields", &five[..]), ("whole", &SessionField::ALL[..])] {
            let t = std::time::Instant::now();
            let mut len = 0;
            for _ in 0..20 {
                len = reg.list_encoded(&all, None, fields).unwrap().get().len();
            }
            eprintln!("list_encoded 10000, {what}: {:?} each, {len} bytes", t.elapsed() / 20);
        }
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let r = reg.lock();
            std::hint::black_box(r.listed(&all, None).count());
        }
        eprintln!("iterate 10000: {:?} each", t.elapsed() / 20);
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let r = reg.lock();
            let v: Vec<&Session> = r.listed(&all, None).collect();
            std::hint::black_box(serde_json::to_vec(&ProjectedList::new(v, &five)).unwrap().len());
        }
        eprintln!("to_vec 5 fields: {:?} each", t.elapsed() / 20);
        let t = std::time::Instant::now();
        let n = reg.snapshot().0.len();
        eprintln!("snapshot {n}, in chunks: {:?}", t.elapsed());
    }
}
