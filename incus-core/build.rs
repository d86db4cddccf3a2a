//! Links liblxc (Debian `lxc-dev`) when the `host` feature is on.
fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_HOST");
    if std::env::var_os("CARGO_FEATURE_HOST").is_some()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        println!("cargo:rustc-link-lib=lxc");
    }
}
