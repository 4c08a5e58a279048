//! The wire protocol, shared by the daemon, `ccmanagerctl` and the tests: the
//! JSON-RPC 2.0 envelope ([`envelope`]), the method table with one typed
//! request per method and its params ([`methods`]), and the result types
//! ([`types`] for the shared objects, [`results`] for the per-method ones,
//! [`streams`] for the output log and live stream methods and their
//! notifications).
//! `docs/protocol.md` is the prose reference.

pub mod envelope;
pub mod methods;
pub mod openrpc;
pub mod results;
pub mod streams;
pub mod types;

pub use envelope::{ErrorKind, RpcError};
pub use methods::{method, Method, Request};
