//! tmux server lifecycle against the real tmux: launch, adopt, probe, stale socket.

mod common;

use std::os::unix::fs::PermissionsExt;

use ccmanagerd::tmux::server::{check_version, ensure_running, probe, Launcher};
use common::{kill_server, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_tmux_is_supported() {
    let v = check_version(common::TMUX.as_ref()).await.unwrap();
    assert!(v.is_supported(), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_then_adopt() {
    let server = TestServer::start().await;
    // The socket's parent directory was created private.
    let dir = server.socket().parent().unwrap();
    assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
    // The generated config is in effect.
    assert_eq!(server.tmux(&["show-options", "-gv", "remain-on-exit"]).trim(), "on");
    assert_eq!(server.tmux(&["show-options", "-gv", "exit-empty"]).trim(), "off");
    // A second ensure_running adopts the same server instead of restarting it.
    let (info, launched) = ensure_running(&Launcher::Detached(None), &server.paths).await.unwrap();
    assert!(!launched);
    assert_eq!(info, server.info);
    // The server is a session leader of its own (setsid), not in our group.
    let pid = nix::unistd::Pid::from_raw(server.info.pid as i32);
    assert_eq!(nix::unistd::getsid(Some(pid)).unwrap(), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_outlives_with_no_sessions() {
    let server = TestServer::start().await;
    server.tmux(&["new-session", "-d", "-s", "ccmanager_sess_x", "true"]);
    server.tmux(&["kill-session", "-t", "=ccmanager_sess_x"]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(probe(common::TMUX.as_ref(), server.socket()).await, Some(server.info.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_missing_and_stale_socket() {
    let (_dir, paths) = TestServer::paths();
    assert_eq!(probe(&paths.tmux_bin, &paths.socket).await, None);
    // A stale socket file: bound once, nobody listening.
    std::fs::create_dir_all(paths.socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&paths.socket).unwrap());
    assert!(paths.socket.exists());
    assert_eq!(probe(&paths.tmux_bin, &paths.socket).await, None);
    // ensure_running replaces the stale socket with a live server.
    let (info, launched) = ensure_running(&Launcher::Detached(None), &paths).await.unwrap();
    assert!(launched);
    kill_server(&paths.socket, Some(info.pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_failure_is_reported_not_trusted() {
    let (dir, mut paths) = TestServer::paths();
    // A socket whose directory is a regular file: the server cannot bind.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    paths.socket = blocker.join("tmux.sock");
    let err = ensure_running(&Launcher::Detached(None), &paths).await.unwrap_err();
    assert!(err.to_string().contains("socket directory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_cannot_bind_is_an_error() {
    let (dir, mut paths) = TestServer::paths();
    // Longer than sun_path allows: tmux exits without ever answering.
    let deep = dir.path().join("d".repeat(100));
    paths.socket = deep.join("tmux.sock");
    let err = ensure_running(&Launcher::Detached(None), &paths).await.unwrap_err();
    assert!(err.to_string().contains("without answering"), "{err}");
}
