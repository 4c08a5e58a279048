//! The logger, `ccmanagerd __log` ([`super::args`]): the child of the tmux
//! server that `pipe-pane -O` feeds with every byte a pane prints. It runs
//! as the session's owner, with plain blocking I/O and one 64 KiB buffer
//! (no runtime, no threads: it costs well under 256 KiB PSS, measured in
//! docs/performance.md), so output keeps being logged while the daemon
//! restarts or crashes.
//!
//! tmux buffers without limit for a pipe reader that stalls (+107 MB for
//! 100 MB of output, DESIGN.md), so the logger never stops reading: a write
//! that fails drops its bytes, the offset moves on, and the next segment
//! that can be opened (tried at most once a second) starts with a gap
//! record saying how many bytes were lost. Segments roll at an eighth of
//! the cap; before a new one is made, the oldest are removed until the new
//! one fits in the cap, so the log (files counted in whole 4 KiB blocks, as
//! `du` does) never exceeds it. On EOF (the pane is gone, or its pipe was
//! closed) it writes an eof record and exits.
//!
//! The current segment's files are closed after [`IDLE_CLOSE`] without
//! output and reopened on the next byte: an idle session holds no file open
//! for writing, so the state filesystem can still be remounted read-only
//! (tests/durability.rs does; with the files held open it was refused).
//!
//! At start it continues after the newest segment, with a gap record when
//! it is not the log's first logger (a restart) or `--adopted`. A previous
//! logger of the same pane may still be writing its last bytes: the
//! directory's `flock` is waited for (bounded by [`LOCK_WAIT`], during which
//! tmux buffers).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};

use super::args::{self, LogArgs};
use super::format::{self, Kind, Record, MARK_EVERY_BYTES, MARK_EVERY_MS};
use super::reader::Log;

/// Bytes read from the pane at once: every byte of the buffer is private
/// memory of each logger, 16 KiB reads cost a few syscalls per 64 KiB a
/// pipe holds.
const READ_BYTES: usize = 16 << 10;
/// Smallest and largest segment (an eighth of the cap in between).
const SEGMENT_MIN: u64 = 64 << 10;
/// See [`SEGMENT_MIN`].
const SEGMENT_MAX: u64 = 64 << 20;
/// Disk allocation unit the cap is counted in (`du` counts blocks).
pub const BLOCK: u64 = 4096;
/// How long a logger waits for the previous logger of its pane to finish.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// A segment's files are closed after this long without output.
pub const IDLE_CLOSE: Duration = Duration::from_secs(2);
/// After a failed write or open, the next segment is tried this much later.
const RETRY_MS: u64 = 1000;
/// Mode of segment files: the owner's alone.
const FILE_MODE: u32 = 0o600;

/// `bytes` rounded up to whole blocks.
pub fn on_disk(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK) * BLOCK
}

/// The segment size for a cap: an eighth, within [64 KiB, 64 MiB].
pub fn segment_bytes(cap: u64) -> u64 {
    (cap / 8).clamp(SEGMENT_MIN, SEGMENT_MAX) / BLOCK * BLOCK
}

/// The disk a full segment of `seg` bytes may take, its index included
/// (one time mark per [`MARK_EVERY_BYTES`] at most, plus a few records).
fn segment_reserve(seg: u64) -> u64 {
    let records = seg / MARK_EVERY_BYTES + 4;
    on_disk(seg) + on_disk(records * format::RECORD_LEN as u64)
}

/// The segment being written.
struct Current {
    start: u64,
    /// Its files, while open: they are closed after [`IDLE_CLOSE`] without
    /// output, so an idle session holds no file open for writing (a
    /// filesystem is remounted read-only only when none is).
    files: Option<(File, File)>,
    len: u64,
    index_len: u64,
}

impl Current {
    /// The data and index files, reopened if they were closed; a data file
    /// that is not as long as what was written to it (removed, truncated)
    /// is an error: the bytes go to a new segment.
    fn files(&mut self, log: &Log) -> io::Result<&mut (File, File)> {
        if self.files.is_none() {
            let data = create(log, &format::data_name(self.start))?;
            if data.metadata()?.len() != self.len {
                return Err(io::Error::other("the segment changed while closed"));
            }
            let index = create(log, &format::index_name(self.start))?;
            self.files = Some((data, index));
        }
        self.files.as_mut().ok_or_else(|| io::Error::other("no files"))
    }
}

/// The logger's state; see the module documentation.
pub struct Logger {
    log: Log,
    cap: u64,
    seg: u64,
    /// Closed segments, oldest first: (start, bytes on disk).
    old: VecDeque<(u64, u64)>,
    old_bytes: u64,
    cur: Option<Current>,
    /// Offset of the next byte the pane prints.
    offset: u64,
    /// Bytes dropped since the last gap record.
    lost: u64,
    /// Whether the next segment starts with a gap record.
    gap: bool,
    retry_at_ms: u64,
    last_mark_ms: u64,
    since_mark: u64,
}

