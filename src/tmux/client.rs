//! placeholder
pub struct ClientConfig;
pub struct ControlClient;
pub const KEEPER_SESSION: &str = "ccmanager_control";
pub fn connect() {}
