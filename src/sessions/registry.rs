//! The registry: every session the daemon knows, by id, across all tmux
//! servers, with who may see it, the caps, and the coalesced state file.
//! One short mutex; nothing here waits on tmux.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::value::RawValue;

use super::record::Record;
use super::store::{Store, Stored};
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
}

/// Which cap a reservation hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapHit {
    /// `limits.max_sessions`.
    Total(usize),
    /// `limits.max_sessions_per_owner` for this uid.
    PerUid(usize, u32),
}

/// See the module documentation.
pub struct Registry {
    records: Mutex<BTreeMap<String, Record>>,
    store: Arc<Store>,
}

impl Registry {
    /// An empty registry saving to `store`.
    pub fn new(store: Arc<Store>) -> Registry {
        Registry { records: Mutex::new(BTreeMap::new()), store }
    }

    /// The records, locked. Keep the guard short and never hold it across
    /// an await.
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves the registry soon (coalesced).
    pub fn persist(&self) {
        self.store.mark_dirty();
    }

    /// The state file.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Everything to save, now.
    pub fn snapshot(&self) -> Vec<Stored> {
        self.lock().values().map(Record::stored).collect()
    }

    /// Counts by state.
    pub fn counts(&self) -> SessionCounts {
        let records = self.lock();
        let mut c = SessionCounts { total: records.len(), ..Default::default() };
        for r in records.values() {
            match r.session.state {
                SessionState::Running => c.running += 1,
                SessionState::Exited => c.exited += 1,
                SessionState::Lost => c.lost += 1,
            }
        }
        c
    }

    /// Sessions of the server of `uid` that still need it (not lost).
    pub fn live_in(&self, uid: u32) -> usize {
        self.lock()
            .values()
            .filter(|r| r.server_uid() == uid && r.session.state != SessionState::Lost)
            .count()
    }

    /// Sessions of the server of `uid`, any state.
    pub fn count_in(&self, uid: u32) -> usize {
        self.lock().values().filter(|r| r.server_uid() == uid).count()
    }

    /// A copy of every record (for cleanup and metrics).
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

    /// Runs `f` on the sessions `caller` may see (all, or those in `state`),
    /// oldest first, under the lock: no copies are made.
    fn with_listed<R>(
        &self,
        caller: &Caller,
        state: Option<SessionState>,
        f: impl FnOnce(&[&Session]) -> R,
    ) -> R {
        let records = self.lock();
        let mut listed: Vec<&Session> = records
            .values()
            .map(|r| &r.session)
            .filter(|s| caller.sees(s))
            .filter(|s| state.is_none_or(|st| s.state == st))
            .collect();
        listed.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        f(&listed)
    }

    /// `session.list`, as values.
    pub fn list(&self, caller: &Caller, state: Option<SessionState>) -> Vec<Session> {
        self.with_listed(caller, state, |listed| listed.iter().map(|s| (*s).clone()).collect())
    }

    /// `session.list`, serialised straight from the registry (the result
    /// `{"sessions": [...]}`, each session with only `fields`): 1000 whole
    /// sessions are about 400 kB of JSON, and cloning them first would cost
    /// more than writing them.
    pub fn list_encoded(
        &self,
        caller: &Caller,
        state: Option<SessionState>,
        fields: &[SessionField],
    ) -> Result<Box<RawValue>> {
        self.with_listed(caller, state, |listed| {
            let list = ProjectedList::new(listed.iter().copied(), fields);
            serde_json::value::to_raw_value(&list)
                .map_err(|e| Error::Internal(format!("encoding the session list: {e}")))
        })
    }

    /// Inserts `record` if the caps allow one more session running as its
    /// uid; lost sessions do not count.
    pub fn reserve(&self, record: Record, caps: Caps) -> std::result::Result<(), CapHit> {
        let mut records = self.lock();
        let live = |r: &&Record| r.session.state != SessionState::Lost;
        if records.values().filter(live).count() >= caps.total {
            return Err(CapHit::Total(caps.total));
        }
        let uid = record.server_uid();
        if records.values().filter(live).filter(|r| r.server_uid() == uid).count() >= caps.per_uid {
            return Err(CapHit::PerUid(caps.per_uid, uid));
        }
        records.insert(record.session.id.clone(), record);
        Ok(())
    }

    /// Replaces or inserts a record.
    pub fn put(&self, record: Record) {
        self.lock().insert(record.session.id.clone(), record);
    }

    /// Removes `id`; returns the record it held.
    pub fn remove(&self, id: &str) -> Option<Record> {
        self.lock().remove(id)
    }

    /// Marks `lost` every session `which` selects (their server is gone,
    /// or this daemon may not own it), logging `why` for each that was not
    /// lost already, and saves.
    pub fn mark_lost_where(&self, why: &str, which: impl Fn(&Record) -> bool) {
        let now = std::time::SystemTime::now();
        for rec in self.lock().values_mut().filter(|r| which(r)) {
            if rec.mark_lost(now) {
                tracing::warn!(session_id = %rec.session.id, uid = rec.server_uid(), "session lost: {why}");
            }
        }
        self.persist();
    }

    /// Applies `f` to the record `id`, if it exists.
    pub fn update<R>(&self, id: &str, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
        self.lock().get_mut(id).map(f)
    }
}
