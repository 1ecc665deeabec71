//! `gen-sqlite`: writes a realistic application database for the backup
//! benchmarks.
//!
//! ```text
//! gen-sqlite <path> [--size-mb 500] [--seed 42] [--force]
//! ```
//!
//! The database is in WAL mode and holds three tables that look like a small
//! shop's: `users` (with a JSON profile), `orders` (with JSON line items) and
//! `events` (a click stream with JSON payloads), indexed on `user_id`,
//! `created_at`/`ts` and `email`. Text comes from word lists with random
//! choices, so it compresses like real data does: neither random bytes nor
//! zeros. Rows go in through prepared statements in large transactions until
//! `page_count * page_size` reaches the target, then the WAL is checkpointed
//! into the main file. The same seed (and the same bundled SQLite) gives the
//! same database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, Transaction, params};
use serde_json::json;

const USAGE: &str = "usage: gen-sqlite <path> [--size-mb N] [--seed N] [--force]

Writes a realistic SQLite application database (WAL mode, users/orders/events
tables with JSON columns and indexes) of at least N MiB (default 500).
The same --seed (default 42) gives the same database. An existing file is
never overwritten unless --force is given.";

/// Rows added per table in one transaction; about 10 MiB of pages.
const USERS_PER_BATCH: usize = 500;
const ORDERS_PER_BATCH: usize = 5_000;
const EVENTS_PER_BATCH: usize = 20_000;

/// 2022-01-01T00:00:00Z: where the generated history starts.
const EPOCH_START: i64 = 1_640_995_200;

const SCHEMA: &str = "
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    email      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    profile    TEXT    NOT NULL CHECK (json_valid(profile))
);
CREATE UNIQUE INDEX users_email ON users(email);
CREATE INDEX users_created_at ON users(created_at);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    total_cents INTEGER NOT NULL,
    currency    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    items       TEXT    NOT NULL CHECK (json_valid(items))
);
CREATE INDEX orders_user_id ON orders(user_id);
CREATE INDEX orders_created_at ON orders(created_at);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL CHECK (json_valid(payload)),
    duration_ms REAL    NOT NULL,
    ts          TEXT    NOT NULL
);
CREATE INDEX events_user_id ON events(user_id);
CREATE INDEX events_ts ON events(ts);
";

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Alice", "Amara", "Andrea", "Arjun", "Beatriz", "Ben", "Carla", "Carlos",
    "Chen", "Chloe", "Daniel", "Dmitri", "Elena", "Emil", "Emma", "Fatima", "Felix", "Grace",
    "Hana", "Hugo", "Ines", "Isaac", "Ivan", "Jana", "Jonas", "Julia", "Kai", "Kenji", "Lara",
    "Leo", "Lina", "Lucas", "Maja", "Marco", "Maria", "Mateo", "Mei", "Mia", "Nadia", "Noah",
    "Nora", "Olga", "Omar", "Oscar", "Paula", "Priya", "Rafael", "Rosa", "Sami", "Sara", "Sofia",
    "Tariq", "Tom", "Uma", "Victor", "Yara", "Yusuf", "Zoe",
];

const LAST_NAMES: &[&str] = &[
    "Adams",
    "Almeida",
    "Andersen",
    "Baker",
    "Bauer",
    "Becker",
    "Chen",
    "Costa",
    "Dubois",
    "Eriksson",
    "Fischer",
    "Garcia",
    "Gomez",
    "Gupta",
    "Hansen",
    "Hoffmann",
    "Ivanova",
    "Jansen",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Muller",
    "Nakamura",
    "Novak",
    "Nowak",
    "Okafor",
    "Olsen",
    "Patel",
    "Pereira",
    "Petrov",
    "Rossi",
    "Santos",
    "Sato",
    "Schmidt",
    "Schneider",
    "Silva",
    "Singh",
    "Smith",
    "Suzuki",
    "Tanaka",
    "Thomas",
    "Wagner",
    "Wang",
    "Weber",
    "Williams",
    "Wilson",
    "Wong",
    "Yamamoto",
    "Zhang",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "inbox.test",
    "post.invalid",
    "corp.example",
    "uni.example.edu",
];

