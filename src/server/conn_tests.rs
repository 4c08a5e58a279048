//! The connection loop with a stub handler: the order of a subscription's
//! first line against the reply that opened it, and the end of its task
//! with the connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{ActiveGuard, Bounds, Counts, Handler, Outlet, Peer};
use crate::protocol::envelope::RpcError;
use crate::protocol::Request;
use crate::shutdown::Shutdown;

/// `daemon.ping` opens a subscription whose task sends a line at once and
/// then waits forever; the reply comes 50 ms later.
struct Stub {
    tasks: Arc<AtomicUsize>,
}

struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handler for Stub {
    fn bounds(&self) -> Bounds {
        Bounds {
            max_message_bytes: 1 << 16,
            max_connections: 4,
            max_connections_per_uid: 4,
            reserved_admin_connections: 0,
            max_inflight_per_connection: 8,
            max_pending_reply_bytes: 1 << 16,
            write_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(1),
        }
    }
    fn access(&self, _: &Peer) -> super::Access {
        super::Access::User
    }
    async fn handle(
        &self,
        _: &Peer,
        outlet: &Outlet,
        _: Request,
    ) -> Result<Box<RawValue>, RpcError> {
        self.tasks.fetch_add(1, Ordering::SeqCst);
        let live = Live(self.tasks.clone());
        outlet
            .open(8, Arc::new(()), move |sink| async move {
                let _live = live;
                let sub = sink.id();
                if let Some(slot) = sink.reserve().await {
                    slot.send(format!(r#"{{"jsonrpc":"2.0","method":"note","params":{sub}}}"#));
                }
                std::future::pending::<()>().await;
            })
            .map_err(|e| RpcError::new(-32603, format!("{e:?}")))?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(RawValue::from_string("\"pong\"".into()).unwrap())
    }
    fn served(&self, _: &'static str, _: bool, _: Duration) {}
    fn refused(&self) {}
    fn budget_hit(&self, _: &'static str) {}
}

async fn connection() -> (UnixStream, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let (client, server) = UnixStream::pair().unwrap();
    let tasks = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(Stub { tasks: tasks.clone() });
    let guard = ActiveGuard::new(Arc::new(Mutex::new(Counts::default())), 1000);
    let peer = Peer { uid: 1000, gid: 1000, pid: 1, groups: vec![] };
    let shutdown = Shutdown::new();
    let conn = tokio::spawn(super::conn::serve_connection(
        handler,
        server,
        peer,
        guard,
        shutdown.listener(),
    ));
    (client, tasks, conn)
}

#[tokio::test]
async fn the_first_line_of_a_subscription_follows_the_reply_that_opened_it() {
    let (client, tasks, conn) = connection().await;
    let (read, mut write) = client.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.ping\"}\n").await.unwrap();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.contains("\"pong\""), "the reply comes first: {first}");
    let second = lines.next_line().await.unwrap().unwrap();
    assert!(second.contains("\"params\":1"), "{second}");

    // In a batch: both subscriptions start after the array.
    let ping = |id: u32| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"daemon.ping"}}"#);
    write.write_all(format!("[{},{}]\n", ping(2), ping(3)).as_bytes()).await.unwrap();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with('[') && first.matches("pong").count() == 2, "{first}");
    let mut notes = vec![lines.next_line().await.unwrap().unwrap()];
    notes.push(lines.next_line().await.unwrap().unwrap());
    notes.sort();
    assert!(notes[0].contains("\"params\":2") && notes[1].contains("\"params\":3"), "{notes:?}");
    assert_eq!(tasks.load(Ordering::SeqCst), 3);

    // The tasks end with the connection.
    drop((lines, write));
    tokio::time::timeout(Duration::from_secs(5), conn).await.unwrap().unwrap();
    for _ in 0..100 {
        if tasks.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} subscription tasks outlived their connection", tasks.load(Ordering::SeqCst));
}
