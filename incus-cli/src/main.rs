//! `incus`: the command-line client. Not written yet (see the daemon issue).

fn main() {
    eprintln!("incus: the command-line client is not implemented yet");
    std::process::exit(1);
}
