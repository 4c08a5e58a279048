//! Validation of everything a client sends about a session, before anything
//! is created: ids, argv, labels, cwd, env, sizes, text and key names. Every
//! error names the field.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::protocol::types::valid_id;

/// Longest argv element / env value / label, in bytes.
pub const MAX_ARG_BYTES: usize = 64 * 1024;
/// Most argv elements.
pub const MAX_ARGS: usize = 1024;
/// Most env entries.
pub const MAX_ENV: usize = 256;
/// Longest label.
pub const MAX_NAME_BYTES: usize = 128;
/// Largest pane size tmux is asked for (tmux itself allows up to 10000).
pub const MAX_COLS: u16 = 1000;
/// See [`MAX_COLS`].
pub const MAX_ROWS: u16 = 1000;
/// Smallest pane size.
pub const MIN_SIZE: u16 = 2;
/// Longest text for one `session.send`.
pub const MAX_SEND_BYTES: usize = 64 * 1024;
/// Most named keys in one `session.send`.
pub const MAX_KEYS: usize = 256;

fn invalid(msg: String) -> Error {
    Error::InvalidParams(msg)
}

/// Whether a string contains a character that cannot cross one control-mode
/// line or would be misread: any C0 control (including newline and tab), DEL.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// `id`: `[a-z0-9]{1,32}`.
pub fn id(id: &str) -> Result<(), Error> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(invalid(format!("id: {id:?} is not a session id (expected [a-z0-9]{{1,32}})")))
    }
}

/// `command`: a non-empty argv of non-empty strings without control characters.
pub fn command(argv: &[String]) -> Result<(), Error> {
    argv_named("command", argv)
}

/// An argv in the field `field` (`command`, `resume_command`): what
/// [`command`] checks, the messages naming that field.
pub fn argv_named(field: &str, argv: &[String]) -> Result<(), Error> {
    if argv.is_empty() {
        return Err(invalid(format!("{field}: must be a non-empty array of strings (an argv)")));
    }
    if argv.len() > MAX_ARGS {
        return Err(invalid(format!("{field}: more than {MAX_ARGS} arguments")));
    }
    if argv[0].is_empty() {
        return Err(invalid(format!("{field}[0]: the program name is empty")));
    }
    for (i, arg) in argv.iter().enumerate() {
        if arg.len() > MAX_ARG_BYTES {
            return Err(invalid(format!("{field}[{i}]: longer than {MAX_ARG_BYTES} bytes")));
        }
        if has_control(arg) {
            return Err(invalid(format!(
                "{field}[{i}]: contains a control character (newline, NUL, ...)"
            )));
        }
    }
    Ok(())
}

/// `name`: printable, at most [`MAX_NAME_BYTES`], no `#` (tmux formats).
pub fn name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(invalid(format!("name: must be 1 to {MAX_NAME_BYTES} bytes")));
    }
    if has_control(name) {
        return Err(invalid("name: contains a control character".into()));
    }
    if name.contains('#') {
        return Err(invalid("name: '#' is not allowed (tmux format characters)".into()));
    }
    Ok(())
}

/// `cwd`: absolute, an existing directory, no control characters.
pub fn cwd(cwd: &Path) -> Result<(), Error> {
    let text = cwd.to_string_lossy();
    if !cwd.is_absolute() {
        return Err(invalid(format!("cwd: {text:?} is not an absolute path")));
    }
    if has_control(&text) {
        return Err(invalid("cwd: contains a control character".into()));
    }
    if text.len() > MAX_ARG_BYTES {
        return Err(invalid(format!("cwd: longer than {MAX_ARG_BYTES} bytes")));
    }
    // Whether it exists and can be entered is the owner's to find out: the
    // exec-wrapper enters it as the owner and reports why it could not (a
    // check here, as root, would accept /root for anyone).
    Ok(())
}

