//! `pg_dump` custom-format archives, rewritten as they stream past.
//!
//! With `-Z0`, `pg_dump -Fc` frames every COPY row as its own chunk: a
//! length word (a sign byte and `intSize` little-endian bytes) before each
//! row. Those words are noise to a compressor (5% of the zstd level-1
//! output on the benchmark database) and cost `pg_restore` a read per row.
//! [`Repacker`] passes the header and the table of contents through
//! byte for byte, and rewrites each data block's chunks into chunks of up to
//! [`CHUNK_TARGET`] bytes: the payload bytes, their order and every block
//! boundary stay as they were, so the result is still a custom-format
//! archive that `pg_restore` reads as it reads `pg_dump`'s own (compressed
//! archives are chunked the same way, in pieces of whatever size zlib
//! emits).
//!
//! While it is at it, the repacker counts the rows of every `TABLE DATA`
//! block (COPY text ends each row with the one unescaped newline it holds),
//! so a backup can prove that the archive holds exactly the rows the
//! snapshot counted.
//!
//! Archives it does not know (another format, a compressed one, a version
//! outside 1.12–1.16, a block type it has not seen) are passed through
//! unchanged from that point on: correctness never depends on the rewrite.
//!
//! Layout (`pg_backup_archiver.c`, `pg_backup_custom.c`): `PGDMP`, version
//! (3 bytes), `intSize`, `offSize`, format; compression (an int before 1.15,
//! an algorithm byte from 1.15); creation time (7 ints), database name, and
//! the server's and pg_dump's versions (strings); the TOC: a count, then per
//! entry dumpId, hadDumper, tableoid, oid, tag, desc, section, defn,
//! dropStmt, copyStmt, namespace, tablespace, tableam (1.14), relkind (an
//! int, 1.16), owner, "false" (WITH OIDS), dependency strings up to a null
//! string, and the data offset (a flag byte and `offSize` bytes). Then the
//! data blocks: a type byte (1 data, 3 large objects) and the dumpId; data
//! is chunks up to a zero length; large objects are (oid, chunks up to a
//! zero length) up to a zero oid. A string is an int length (-1: null) and
//! its bytes.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

/// Merged chunks are at most this long (pg_restore reads one chunk into one
/// buffer, and hands it to the server in one `PQputCopyData`).
pub const CHUNK_TARGET: usize = 256 * 1024;
/// `read` refills its output buffer up to about this much.
const OUT_TARGET: usize = 1024 * 1024;
/// Block data bytes kept to recognise the end-of-data marker.
const TAIL: usize = 16;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const FORMAT_CUSTOM: u8 = 1;
const MIN_VERSION: (u8, u8) = (1, 12);
const MAX_VERSION: (u8, u8) = (1, 16);

/// What the repacker learnt about the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// `major.minor.rev` of the archive format, once the header is read.
    pub version: Option<String>,
    /// Why the data was passed through unchanged, if it was.
    pub passthrough: Option<String>,
    /// Chunks read from pg_dump and written to the archive.
    pub chunks_in: u64,
    pub chunks_out: u64,
    /// Rows per `TABLE DATA` entry, as `(schema, table, rows)`, in archive order.
    pub tables: Vec<(String, String, u64)>,
    /// Every `SEQUENCE SET` entry: `(schema, sequence, last_value,
    /// is_called)`, the values any restore of this archive sets.
    pub sequences: Vec<(String, String, i64, bool)>,
    /// Large objects in the archive's blob blocks.
    pub large_objects: u64,
    /// The stream ended cleanly after the last block.
    pub complete: bool,
}

enum State {
    Header,
    /// Between blocks.
    Blocks,
    /// Inside a block's chunks (`blobs`: a large object's, so an oid follows
    /// the zero length).
    Chunks {
        blobs: bool,
    },
    /// Expecting the next large object's oid (0 ends the block).
    BlobOid,
    Passthrough,
    Done,
}

