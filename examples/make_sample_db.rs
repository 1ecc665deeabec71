//! Write a sample SQLite database (WAL mode, two tables, an index).
//!
//! ```sh
//! cargo run -p lifeboat-examples --bin make-sample-db -- demo/app.db [ROWS]
//! ```
//! Refuses to overwrite an existing file.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: make-sample-db PATH [ROWS]");
        std::process::exit(64);
    };
    let rows: usize = args
        .next()
        .map(|r| r.parse().expect("ROWS is a number"))
        .unwrap_or(100_000);
    let path = std::path::Path::new(&path);
    if path.exists() {
        eprintln!("{} exists; not overwriting it", path.display());
        std::process::exit(1);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create directory");
    }
    backup_core::source::sqlite::write_sample_database(path, rows).expect("write sample database");
    println!("wrote {} with {rows} rows", path.display());
}
