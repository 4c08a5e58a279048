//! Per-connection notifications: a method may open a subscription on its
//! connection ([`Outlet::open`]), a task that sends notification lines to
//! the client until it ends, is closed ([`Outlet::close`]) or the
//! connection goes.
//!
//! The server knows lines and numbers here, nothing of what a subscription
//! follows: the layer above keeps its own state per subscription
//! ([`Outlet::get`] hands it back to later calls on the same connection).
//!
//! Bounds and order, which the connection loop (`conn.rs`) keeps:
//! - lines go through a small bounded queue into the connection's outbox,
//!   which the loop only takes from while the outbox is under
//!   `daemon.max_pending_reply_bytes`; a task waits for room in the queue
//!   *before* it builds its line ([`Sink::reserve`]), so a subscription
//!   whose client does not read holds nothing but its own state, and the
//!   write timeout closes a connection whose client takes no byte;
//! - a subscription's task starts only once the reply of the call that
//!   opened it is in the outbox (for a batch, once the batch's reply array
//!   is), so its first notification never precedes that reply;
//! - a line of a subscription closed before the loop took it is dropped:
//!   nothing of a subscription follows the reply to its close;
//! - every task is aborted when the connection ends.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Lines that may wait between the subscriptions and the outbox: enough to
/// keep the socket busy, small next to the outbox's own budget.
pub(crate) const QUEUE_LINES: usize = 4;

/// A subscription's task.
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A notification line on its way to the outbox.
pub(crate) struct Note {
    /// Its subscription.
    pub(crate) sub: u64,
    /// The JSON text, without newline.
    pub(crate) line: String,
    /// The subscription ends with this line.
    pub(crate) last: bool,
}

struct Entry {
    /// The layer above's state for this subscription.
    state: Arc<dyn Any + Send + Sync>,
    /// Set once the task runs.
    task: Option<AbortHandle>,
}

#[derive(Default)]
struct Subs {
    /// The last number given (numbers start at 1).
    last: u64,
    open: HashMap<u64, Entry>,
    /// The connection is over: nothing more starts.
    closed: bool,
}

/// A connection's subscriptions, shared by its calls and its loop.
pub(crate) struct Shared {
    subs: Mutex<Subs>,
    tx: mpsc::Sender<Note>,
}

impl Shared {
    /// The shared state and the receiving end the connection loop reads.
    pub(crate) fn new() -> (Arc<Shared>, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        (Arc::new(Shared { subs: Mutex::new(Subs::default()), tx }), rx)
    }

    fn lock(&self) -> MutexGuard<'_, Subs> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscriptions open.
    pub(crate) fn count(&self) -> usize {
        self.lock().open.len()
    }

    /// Starts `task` of subscription `sub`, unless it was closed meanwhile
    /// (an unsubscribe in the same batch) or the connection is over.
    pub(crate) fn start(&self, sub: u64, task: Task) {
        let mut subs = self.lock();
        if subs.closed {
            return;
        }
        if let Some(entry) = subs.open.get_mut(&sub) {
            entry.task = Some(tokio::spawn(task).abort_handle());
        }
    }

    /// Whether a line of `note`'s subscription may still be written (and
    /// forgets the subscription when the line is its last).
    pub(crate) fn deliver(&self, note: &Note) -> bool {
        let mut subs = self.lock();
        if note.last {
            subs.open.remove(&note.sub).is_some()
        } else {
            subs.open.contains_key(&note.sub)
        }
    }

    /// The connection is over: every task is aborted, none starts.
    pub(crate) fn close_all(&self) {
        let mut subs = self.lock();
        subs.closed = true;
        for (_, entry) in subs.open.drain() {
            if let Some(task) = entry.task {
                task.abort();
            }
        }
    }
}

/// Why [`Outlet::open`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The connection already has this many subscriptions.
    Full(usize),
    /// The connection is closing.
    Closed,
}

/// What a call may do with its connection's subscriptions; one per call.
pub struct Outlet {
    shared: Arc<Shared>,
    /// Subscriptions this call opened, started once its reply is queued.
    opened: Mutex<Vec<(u64, Task)>>,
}

impl Outlet {
    pub(crate) fn new(shared: Arc<Shared>) -> Outlet {
        Outlet { shared, opened: Mutex::new(Vec::new()) }
    }