/// A `Read` over a `pg_dump -Fc -Z0` stream that yields the same archive with
/// its data chunks merged. See the module docs.
pub struct Repacker<R> {
    input: BufReader<R>,
    out: Vec<u8>,
    pos: usize,
    state: State,
    int_size: usize,
    /// Start, in `out`, of the merged chunk being filled (its length word).
    open_chunk: Option<usize>,
    /// `TABLE DATA` dumpIds → (schema, table).
    data_entries: HashMap<i64, (String, String)>,
    /// The data block being read, if it is a `TABLE DATA` entry's.
    current: Option<(String, String)>,
    rows: u64,
    /// The last bytes of the current block's data (see [`rows_in_block`]).
    tail: Vec<u8>,
    /// Kept here, published to `shared` once per refill (not per row).
    stats: ArchiveStats,
    shared: Arc<Mutex<ArchiveStats>>,
}

/// Rows in a COPY text block with `newlines` newline bytes ending in `tail`:
/// every row ends with the one raw newline it holds (newlines in values are
/// written as `\n`), and pg_dump closes the data with `\.` and blank lines,
/// which are no rows.
fn rows_in_block(newlines: u64, tail: &[u8]) -> u64 {
    let blank = tail.iter().rev().take_while(|b| **b == b'\n').count();
    let body = &tail[..tail.len() - blank];
    if blank > 0 && body.ends_with(b"\\.") && (body.len() == 2 || body[body.len() - 3] == b'\n') {
        newlines.saturating_sub(blank as u64)
    } else {
        newlines
    }
}

#[derive(Debug)]
struct Unsupported(String);