/// Runs the logger mode; never returns.
pub fn main(argv: Vec<OsString>) -> ! {
    let code = match args::parse(argv).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)) {
        Ok(a) => match Logger::start(&a) {
            Ok(mut logger) => match logger.run(&mut Stdin, Some(rustix::stdio::stdin())) {
                Ok(()) => 0,
                Err(e) => fail(&a, e),
            },
            Err(e) => fail(&a, e),
        },
        Err(e) => {
            eprintln!("ccmanagerd {}: {e}", args::MODE);
            2
        }
    };
    std::process::exit(code)
}

/// fd 0 read directly (std's `Stdin` would add a buffer of its own).
struct Stdin;

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(rustix::stdio::stdin(), buf)?)
    }
}

fn fail(a: &LogArgs, e: io::Error) -> i32 {
    // stderr is /dev/null under pipe-pane; this is for a person running it.
    eprintln!("ccmanagerd {}: {}: {e}", args::MODE, a.dir.display());
    1
}

impl Logger {
    /// Opens the log directory, waits for its lock, and prepares the
    /// segment the next byte goes to.
    pub fn start(a: &LogArgs) -> io::Result<Logger> {
        let log = Log::open(&a.dir)?;
        lock(&log)?;
        let mut old = VecDeque::new();
        let mut old_bytes = 0;
        let mut offset = 0;
        let names = log.list()?;
        for (start, kind) in &names {
            let size = match log.open_file(&name_of(*start, *kind)) {
                Ok((_, size)) => size,
                Err(_) => continue,
            };
            if *kind == format::FileKind::Data {
                offset = start.saturating_add(size);
                if old.back().map(|&(s, _)| s) != Some(*start) {
                    old.push_back((*start, 0));
                }
            } else if old.back().map(|&(s, _)| s) != Some(*start) {
                old.push_back((*start, 0)); // an index without its data
            }
            if let Some(last) = old.back_mut() {
                last.1 += on_disk(size);
                old_bytes += on_disk(size);
            }
        }
        let seg = segment_bytes(a.cap);
        let now = format::now_ms();
        let mut logger = Logger {
            log,
            cap: a.cap,
            seg,
            old,
            old_bytes,
            cur: None,
            offset,
            lost: 0,
            gap: a.adopted || !names.is_empty(),
            retry_at_ms: 0,
            last_mark_ms: now,
            since_mark: 0,
        };
        logger.open_segment(now)?;
        Ok(logger)
    }

