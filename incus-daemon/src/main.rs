//! `incusd`: the Incus REST API daemon. Not written yet (see the daemon issue); the engine it
//! will serve is `incus_core::host::Host`, usable today as a library.

fn main() {
    eprintln!("incusd: the REST API daemon is not implemented yet; use the incus-core library");
    std::process::exit(1);
}
