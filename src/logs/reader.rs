//! Reading a session's log by offset ([`Log`]), as root, in a directory its
//! owner writes.
//!
//! Everything is reached through the directory's fd (`openat`), never by a
//! path a link could redirect: files are opened `O_NOFOLLOW | O_NONBLOCK`
//! (a planted symlink fails, a planted FIFO neither blocks the open nor is
//! read: only regular files are), a listing considers at most
//! [`MAX_ENTRIES`] names, a read at most [`MAX_CHUNK`] bytes, an index at
//! most [`MAX_INDEX_BYTES`]. A segment's name is trusted only as far as the
//! next segment's: one that claims to run past the next one's start is cut
//! there. A segment that disappears while it is read (the cap dropped it)
//! makes the read start again on a fresh listing.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, CWD};

use super::format::{self, FileKind, Kind, Record, RECORD_LEN};

/// Most directory entries one listing considers; the rest are ignored. A
/// logger keeps about 9 segments (cap / 8 each) and their indexes.
pub const MAX_ENTRIES: usize = 4096;
/// Most bytes one [`Log::read`] returns, whatever it is asked.
pub const MAX_CHUNK: usize = 8 << 20;
/// Most bytes of one index read (32 768 records; a logger writes about one
/// per 4 KiB of output).
pub const MAX_INDEX_BYTES: u64 = 1 << 20;
/// A read that finds a segment gone (dropped by a cap meanwhile) is tried
/// again this many times.
const ATTEMPTS: usize = 3;

/// A session's log directory, open for reading.
#[derive(Debug)]
pub struct Log {
    dir: OwnedFd,
    path: PathBuf,
    /// The directory's owner: every file read must be theirs.
    owner: u32,
}

/// What a log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// The oldest offset still kept.
    pub first: u64,
    /// Just past the newest byte.
    pub end: u64,
    /// The logger saw the pane close its pipe: nothing more will come (until
    /// a logger is started again on adoption).
    pub closed: bool,
}

/// Bytes read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes, contiguous from `offset`.
    pub data: Vec<u8>,
    /// Offset of `data[0]`: the one asked, or later when it was dropped by
    /// the cap or not logged (a gap).
    pub offset: u64,
    /// `offset + data.len()`.
    pub next_offset: u64,
    /// The oldest offset the log holds.
    pub first_offset: u64,
    /// `next_offset` is the end of the log.
    pub end: bool,
}