/// `env`: names `[A-Za-z_][A-Za-z0-9_]*`, values without control characters.
pub fn env(env: &BTreeMap<String, String>) -> Result<(), Error> {
    if env.len() > MAX_ENV {
        return Err(invalid(format!("env: more than {MAX_ENV} variables")));
    }
    for (k, v) in env {
        let mut chars = k.chars();
        let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(format!(
                "env: {k:?} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
        if v.len() > MAX_ARG_BYTES || has_control(v) {
            return Err(invalid(format!("env.{k}: value has a control character or is too long")));
        }
    }
    Ok(())
}

/// `cols` / `rows`.
pub fn size(cols: Option<u16>, rows: Option<u16>) -> Result<(), Error> {
    if let Some(c) = cols {
        if !(MIN_SIZE..=MAX_COLS).contains(&c) {
            return Err(invalid(format!("cols: {c} is out of range ({MIN_SIZE} to {MAX_COLS})")));
        }
    }
    if let Some(r) = rows {
        if !(MIN_SIZE..=MAX_ROWS).contains(&r) {
            return Err(invalid(format!("rows: {r} is out of range ({MIN_SIZE} to {MAX_ROWS})")));
        }
    }
    Ok(())
}

/// `text` of `session.send`: no control characters (use `keys` for those).
pub fn text(text: &str) -> Result<(), Error> {
    if text.len() > MAX_SEND_BYTES {
        return Err(invalid(format!("text: longer than {MAX_SEND_BYTES} bytes")));
    }
    if has_control(text) {
        return Err(invalid(
            "text: contains a control character; send those as keys (e.g. \"Enter\", \"C-c\", \"Tab\")".into(),
        ));
    }
    Ok(())
}

/// `keys` of `session.send`: tmux key names such as `C-c`, `M-x`, `Up`, `F5`, `a`.
pub fn keys(keys: &[String]) -> Result<(), Error> {
    if keys.len() > MAX_KEYS {
        return Err(invalid(format!("keys: more than {MAX_KEYS} keys")));
    }
    for (i, k) in keys.iter().enumerate() {
        if k.starts_with('-') {
            return Err(invalid(format!(
                "keys[{i}]: {k:?} starts with '-': key names only, never tmux flags (send \"-\" as text)"
            )));
        }
        let ok = !k.is_empty()
            && k.len() <= 32
            && k.chars().all(|c| {
                c.is_ascii_graphic()
                    && !matches!(c, '\'' | '"' | '\\' | ';' | '#' | '$' | '~' | '{' | '}')
            });
        if !ok {
            return Err(invalid(format!(
                "keys[{i}]: {k:?} is not a tmux key name (e.g. \"C-c\", \"Enter\", \"Up\")"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ids() {
        assert!(id("abc123").is_ok());
        for bad in ["", "ABC", "a/b", "../x", "a b", "a;b", "$(x)", &"a".repeat(33)] {
            assert!(id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands() {
        assert!(
            command(&argv(&["sh", "-c", "$(touch /tmp/x)"])).is_ok(),
            "metacharacters are literal, not rejected"
        );
        assert!(command(&[]).is_err());
        assert!(command(&argv(&[""])).is_err());
        assert!(command(&argv(&["a", "b\nc"])).is_err());
        assert!(command(&argv(&["a\0"])).is_err());
    }

    #[test]
    fn names_cwd_env_sizes() {
        assert!(name("agent 1: refactor").is_ok());
        assert!(name("#{pane_id}").is_err());
        assert!(name("a\tb").is_err());
        assert!(cwd(Path::new("relative")).is_err());
        assert!(cwd(Path::new("/definitely/not/here")).is_ok(), "the owner finds out");
        assert!(cwd(Path::new("/a\nb")).is_err());
        assert!(cwd(Path::new("/")).is_ok());
        let mut e = BTreeMap::new();
        e.insert("GOOD_1".to_string(), "v a l".to_string());
        assert!(env(&e).is_ok());
        for bad in ["A=B", "1X", "", "A\0", "A-B"] {
            let mut e = BTreeMap::new();
            e.insert(bad.to_string(), "v".to_string());
            assert!(env(&e).is_err(), "{bad:?}");
        }
        assert!(size(Some(0), None).is_err());
        assert!(size(Some(1001), None).is_err());
        assert!(size(None, Some(0)).is_err());
        assert!(size(Some(80), Some(24)).is_ok());
    }

    #[test]
    fn send_text_and_keys() {
        assert!(text("echo 'hi' \"there\" $HOME; ls #{x}").is_ok());
        assert!(text("a\nb").is_err());
        assert!(text("\x1b[A").is_err());
        assert!(keys(&argv(&["C-c", "Enter", "Up", "F5", "M-x", "a"])).is_ok());
        assert!(keys(&argv(&["a b"])).is_err());
        assert!(keys(&argv(&["'"])).is_err());
        assert!(keys(&argv(&[""])).is_err());
        for flag in ["-t", "-N", "-X", "-l", "--"] {
            let e = keys(&argv(&["a", flag])).unwrap_err().to_string();
            assert!(e.contains("keys[1]"), "{e}");
        }
    }
}
