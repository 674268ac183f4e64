//! The `wasmops` command.

fn main() -> std::process::ExitCode {
    wasmops::cli::main()
}
