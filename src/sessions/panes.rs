//! What tmux says about each pane, in one `list-panes -a` line per pane: the
//! format string and its I/O-free parser.

/// The `-F` format for `list-panes -a`. Fields are separated by one space;
/// empty fields stay (split on ' ', not whitespace runs); the session name,
/// which may contain spaces in sessions not ours, comes last.
pub const PANE_FORMAT: &str = "#{pane_id} #{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_dead_signal} #{window_activity} #{pane_width} #{pane_height} #{window_id} #{session_id} #{session_created} #{pane_pipe} #{session_name}";

/// Number of fields in [`PANE_FORMAT`].
const FIELDS: usize = 13;

/// One pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneInfo {
    /// `%N`.
    pub pane: String,
    /// The pane's process.
    pub pid: Option<u32>,
    /// Whether its program ended (remain-on-exit keeps the pane).
    pub dead: bool,
    /// Exit code when it ended normally.
    pub dead_status: Option<i32>,
    /// Signal number when it was killed by one.
    pub dead_signal: Option<i32>,
    /// Unix time of the window's last activity.
    pub activity: Option<u64>,
    /// Pane width.
    pub width: Option<u16>,
    /// Pane height.
    pub height: Option<u16>,
    /// `@N`.
    pub window: String,
    /// `$N`.
    pub session_id: String,
    /// Unix time the session was created.
    pub created: Option<u64>,
    /// Whether its output is piped (`pipe-pane`: to its logger).
    pub pipe: bool,
    /// The session name.
    pub session_name: String,
}

impl PaneInfo {
    /// Exit status the way shells report it: the code, or 128 + signal.
    pub fn exit_status(&self) -> Option<i32> {
        if !self.dead {
            return None;
        }
        self.dead_signal.map(|s| 128 + s).or(self.dead_status)
    }
}

/// Parses one line produced by [`PANE_FORMAT`].
pub fn parse_line(line: &str) -> Option<PaneInfo> {
    let f: Vec<&str> = line.splitn(FIELDS, ' ').collect();
    if f.len() != FIELDS || !f[0].starts_with('%') {
        return None;
    }
    let num = |s: &str| s.parse::<u64>().ok();
    Some(PaneInfo {
        pane: f[0].to_string(),
        pid: f[1].parse().ok(),
        dead: f[2] == "1",
        dead_status: f[3].parse().ok(),
        dead_signal: f[4].parse().ok().filter(|s| *s > 0),
        activity: num(f[5]),
        width: f[6].parse().ok(),
        height: f[7].parse().ok(),
        window: f[8].to_string(),
        session_id: f[9].to_string(),
        created: num(f[10]),
        pipe: f[11] == "1",
        session_name: f[12].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_live_and_dead_panes() {
        let live = parse_line("%3 4242 0   1700000000 80 24 @2 $1 1699999999 1 ccmanager_sess_ab")
            .unwrap();
        assert_eq!(live.pane, "%3");
        assert_eq!(live.pid, Some(4242));
        assert!(!live.dead);
        assert_eq!(live.exit_status(), None);
        assert_eq!((live.width, live.height), (Some(80), Some(24)));
        assert_eq!(live.session_name, "ccmanager_sess_ab");
        assert!(live.pipe);
        let dead =
            parse_line("%4 99 1 3  1700000000 80 24 @3 $2 1699999999 0 ccmanager_sess_cd").unwrap();
        assert_eq!(dead.exit_status(), Some(3));
        let signalled = parse_line("%5 99 1  9 1700000000 80 24 @3 $2 1 0 x").unwrap();
        assert_eq!(signalled.exit_status(), Some(137));
    }

    #[test]
    fn names_with_spaces_and_junk() {
        let p = parse_line("%1 1 0   1 80 24 @1 $1 1 0 my session name").unwrap();
        assert_eq!(p.session_name, "my session name");
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("").is_none());
    }
}
