//! The `issuance-watcher` command. Everything lives in the library; this only
//! hands the command line to it and turns its result into an exit code.

fn main() -> std::process::ExitCode {
    issuance_watcher::cli::main()
}
