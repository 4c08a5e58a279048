//! [`BusError`]: what went wrong talking to systemd, naming the unit and,
//! when systemd refused, its D-Bus error.

use std::ffi::OsString;

/// systemd's error for a unit that is not loaded.
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// What went wrong talking to systemd; every variant names the unit.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No connection could be made.
    #[error("cannot connect to systemd ({target}): {reason}")]
    Connect {
        /// Where we tried.
        target: String,
        /// Why it failed.
        reason: String,
    },
    /// systemd refused the call, e.g. `org.freedesktop.systemd1.UnitExists`.
    #[error("{method} {unit}: systemd: {name}: {message}")]
    Systemd {
        /// The manager method.
        method: &'static str,
        /// The unit it was about.
        unit: String,
        /// systemd's D-Bus error name.
        name: String,
        /// systemd's message.
        message: String,
    },
    /// The call failed on the way (connection lost, no answer within
    /// [`CALL_TIMEOUT`](super::bus::CALL_TIMEOUT), an unexpected reply).
    #[error("{method} {unit}: {source}")]
    Call {
        /// The manager method.
        method: &'static str,
        /// The unit it was about.
        unit: String,
        /// zbus' error.
        #[source]
        source: zbus::Error,
    },
    /// The unit's job ended with another result than `done` (`failed`,
    /// `canceled`, `timeout`, `dependency`...).
    #[error("{method} {unit}: job {job} ended with result \"{result}\"")]
    Job {
        /// The manager method that queued the job.
        method: &'static str,
        /// The unit.
        unit: String,
        /// The job's object path.
        job: String,
        /// systemd's job result.
        result: String,
    },
    /// The job did not end within [`JOB_TIMEOUT`](super::bus::JOB_TIMEOUT), or the connection died
    /// while we waited.
    #[error("{method} {unit}: job {job} {why}")]
    JobLost {
        /// The manager method that queued the job.
        method: &'static str,
        /// The unit.
        unit: String,
        /// The job's object path.
        job: String,
        /// What happened instead of its end.
        why: String,
    },
    /// An argument D-Bus cannot carry (strings there are UTF-8).
    #[error("{unit}: argument {arg:?} is not valid UTF-8")]
    NotUtf8 {
        /// The unit.
        unit: String,
        /// The argument.
        arg: OsString,
    },
}

impl BusError {
    /// systemd's D-Bus error name, when systemd refused the call.
    pub fn systemd_error(&self) -> Option<&str> {
        match self {
            BusError::Systemd { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Whether systemd said the unit is not loaded.
    pub fn is_no_such_unit(&self) -> bool {
        self.systemd_error() == Some(NO_SUCH_UNIT)
    }

    pub(super) fn from_call(method: &'static str, unit: &str, e: zbus::Error) -> BusError {
        match e {
            zbus::Error::MethodError(name, message, _) => BusError::Systemd {
                method,
                unit: unit.to_string(),
                name: name.to_string(),
                message: message.unwrap_or_default(),
            },
            source => BusError::Call { method, unit: unit.to_string(), source },
        }
    }
}
