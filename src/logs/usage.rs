//! The daemon's pass over every log, each `cleanup.interval` (with the
//! reaper): how much disk the logs take, the total cap
//! (`logs.max_bytes_total`: the least recently written segments go first,
//! so the oldest sessions' oldest bytes; never a log's newest segment, which
//! its logger may be writing), and the removal of orphan logs (of sessions
//! the daemon no longer knows: killed, or made by another daemon) once
//! `cleanup.exited_grace` has passed since their last write.
//!
//! Files are looked at with `fstatat(AT_SYMLINK_NOFOLLOW)` on the log
//! directory's fd and removed with `unlinkat`: nothing an owner plants is
//! followed or opened (a FIFO is never opened at all); only regular files
//! count. At most [`MAX_LOGS`] log directories are looked at per pass.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType};

use super::format::{self, FileKind, Kind, Record, RECORD_LEN};
use super::reader::Log;
use crate::config::Config;

/// Most log directories one pass looks at.
pub const MAX_LOGS: usize = 100_000;
/// Gap records are the first of a segment's index: this many are read.
const HEAD_RECORDS: usize = 2;

/// What the last pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Disk the logs take (allocated blocks, as `du`), after the pass.
    pub bytes: u64,
    /// Log directories.
    pub logs: u64,
    /// Bytes the logs on disk say were not logged (gap records).
    pub gap_bytes: u64,
}

/// What the passes did, for metrics and health: a cheap shared handle.
#[derive(Debug, Default)]
pub struct LogStats {
    last: Mutex<Option<Usage>>,
    segments_dropped: AtomicU64,
    orphans_removed: AtomicU64,
}

impl LogStats {
    /// The last pass's usage, if one ran.
    pub fn usage(&self) -> Option<Usage> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Segments removed to keep `logs.max_bytes_total`, since start.
    pub fn segments_dropped(&self) -> u64 {
        self.segments_dropped.load(Ordering::Relaxed)
    }

    /// Orphan logs removed, since start.
    pub fn orphans_removed(&self) -> u64 {
        self.orphans_removed.load(Ordering::Relaxed)
    }
}

struct Segment {
    start: u64,
    disk: u64,
    mtime: SystemTime,
}

struct Scanned {
    id: String,
    /// Data segments, ascending by start, with their index's disk added.
    segments: Vec<Segment>,
    disk: u64,
    last_write: SystemTime,
    gap_bytes: u64,
}

/// One pass (blocking I/O: run it off the runtime). `known`: the ids the
/// registry holds; any other log is an orphan.
pub fn pass(config: &Config, known: &HashSet<String>, stats: &LogStats) -> io::Result<Usage> {
    let root = config.logs_dir();
    let now = SystemTime::now();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(&root)?.take(MAX_LOGS) {
        let Ok(entry) = entry else { continue };
        let Some(id) = entry.file_name().to_str().map(str::to_string) else { continue };
        if !crate::protocol::types::valid_id(&id) {
            continue;
        }
        match scan(&root.join(&id), id) {
            Ok(s) => logs.push(s),
            Err(e) => tracing::debug!(dir = %entry.path().display(), error = %e, "log not scanned"),
        }
    }
    let grace = config.cleanup.exited_grace.0;
    let mut usage = Usage::default();
    let mut kept = Vec::new();
    for log in logs {
        let orphan = !known.contains(&log.id);
        let idle =
            grace.is_some_and(|g| now.duration_since(log.last_write).unwrap_or_default() >= g);
        if orphan && idle {
            match super::setup::remove(&root.join(&log.id)) {
                Ok(()) => {
                    stats.orphans_removed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(session_id = %log.id, "removed the log of a session that no longer exists");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(session_id = %log.id, error = %e, "cannot remove an orphan log")
                }
            }
        }
        // A log counts for at most its own cap (the logger keeps it there):
        // files an owner plants in its log directory beyond that are its own
        // disk use, like any file it writes, and must not make the total
        // cap drop the history of everyone else's logs.
        usage.bytes += log.disk.min(config.logs.max_bytes_per_session.0);
        usage.logs += 1;
        usage.gap_bytes += log.gap_bytes;
        kept.push(log);
    }
    let cap = config.logs.max_bytes_total.0;
    if usage.bytes > cap {
        let dropped = enforce_total(&root, &mut kept, usage.bytes - cap);
        usage.bytes = usage.bytes.saturating_sub(dropped.1);
        stats.segments_dropped.fetch_add(dropped.0, Ordering::Relaxed);
        tracing::info!(
            segments = dropped.0,
            bytes = dropped.1,
            cap,
            "logs.max_bytes_total: dropped the oldest log segments"
        );
    }
    *stats.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
    Ok(usage)
}

