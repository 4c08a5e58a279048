//! `health.check`: every check, with a timed round trip to each tmux server.
//! Root and admins see every check; anyone else sees the checks of its own
//! uid's server and the daemon-wide ones, never which other uids have
//! servers (see [`visible_to`]).

use super::Ctx;
use crate::protocol::types::Health;

/// `health.check` -> `{status, checks: [{name, ok, status, detail, ...}]}`.
pub async fn check(ctx: &Ctx<'_>) -> Health {
    let health = ctx.service.health.evaluate().await;
    if ctx.caller.admin {
        health
    } else {
        visible_to(health, ctx.caller.uid)
    }
}

/// What a non-admin caller `uid` may see: per-uid checks (those carrying a
/// `uid`) of its own uid only, and no other uid named in a daemon-wide
/// check's detail. The overall status stays the daemon's: it is what a
/// client's retry decision needs, and names nobody.
pub fn visible_to(mut health: Health, uid: u32) -> Health {
    health.checks.retain(|c| c.extra.get("uid").is_none_or(|u| u.as_u64() == Some(uid.into())));
    for c in &mut health.checks {
        if c.name == crate::health::CONTROL_CONNECTION && !c.ok {
            c.detail = "not connected to some tmux servers (their sessions wait; admins see which)"
                .to_string();
        }
    }
    health
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::Check;
    use serde_json::json;

    fn check(name: &str, ok: bool, detail: &str, uid: Option<u32>) -> Check {
        Check {
            name: name.into(),
            ok,
            detail: detail.into(),
            status: if ok { "ok" } else { "failing" }.into(),
            extra: uid.map(|u| ("uid".to_string(), json!(u))).into_iter().collect(),
        }
    }

    #[test]
    fn a_user_sees_its_own_server_and_no_other_uid() {
        let health = Health {
            status: "failing".into(),
            checks: vec![
                check("tmux_server", true, "uid 1000 (alice): answering", Some(1000)),
                check("tmux_server", false, "uid 1001: not connected", Some(1001)),
                check(crate::health::CONTROL_CONNECTION, false, "not connected to uid 1001", None),
                check("disk", true, "/var/lib/ccmanagerd: 10% used", None),
            ],
        };
        let seen = visible_to(health, 1000);
        assert_eq!(seen.status, "failing");
        let names: Vec<_> = seen.checks.iter().map(|c| (c.name.as_str(), c.ok)).collect();
        assert_eq!(
            names,
            [("tmux_server", true), (crate::health::CONTROL_CONNECTION, false), ("disk", true)]
        );
        let text = serde_json::to_string(&seen).unwrap();
        assert!(!text.contains("1001"), "{text}");
    }
}
