//! The kiln binary: everything lives in the library; see `kiln::cli::run`.

fn main() -> std::process::ExitCode {
    // rustls needs one process-wide crypto provider; ring is the only one compiled in.
    // An error only means one is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kiln::cli::run()
}
