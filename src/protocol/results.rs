//! Results that belong to one method each (the objects several methods share,
//! [`Session`], [`Status`](super::types::Status) and the reports, are in
//! [`types`](super::types)). Serde attributes pin the wire shape; each doc
//! comment shows it, and the tests decode exactly those examples.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::types::{Projected, Session, SessionField};

/// A result that is always one fixed JSON string: a unit struct that
/// serialises as that string and decodes only from it.
macro_rules! word {
    ($(#[$attr:meta])* $ty:ident = $word:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $ty;

        impl $ty {
            /// The string on the wire.
            pub const WORD: &'static str = $word;
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(Self::WORD)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(Self::WORD)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "const": $word})
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s == Self::WORD {
                    Ok($ty)
                } else {
                    Err(serde::de::Error::invalid_value(
                        serde::de::Unexpected::Str(&s),
                        &concat!("the string \"", $word, "\""),
                    ))
                }
            }
        }
    };
}

word! {
    /// `daemon.ping`: `"pong"`.
    Pong = "pong"
}

word! {
    /// `debug.sleep` (test builds only): `"slept"`.
    Slept = "slept"
}

/// `daemon.metrics`: the Prometheus text exposition format.
///
/// ```json
/// {"text": "# TYPE ccmanagerd_sessions gauge\nccmanagerd_sessions{state=\"running\"} 2\n"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MetricsResult {
    /// The exposition, `\n`-terminated lines.
    pub text: String,
}

/// `session.list`, when no `fields` are asked (with `fields`, each session
/// has only those members: decode such a reply into your own type).
///
/// ```json
/// {"sessions": [{"id": "a1b2c3", "name": null, "tmux_session": "ccmanager_sess_a1b2c3", ...}]}
/// ```
///
/// The daemon does not build this: it writes [`ProjectedList`] straight from
/// the registry, which encodes the same JSON (tested below).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListResult {
    /// The sessions the caller may see, oldest first.
    pub sessions: Vec<Session>,
}

/// The daemon's encoder of `session.list`: [`ListResult`]'s shape with each
/// session cut to `fields` by [`Projected`]. With [`SessionField::ALL`] it
/// writes exactly what [`ListResult`] would.
#[derive(Serialize)]
pub struct ProjectedList<'a> {
    /// The sessions, each cut to the asked fields.
    pub sessions: Vec<Projected<'a>>,
}

impl<'a> ProjectedList<'a> {
    /// `sessions`, each cut to `fields`.
    pub fn new(
        sessions: impl IntoIterator<Item = &'a Session>,
        fields: &'a [SessionField],
    ) -> Self {
        ProjectedList {
            sessions: sessions.into_iter().map(|session| Projected { session, fields }).collect(),
        }
    }
}

/// `session.kill`: the session and its whole process tree are gone.
///
/// ```json
/// {"id": "a1b2c3", "killed": true}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KillResult {
    /// The session id.
    pub id: String,
    /// Always true (a failure is an error reply).
    pub killed: bool,
}

/// `session.send`: the text and keys were typed.
///
/// ```json
/// {"id": "a1b2c3"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SendResult {
    /// The session id.
    pub id: String,
}

/// `session.capture`: the visible screen, plus `lines` of scrollback above it.
///
/// ```json
/// {"id": "a1b2c3", "text": "$ ls\nREADME.md\n$ \n"}
/// ```
///
/// Cut to its last lines (`daemon.max_capture_bytes`):
///
/// ```json
/// {"id": "a1b2c3", "text": "last line\n", "truncated": true}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaptureResult {
    /// The session id.
    pub id: String,
    /// One `\n`-terminated line per pane row (escape sequences only when
    /// asked).
    pub text: String,
    /// The capture was longer than `daemon.max_capture_bytes`: `text` holds
    /// its last whole lines that fit. Absent when nothing was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// `session.attach`: a command the session's owner may exec to attach a real
/// terminal.
///
/// ```json
/// {"argv": ["/usr/bin/tmux", "-S", "/run/ccmanagerd-tmux/tmux.sock", "attach-session", "-t", "=ccmanager_sess_a1b2c3"]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AttachResult {
    /// Program and arguments, never a shell string.
    pub argv: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(id: &str) -> Session {
        serde_json::from_value(json!({
            "id": id, "name": "n", "tmux_session": format!("ccmanager_sess_{id}"),
            "command": ["cat"], "cwd": "/tmp", "state": "running", "exit_status": null,
            "pid": 7, "created_at": "2026-11-20T10:00:00Z",
            "last_activity_at": null, "ended_at": null, "owner_uid": 1000, "uid": 1000, "user": "alice", "adopted": false,
            "limits": {"nofile": 64}, "keep": false, "cols": 80, "rows": 24, "env": {}
        }))
        .unwrap()
    }

    #[test]
    fn words_are_their_strings_and_nothing_else() {
        assert_eq!(serde_json::to_string(&Pong).unwrap(), r#""pong""#);
        assert_eq!(serde_json::from_str::<Pong>(r#""pong""#).unwrap(), Pong);
        assert_eq!(Pong.to_string(), "pong");
        for bad in [r#""Pong""#, r#""slept""#, "null", "{}", "1"] {
            assert!(serde_json::from_str::<Pong>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_value(Slept).unwrap(), json!("slept"));
    }

    /// The daemon's list encoder and the clients' `ListResult` must agree,
    /// byte for byte (same members, same order).
    #[test]
    fn the_list_encoder_writes_a_list_result() {
        let sessions = vec![session("a1"), session("b2")];
        let encoded =
            serde_json::to_string(&ProjectedList::new(&sessions, &SessionField::ALL)).unwrap();
        let typed = ListResult { sessions: sessions.clone() };
        assert_eq!(encoded, serde_json::to_string(&typed).unwrap());
        assert_eq!(serde_json::from_str::<ListResult>(&encoded).unwrap(), typed);
        let empty = serde_json::to_string(&ProjectedList::new(&[], &SessionField::ALL)).unwrap();
        assert_eq!(empty, serde_json::to_string(&ListResult { sessions: vec![] }).unwrap());
        assert_eq!(empty, r#"{"sessions":[]}"#);
        let cut = serde_json::to_value(ProjectedList::new(
            &sessions,
            &[SessionField::State, SessionField::Id],
        ))
        .unwrap();
        assert_eq!(
            cut,
            json!({"sessions": [{"state": "running", "id": "a1"}, {"state": "running", "id": "b2"}]})
        );
    }
}
