//! The state on disk: session metadata that must survive the daemon (also
//! copied into each tmux session's `@ccm_meta` option). Two files in the
//! state directory:
//!
//! - `sessions.json`, the snapshot: every session, written atomically (temp
//!   file, fsync, rename, fsync of the directory);
//! - `journal.jsonl`, the changes since that snapshot: one JSON line per
//!   changed session (`{"put": Stored}` or `{"del": "id"}`) after a header
//!   line `{"base": K}`, appended and fdatasync'd in groups (one fsync for
//!   every change that arrived while the previous one ran).
//!
//! A change costs one appended line, whatever the number of sessions;
//! the journal is folded into a new snapshot once it outgrows
//! [`COMPACT_MIN_BYTES`] and twice the snapshot, so that work is constant
//! per change on average. The snapshot names the journal it expects
//! (`"journal": K`): a journal with another base is older than the
//! snapshot (a crash between writing the snapshot and starting the new
//! journal) and is ignored. A line that does not parse (a torn last line
//! after a crash) is skipped; each line is the whole state of one session,
//! so skipping one loses at most that change.
//!
//! All I/O here is blocking: the persister calls it on the blocking pool
//! ([`super::persist`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::types::Session;

/// The snapshot's file name inside the state directory.
pub const STATE_FILE: &str = "sessions.json";
/// The journal's file name inside the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// The journal is folded into the snapshot once it is larger than this
/// and than twice the snapshot.
pub const COMPACT_MIN_BYTES: u64 = 1 << 20;
/// Format version of the snapshot.
const FORMAT_VERSION: u32 = 1;
/// Mode of both files: root's alone.
const FILE_MODE: u32 = 0o600;

fn is_false(b: &bool) -> bool {
    !*b
}

/// One persisted session: the wire view plus what the daemon needs to find
/// it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The session as clients see it.
    pub session: Session,
    /// The systemd scope holding its processes, when cgroups are used.
    #[serde(default)]
    pub scope: Option<String>,
    /// A create's intent: saved before `new-session`, cleared once the
    /// session exists. Found on start with its tmux session, the create is
    /// completed from this metadata; without it, dropped.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pending: bool,
    /// Which of its uid's tmux servers it lives in (0: the first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shard: u32,
    /// A restore is due (the host rebooted; see `sessions::revive`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub restore_due: bool,
    /// When it was last brought back automatically (unix seconds, newest
    /// last, at most `sessions.restart_burst`), for the restart limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_restarts: Vec<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// [`Stored`] by reference, to journal a record without copying it.
#[derive(Serialize)]
pub struct StoredRef<'a> {
    /// See [`Stored`].
    pub session: &'a Session,
    /// See [`Stored`].
    pub scope: &'a Option<String>,
    /// See [`Stored`].
    #[serde(skip_serializing_if = "is_false")]
    pub pending: bool,
    /// See [`Stored`].
    #[serde(skip_serializing_if = "is_zero")]
    pub shard: u32,
    /// See [`Stored`].
    #[serde(skip_serializing_if = "is_false")]
    pub restore_due: bool,
    /// See [`Stored`].
    #[serde(skip_serializing_if = "<[u64]>::is_empty")]
    pub auto_restarts: &'a [u64],
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    /// The base of the journal that continues this snapshot.
    #[serde(default)]
    journal: u64,
    sessions: Vec<Stored>,
}

/// One journal line.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Base(u64),
    Put(Box<Stored>),
    Del(String),
}

/// A journal line, written without copying the record.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryRef<'a> {
    /// The whole session as it is now.
    Put(StoredRef<'a>),
    /// The session is gone.
    Del(&'a str),
}

impl EntryRef<'_> {
    /// Appends this entry as one line to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Serialising plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
        out.push(b'\n');
    }
}

/// Reads and writes the snapshot and the journal; see the module docs.
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    journal_path: PathBuf,
    /// Whether the journal on disk continues the snapshot: false until a
    /// snapshot started it, and after a failed write (the next save is a
    /// whole snapshot). No descriptor is kept open between saves (it is
    /// cheap next to the fsync, and a filesystem with no file open for
    /// writing can be remounted read-only).
    journal_ok: bool,
    journal_len: u64,
    snapshot_len: u64,
    base: u64,
}

