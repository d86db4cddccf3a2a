//! `incus-helper`: the single-threaded process that drives liblxc for the engine.
//! It is not meant to be run by hand; see `incus_core::host::lxc::helper`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(incus_core::host::lxc::helper::main(&args));
}