    /// Logs everything read from `input` until EOF, then writes the eof
    /// record. With `idle`, the fd `input` reads: the segment's files are
    /// closed when it stays silent for [`IDLE_CLOSE`].
    pub fn run(&mut self, input: &mut impl Read, idle: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            let open = self.cur.as_ref().is_some_and(|c| c.files.is_some());
            if let Some(fd) = idle.filter(|_| open) {
                if !readable_within(fd, IDLE_CLOSE) {
                    self.close_files();
                }
            }
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A broken pipe from tmux is the end of the pane's output.
                Err(_) => break,
            };
            self.write(&buf[..n]);
        }
        let now = format::now_ms();
        if self.cur.is_none() {
            let _ = self.open_segment(now);
        }
        self.record(Kind::Eof, self.offset, now, 0);
        Ok(())
    }

    /// Appends `bytes`, rolling segments and dropping what cannot be written.
    pub fn write(&mut self, mut bytes: &[u8]) {
        let now = format::now_ms();
        while !bytes.is_empty() {
            let full = self.cur.as_ref().is_some_and(|c| c.len >= self.seg);
            if full || (self.cur.is_none() && now >= self.retry_at_ms) {
                self.close_segment();
                if self.open_segment(now).is_err() {
                    self.retry_at_ms = now + RETRY_MS;
                }
            }
            let Some(cur) = self.cur.as_mut() else { break };
            let take = (self.seg - cur.len).min(bytes.len() as u64) as usize;
            if self.since_mark >= MARK_EVERY_BYTES && now >= self.last_mark_ms + MARK_EVERY_MS {
                self.last_mark_ms = now;
                self.since_mark = 0;
                self.record(Kind::TimeMark, self.offset, now, 0);
            }
            let Some(cur) = self.cur.as_mut() else { break };
            let written = match cur.files(&self.log) {
                Ok((data, _)) => write_some(data, &bytes[..take]),
                Err(_) => 0,
            };
            cur.len += written as u64;
            self.offset += written as u64;
            self.since_mark += written as u64;
            bytes = &bytes[written..];
            if written < take {
                // Disk full, quota, I/O error: never wait, drop and go on.
                self.close_segment();
                self.retry_at_ms = now + RETRY_MS;
                break;
            }
        }
        self.lost += bytes.len() as u64;
        self.offset += bytes.len() as u64;
        if !bytes.is_empty() {
            self.gap = true;
        }
    }

    /// Closes the current segment's files (reopened on the next write).
    pub fn close_files(&mut self) {
        if let Some(c) = self.cur.as_mut() {
            c.files = None;
        }
    }

    /// Whether the current segment's files are open.
    pub fn files_open(&self) -> bool {
        self.cur.as_ref().is_some_and(|c| c.files.is_some())
    }

    /// The offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn close_segment(&mut self) {
        if let Some(c) = self.cur.take() {
            let bytes = on_disk(c.len) + on_disk(c.index_len);
            self.old.push_back((c.start, bytes));
            self.old_bytes += bytes;
        }
    }

    /// Makes room for a new segment, then opens (or, when the newest is
    /// empty and starts here, reopens) the one starting at the offset.
    fn open_segment(&mut self, now: u64) -> io::Result<()> {
        let reserve = segment_reserve(self.seg) + BLOCK; // + the directory
        let reuse = self.old.back().is_some_and(|&(s, _)| s == self.offset);
        if reuse {
            let (_, bytes) = self.old.pop_back().unwrap_or_default();
            self.old_bytes -= bytes;
        }
        while self.old_bytes + reserve > self.cap {
            let Some((start, bytes)) = self.old.pop_front() else { break };
            self.old_bytes -= bytes;
            for name in [format::data_name(start), format::index_name(start)] {
                let _ = rustix::fs::unlinkat(&self.log, name.as_str(), AtFlags::empty());
            }
        }
        let data = create(&self.log, &format::data_name(self.offset))?;
        let len = data.metadata()?.len();
        let index = create(&self.log, &format::index_name(self.offset))?;
        let index_len = index.metadata()?.len();
        let files = Some((data, index));
        self.cur = Some(Current { start: self.offset, files, len, index_len });
        if std::mem::take(&mut self.gap) {
            let lost = std::mem::take(&mut self.lost);
            self.record(Kind::Gap, self.offset, now, lost);
        }
        self.record(Kind::TimeMark, self.offset, now, 0);
        self.last_mark_ms = now;
        self.since_mark = 0;
        Ok(())
    }

    /// Appends a record to the current index (best effort: an index write
    /// that fails loses a time mark, never bytes).
    fn record(&mut self, kind: Kind, offset: u64, unix_ms: u64, lost: u64) {
        let Some(cur) = self.cur.as_mut() else { return };
        let rec = Record { offset, unix_ms, lost, kind }.encode();
        if let Ok((_, index)) = cur.files(&self.log) {
            if index.write_all(&rec).is_ok() {
                cur.index_len += rec.len() as u64;
            }
        }
    }

    /// Bytes on disk now: closed segments and the current one.
    pub fn disk_bytes(&self) -> u64 {
        self.old_bytes + self.cur.as_ref().map_or(0, |c| on_disk(c.len) + on_disk(c.index_len))
    }

    /// The current segment's first offset.
    pub fn current_start(&self) -> Option<u64> {
        self.cur.as_ref().map(|c| c.start)
    }
}

/// Opens (creating it) a segment file for appending, in the log directory,
/// not through a link, and only a regular file.
fn create(log: &Log, name: &str) -> io::Result<File> {
    let flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::APPEND
        | OFlags::NOFOLLOW
        | OFlags::CLOEXEC
        | OFlags::NONBLOCK;
    let fd: OwnedFd = rustix::fs::openat(log, name, flags, Mode::from_raw_mode(FILE_MODE))?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{name}: not a file")));
    }
    Ok(File::from(fd))
}

/// Whether `fd` has input (or an error or EOF to report) within `wait`.
fn readable_within(fd: BorrowedFd<'_>, wait: Duration) -> bool {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n != 0 // a signal or an error: let the read tell
}

fn name_of(start: u64, kind: format::FileKind) -> String {
    match kind {
        format::FileKind::Data => format::data_name(start),
        format::FileKind::Index => format::index_name(start),
    }
}

/// Writes as much of `bytes` as the file takes; stops at the first error.
fn write_some(file: &mut File, bytes: &[u8]) -> usize {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// Takes the directory's lock, waiting up to [`LOCK_WAIT`] for a previous
/// logger to finish; after that, goes on without it (never stall tmux).
fn lock(log: &Log) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match rustix::fs::flock(log, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
