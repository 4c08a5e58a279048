//! The daemon's internal error type and the one place where internal errors
//! become JSON-RPC errors.

use crate::protocol::envelope::{RpcError, INTERNAL_ERROR};
use crate::protocol::ErrorKind;

/// An error while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad params the type system could not catch (names the field).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// No session with that id is visible to the caller.
    #[error("session not found: {0}")]
    SessionNotFound(String),
    /// A cap was hit; the message names it.
    #[error("{0}")]
    LimitReached(String),
    /// tmux or the control connection is down.
    #[error("tmux unavailable: {0}")]
    TmuxUnavailable(String),
    /// tmux refused a command.
    #[error("tmux: {0}")]
    Tmux(String),
    /// The request does not fit the session's state.
    #[error("{0}")]
    InvalidState(String),
    /// An invalid configuration (reload).
    #[error("{0}")]
    InvalidConfig(String),
    /// The caller may not do this (names what and why).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The session's program could not be started.
    #[error("cannot start the session: {0}")]
    SpawnFailed(String),
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A change could not be made durable, so it is not acknowledged (the
    /// message names the state file and the OS error).
    #[error("the state could not be saved: {0}")]
    StateNotSaved(String),
    /// Anything else: a bug or an OS failure; details go to the log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for RpcError {
    fn from(e: Error) -> RpcError {
        let message = e.to_string();
        match e {
            Error::InvalidParams(_) => RpcError::invalid_params(message),
            Error::SessionNotFound(_) => RpcError::app(ErrorKind::SessionNotFound, message),
            Error::LimitReached(_) => RpcError::app(ErrorKind::LimitReached, message),
            Error::TmuxUnavailable(_) => RpcError::app(ErrorKind::TmuxUnavailable, message),
            Error::Tmux(_) => RpcError::app(ErrorKind::TmuxError, message),
            Error::InvalidState(_) => RpcError::app(ErrorKind::InvalidState, message),
            Error::InvalidConfig(_) => RpcError::app(ErrorKind::InvalidConfig, message),
            Error::PermissionDenied(_) => RpcError::app(ErrorKind::PermissionDenied, message),
            Error::SpawnFailed(_) => RpcError::app(ErrorKind::SpawnFailed, message),
            Error::ShuttingDown => RpcError::app(ErrorKind::ShuttingDown, message),
            Error::StateNotSaved(_) => RpcError::app(ErrorKind::StateNotSaved, message),
            Error::Internal(_) => RpcError::new(INTERNAL_ERROR, message),
        }
    }
}