impl<R> std::fmt::Debug for Repacker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repacker")
            .field("buffered", &(self.out.len() - self.pos))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Repacker<R> {
    pub fn new(input: R) -> (Self, Arc<Mutex<ArchiveStats>>) {
        let stats = Arc::new(Mutex::new(ArchiveStats::default()));
        let r = Repacker {
            input: BufReader::with_capacity(OUT_TARGET, input),
            out: Vec::with_capacity(OUT_TARGET + CHUNK_TARGET),
            pos: 0,
            state: State::Header,
            int_size: 4,
            open_chunk: None,
            data_entries: HashMap::new(),
            current: None,
            rows: 0,
            tail: Vec::new(),
            stats: ArchiveStats::default(),
            shared: stats.clone(),
        };
        (r, stats)
    }

    /// Read and record one byte; `None` at end of input.
    fn byte_or_eof(&mut self) -> io::Result<Option<u8>> {
        let buf = self.input.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.input.consume(1);
        self.out.push(b);
        Ok(Some(b))
    }

    fn byte(&mut self) -> io::Result<u8> {
        self.byte_or_eof()?.ok_or_else(truncated)
    }

    /// Copy `n` bytes from input to output.
    fn copy(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Err(truncated());
            }
            let take = buf.len().min(n);
            self.out.extend_from_slice(&buf[..take]);
            self.input.consume(take);
            n -= take;
        }
        Ok(())
    }

    /// Read an archive int without recording it.
    fn int_raw(&mut self) -> io::Result<i64> {
        let mut word = [0u8; 9];
        let len = 1 + self.int_size;
        self.input.read_exact(&mut word[..len])?;
        let mut v: i64 = 0;
        for (i, b) in word[1..len].iter().enumerate() {
            v |= i64::from(*b) << (8 * i);
        }
        Ok(if word[0] != 0 { -v } else { v })
    }

    /// Read and record an archive int.
    fn int(&mut self) -> io::Result<i64> {
        let v = self.int_raw()?;
        self.push_int(v);
        Ok(v)
    }

    fn push_int(&mut self, v: i64) {
        self.out.push(u8::from(v < 0));
        let a = v.unsigned_abs();
        for i in 0..self.int_size {
            self.out.push((a >> (8 * i)) as u8);
        }
    }

    /// Read and record a string (`None` for a null one).
    fn string(&mut self) -> io::Result<Option<String>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let start = self.out.len();
        self.copy(len as usize)?;
        Ok(Some(
            String::from_utf8_lossy(&self.out[start..]).into_owned(),
        ))
    }

    /// Parse (and record) the header and the table of contents.
    fn header(&mut self) -> io::Result<std::result::Result<(), Unsupported>> {
        let start = self.out.len();
        self.copy(5)?;
        if &self.out[start..start + 5] != b"PGDMP" {
            return Ok(Err(Unsupported("no PGDMP signature".into())));
        }
        let (vmaj, vmin, vrev) = (self.byte()?, self.byte()?, self.byte()?);
        self.stats.version = Some(format!("{vmaj}.{vmin}.{vrev}"));
        if (vmaj, vmin) < MIN_VERSION || (vmaj, vmin) > MAX_VERSION {
            return Ok(Err(Unsupported(format!(
                "archive version {vmaj}.{vmin} is outside {}.{}-{}.{}",
                MIN_VERSION.0, MIN_VERSION.1, MAX_VERSION.0, MAX_VERSION.1
            ))));
        }
        let int_size = self.byte()? as usize;
        if !(1..=8).contains(&int_size) {
            return Ok(Err(Unsupported(format!("integer size {int_size}"))));
        }
        self.int_size = int_size;
        let off_size = self.byte()? as usize;
        let format = self.byte()?;
        if format != FORMAT_CUSTOM {
            return Ok(Err(Unsupported(format!("archive format {format}"))));
        }
        if vmin >= 15 {
            let algorithm = self.byte()?;
            if algorithm != 0 {
                return Ok(Err(Unsupported("the archive is compressed".into())));
            }
        } else if self.int()? != 0 {
            return Ok(Err(Unsupported("the archive is compressed".into())));
        }
        for _ in 0..7 {
            self.int()?; // creation time
        }
        self.string()?; // database name
        self.string()?; // server version
        self.string()?; // pg_dump version

        let entries = self.int()?;
        for _ in 0..entries.max(0) {
            let dump_id = self.int()?;
            self.int()?; // hadDumper
            self.string()?; // tableoid
            self.string()?; // oid
            let tag = self.string()?.unwrap_or_default();
            let desc = self.string()?.unwrap_or_default();
            self.int()?; // section
            let defn = self.string()?.unwrap_or_default();
            self.string()?; // dropStmt
            self.string()?; // copyStmt
            let namespace = self.string()?.unwrap_or_default();
            self.string()?; // tablespace
            if vmin >= 14 {
                self.string()?; // tableam
            }
            if vmin >= 16 {
                self.int()?; // relkind
            }
            self.string()?; // owner
            self.string()?; // WITH OIDS
            while self.string()?.is_some() {} // dependencies
            self.copy(1 + off_size)?; // data offset
            if desc == "TABLE DATA" {
                self.data_entries.insert(dump_id, (namespace, tag));
            } else if desc == "SEQUENCE SET"
                && let Some((last_value, is_called)) = parse_setval(&defn)
            {
                self.stats
                    .sequences
                    .push((namespace, tag, last_value, is_called));
            }
        }
        Ok(Ok(()))
    }

    fn close_chunk(&mut self) {
        if let Some(start) = self.open_chunk.take() {
            let len = (self.out.len() - start - 1 - self.int_size) as u64;
            for i in 0..self.int_size {
                self.out[start + 1 + i] = (len >> (8 * i)) as u8;
            }
            self.stats.chunks_out += 1;
        }
    }

    /// One step of the block state machine.
    fn step(&mut self) -> io::Result<()> {
        match self.state {
            State::Header => {
                self.state = match self.header()? {
                    Ok(()) => State::Blocks,
                    Err(Unsupported(why)) => {
                        tracing::debug!(%why, "pg_dump archive passed through unchanged");
                        self.stats.passthrough = Some(why);
                        State::Passthrough
                    }
                };
            }
            State::Blocks => match self.byte_or_eof()? {
                None => {
                    self.stats.complete = true;
                    self.state = State::Done;
                }
                Some(BLK_DATA) => {
                    let id = self.int()?;
                    self.current = self.data_entries.get(&id).cloned();
                    self.rows = 0;
                    self.tail.clear();
                    self.state = State::Chunks { blobs: false };
                }
                Some(BLK_BLOBS) => {
                    self.int()?;
                    self.current = None;
                    self.state = State::BlobOid;
                }
                Some(other) => {
                    self.stats.passthrough = Some(format!("block type {other}"));
                    self.state = State::Passthrough;
                }
            },
            State::BlobOid => {
                self.state = if self.int()? == 0 {
                    State::Blocks
                } else {
                    self.stats.large_objects += 1;
                    State::Chunks { blobs: true }
                };
            }
            State::Chunks { blobs } => {
                let len = self.int_raw()?;
                if len < 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("pg_dump wrote a chunk of negative length {len}"),
                    ));
                }
                if len == 0 {
                    self.close_chunk();
                    self.push_int(0);
                    if let Some((schema, table)) = self.current.take() {
                        let rows = rows_in_block(self.rows, &self.tail);
                        self.stats.tables.push((schema, table, rows));
                    }
                    self.state = if blobs { State::BlobOid } else { State::Blocks };
                    return Ok(());
                }
                self.stats.chunks_in += 1;
                if self.open_chunk.is_none() {
                    self.open_chunk = Some(self.out.len());
                    self.push_int(0); // patched by close_chunk
                }
                let start = self.out.len();
                self.copy(len as usize)?;
                if self.current.is_some() {
                    let data = &self.out[start..];
                    self.rows += memchr::memchr_iter(b'\n', data).count() as u64;
                    let keep = data.len().min(TAIL);
                    self.tail.extend_from_slice(&data[data.len() - keep..]);
                    let excess = self.tail.len().saturating_sub(TAIL);
                    self.tail.drain(..excess);
                }
                let open = self.open_chunk.expect("open chunk");
                if self.out.len() - open >= CHUNK_TARGET {
                    self.close_chunk();
                }
            }
            State::Passthrough => {
                let buf = self.input.fill_buf()?;
                if buf.is_empty() {
                    self.state = State::Done;
                } else {
                    let n = buf.len();
                    self.out.extend_from_slice(buf);
                    self.input.consume(n);
                }
            }
            State::Done => {}
        }
        Ok(())
    }

    /// Bytes in `out` that may be handed out: all of them but an open
    /// chunk, whose length word is not known yet.
    fn ready(&self) -> usize {
        self.open_chunk.unwrap_or(self.out.len())
    }
}

