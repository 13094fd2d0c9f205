//! The `kuma` program: everything lives in the library (see `kuma::cli`).

fn main() -> std::process::ExitCode {
    kuma::cli::main()
}
