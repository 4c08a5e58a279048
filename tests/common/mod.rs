//! Shared fixtures for the integration and system tests.
#![allow(dead_code)]

pub mod caller;
pub mod daemon;
pub mod output;
pub mod probe;
pub mod service;
pub mod sysbox;
pub mod tmux;
pub mod users;
pub mod wait;

#[allow(unused_imports)]
pub use tmux::*;
