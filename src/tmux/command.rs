//! Building tmux command lines that reach tmux literally.
//!
//! tmux parses every control-mode input line with its own language
//! (cmd-parse.y): quotes, `\` escapes, `;` separators, `$VAR` and `~`
//! expansion in unquoted and double-quoted words. Inside single quotes
//! nothing is special, so every argument is single-quoted and a `'` becomes
//! `'\''`. What cannot be carried on one line (`\n`, `\r`, NUL) is rejected.
//!
//! Quoting does not stop a *command* from expanding `#{...}` formats in the
//! arguments it chooses to (e.g. `display-message`'s message, `new-session
//! -c`, anything with `-F`); callers pass such values through options that
//! are not format-expanded, or escape `#` as `##` where tmux documents it.

use std::fmt;

/// Why a [`Cmd`] cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// An argument holds a character that cannot be sent on one line.
    #[error(
        "tmux command {command}: argument {index} contains {what}, which cannot be sent to tmux"
    )]
    UnsendableChar {
        /// The command name.
        command: String,
        /// Zero-based index of the argument after the command name.
        index: usize,
        /// Which character, in words.
        what: &'static str,
    },
    /// The command name is not a plain tmux command word.
    #[error("invalid tmux command name {0:?}")]
    BadName(String),
}

/// One tmux command: a name and literal arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    name: String,
    args: Vec<String>,
}

impl Cmd {
    /// A command named `name`, e.g. `"new-session"`.
    pub fn new(name: impl Into<String>) -> Self {
        Cmd { name: name.into(), args: Vec::new() }
    }

    /// Appends a flag such as `-d`.
    pub fn flag(mut self, flag: &str) -> Self {
        self.args.push(flag.to_owned());
        self
    }

    /// Appends an option and its value, e.g. `.opt("-s", name)`.
    pub fn opt(mut self, option: &str, value: impl Into<String>) -> Self {
        self.args.push(option.to_owned());
        self.args.push(value.into());
        self
    }

    /// Appends one positional argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several positional arguments (e.g. a session's argv).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders the command as one control-mode line, without the newline.
    pub fn render(&self) -> Result<String, CommandError> {
        let name_ok =
            !self.name.is_empty() && self.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !name_ok {
            return Err(CommandError::BadName(self.name.clone()));
        }
        let mut line = self.name.clone();
        for (index, arg) in self.args.iter().enumerate() {
            if let Some(what) = unsendable(arg) {
                return Err(CommandError::UnsendableChar {
                    command: self.name.clone(),
                    index,
                    what,
                });
            }
            line.push(' ');
            push_quoted(&mut line, arg);
        }
        Ok(line)
    }
}

impl fmt::Display for Cmd {
    /// A human-readable form for logs; unsendable arguments are shown anyway.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for arg in &self.args {
            write!(f, " {arg:?}")?;
        }
        Ok(())
    }
}

fn unsendable(arg: &str) -> Option<&'static str> {
    arg.chars().find_map(|c| match c {
        '\n' => Some("a newline"),
        '\r' => Some("a carriage return"),
        '\0' => Some("a NUL byte"),
        _ => None,
    })
}

/// Single-quotes `arg` for tmux: `'` cannot appear inside single quotes, so
/// it closes the quote, adds `\'` (an escaped quote outside quotes) and
/// reopens; tmux joins adjacent pieces into one word.
fn push_quoted(line: &mut String, arg: &str) {
    line.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            line.push_str("'\\''");
        } else {
            line.push(c);
        }
    }
    line.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_quoted() {
        let cmd = Cmd::new("new-session").flag("-d").opt("-s", "ccmanager_sess_a1").args([
            "sh",
            "-c",
            "echo 'hi'; $HOME",
        ]);
        assert_eq!(
            cmd.render().unwrap(),
            r#"new-session '-d' '-s' 'ccmanager_sess_a1' 'sh' '-c' 'echo '\''hi'\''; $HOME'"#
        );
        assert_eq!(Cmd::new("x").arg("").render().unwrap(), "x ''");
    }

    #[test]
    fn rejects_unsendable() {
        for bad in ["a\nb", "a\rb", "a\0b"] {
            let err = Cmd::new("send-keys").flag("-l").arg(bad).render().unwrap_err();
            assert!(matches!(err, CommandError::UnsendableChar { index: 1, .. }), "{err}");
        }
        assert!(Cmd::new("kill-server; x").render().is_err());
        assert!(Cmd::new("").render().is_err());
    }
}