impl Store {
    /// A store in `dir` (created with mode 0700 when missing, and refused
    /// when others could write to it).
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        crate::dirs::check_trusted(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            path: dir.join(STATE_FILE),
            journal_path: dir.join(JOURNAL_FILE),
            journal_ok: false,
            journal_len: 0,
            snapshot_len: 0,
            base: 0,
        })
    }

    /// The snapshot's path (what health and errors name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the saved sessions: the snapshot, then the journal that
    /// continues it. A missing file is empty; a corrupt one, or anything
    /// but a regular file in its place, is logged and moved aside (never
    /// silently overwritten); without a usable snapshot, the journal alone
    /// still gives what it holds.
    pub fn load(&mut self) -> Vec<Stored> {
        let snapshot = read_snapshot(&self.path);
        let snap_base = snapshot.as_ref().map(|s| s.journal);
        self.snapshot_len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let mut sessions: std::collections::BTreeMap<String, Stored> = snapshot
            .map(|s| s.sessions.into_iter().map(|st| (st.session.id.clone(), st)).collect())
            .unwrap_or_default();
        let mut base = snap_base.unwrap_or(0);
        if let Some((journal_base, entries)) = read_journal(&self.journal_path) {
            base = base.max(journal_base);
            if snap_base.is_none_or(|b| b == journal_base) {
                for entry in entries {
                    match entry {
                        Entry::Put(st) => {
                            sessions.insert(st.session.id.clone(), *st);
                        }
                        Entry::Del(id) => {
                            sessions.remove(&id);
                        }
                        Entry::Base(_) => {}
                    }
                }
            } else {
                tracing::info!(path = %self.journal_path.display(), journal_base, snapshot_base = ?snap_base,
                    "the journal predates the state file (everything in it is in the snapshot); ignored");
            }
        }
        self.base = base;
        sessions.into_values().collect()
    }

    /// Whether the next save must be a whole snapshot: no journal is open
    /// (at start, after a failure), or it has grown past its bound.
    pub fn needs_compaction(&self) -> bool {
        !self.journal_ok
            || self.journal_len > COMPACT_MIN_BYTES.max(self.snapshot_len.saturating_mul(2))
    }

    /// Appends `lines` (whole journal lines) and makes them durable. On
    /// failure the torn bytes are cut off (best effort) and the journal is
    /// closed, so the next save is a whole snapshot.
    pub fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if !self.journal_ok {
            return Err(std::io::Error::other("the journal does not continue the snapshot"));
        }
        self.journal_ok = false;
        // Without O_CREAT: a journal removed behind our back is an error
        // (and a new snapshot), not a fresh journal without its header.
        let mut file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.journal_path)?;
        match file.write_all(lines).and_then(|()| file.sync_data()) {
            Ok(()) => {
                self.journal_len += lines.len() as u64;
                self.journal_ok = true;
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(self.journal_len);
                Err(e)
            }
        }
    }

    /// Writes every session as the new snapshot and starts an empty
    /// journal after it.
    pub fn compact(&mut self, sessions: Vec<Stored>) -> std::io::Result<()> {
        self.journal_ok = false;
        let next = self.base + 1;
        let data =
            serde_json::to_vec(&Snapshot { version: FORMAT_VERSION, journal: next, sessions })?;
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp.{}", std::process::id()));
        replace_file(&tmp, &self.path, &data)?;
        let header = format!("{{\"base\":{next}}}\n");
        let jtmp = self.dir.join(format!("{JOURNAL_FILE}.tmp.{}", std::process::id()));
        replace_file(&jtmp, &self.journal_path, header.as_bytes())?;
        File::open(&self.dir)?.sync_all()?;
        self.journal_ok = true;
        self.journal_len = header.len() as u64;
        self.snapshot_len = data.len() as u64;
        self.base = next;
        Ok(())
    }
}

/// Writes `data` to `tmp`, fsyncs it and renames it over `path` (moving
/// aside whatever is at `path` if it is not a regular file: a rename
/// cannot replace a directory). `tmp` is removed on failure.
fn replace_file(tmp: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_file() {
                move_aside(path, "is not a regular file")?;
            }
        }
        std::fs::rename(tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Renames `path` to `<path>.corrupt.<unix time>[.N]`, keeping any earlier
/// copy, and says so in the log.
fn move_aside(path: &Path, why: &str) -> std::io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut aside = path.with_file_name(format!("{name}.corrupt.{secs}"));
    let mut n = 1;
    while std::fs::symlink_metadata(&aside).is_ok() {
        aside = path.with_file_name(format!("{name}.corrupt.{secs}.{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside)?;
    tracing::error!(path = %path.display(), moved_to = %aside.display(), "{why}; moved aside");
    Ok(aside)
}

/// The content of `path` if it is a regular file; anything else in its
/// place is moved aside. `None` when there is nothing to read.
fn read_regular(path: &Path) -> Option<Vec<u8>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => {
            let _ = move_aside(path, "not a regular file in place of a state file");
            return None;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot look at a state file");
            return None;
        }
    }
    match std::fs::read(path) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read a state file");
            None
        }
    }
}

fn read_snapshot(path: &Path) -> Option<Snapshot> {
    let text = read_regular(path)?;
    match serde_json::from_slice::<Snapshot>(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = move_aside(
                path,
                &format!("state file is corrupt ({e}); sessions are re-adopted from tmux"),
            );
            None
        }
    }
}