const WORDS: &[&str] = &[
    "about",
    "account",
    "after",
    "again",
    "always",
    "amazing",
    "answer",
    "around",
    "back",
    "basket",
    "before",
    "best",
    "better",
    "between",
    "black",
    "blue",
    "book",
    "bought",
    "box",
    "bright",
    "build",
    "call",
    "careful",
    "cheap",
    "city",
    "classic",
    "clean",
    "coffee",
    "color",
    "comfortable",
    "cook",
    "daily",
    "deal",
    "delivery",
    "design",
    "different",
    "dinner",
    "easy",
    "enjoy",
    "every",
    "family",
    "fast",
    "favorite",
    "feel",
    "find",
    "fine",
    "first",
    "fresh",
    "friend",
    "garden",
    "gift",
    "good",
    "great",
    "green",
    "happy",
    "heavy",
    "help",
    "home",
    "hot",
    "house",
    "idea",
    "kitchen",
    "large",
    "late",
    "light",
    "little",
    "local",
    "long",
    "love",
    "made",
    "many",
    "market",
    "morning",
    "music",
    "natural",
    "need",
    "never",
    "new",
    "nice",
    "night",
    "office",
    "often",
    "old",
    "order",
    "outdoor",
    "package",
    "perfect",
    "plan",
    "price",
    "quality",
    "quick",
    "quiet",
    "ready",
    "really",
    "recommend",
    "red",
    "return",
    "running",
    "season",
    "second",
    "service",
    "shipping",
    "simple",
    "size",
    "small",
    "soft",
    "sport",
    "still",
    "store",
    "strong",
    "summer",
    "support",
    "sure",
    "table",
    "team",
    "thanks",
    "think",
    "time",
    "today",
    "travel",
    "try",
    "under",
    "useful",
    "value",
    "very",
    "walk",
    "warm",
    "weekend",
    "well",
    "white",
    "winter",
    "wish",
    "without",
    "wonderful",
    "work",
    "worth",
    "year",
    "yellow",
    "young",
];

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Ergonomic",
    "Essential",
    "Handmade",
    "Heavy-Duty",
    "Lightweight",
    "Organic",
    "Portable",
    "Premium",
    "Recycled",
    "Rugged",
    "Slim",
    "Smart",
    "Vintage",
    "Waterproof",
    "Wireless",
    "Wooden",
];

const NOUNS: &[&str] = &[
    "Backpack",
    "Blanket",
    "Bottle",
    "Bowl",
    "Candle",
    "Chair",
    "Charger",
    "Desk Lamp",
    "Headphones",
    "Jacket",
    "Kettle",
    "Keyboard",
    "Mug",
    "Notebook",
    "Pan",
    "Pillow",
    "Plant Pot",
    "Running Shoes",
    "Scarf",
    "Speaker",
    "Sunglasses",
    "Teapot",
    "Tent",
    "Towel",
    "T-Shirt",
    "Umbrella",
    "Wallet",
    "Watch",
];

const CITIES: &[(&str, &str, &str)] = &[
    ("Amsterdam", "NL", "Europe/Amsterdam"),
    ("Berlin", "DE", "Europe/Berlin"),
    ("Bogota", "CO", "America/Bogota"),
    ("Chicago", "US", "America/Chicago"),
    ("Lagos", "NG", "Africa/Lagos"),
    ("Lisbon", "PT", "Europe/Lisbon"),
    ("London", "GB", "Europe/London"),
    ("Madrid", "ES", "Europe/Madrid"),
    ("Mumbai", "IN", "Asia/Kolkata"),
    ("New York", "US", "America/New_York"),
    ("Osaka", "JP", "Asia/Tokyo"),
    ("Paris", "FR", "Europe/Paris"),
    ("Sao Paulo", "BR", "America/Sao_Paulo"),
    ("Seoul", "KR", "Asia/Seoul"),
    ("Sydney", "AU", "Australia/Sydney"),
    ("Toronto", "CA", "America/Toronto"),
    ("Warsaw", "PL", "Europe/Warsaw"),
];