/// Removes segments, least recently written first, never a log's newest,
/// until `excess` bytes are gone. Returns (segments, bytes) removed.
fn enforce_total(root: &Path, logs: &mut [Scanned], excess: u64) -> (u64, u64) {
    let mut candidates: Vec<(SystemTime, usize, u64, u64)> = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let older = log.segments.len().saturating_sub(1);
        for s in &log.segments[..older] {
            candidates.push((s.mtime, i, s.start, s.disk));
        }
    }
    candidates.sort();
    let (mut count, mut freed) = (0, 0);
    for (_, i, start, disk) in candidates {
        if freed >= excess {
            break;
        }
        let Ok(log) = Log::open(&root.join(&logs[i].id)) else { continue };
        let mut gone = false;
        for name in [format::data_name(start), format::index_name(start)] {
            gone |= rustix::fs::unlinkat(&log, name.as_str(), AtFlags::empty()).is_ok();
        }
        if gone {
            count += 1;
            freed += disk;
        }
    }
    (count, freed)
}

/// The segments, disk, last write and gap bytes of one log directory.
fn scan(dir: &Path, id: String) -> io::Result<Scanned> {
    let log = Log::open(dir)?;
    let dir_stat = rustix::fs::fstat(&log)?;
    let mut s = Scanned {
        id,
        segments: Vec::new(),
        disk: blocks(&dir_stat),
        last_write: mtime(&dir_stat),
        gap_bytes: 0,
    };
    for (start, kind) in log.list()? {
        let name = match kind {
            FileKind::Data => format::data_name(start),
            FileKind::Index => format::index_name(start),
        };
        let Ok(st) = rustix::fs::statat(&log, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            continue;
        }
        let disk = blocks(&st);
        s.disk += disk;
        s.last_write = s.last_write.max(mtime(&st));
        match kind {
            FileKind::Data => s.segments.push(Segment { start, disk, mtime: mtime(&st) }),
            FileKind::Index => {
                // Listed after its data (same start): its disk counts with it.
                if let Some(seg) = s.segments.last_mut().filter(|g| g.start == start) {
                    seg.disk += disk;
                }
                s.gap_bytes += head_gaps(&log, &name);
            }
        }
    }
    Ok(s)
}

/// Bytes lost according to the first records of an index (where a logger
/// writes its gap records).
fn head_gaps(log: &Log, name: &str) -> u64 {
    use std::os::unix::fs::FileExt;
    let Ok((file, _)) = log.open_file(name) else { return 0 };
    let mut b = [0u8; RECORD_LEN * HEAD_RECORDS];
    let got = file.read_at(&mut b, 0).unwrap_or(0);
    b[..got / RECORD_LEN * RECORD_LEN]
        .chunks(RECORD_LEN)
        .filter_map(Record::decode)
        .filter(|r| r.kind == Kind::Gap)
        .map(|r| r.lost)
        .sum()
}

fn blocks(st: &rustix::fs::Stat) -> u64 {
    (st.st_blocks.max(0) as u64).saturating_mul(512)
}

/// A file's mtime, no later than now: the owner sets it (`touch -d 2100`),
/// and a time in the future must not keep a segment last in line for the
/// total cap, nor an orphan log from ever being idle.
fn mtime(st: &rustix::fs::Stat) -> SystemTime {
    let at =
        Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec.clamp(0, 999_999_999) as u32);
    (SystemTime::UNIX_EPOCH + at).min(SystemTime::now())
}
