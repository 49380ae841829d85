//! The `duro` binary: see `duro::cli`.

fn main() -> std::process::ExitCode {
    duro::cli::main()
}
