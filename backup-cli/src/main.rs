//! The `lifeboat` binary: everything lives in the library so that the npm
//! and Python packages run exactly the same command line.

fn main() {
    std::process::exit(backup_cli::run(std::env::args_os()));
}
