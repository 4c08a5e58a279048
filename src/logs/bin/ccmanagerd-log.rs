//! `ccmanagerd-log`: the session output logger alone (the `__log` mode of
//! `ccmanagerd`, see `ccmanagerd::logs::logger`), as its own small binary.
fn main() {
    ccmanagerd::logs::logger::main(std::env::args_os().skip(1).collect())
}