const STREET_KINDS: &[&str] = &["Street", "Avenue", "Road", "Lane", "Way", "Square"];
const LOCALES: &[&str] = &[
    "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP",
];
const TAGS: &[&str] = &[
    "newsletter",
    "vip",
    "wholesale",
    "returning",
    "beta",
    "mobile",
    "gift-buyer",
    "outdoor",
    "home",
    "tech",
];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "BRL", "JPY", "INR"];
/// Order states, weighted: most orders are delivered.
const STATUSES: &[(&str, u32)] = &[
    ("delivered", 60),
    ("shipped", 15),
    ("paid", 10),
    ("pending", 8),
    ("cancelled", 5),
    ("refunded", 2),
];
/// Event kinds, weighted like a click stream.
const EVENT_KINDS: &[(&str, u32)] = &[
    ("page_view", 55),
    ("click", 20),
    ("search", 10),
    ("add_to_cart", 7),
    ("login", 4),
    ("checkout", 2),
    ("logout", 1),
    ("error", 1),
];
const PAGES: &[&str] = &[
    "/",
    "/products",
    "/products/{id}",
    "/cart",
    "/checkout",
    "/account",
    "/account/orders",
    "/search",
    "/help",
    "/blog/{id}",
];
const REFERRERS: &[&str] = &[
    "direct",
    "https://search.example/?q=",
    "https://social.example/share",
    "https://news.example/deals",
    "email:weekly",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
];
const ERRORS: &[&str] = &[
    "payment declined",
    "timeout contacting inventory",
    "address validation failed",
    "session expired",
    "rate limited",
];

