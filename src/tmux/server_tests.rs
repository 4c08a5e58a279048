//! Unit tests for version parsing, config rendering and the server's argv.

use super::*;

#[test]
fn parses_versions() {
    let v = |s: &str| Version::parse(s).map(|v| v.number);
    assert_eq!(v("tmux 3.3a\n"), Some(Some((3, 3))));
    assert_eq!(v("tmux 3.2"), Some(Some((3, 2))));
    assert_eq!(v("tmux 3.2-rc2"), Some(Some((3, 2))));
    assert_eq!(v("tmux next-3.4"), Some(Some((3, 4))));
    assert_eq!(v("tmux 10.0"), Some(Some((10, 0))));
    assert_eq!(v("tmux master"), Some(None));
    assert_eq!(v("tmux openbsd-7.4"), Some(None));
    assert_eq!(v("screen 4.0"), None);
    assert_eq!(v(""), None);
}

#[test]
fn minimum_version() {
    let ok = |s: &str| Version::parse(s).unwrap().is_supported();
    assert!(ok("tmux 3.2"));
    assert!(ok("tmux 3.3a"));
    assert!(ok("tmux master"));
    assert!(!ok("tmux 3.1c"));
    assert!(!ok("tmux 2.9a"));
    assert!(!ok("tmux 1.8"));
}

#[tokio::test]
async fn missing_binary_names_the_fix() {
    let err = check_version(Path::new("/nonexistent/tmux")).await.unwrap_err();
    assert!(err.to_string().contains("apt-get install tmux"), "{err}");
}

#[tokio::test]
async fn too_old_binary_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("tmux");
    std::fs::write(&fake, "#!/bin/sh\necho 'tmux 3.1c'\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let err = check_version(&fake).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("too old") && msg.contains("apt-get install tmux"), "{msg}");
}

#[test]
fn config_has_required_settings() {
    let text = render_config(&TmuxServerSettings {
        history_limit: 5000,
        default_terminal: Some("tmux-256color".into()),
    });
    for line in [
        "set -g history-limit 5000",
        "set -g remain-on-exit on",
        "set -g exit-empty off",
        "set -g destroy-unattached off",
        "set -g default-terminal 'tmux-256color'",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let none = render_config(&TmuxServerSettings { history_limit: 1, default_terminal: None });
    assert!(!none.contains("default-terminal"));
}

#[test]
fn write_config_is_atomic_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tmux.conf");
    std::fs::write(&path, "old").unwrap();
    write_config(&path, &TmuxServerSettings { history_limit: 42, default_terminal: None }).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("history-limit 42"));
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
}

fn paths() -> ServerPaths {
    ServerPaths {
        tmux_bin: "/usr/bin/tmux".into(),
        socket: "/run/ccmanagerd/tmux.sock".into(),
        config: "/run/ccmanagerd/tmux.conf".into(),
        client_as: None,
    }
}

#[test]
fn server_argv_is_foreground() {
    let argv = server_argv(&paths());
    assert_eq!(
        argv,
        [
            "/usr/bin/tmux",
            "-D",
            "-S",
            "/run/ccmanagerd/tmux.sock",
            "-f",
            "/run/ccmanagerd/tmux.conf"
        ]
    );
}
