//! Unit tests of [`super::logger`]: the logger writing into a temporary
//! directory, read back with [`super::reader::Log`].

use std::path::Path;

use super::args::LogArgs;
use super::format::Kind;
use super::logger::{on_disk, segment_bytes, Logger, BLOCK};
use super::reader::Log;

const CAP: u64 = 1 << 20;

fn args(dir: &Path, adopted: bool) -> LogArgs {
    LogArgs { dir: dir.to_owned(), cap: CAP, adopted }
}

fn pattern(from: u64, len: usize) -> Vec<u8> {
    (from..from + len as u64).map(|i| (i * 7 % 251) as u8).collect()
}

fn read_all(log: &Log, mut at: u64) -> (u64, Vec<u8>) {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let c = log.read(at, 1 << 20).unwrap();
        start.get_or_insert(c.offset);
        out.extend_from_slice(&c.data);
        if c.end {
            return (start.unwrap_or(at), out);
        }
        at = c.next_offset;
    }
}

fn disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| on_disk(e.unwrap().metadata().unwrap().len())).sum()
}

#[test]
fn logs_everything_then_eof_closes_it() {
    let d = tempfile::tempdir().unwrap();
    let mut logger = Logger::start(&args(d.path(), false)).unwrap();
    let data = pattern(0, 300_000);
    logger.run(&mut &data[..], None).unwrap();
    let log = Log::open(d.path()).unwrap();
    let e = log.extent().unwrap();
    assert_eq!((e.first, e.end, e.closed), (0, 300_000, true));
    let (_, got) = read_all(&log, 0);
    assert!(got == data, "byte-exact");
    assert!(log.segments().unwrap().len() >= 2, "rolled at {}", segment_bytes(CAP));
    assert_eq!(log.index(0).unwrap()[0].kind, Kind::TimeMark);
}

#[test]
fn the_cap_holds_and_keeps_the_newest_bytes() {
    let d = tempfile::tempdir().unwrap();
    let mut logger = Logger::start(&args(d.path(), false)).unwrap();
    let total = 5 * CAP as usize + 12345;
    let data = pattern(0, total);
    for chunk in data.chunks(65536) {
        logger.write(chunk);
        assert!(disk(d.path()) + BLOCK <= CAP, "{} on disk", disk(d.path()));
        assert_eq!(logger.disk_bytes(), disk(d.path()));
    }
    let log = Log::open(d.path()).unwrap();
    let e = log.extent().unwrap();
    assert_eq!(e.end, total as u64);
    assert!(e.end - e.first >= CAP - 3 * segment_bytes(CAP), "kept {}", e.end - e.first);
    let (_, got) = read_all(&log, 0);
    assert!(got[..] == data[e.first as usize..], "the newest bytes, exact");
}

#[test]
fn a_restart_continues_after_a_gap_record() {
    let d = tempfile::tempdir().unwrap();
    let mut logger = Logger::start(&args(d.path(), false)).unwrap();
    logger.run(&mut &b"before"[..], None).unwrap();
    drop(logger);
    let mut logger = Logger::start(&args(d.path(), true)).unwrap();
    assert_eq!(logger.offset(), 6);
    logger.write(b"after");
    let log = Log::open(d.path()).unwrap();
    assert!(!log.extent().unwrap().closed);
    assert_eq!(log.segments().unwrap(), [0, 6]);
    let recs = log.index(6).unwrap();
    assert_eq!((recs[0].kind, recs[0].offset, recs[0].lost), (Kind::Gap, 6, 0));
    assert_eq!(read_all(&log, 0).1, b"beforeafter");
    // A restart on an empty newest segment reuses it.
    drop(logger);
    let d2 = tempfile::tempdir().unwrap();
    drop(Logger::start(&args(d2.path(), false)).unwrap());
    let logger = Logger::start(&args(d2.path(), false)).unwrap();
    assert_eq!(logger.current_start(), Some(0));
    let log = Log::open(d2.path()).unwrap();
    assert_eq!(log.segments().unwrap(), [0]);
    let kinds: Vec<_> = log.index(0).unwrap().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [Kind::TimeMark, Kind::Gap, Kind::TimeMark]);
}

#[test]
fn time_marks_are_rare() {
    let d = tempfile::tempdir().unwrap();
    let mut logger = Logger::start(&args(d.path(), false)).unwrap();
    for _ in 0..2000 {
        logger.write(&[b'x'; 100]);
    }
    let log = Log::open(d.path()).unwrap();
    let marks = log.index(0).unwrap();
    assert!(marks.len() <= 2, "{marks:?}");
}

#[test]
fn closed_files_reopen_and_a_changed_segment_starts_a_new_one() {
    let d = tempfile::tempdir().unwrap();
    let mut logger = Logger::start(&args(d.path(), false)).unwrap();
    logger.write(b"abc");
    logger.close_files();
    assert!(!logger.files_open());
    logger.write(b"def");
    assert!(logger.files_open());
    let log = Log::open(d.path()).unwrap();
    assert_eq!(read_all(&log, 0).1, b"abcdef");
    // Truncated behind the logger's back while closed: a new segment, a gap.
    logger.close_files();
    std::fs::write(d.path().join(super::format::data_name(0)), b"").unwrap();
    logger.write(b"ghi"); // dropped: the next segment is tried a second later
    std::thread::sleep(std::time::Duration::from_millis(1100));
    logger.write(b"jkl");
    assert_eq!(log.segments().unwrap(), [0, 9]);
    let gap = log.index(9).unwrap()[0];
    assert_eq!((gap.kind, gap.lost), (Kind::Gap, 3));
    assert_eq!(log.extent().unwrap().end, 12);
    assert_eq!(log.read(9, 10).unwrap().data, b"jkl");
}