/// The journal's base and its entries; lines that do not parse are
/// skipped (and counted in the log).
fn read_journal(path: &Path) -> Option<(u64, Vec<Entry>)> {
    let text = read_regular(path)?;
    let mut lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let base = match lines.next().map(serde_json::from_slice::<Entry>) {
        Some(Ok(Entry::Base(b))) => b,
        _ => {
            let _ = move_aside(path, "the journal has no header line");
            return None;
        }
    };
    let mut entries = Vec::new();
    let mut bad = 0usize;
    for line in lines {
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => entries.push(e),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        // A crash in the middle of a write leaves a torn last line: normal.
        tracing::warn!(path = %path.display(), skipped = bad, "journal lines that do not parse were skipped");
    }
    Some((base, entries))
}

/// Lines of a journal as they are on disk (tests).
#[cfg(test)]
fn journal_lines(path: &Path) -> Vec<String> {
    use std::io::BufRead;
    std::io::BufReader::new(File::open(path).unwrap()).lines().map(|l| l.unwrap()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::SessionState;

    fn session(id: &str) -> Stored {
        let s: Session = serde_json::from_value(serde_json::json!({
            "id": id, "name": null, "tmux_session": format!("ccmanager_sess_{id}"),
            "command": ["sleep", "1"], "cwd": "/", "state": "running", "exit_status": null,
            "pid": null, "created_at": "2026-01-01T00:00:00Z", "last_activity_at": null,
            "ended_at": null, "owner_uid": 1000, "limits": {}, "keep": false
        }))
        .unwrap();
        Stored {
            session: s,
            scope: None,
            pending: false,
            shard: 0,
            restore_due: false,
            auto_restarts: vec![],
        }
    }

    fn put(st: &Stored) -> Vec<u8> {
        let mut out = Vec::new();
        let r = StoredRef {
            session: &st.session,
            scope: &st.scope,
            pending: st.pending,
            shard: st.shard,
            restore_due: st.restore_due,
            auto_restarts: &st.auto_restarts,
        };
        EntryRef::Put(r).encode(&mut out);
        out
    }

    fn del(id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        EntryRef::Del(id).encode(&mut out);
        out
    }

    fn ids(v: &[Stored]) -> Vec<String> {
        v.iter().map(|s| s.session.id.clone()).collect()
    }

    fn open(dir: &Path) -> Store {
        let mut s = Store::open(dir).unwrap();
        s.load();
        s
    }

    #[test]
    fn snapshot_plus_journal_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        assert!(s.needs_compaction(), "nothing open yet");
        s.compact(vec![session("a"), session("b")]).unwrap();
        let mut c = session("c");
        c.pending = true;
        s.append(&put(&c)).unwrap();
        s.append(&del("a")).unwrap();
        let mut b = session("b");
        b.session.state = SessionState::Exited;
        s.append(&put(&b)).unwrap();
        // A crash in the middle of a line.
        let torn = &put(&session("d"))[..40];
        let journal = dir.path().join(JOURNAL_FILE);
        OpenOptions::new().append(true).open(&journal).unwrap().write_all(torn).unwrap();
        let loaded = open(dir.path()).load();
        assert_eq!(ids(&loaded), ["b", "c"]);
        assert_eq!(loaded[0].session.state, SessionState::Exited);
        assert!(loaded[1].pending, "the intent survives");
        assert_eq!(journal_lines(&dir.path().join(JOURNAL_FILE)).len(), 5);
    }

    #[test]
    fn a_journal_older_than_the_snapshot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.compact(vec![session("a")]).unwrap();
        s.append(&put(&session("b"))).unwrap();
        let old = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        s.compact(vec![session("a")]).unwrap();
        // A crash after the new snapshot, before the new journal.
        std::fs::write(dir.path().join(JOURNAL_FILE), old).unwrap();
        assert_eq!(ids(&open(dir.path()).load()), ["a"], "b was removed after that journal");
    }

    #[test]
    fn a_directory_in_place_of_the_state_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(STATE_FILE)).unwrap();
        std::fs::write(dir.path().join(STATE_FILE).join("x"), "x").unwrap();
        let mut s = open(dir.path());
        assert!(dir.path().join(STATE_FILE).symlink_metadata().is_err(), "moved aside on load");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("sessions.json.corrupt."))
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].path().join("x").exists(), "kept, not deleted");
        // ... and at runtime, before the rename that would fail.
        std::fs::create_dir(dir.path().join(STATE_FILE)).unwrap();
        s.compact(vec![session("a")]).unwrap();
        assert!(dir.path().join(STATE_FILE).is_file());
        assert_eq!(ids(&open(dir.path()).load()), ["a"]);
    }

    #[test]
    fn a_corrupt_snapshot_is_moved_aside_and_the_journal_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.compact(vec![session("a")]).unwrap();
        s.append(&put(&session("b"))).unwrap();
        std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        assert_eq!(ids(&open(dir.path()).load()), ["b"]);
        assert!(!dir.path().join(STATE_FILE).exists());
    }

    #[test]
    fn the_journal_grows_until_it_outgrows_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.compact(vec![session("a")]).unwrap();
        assert!(!s.needs_compaction());
        let line = put(&session("b"));
        while s.journal_len <= COMPACT_MIN_BYTES {
            s.append(&line).unwrap();
        }
        assert!(s.needs_compaction());
    }
}
