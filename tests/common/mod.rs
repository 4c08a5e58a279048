//! Shared fixtures for integration and system tests.
pub mod sysbox;