/// `SELECT pg_catalog.setval('public.s', 42, true);` → `(42, true)`.
fn parse_setval(defn: &str) -> Option<(i64, bool)> {
    let t = super::sql::tokenize(defn);
    let open = t.iter().position(|x| x.is("setval"))?;
    // setval ( 'name' , [-] value , is_called )
    let mut i = open + 2;
    if !matches!(t.get(i)?.kind, super::sql::Kind::Str(_)) {
        return None;
    }
    i += 2;
    let negative = t.get(i)?.kind == super::sql::Kind::Other("-".into());
    if negative {
        i += 1;
    }
    let super::sql::Kind::Other(n) = &t.get(i)?.kind else {
        return None;
    };
    let n: i64 = n.parse().ok()?;
    let is_called = match t.get(i + 2)?.word()? {
        "true" => true,
        "false" => false,
        _ => return None,
    };
    Some((if negative { -n } else { n }, is_called))
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the pg_dump archive ended in the middle of a record",
    )
}

impl<R: Read> Read for Repacker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.ready() {
            // Compact, then refill.
            if self.pos > 0 {
                self.out.drain(..self.pos);
                if let Some(o) = self.open_chunk.as_mut() {
                    *o -= self.pos;
                }
                self.pos = 0;
            }
            while self.ready() < OUT_TARGET.min(buf.len().max(1))
                && !matches!(self.state, State::Done)
            {
                self.step()?;
            }
            if matches!(self.state, State::Done) {
                self.close_chunk();
            }
            *self.shared.lock().expect("archive stats lock") = self.stats.clone();
        }
        let n = (self.ready() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Archive {
        int_size: usize,
        bytes: Vec<u8>,
    }

    impl Archive {
        fn int(&mut self, v: i64) {
            self.bytes.push(u8::from(v < 0));
            for i in 0..self.int_size {
                self.bytes.push((v.unsigned_abs() >> (8 * i)) as u8);
            }
        }
        fn str(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.bytes.extend_from_slice(s.as_bytes());
                }
            }
        }
    }

    /// A minimal 1.14 archive: one TABLE entry, one TABLE DATA entry with
    /// `rows` rows as one chunk each, and one large object in two chunks.
    fn archive(rows: usize) -> Vec<u8> {
        let mut a = Archive {
            int_size: 4,
            bytes: b"PGDMP".to_vec(),
        };
        a.bytes.extend_from_slice(&[1, 14, 0, 4, 8, FORMAT_CUSTOM]);
        a.int(0); // compression
        for v in [1, 2, 3, 4, 5, 6, 0] {
            a.int(v);
        }
        for s in ["db", "15.0", "15.0"] {
            a.str(Some(s));
        }
        a.int(2);
        for (id, desc, had) in [(1, "TABLE", 0), (2, "TABLE DATA", 1)] {
            a.int(id);
            a.int(had);
            a.str(Some("1259"));
            a.str(Some("16384"));
            a.str(Some("t"));
            a.str(Some(desc));
            a.int(2);
            a.str(Some(""));
            a.str(Some(""));
            a.str(None);
            a.str(Some("public"));
            a.str(Some(""));
            a.str(Some("heap"));
            a.str(Some("postgres"));
            a.str(Some("false"));
            if id == 2 {
                a.str(Some("1"));
            }
            a.str(None);
            a.bytes.push(1); // K_OFFSET_POS_NOT_SET
            a.bytes.extend_from_slice(&[0; 8]);
        }
        a.bytes.push(BLK_DATA);
        a.int(2);
        for i in 0..rows {
            let row = format!("{i}\tsome text {i}\\nwith an escaped newline\n");
            a.int(row.len() as i64);
            a.bytes.extend_from_slice(row.as_bytes());
        }
        let end = b"\\.\n\n\n";
        a.int(end.len() as i64);
        a.bytes.extend_from_slice(end);
        a.int(0);
        a.bytes.push(BLK_BLOBS);
        a.int(3);
        a.int(777);
        for part in [b"large ".as_slice(), b"object"] {
            a.int(part.len() as i64);
            a.bytes.extend_from_slice(part);
        }
        a.int(0);
        a.int(0);
        a.bytes
    }

    /// Decode the data section back into (block type, id, payload) without
    /// regard to chunking.
    fn payloads(bytes: &[u8], int_size: usize) -> Vec<(u8, i64, Vec<u8>)> {
        let mut r = Repacker::new(bytes).0;
        r.int_size = int_size;
        assert!(r.header().unwrap().is_ok());
        let mut input = r.input;
        let int = |input: &mut BufReader<&[u8]>| {
            let mut w = vec![0u8; 1 + int_size];
            input.read_exact(&mut w).unwrap();
            w[1..]
                .iter()
                .enumerate()
                .fold(0i64, |v, (i, b)| v | (i64::from(*b) << (8 * i)))
        };
        let mut out = Vec::new();
        let mut t = [0u8; 1];
        while input.read(&mut t).unwrap() == 1 {
            let id = int(&mut input);
            let mut parts = Vec::new();
            loop {
                if t[0] == BLK_BLOBS {
                    let oid = int(&mut input);
                    if oid == 0 {
                        break;
                    }
                    parts.extend_from_slice(format!("<{oid}>").as_bytes());
                }
                loop {
                    let n = int(&mut input) as usize;
                    if n == 0 {
                        break;
                    }
                    let mut p = vec![0u8; n];
                    input.read_exact(&mut p).unwrap();
                    parts.extend_from_slice(&p);
                }
                if t[0] == BLK_DATA {
                    break;
                }
            }
            out.push((t[0], id, parts));
        }
        out
    }

    fn repack(bytes: &[u8], read_size: usize) -> (Vec<u8>, ArchiveStats) {
        let (mut r, stats) = Repacker::new(bytes);
        let mut out = Vec::new();
        let mut buf = vec![0u8; read_size];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let s = stats.lock().unwrap().clone();
        (out, s)
    }

    #[test]
    fn setval_definitions_parse() {
        assert_eq!(
            parse_setval("SELECT pg_catalog.setval('public.items_id_seq', 300, true);\n"),
            Some((300, true))
        );
        assert_eq!(
            parse_setval("SELECT pg_catalog.setval('\"We\"\"ird\".\"s,q\"', -5, false);"),
            Some((-5, false))
        );
        assert_eq!(parse_setval("SELECT 1"), None);
    }

    #[test]
    fn merges_row_chunks_and_keeps_every_byte_of_payload() {
        let small = archive(300);
        let (out, _) = repack(&small, 1);
        assert_eq!(payloads(&out, 4), payloads(&small, 4));

        let original = archive(20_000);
        for read_size in [7, 4096, 1 << 20] {
            let (out, stats) = repack(&original, read_size);
            assert_eq!(payloads(&out, 4), payloads(&original, 4));
            assert!(out.len() < original.len(), "framing removed");
            assert_eq!(stats.chunks_in, 20_000 + 1 + 2);
            assert!(stats.chunks_out < 100, "{} chunks", stats.chunks_out);
            assert_eq!(stats.tables, vec![("public".into(), "t".into(), 20_000)]);
            assert!(stats.complete);
            assert_eq!(stats.passthrough, None);
            assert_eq!(stats.version.as_deref(), Some("1.14.0"));
        }
    }

    #[test]
    fn rows_do_not_count_the_end_of_data_marker() {
        assert_eq!(rows_in_block(5, b"1\tx\n\\.\n\n\n"), 2);
        assert_eq!(rows_in_block(3, b"\\.\n\n\n"), 0);
        assert_eq!(rows_in_block(2, b"a\nb\n"), 2);
        // a value ending in a backslash-dot is escaped, never a bare `\.` line
        assert_eq!(rows_in_block(1, b"x\\\\.\n"), 1);
        assert_eq!(rows_in_block(0, b""), 0);
    }

    #[test]
    fn the_header_and_toc_pass_through_byte_for_byte() {
        let original = archive(3);
        let (out, _) = repack(&original, 4096);
        let toc_end = original
            .windows(2)
            .position(|w| w == [BLK_DATA, 0])
            .unwrap();
        assert_eq!(out[..toc_end], original[..toc_end]);
    }

    #[test]
    fn unknown_versions_and_compressed_archives_pass_through_unchanged() {
        let mut newer = archive(50);
        newer[6] = 99; // version 1.99
        let (out, stats) = repack(&newer, 4096);
        assert_eq!(out, newer);
        assert!(stats.passthrough.unwrap().contains("1.99"));

        let mut compressed = archive(50);
        compressed[12] = 6; // the compression int's low byte: zlib level 6
        let (out, stats) = repack(&compressed, 4096);
        assert_eq!(out, compressed);
        assert_eq!(
            stats.passthrough.as_deref(),
            Some("the archive is compressed")
        );

        let (out, stats) = repack(b"not an archive at all", 4096);
        assert_eq!(out, b"not an archive at all");
        assert!(stats.passthrough.is_some());
    }

    #[test]
    fn a_truncated_stream_is_an_error_not_a_short_archive() {
        let original = archive(1000);
        let cut = &original[..original.len() - 40];
        let (mut r, stats) = Repacker::new(cut);
        let mut sink = Vec::new();
        let err = r.read_to_end(&mut sink).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(!stats.lock().unwrap().complete);
    }
}