    /// Opens a subscription of at most `max` on this connection: `state` is
    /// the caller's (see [`Outlet::get`]), `task` builds the future that
    /// sends its notifications through the [`Sink`] it is given. The task
    /// starts after this call's reply is queued; returns its number.
    pub fn open<S, F, Fut>(&self, max: usize, state: Arc<S>, task: F) -> Result<u64, OpenError>
    where
        S: Any + Send + Sync,
        F: FnOnce(Sink) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let sub = {
            let mut subs = self.shared.lock();
            if subs.closed {
                return Err(OpenError::Closed);
            }
            if subs.open.len() >= max {
                return Err(OpenError::Full(max));
            }
            subs.last += 1;
            let sub = subs.last;
            subs.open.insert(sub, Entry { state, task: None });
            sub
        };
        let fut = task(Sink { sub, tx: self.shared.tx.clone() });
        self.opened.lock().unwrap_or_else(|e| e.into_inner()).push((sub, Box::pin(fut)));
        Ok(sub)
    }

    /// The state of this connection's subscription `sub`, if it is open
    /// and its state is an `S`.
    pub fn get<S: Any + Send + Sync>(&self, sub: u64) -> Option<Arc<S>> {
        let state = self.shared.lock().open.get(&sub)?.state.clone();
        state.downcast::<S>().ok()
    }

    /// Closes this connection's subscription `sub`: its task is aborted and
    /// none of its lines is written after this call's reply. False if it
    /// was not open.
    pub fn close(&self, sub: u64) -> bool {
        let entry = self.shared.lock().open.remove(&sub);
        match entry {
            Some(entry) => {
                if let Some(task) = entry.task {
                    task.abort();
                }
                true
            }
            None => false,
        }
    }

    /// Subscriptions open on this connection.
    pub fn count(&self) -> usize {
        self.shared.count()
    }

    /// The tasks this call opened, to start after its reply.
    pub(crate) fn take_opened(&self) -> Vec<(u64, Task)> {
        std::mem::take(&mut *self.opened.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A subscription's way to its connection.
pub struct Sink {
    sub: u64,
    tx: mpsc::Sender<Note>,
}

impl Sink {
    /// The subscription's number.
    pub fn id(&self) -> u64 {
        self.sub
    }

    /// Waits for room for one line; `None` when the connection is gone.
    /// Build the line after this returns, so that waiting holds no line.
    pub async fn reserve(&self) -> Option<Slot<'_>> {
        let permit = self.tx.reserve().await.ok()?;
        Some(Slot { permit, sub: self.sub })
    }
}

/// Room for one line of a subscription.
pub struct Slot<'a> {
    permit: mpsc::Permit<'a, Note>,
    sub: u64,
}

impl Slot<'_> {
    /// Queues `line` (one JSON text, no newline).
    pub fn send(self, line: String) {
        self.permit.send(Note { sub: self.sub, line, last: false });
    }

    /// Queues `line` as the subscription's last: it is over once the line
    /// is taken (its task should return).
    pub fn send_last(self, line: String) {
        self.permit.send(Note { sub: self.sub, line, last: true });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_get_close_and_the_cap() {
        let (shared, _rx) = Shared::new();
        let outlet = Outlet::new(shared.clone());
        let a = outlet.open(2, Arc::new(7u32), |_| async {}).unwrap();
        let b = outlet.open(2, Arc::new("x"), |_| async {}).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(outlet.open(2, Arc::new(0u8), |_| async {}), Err(OpenError::Full(2)));
        assert_eq!(*outlet.get::<u32>(a).unwrap(), 7);
        assert!(outlet.get::<u32>(b).is_none(), "another type");
        assert!(outlet.close(a));
        assert!(!outlet.close(a));
        assert!(outlet.get::<u32>(a).is_none());
        assert_eq!(outlet.count(), 1);
        shared.close_all();
        assert_eq!(outlet.open(2, Arc::new(0u8), |_| async {}), Err(OpenError::Closed));
    }

    #[tokio::test]
    async fn a_closed_subscription_neither_starts_nor_delivers() {
        let (shared, mut rx) = Shared::new();
        let outlet = Outlet::new(shared.clone());
        let sub = outlet
            .open(4, Arc::new(()), |sink| async move {
                if let Some(slot) = sink.reserve().await {
                    slot.send("line".into());
                }
            })
            .unwrap();
        let opened = outlet.take_opened();
        assert_eq!(opened.len(), 1);
        outlet.close(sub);
        for (sub, task) in opened {
            shared.start(sub, task);
        }
        let nothing = tokio::time::timeout(std::time::Duration::from_millis(50), rx.recv()).await;
        assert!(nothing.is_err(), "a task closed before its start never runs");

        let sub = outlet
            .open(4, Arc::new(()), |sink| async move {
                if let Some(slot) = sink.reserve().await {
                    slot.send_last("bye".into());
                }
            })
            .unwrap();
        for (sub, task) in outlet.take_opened() {
            shared.start(sub, task);
        }
        let note = rx.recv().await.unwrap();
        assert_eq!((note.sub, note.line.as_str(), note.last), (sub, "bye", true));
        assert!(shared.deliver(&note));
        assert_eq!(shared.count(), 0, "the last line ends it");
        assert!(!shared.deliver(&note), "nothing of it after");
    }
}
