//! The on-disk format of a session's byte log, shared by the logger (which
//! writes it, as the session's owner) and the reader (the daemon, as root).
//!
//! A log is a directory `<logs dir>/<id>/` holding segments and their
//! indexes, both named by the segment's first offset in 20 decimal digits:
//! - `<offset>.log`: the bytes the session printed from `offset` on,
//!   contiguous; the next segment starts where this one ends, or later when
//!   bytes were not logged (a gap);
//! - `<offset>.idx`: fixed-size binary records ([`RECORD_LEN`] bytes, little
//!   endian): `offset u64`, `unix_ms u64`, `lost u64`, `kind u32`, magic
//!   `b"ccml"`. Kinds: a time mark (the byte at `offset` was printed at about
//!   `unix_ms`; at most one a second and only after [`MARK_EVERY_BYTES`], so
//!   an index stays below 1% of its segment), a gap (bytes before `offset`
//!   were not logged: `lost` of them, 0 when unknown, e.g. a logger started
//!   on adoption or after a restart), an eof (the pane closed the pipe: the
//!   log is complete).
//!
//! Everything in a log directory is written by its owner, so a reader must
//! treat it as input: names are parsed strictly, records carry a magic, and
//! a segment that claims to overlap the next is cut where the next starts.

/// Digits of the offset in a file name (`u64::MAX` has 20).
pub const NAME_DIGITS: usize = 20;
/// Bytes of one index record.
pub const RECORD_LEN: usize = 32;
/// Magic at the end of every index record.
pub const RECORD_MAGIC: [u8; 4] = *b"ccml";
/// A time mark is written at most once a second, and only when this many
/// bytes were logged since the previous one.
pub const MARK_EVERY_BYTES: u64 = 4096;
/// A time mark is written at most once per this many milliseconds.
pub const MARK_EVERY_MS: u64 = 1000;

/// Which file of a segment a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `<offset>.log`: the bytes.
    Data,
    /// `<offset>.idx`: the index records.
    Index,
}

/// `<offset>.log`.
pub fn data_name(offset: u64) -> String {
    format!("{offset:0NAME_DIGITS$}.log")
}

/// `<offset>.idx`.
pub fn index_name(offset: u64) -> String {
    format!("{offset:0NAME_DIGITS$}.idx")
}

/// Parses a segment file name: exactly 20 ASCII digits, then `.log` or
/// `.idx`; anything else (and an offset above `u64::MAX`) is `None`.
pub fn parse_name(name: &[u8]) -> Option<(u64, FileKind)> {
    if name.len() != NAME_DIGITS + 4 {
        return None;
    }
    let (digits, ext) = name.split_at(NAME_DIGITS);
    let kind = match ext {
        b".log" => FileKind::Data,
        b".idx" => FileKind::Index,
        _ => return None,
    };
    let mut offset: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        offset = offset.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((offset, kind))
}

/// What an index record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The byte at `offset` was printed at about `unix_ms`.
    TimeMark,
    /// Bytes before `offset` were not logged (`lost` of them, 0: unknown).
    Gap,
    /// The pane closed the pipe at `offset`: nothing follows.
    Eof,
}

impl Kind {
    fn code(self) -> u32 {
        match self {
            Kind::TimeMark => 1,
            Kind::Gap => 2,
            Kind::Eof => 3,
        }
    }

    fn from_code(code: u32) -> Option<Kind> {
        match code {
            1 => Some(Kind::TimeMark),
            2 => Some(Kind::Gap),
            3 => Some(Kind::Eof),
            _ => None,
        }
    }
}

/// One index record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The offset it is about.
    pub offset: u64,
    /// Milliseconds since the Unix epoch when it was written.
    pub unix_ms: u64,
    /// For a gap: bytes not logged before `offset` (0 when unknown).
    pub lost: u64,
    /// What it says.
    pub kind: Kind,
}

impl Record {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.unix_ms.to_le_bytes());
        b[16..24].copy_from_slice(&self.lost.to_le_bytes());
        b[24..28].copy_from_slice(&self.kind.code().to_le_bytes());
        b[28..32].copy_from_slice(&RECORD_MAGIC);
        b
    }

    /// Parses one record; `None` for a bad magic or an unknown kind.
    pub fn decode(b: &[u8]) -> Option<Record> {
        let b: &[u8; RECORD_LEN] = b.try_into().ok()?;
        if b[28..32] != RECORD_MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let kind = Kind::from_code(u32::from_le_bytes(b[24..28].try_into().ok()?))?;
        Some(Record { offset: u64_at(0), unix_ms: u64_at(8), lost: u64_at(16), kind })
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        assert_eq!(data_name(0), "00000000000000000000.log");
        assert_eq!(index_name(u64::MAX), "18446744073709551615.idx");
        assert_eq!(parse_name(data_name(12345).as_bytes()), Some((12345, FileKind::Data)));
        assert_eq!(parse_name(index_name(u64::MAX).as_bytes()), Some((u64::MAX, FileKind::Index)));
        for bad in [
            "18446744073709551616.log",
            "0000000000000000000.log",
            "000000000000000000000.log",
            "0000000000000000000a.log",
            "00000000000000000000.lo",
            "00000000000000000000.txt",
            "+0000000000000000000.log",
            "..",
        ] {
            assert_eq!(parse_name(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        for kind in [Kind::TimeMark, Kind::Gap, Kind::Eof] {
            let r = Record { offset: 1 << 40, unix_ms: 1_700_000_000_000, lost: 7, kind };
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
        let mut b = Record { offset: 1, unix_ms: 2, lost: 0, kind: Kind::Gap }.encode();
        b[31] = b'x';
        assert_eq!(Record::decode(&b), None);
        let mut b = Record { offset: 1, unix_ms: 2, lost: 0, kind: Kind::Gap }.encode();
        b[24] = 9;
        assert_eq!(Record::decode(&b), None);
        assert_eq!(Record::decode(&[0u8; 5]), None);
    }
}