fn invalid_data(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

impl Log {
    /// Opens the log directory `dir` (not following a symlink at `dir`).
    pub fn open(dir: &Path) -> io::Result<Log> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, dir, flags, Mode::empty()).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", dir.display()))
        })?;
        let st = rustix::fs::fstat(&fd)?;
        // A mount on the log directory (an owner's FUSE mount may answer
        // slowly or never): the directory must be on its parent's device.
        if let Some(parent) = dir.parent() {
            let above = rustix::fs::stat(parent)?;
            if above.st_dev != st.st_dev {
                return Err(invalid_data(dir, "is a mount point, not a log directory"));
            }
        }
        Ok(Log { dir: fd, path: dir.to_owned(), owner: st.st_uid })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The uid owning the directory (the session's owner: the daemon made
    /// and chowned it, inside a root-owned directory).
    pub fn owner(&self) -> io::Result<u32> {
        Ok(self.owner)
    }

    /// The first offsets of the segments, ascending. Only names of the
    /// exact form `<20 digits>.log` count; at most [`MAX_ENTRIES`] entries
    /// are looked at.
    pub fn segments(&self) -> io::Result<Vec<u64>> {
        Ok(self.list()?.into_iter().filter(|(_, k)| *k == FileKind::Data).map(|(o, _)| o).collect())
    }

    /// Every segment file name (data and index), sorted by offset.
    pub fn list(&self) -> io::Result<Vec<(u64, FileKind)>> {
        let mut dir = rustix::fs::Dir::read_from(&self.dir)?;
        let mut found = Vec::new();
        for entry in dir.by_ref().take(MAX_ENTRIES) {
            let entry = entry?;
            if let Some(parsed) = format::parse_name(entry.file_name().to_bytes()) {
                found.push(parsed);
            }
        }
        found.sort_by_key(|&(o, k)| (o, k == FileKind::Index));
        Ok(found)
    }

    /// Opens `name` in the directory: a regular file, not through a link,
    /// without blocking on a FIFO. Returns the file and its size.
    pub fn open_file(&self, name: &str) -> io::Result<(File, u64)> {
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = rustix::fs::openat(&self.dir, name, flags, Mode::empty()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}/{name}: {e}", self.path.display()),
            )
        })?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(invalid_data(&self.path.join(name), "is not a regular file"));
        }
        // A hard link the owner made to a file of someone else's (possible
        // where fs.protected_hardlinks is 0) is never read as a segment.
        if st.st_uid != self.owner || st.st_nlink != 1 {
            return Err(invalid_data(
                &self.path.join(name),
                "is not the log owner's own file (another owner, or a hard link)",
            ));
        }
        Ok((File::from(fd), st.st_size.max(0) as u64))
    }

    /// The offsets the log holds, and whether it is complete.
    pub fn extent(&self) -> io::Result<Extent> {
        retry(|| {
            let starts = self.segments()?;
            let Some(&last) = starts.last() else {
                return Ok(Extent { first: 0, end: 0, closed: false });
            };
            let (_, size) = self.open_file(&format::data_name(last))?;
            let end =
                last.checked_add(size).ok_or_else(|| invalid_data(&self.path, "size overflow"))?;
            let closed = self.last_record(last)?.is_some_and(|r| r.kind == Kind::Eof);
            Ok(Extent { first: starts[0], end, closed })
        })
    }

    /// The last record of segment `start`'s index, if any (a missing index
    /// is no record).
    fn last_record(&self, start: u64) -> io::Result<Option<Record>> {
        let (file, size) = match self.open_file(&format::index_name(start)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let whole = size / RECORD_LEN as u64 * RECORD_LEN as u64;
        if whole == 0 {
            return Ok(None);
        }
        let mut b = [0u8; RECORD_LEN];
        file.read_exact_at(&mut b, whole - RECORD_LEN as u64)?;
        Ok(Record::decode(&b))
    }

    /// The records of segment `start`'s index (at most [`MAX_INDEX_BYTES`]
    /// of it; records that do not parse are skipped).
    pub fn index(&self, start: u64) -> io::Result<Vec<Record>> {
        let (file, size) = self.open_file(&format::index_name(start))?;
        let len = size.min(MAX_INDEX_BYTES) as usize / RECORD_LEN * RECORD_LEN;
        let mut b = vec![0u8; len];
        let got = read_at_most(&file, &mut b, 0)?;
        Ok(b[..got / RECORD_LEN * RECORD_LEN]
            .chunks(RECORD_LEN)
            .filter_map(Record::decode)
            .collect())
    }

    /// What [`Log::read`] gives for a log with no segment yet (0 is its
    /// end; past it is an error).
    pub fn empty_read(offset: u64) -> io::Result<Chunk> {
        if offset == 0 {
            Ok(empty(0, 0, true))
        } else {
            Err(past_end(offset, 0))
        }
    }

    /// At most `max` (and [`MAX_CHUNK`]) contiguous bytes from `offset`; an
    /// `offset` before the oldest byte kept reads from the oldest, one in a
    /// gap from the gap's end; past the end is an `InvalidInput` error that
    /// names the end.
    pub fn read(&self, offset: u64, max: usize) -> io::Result<Chunk> {
        retry(|| self.try_read(offset, max.min(MAX_CHUNK)))
    }

    fn try_read(&self, offset: u64, max: usize) -> io::Result<Chunk> {
        let starts = self.segments()?;
        let Some(&last) = starts.last() else { return Log::empty_read(offset) };
        let (last_file, last_size) = self.open_file(&format::data_name(last))?;
        let end =
            last.checked_add(last_size).ok_or_else(|| invalid_data(&self.path, "size overflow"))?;
        if offset > end {
            return Err(past_end(offset, end));
        }
        let first = starts[0];
        let mut pos = offset.max(first);
        let mut data: Vec<u8> = Vec::new();
        let mut data_offset = None;
        let mut i = starts.partition_point(|&s| s <= pos).saturating_sub(1);
        let mut last_file = Some(last_file);
        while i < starts.len() && data.len() < max {
            let start = starts[i];
            let (file, size) = if i + 1 == starts.len() {
                (
                    last_file
                        .take()
                        .ok_or_else(|| invalid_data(&self.path, "segment read twice"))?,
                    last_size,
                )
            } else {
                self.open_file(&format::data_name(start))?
            };
            // Never trust a segment beyond the next one's start.
            let limit = starts.get(i + 1).copied().unwrap_or(end);
            let seg_end = start.saturating_add(size).min(limit);
            if pos < start {
                if data_offset.is_some() {
                    break; // a gap: the chunk stays contiguous
                }
                pos = start;
            }
            if pos < seg_end {
                let want = ((seg_end - pos) as usize).min(max - data.len());
                let at = data.len();
                data.resize(at + want, 0);
                let got = read_at_most(&file, &mut data[at..], pos - start)?;
                data.truncate(at + got);
                data_offset.get_or_insert(pos);
                pos += got as u64;
                if got < want {
                    break; // shrunk under us: stop where the bytes stop
                }
            }
            i += 1;
        }
        let data_offset = data_offset.unwrap_or(pos);
        let next_offset = data_offset + data.len() as u64;
        Ok(Chunk {
            data,
            offset: data_offset,
            next_offset,
            first_offset: first,
            end: next_offset >= end,
        })
    }
}

