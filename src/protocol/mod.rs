//! The wire protocol, shared by the daemon and `ccmanagerctl`: the JSON-RPC 2.0
//! envelope ([`envelope`]), one typed request per method ([`methods`]) and the
//! result types ([`types`]). `docs/protocol.md` is the prose reference.

pub mod envelope;
pub mod methods;
pub mod types;

pub use envelope::{ErrorKind, RpcError};
pub use methods::Request;
