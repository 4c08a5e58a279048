//! Unit tests of [`super::reader`] on hand-made log directories.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::format::{data_name, index_name, Kind, Record};
use super::reader::Log;

fn seg(dir: &Path, start: u64, bytes: &[u8]) {
    std::fs::write(dir.join(data_name(start)), bytes).unwrap();
}

fn records(dir: &Path, start: u64, recs: &[Record]) {
    let bytes: Vec<u8> = recs.iter().flat_map(|r| r.encode()).collect();
    std::fs::write(dir.join(index_name(start)), bytes).unwrap();
}

#[test]
fn empty_log_reads_nothing_and_refuses_past_zero() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path()).unwrap();
    let e = log.extent().unwrap();
    assert_eq!((e.first, e.end, e.closed), (0, 0, false));
    let c = log.read(0, 100).unwrap();
    assert!(c.data.is_empty() && c.end && c.next_offset == 0);
    let err = log.read(1, 100).unwrap_err();
    assert!(err.to_string().contains("past the end of the log (0)"), "{err}");
}

#[test]
fn reads_across_segments_stops_at_gaps_and_skips_dropped_bytes() {
    let d = tempfile::tempdir().unwrap();
    // [10,20) [20,25) gap [30,33); bytes 0..10 were dropped by the cap.
    seg(d.path(), 10, b"abcdefghij");
    seg(d.path(), 20, b"KLMNO");
    seg(d.path(), 30, b"xyz");
    let log = Log::open(d.path()).unwrap();
    let e = log.extent().unwrap();
    assert_eq!((e.first, e.end), (10, 33));
    let c = log.read(0, 1000).unwrap();
    assert_eq!((c.data.as_slice(), c.offset, c.next_offset), (&b"abcdefghijKLMNO"[..], 10, 25));
    assert_eq!(c.first_offset, 10);
    assert!(!c.end);
    let c = log.read(25, 1000).unwrap();
    assert_eq!((c.data.as_slice(), c.offset, c.next_offset, c.end), (&b"xyz"[..], 30, 33, true));
    let c = log.read(18, 4).unwrap();
    assert_eq!((c.data.as_slice(), c.offset, c.next_offset), (&b"ijKL"[..], 18, 22));
    let c = log.read(33, 10).unwrap();
    assert!(c.data.is_empty() && c.end && c.offset == 33);
    let err = log.read(34, 10).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("past the end of the log (33)"), "{err}");
}

#[test]
fn an_overlapping_segment_is_cut_at_the_next_start() {
    let d = tempfile::tempdir().unwrap();
    seg(d.path(), 0, b"0123456789"); // claims [0,10) but the next starts at 5
    seg(d.path(), 5, b"abc");
    let log = Log::open(d.path()).unwrap();
    assert_eq!(log.read(0, 100).unwrap().data, b"01234abc");
}

#[test]
fn eof_record_closes_the_log_and_a_later_gap_reopens_it() {
    let d = tempfile::tempdir().unwrap();
    seg(d.path(), 0, b"hello");
    let mark = Record { offset: 0, unix_ms: 1, lost: 0, kind: Kind::TimeMark };
    let eof = Record { offset: 5, unix_ms: 2, lost: 0, kind: Kind::Eof };
    records(d.path(), 0, &[mark, eof]);
    let log = Log::open(d.path()).unwrap();
    assert!(log.extent().unwrap().closed);
    assert_eq!(log.index(0).unwrap(), vec![mark, eof]);
    let gap = Record { offset: 5, unix_ms: 3, lost: 0, kind: Kind::Gap };
    records(d.path(), 0, &[mark, eof, gap]);
    assert!(!log.extent().unwrap().closed);
    // A torn last record (the logger writing it) is not read.
    let mut bytes = std::fs::read(d.path().join(index_name(0))).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(d.path().join(index_name(0)), bytes).unwrap();
    assert!(log.extent().unwrap().closed);
}

#[test]
fn planted_links_fifos_and_junk_are_not_followed() {
    let d = tempfile::tempdir().unwrap();
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"root's secret").unwrap();
    let logdir = d.path().join("log");
    std::fs::create_dir(&logdir).unwrap();
    seg(&logdir, 0, b"mine");
    symlink(&secret, logdir.join(data_name(4))).unwrap();
    symlink(&secret, logdir.join(index_name(0))).unwrap();
    std::fs::write(logdir.join("junk.log"), b"x").unwrap();
    let log = Log::open(&logdir).unwrap();
    let err = log.extent().unwrap_err();
    assert!(!err.to_string().contains("secret'"), "{err}");
    let err = log.read(0, 100).unwrap_err();
    assert!(err.to_string().contains("symbolic links"), "{err}");
    std::fs::remove_file(logdir.join(data_name(4))).unwrap();
    // The index is a link: the read works, the index is refused.
    assert_eq!(log.read(0, 100).unwrap().data, b"mine");
    assert!(log.index(0).is_err());
    // A FIFO as the newest segment: refused at once, never waited on.
    nix::unistd::mkfifo(&logdir.join(data_name(4)), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let t = std::time::Instant::now();
    let err = log.read(0, 100).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    // The directory itself as a link is refused.
    let link = d.path().join("link");
    symlink(&logdir, &link).unwrap();
    assert!(Log::open(&link).is_err());
}

#[test]
fn a_listing_is_bounded() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..(super::reader::MAX_ENTRIES + 100) {
        std::fs::write(d.path().join(format!("junk{i}")), b"").unwrap();
    }
    let log = Log::open(d.path()).unwrap();
    assert!(log.list().unwrap().len() <= super::reader::MAX_ENTRIES);
}
