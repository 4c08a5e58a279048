//! ccmanagerd library: `tmux` owns the tmux server and the control-mode connection to it.
pub mod tmux;
