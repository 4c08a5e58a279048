//! `ccmanagerctl ls`: `session.list` as a table, the command quoted the
//! way a shell would take it back.

use ccmanagerd::protocol::method::SessionList;
use ccmanagerd::protocol::methods;
use ccmanagerd::protocol::types::{Session, SessionState};

use crate::output::{age, print_table, usage, Ctl, Failure};

pub fn run(ctl: &mut Ctl, state: Option<String>) -> Result<(), Failure> {
    let state = state.map(|s| parse_state(&s)).transpose()?;
    let params = methods::SessionList { state, fields: None };
    if let Some(list) = ctl.call::<SessionList>(&params)? {
        print_sessions(&list.sessions);
    }
    Ok(())
}

/// A state word, refused with the daemon's own message for a bad one.
fn parse_state(s: &str) -> Result<SessionState, Failure> {
    serde_json::from_value(s.into()).map_err(|e| usage(format!("invalid params: state: {e}")))
}

/// An argv as one line a POSIX shell reads back as the same words
/// (`shlex` quoting). A word with a control character (an escape sequence
/// would drive the operator's terminal) is written in bash's `$'...'`
/// form instead, every control escaped.
pub fn shell_words<'a>(argv: impl IntoIterator<Item = &'a str>) -> String {
    let words: Vec<String> = argv
        .into_iter()
        .map(|w| match w.chars().any(char::is_control) {
            true => ansi_c(w),
            false => shlex::try_quote(w).map_or_else(|_| ansi_c(w), |q| q.into_owned()),
        })
        .collect();
    words.join(" ")
}

/// `$'...'` quoting (bash, zsh, ksh; POSIX 2024 sh).
fn ansi_c(word: &str) -> String {
    let mut out = String::from("$'");
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A string from the daemon as safe to print: as is, or Rust-escaped
/// (`"a\u{1b}[31m"`) when it holds a control character.
pub fn printable(s: &str) -> String {
    match s.chars().any(char::is_control) {
        true => format!("{s:?}"),
        false => s.to_string(),
    }
}

/// SIZE is the pane's COLSxROWS (what a client attaching must draw);
/// AGE since creation, IDLE since the last output.
fn print_sessions(sessions: &[Session]) {
    let mut rows =
        vec![["ID", "NAME", "STATE", "SIZE", "AGE", "IDLE", "COMMAND"].map(String::from).to_vec()];
    for s in sessions {
        let state = match (s.state.as_str(), s.exit_status) {
            ("exited", Some(code)) => format!("exit:{code}"),
            (st, _) => st.to_string(),
        };
        let size = match (s.cols, s.rows) {
            (Some(c), Some(r)) => format!("{c}x{r}"),
            _ => "-".into(),
        };
        rows.push(vec![
            s.id.clone(),
            s.name.as_deref().map_or_else(|| "-".into(), printable),
            state,
            size,
            age(Some(&s.created_at)),
            age(s.last_activity_at.as_deref()),
            shell_words(s.command.iter().map(String::as_str)),
        ]);
    }
    print_table(&rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_quoted_as_a_shell_reads_it() {
        assert_eq!(shell_words(["sh", "-c", "echo hi; ls"]), "sh -c 'echo hi; ls'");
        assert_eq!(shell_words(["printf", "it's"]), "printf \"it's\"");
        assert_eq!(shell_words(["a b", ""]), "'a b' ''");
        assert_eq!(shell_words(["x\x1b]0;t\x07"]), "$'x\\x1b]0;t\\x07'");
        assert_eq!(shell_words(["\u{9b}2J"]), "$'\\u009b2J'");
    }
}