/// A follower's place in a log, kept open between reads: the segment it
/// reads and that segment's file. [`Log::follow`] reads through it without
/// listing the directory or opening a file per read: a subscriber that
/// keeps up with a busy pane reads a few KiB at a time, and the listing and
/// the open were a third of the daemon's CPU per notification (perf, 50 MB
/// streamed: futex hops of the blocking pool 24%, getdents 6%, openat 6%).
#[derive(Debug, Default)]
pub struct Cursor {
    open: Option<(u64, File)>,
}

/// What [`Log::follow`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// Bytes from the offset asked.
    Data(Vec<u8>),
    /// No byte at the offset yet, as far as the segment held can tell.
    AtEnd,
    /// Ask [`Log::read`].
    Unknown,
}

impl Cursor {
    /// A cursor with nothing open yet (its first read lists the log).
    pub fn new() -> Cursor {
        Cursor::default()
    }
}

impl Log {
    /// At most `max` bytes from `offset` for a follower, through `cursor`:
    /// from the segment it holds, then from the one that starts exactly
    /// where that one ends (the logger's next segment, opened by its name).
    /// [`Followed::AtEnd`] when neither has a byte at `offset` and the held
    /// segment is still in the log (caught up, unless the logger started a
    /// segment after a gap: look with [`Log::read`] now and then);
    /// [`Followed::Unknown`] when the cursor cannot tell (nothing held, the
    /// cap dropped the held segment): read with [`Log::read`], which lists
    /// the log and knows. Nothing here is
    /// trusted more than there: the bytes are the owner's, read from
    /// regular files opened `O_NOFOLLOW` in the directory, at most `max`.
    ///
    /// Reads of a segment's page-cached tail and the open of one name are
    /// done by the caller's thread (an async worker): they take
    /// microseconds, and a hop to the blocking pool per read cost more than
    /// the read.
    pub fn follow(&self, cursor: &mut Cursor, offset: u64, max: usize) -> Followed {
        let max = max.min(MAX_CHUNK);
        for _ in 0..2 {
            let Some((start, file)) = cursor.open.as_ref() else { return Followed::Unknown };
            let Some(at) = offset.checked_sub(*start) else { return Followed::Unknown };
            // A segment the cap dropped is still readable through its fd, but
            // a follower that far behind gets a reset (Log::read knows).
            if !rustix::fs::fstat(file).is_ok_and(|st| st.st_nlink > 0) {
                return Followed::Unknown;
            }
            let mut data = vec![0u8; max];
            let Ok(got) = read_at_most(file, &mut data, at) else { return Followed::Unknown };
            if got > 0 {
                data.truncate(got);
                return Followed::Data(data);
            }
            // Nothing more here: the logger may have moved on to the segment
            // that starts at this very offset.
            match self.open_file(&format::data_name(offset)) {
                Ok((next, _)) => cursor.open = Some((offset, next)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Followed::AtEnd,
                Err(_) => return Followed::Unknown,
            }
        }
        Followed::Unknown
    }

    /// Points `cursor` at the segment holding `offset` (after a [`Log::read`]
    /// that got there the slow way); a log with no such segment leaves it
    /// empty.
    pub fn seek(&self, cursor: &mut Cursor, offset: u64) {
        cursor.open = None;
        let Ok(starts) = self.segments() else { return };
        let i = starts.partition_point(|&s| s <= offset);
        let Some(&start) = i.checked_sub(1).and_then(|i| starts.get(i)) else { return };
        if let Ok((file, _)) = self.open_file(&format::data_name(start)) {
            cursor.open = Some((start, file));
        }
    }
}

fn empty(offset: u64, first: u64, end: bool) -> Chunk {
    Chunk { data: Vec::new(), offset, next_offset: offset, first_offset: first, end }
}

fn past_end(offset: u64, end: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{offset} is past the end of the log ({end})"),
    )
}

/// Runs `f` again when a file it opened was gone (a cap dropped it).
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < ATTEMPTS => attempt += 1,
            r => return r,
        }
    }
}

/// Reads into `buf` from `at` until it is full or the file ends.
fn read_at_most(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The directory's fd, for `*at` calls relative to it (the logger's
/// segment files, the daemon's `fstatat`/`unlinkat`).
impl AsFd for Log {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }
}