#[derive(Debug)]
struct Args {
    path: PathBuf,
    size_mb: u64,
    seed: u64,
    force: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut path = None;
    let mut size_mb = 500;
    let mut seed = 42;
    let mut force = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--force" => force = true,
            "--size-mb" | "--seed" => {
                let value = args.next().ok_or(format!("{arg} needs a value"))?;
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("{arg}: not a whole number: {value}"))?;
                if arg == "--size-mb" {
                    size_mb = n;
                } else {
                    seed = n;
                }
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ if path.is_some() => return Err(format!("unexpected argument {arg}")),
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    let path = path.ok_or("missing <path>")?;
    if size_mb == 0 {
        return Err("--size-mb must be at least 1".into());
    }
    Ok(Args {
        path,
        size_mb,
        seed,
        force,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("gen-sqlite: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-sqlite: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    check_target(&args.path, args.force)?;
    if let Some(parent) = args.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // Build the database beside its final name and rename it into place at
    // the end: a reader never sees a half-written file, and one that still
    // has the old file open cannot hold up the new one's checkpoint.
    let partial = with_suffix(&args.path, ".partial");
    remove_db_files(&partial)?;
    let started = Instant::now();
    let target_bytes = args.size_mb * 1024 * 1024;

    let mut conn = Connection::open(&partial)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("could not switch to WAL mode (got {mode})").into());
    }
    // Generation only: durability of the half-written file does not matter.
    conn.execute_batch(
        "PRAGMA synchronous = OFF;
         PRAGMA cache_size = -262144;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.execute_batch(SCHEMA)?;

    let mut rows = Generator::new(args.seed);
    let mut size = db_size(&conn)?;
    let mut last_report = Instant::now();
    while size < target_bytes {
        let tx = conn.transaction()?;
        rows.insert_batch(&tx)?;
        tx.commit()?;
        size = db_size(&conn)?;
        if last_report.elapsed().as_secs() >= 5 {
            eprintln!(
                "gen-sqlite: {} / {} MiB after {:.0} s",
                size / (1024 * 1024),
                args.size_mb,
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }

    // Fold the WAL into the main file so the file on disk is the whole
    // database; it stays in WAL mode (recorded in the header).
    let mut attempts = 0;
    loop {
        let (busy, _, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if busy == 0 {
            break;
        }
        attempts += 1;
        if attempts == 20 {
            return Err(format!(
                "WAL checkpoint of {} still blocked by another connection after {attempts} tries",
                partial.display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    conn.close().map_err(|(_, e)| e)?;
    let wal = with_suffix(&partial, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(format!("{} is not empty after the checkpoint", wal.display()).into());
    }

    // A stale -wal beside the final name would be replayed into the new
    // file: drop the old companions first (check_target allowed it).
    for suffix in ["-wal", "-shm", "-journal"] {
        remove_if_exists(&with_suffix(&args.path, suffix))?;
    }
    for suffix in ["-wal", "-shm"] {
        remove_if_exists(&with_suffix(&partial, suffix))?;
    }
    std::fs::rename(&partial, &args.path)?;

    let file_size = std::fs::metadata(&args.path)?.len();
    println!(
        "gen-sqlite: wrote {} ({} bytes, {:.1} MiB; {} users, {} orders, {} events; seed {}) in {:.1} s",
        args.path.display(),
        file_size,
        file_size as f64 / (1024.0 * 1024.0),
        rows.users,
        rows.orders,
        rows.events,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Refuses to go on if the database or one of its companion files exists,
/// unless `force`.
fn check_target(path: &Path, force: bool) -> Result<(), Box<dyn std::error::Error>> {
    if force {
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = with_suffix(path, suffix);
        if file.exists() {
            return Err(format!(
                "{} already exists; pass --force to overwrite it",
                file.display()
            )
            .into());
        }
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a database file and its companions, if present.
fn remove_db_files(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        remove_if_exists(&with_suffix(path, suffix))?;
    }
    Ok(())
}

/// The database's logical size in bytes, WAL frames included.
fn db_size(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(u64::try_from(pages * page_size).unwrap_or(0))
}

/// Picks from a weighted list.
fn weighted<'a>(rng: &mut StdRng, items: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (item, weight) in items {
        if pick < *weight {
            return item;
        }
        pick -= weight;
    }
    items[items.len() - 1].0
}

/// Formats Unix seconds as an ISO 8601 UTC timestamp with milliseconds.
fn iso8601(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Deterministic row source: one RNG, a clock that moves forward as rows are
/// written (so timestamps grow like a real app's) and row counters.
#[derive(Debug)]
struct Generator {
    rng: StdRng,
    clock: i64,
    users: i64,
    orders: i64,
    events: i64,
}

impl Generator {
    fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            clock: EPOCH_START,
            users: 0,
            orders: 0,
            events: 0,
        }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.choose(&mut self.rng).copied().unwrap_or_default()
    }

    fn sentence(&mut self, min: usize, max: usize) -> String {
        let n = self.rng.random_range(min..=max);
        let mut s = String::with_capacity(n * 7);
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            let w = self.pick(WORDS);
            if i == 0 {
                let mut chars = w.chars();
                if let Some(first) = chars.next() {
                    s.extend(first.to_uppercase());
                    s.push_str(chars.as_str());
                }
            } else {
                s.push_str(w);
            }
        }
        s.push('.');
        s
    }

    /// The clock advanced by up to `max_step` seconds, as an ISO timestamp.
    fn tick(&mut self, max_step: i64) -> String {
        self.clock += self.rng.random_range(0..=max_step);
        let millis = self.rng.random_range(0..1000);
        iso8601(self.clock, millis)
    }

    fn random_user(&mut self) -> i64 {
        // Recent users are more active: half the picks come from the newest
        // tenth.
        let n = self.users.max(1);
        if self.rng.random_bool(0.5) {
            let recent = (n / 10).max(1);
            n - self.rng.random_range(0..recent)
        } else {
            self.rng.random_range(1..=n)
        }
    }

    fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| char::from(DIGITS[self.rng.random_range(0..16)]))
            .collect()
    }

    fn insert_batch(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO users (id, email, name, created_at, profile) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for _ in 0..USERS_PER_BATCH {
                self.users += 1;
                let id = self.users;
                let first = self.pick(FIRST_NAMES);
                let last = self.pick(LAST_NAMES);
                let domain = self.pick(DOMAINS);
                let email = format!(
                    "{}.{}{id}@{domain}",
                    first.to_lowercase(),
                    last.to_lowercase()
                );
                let name = format!("{first} {last}");
                let created_at = self.tick(120);
                let &(city, country, tz) = CITIES.choose(&mut self.rng).unwrap_or(&CITIES[0]);
                let n_tags = self.rng.random_range(0..=3);
                let tags: Vec<&str> = TAGS
                    .choose_multiple(&mut self.rng, n_tags)
                    .copied()
                    .collect();
                let profile = json!({
                    "bio": self.sentence(6, 24),
                    "locale": self.pick(LOCALES),
                    "timezone": tz,
                    "marketing_opt_in": self.rng.random_bool(0.35),
                    "address": {
                        "street": format!("{} {} {}", self.rng.random_range(1..400),
                            capitalize(self.pick(WORDS)), self.pick(STREET_KINDS)),
                        "city": city,
                        "postcode": format!("{:05}", self.rng.random_range(1000..99_999)),
                        "country": country,
                    },
                    "tags": tags,
                    "loyalty_points": self.rng.random_range(0..5000_u32),
                    "rating": f64::from(self.rng.random_range(10..50_u32)) / 10.0,
                });
                stmt.execute(params![id, email, name, created_at, profile.to_string()])?;
            }
        }
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO orders (id, user_id, total_cents, currency, status, created_at, items)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for _ in 0..ORDERS_PER_BATCH {
                self.orders += 1;
                let user_id = self.random_user();
                let n_items = self.rng.random_range(1..=6);
                let mut total: i64 = 0;
                let items: Vec<serde_json::Value> = (0..n_items)
                    .map(|_| {
                        let qty: i64 = if self.rng.random_bool(0.8) {
                            1
                        } else {
                            self.rng.random_range(2..=5)
                        };
                        let unit: i64 = self.rng.random_range(199..25_000);
                        total += qty * unit;
                        json!({
                            "sku": format!("SKU-{:05}", self.rng.random_range(0..20_000)),
                            "name": format!("{} {}", self.pick(ADJECTIVES), self.pick(NOUNS)),
                            "qty": qty,
                            "unit_cents": unit,
                        })
                    })
                    .collect();
                let currency = self.pick(CURRENCIES);
                let status = weighted(&mut self.rng, STATUSES);
                let created_at = self.tick(12);
                stmt.execute(params![
                    self.orders,
                    user_id,
                    total,
                    currency,
                    status,
                    created_at,
                    serde_json::Value::Array(items).to_string()
                ])?;
            }
        }
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (id, user_id, kind, payload, duration_ms, ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for _ in 0..EVENTS_PER_BATCH {
                self.events += 1;
                let user_id = self.random_user();
                let kind = weighted(&mut self.rng, EVENT_KINDS);
                let path = self
                    .pick(PAGES)
                    .replace("{id}", &self.rng.random_range(1..20_000).to_string());
                let mut payload = json!({
                    "session": self.hex(16),
                    "path": path,
                    "referrer": self.pick(REFERRERS),
                    "user_agent": self.pick(USER_AGENTS),
                    "viewport": { "w": *[360, 390, 768, 1280, 1440, 1920].choose(&mut self.rng).unwrap_or(&1280),
                                  "h": *[640, 844, 1024, 720, 900, 1080].choose(&mut self.rng).unwrap_or(&720) },
                });
                match kind {
                    "search" => {
                        payload["query"] = self.sentence(1, 4).trim_end_matches('.').into();
                        payload["results"] = self.rng.random_range(0..200_u32).into();
                    }
                    "click" => payload["target"] = format!("button#{}", self.pick(WORDS)).into(),
                    "add_to_cart" => {
                        payload["sku"] =
                            format!("SKU-{:05}", self.rng.random_range(0..20_000)).into();
                        payload["qty"] = self.rng.random_range(1..4_u32).into();
                    }
                    "checkout" => payload["order_id"] = self.orders.into(),
                    "error" => payload["message"] = self.pick(ERRORS).into(),
                    _ => {}
                }
                let duration_ms = self.rng.random_range(5.0..4000.0_f64);
                let ts = self.tick(2);
                stmt.execute(params![
                    self.events,
                    user_id,
                    kind,
                    payload.to_string(),
                    (duration_ms * 1000.0).round() / 1000.0,
                    ts
                ])?;
            }
        }
        Ok(())
    }
}

fn capitalize(w: &str) -> String {
    let mut chars = w.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(EPOCH_START, 7), "2022-01-01T00:00:00.007Z");
        assert_eq!(iso8601(1_709_210_096, 999), "2024-02-29T12:34:56.999Z");
    }

    #[test]
    fn same_seed_same_rows() {
        let dump = |seed| {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            let mut g = Generator::new(seed);
            let tx = conn.transaction().unwrap();
            g.insert_batch(&tx).unwrap();
            tx.commit().unwrap();
            let row: (String, String, String) = conn
                .query_row(
                    "SELECT (SELECT group_concat(email) FROM users),
                            (SELECT items FROM orders WHERE id = 4321),
                            (SELECT payload FROM events WHERE id = 17)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            row
        };
        assert_eq!(dump(7), dump(7));
        assert_ne!(dump(7), dump(8));
    }
}
