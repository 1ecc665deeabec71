//! Tablespaces in physical backups.
//!
//! `pg_basebackup` writes a cluster with tablespaces as several tar files
//! (`-D -` takes only one): `<oid>.tar` for each tablespace, then
//! `base.tar`, one after the other, into a directory it creates itself, so
//! named pipes cannot be put there beforehand. Lifeboat lets it write into a
//! private temp directory and follows each file as it grows
//! ([`Follow`]), so the bytes go on through the codec while
//! `pg_basebackup` still runs. A file is complete once `pg_basebackup` no
//! longer holds it open (it never reopens one), or has exited, and only
//! with its end-of-archive block; what has been read is
//! punched out of the file as it goes, so the temp space taken is what
//! the sink has not caught up with, not the cluster's size.
//!
//! The stored artifact stays one tar, the layout of the data directory
//! with in-place tablespaces: a tablespace's files under
//! `pg_tblspc/<oid>/`, the base archive at the root (with PostgreSQL's
//! `tablespace_map`), and PostgreSQL's `backup_manifest` last. That is the
//! layout `backup_manifest` describes, so the manifest check
//! ([`super::physical::PgBackupManifest`]) reads it as it is; a restore moves each tablespace where it belongs
//! (its original location, or `--tablespace-map OLD=NEW`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A tablespace of the backed-up cluster, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablespaceInfo {
    /// Its OID: the name of its link in `pg_tblspc`.
    pub oid: u32,
    /// Its name.
    pub name: String,
    /// Where the cluster keeps it.
    pub location: String,
}

/// How often a reader at the end of a file still being written looks again.
pub(crate) const POLL: Duration = Duration::from_millis(2);

/// Punch out what has been read every this many bytes.
const PUNCH_EVERY: u64 = 64 << 20;

/// Whether process `pid` holds `path` open; `None` when that cannot be
/// read (`/proc` hidden or restricted).
fn holds_open(pid: u32, path: &Path) -> Option<bool> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path)),
    )
}

/// Whether `pg_basebackup` has exited: set by whoever reaps it.
pub(crate) type Exited = Arc<AtomicBool>;

/// A file another process is writing, read to the end of what it writes:
/// at the end of what is there, it waits until more comes or the writer
/// has closed the file (then one last read, and the end). When the
/// writer's open files cannot be seen, only its exit ends the file.
pub(crate) struct Follow {
    file: std::fs::File,
    path: PathBuf,
    writer: u32,
    exited: Exited,
    read: u64,
    punched: u64,
    closed: bool,
}

impl Follow {
    /// `path` must be absolute and canonical (it is compared with what
    /// `/proc/<writer>/fd` shows).
    pub(crate) fn open(path: &Path, writer: u32, exited: Exited) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            writer,
            exited,
            read: 0,
            punched: 0,
            closed: false,
        })
    }

    /// Give back the disk space of what has been read (best effort: a file
    /// system without hole punching keeps it until the file is removed).
    fn punch(&mut self) {
        use rustix::fs::{FallocateFlags, fallocate};
        let upto = self.read & !0xFFFF;
        if upto <= self.punched {
            return;
        }
        match fallocate(
            &self.file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            self.punched,
            upto - self.punched,
        ) {
            Ok(()) => self.punched = upto,
            // Not supported here: stop trying.
            Err(_) => self.punched = u64::MAX,
        }
    }
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 {
                self.read += n as u64;
                if self.punched != u64::MAX && self.read - self.punched >= PUNCH_EVERY {
                    self.punch();
                }
                return Ok(n);
            }
            if self.closed || buf.is_empty() {
                return Ok(0);
            }
            // Closed by its writer (or the writer is gone): whatever it
            // wrote before closing is there now, so read once more.
            if self.exited.load(Ordering::SeqCst)
                || holds_open(self.writer, &self.path) == Some(false)
            {
                self.closed = true;
                continue;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// `rel` without `./` parts, if it is a plain relative path (no `..`, no
/// root).
fn plain(rel: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// A reader that counts the bytes it has read (`.1`).
pub(crate) struct Counting<R>(pub(crate) R, pub(crate) u64);

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(b)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// Copy the entries of one archive into `out`, under `prefix`.
fn copy_archive<W: Write>(
    out: &mut tar::Builder<W>,
    reader: impl Read,
    prefix: &Path,
) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(Counting(reader, 0));
    // Where the last entry's data ends: an end-of-archive block must follow
    // (a file cut at an entry's boundary would otherwise pass for whole).
    let mut last_end = 0u64;
    for entry in archive.entries()? {
        let mut entry = entry?;
        last_end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        let raw = entry.path()?.into_owned();
        let rel = plain(&raw).ok_or_else(|| {
            std::io::Error::other(format!(
                "pg_basebackup wrote an entry outside the archive: {}",
                raw.display()
            ))
        })?;
        let path = prefix.join(&rel);
        let mut header = entry.header().clone();
        match header.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry.link_name()?.map(|t| t.into_owned()).ok_or_else(|| {
                    std::io::Error::other(format!("link {} has no target", rel.display()))
                })?;
                out.append_link(&mut header, &path, target)?;
            }
            _ => out.append_data(&mut header, &path, &mut entry)?,
        }
    }
    // Past the end-of-archive blocks, to the file's real end.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())?;
    if rest.1 < last_end + 512 {
        return Err(std::io::Error::other(
            "the archive ends without its end-of-archive block: it is cut short",
        ));
    }
    Ok(())
}

/// A pipe between threads that carries an error too: the reader gets
/// what the writer sent, then either the end or the error that stopped it.
pub(crate) fn channel() -> (ChanWriter, ChanReader) {
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    (
        ChanWriter(tx),
        ChanReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        },
    )
}

/// The writing end of [`channel`].
#[derive(Debug, Clone)]
pub(crate) struct ChanWriter(SyncSender<std::io::Result<Vec<u8>>>);

impl ChanWriter {
    /// End the stream with `message` as the reader's error.
    pub(crate) fn fail(&self, message: String) {
        let _ = self.0.send(Err(std::io::Error::other(message)));
    }
}

impl Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.send(Ok(b.to_vec())).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the backup stopped reading")
        })?;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The reading end of [`channel`].
#[derive(Debug)]
pub(crate) struct ChanReader {
    rx: Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The writer is gone: the end.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The tar files of `pg_basebackup -Ft -D dir` (process `writer`), as one
/// tar written to `out`: see the module docs. `expected` are the
/// tablespace OIDs the cluster had when the backup began; one that appears
/// besides them (created meanwhile) fails the backup. Returns the OIDs of
/// the tablespaces stored.
///
/// # Errors
/// A message when a file cannot be read, an archive is malformed, a
/// tablespace appears that was not expected, or `pg_basebackup` ends
/// without writing its `backup_manifest`.
pub(crate) fn combine(
    dir: &Path,
    writer: u32,
    exited: &Exited,
    expected: &BTreeSet<u32>,
    out: impl Write,
) -> Result<Vec<u32>, String> {
    let alive = || !exited.load(Ordering::SeqCst);
    let mut out = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
    out.mode(tar::HeaderMode::Complete);
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut stored = Vec::new();
    // pg_basebackup creates `dir` itself.
    while !dir.is_dir() {
        if !alive() {
            return Err("pg_basebackup ended before writing anything".into());
        }
        std::thread::sleep(POLL);
    }
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    loop {
        let next = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".tar") && !done.contains(n));
        let Some(name) = next else {
            if dir.join("backup_manifest").is_file() || !alive() {
                // Every archive is written before the manifest; one last
                // look for an archive that came just before it.
                let more = std::fs::read_dir(&dir)
                    .map_err(|e| e.to_string())?
                    .flatten()
                    .any(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.ends_with(".tar") && !done.contains(&n)
                    });
                if more {
                    continue;
                }
                break;
            }
            std::thread::sleep(POLL);
            continue;
        };
        let prefix = if name == "base.tar" {
            PathBuf::new()
        } else {
            let oid: u32 = name
                .trim_end_matches(".tar")
                .parse()
                .map_err(|_| format!("pg_basebackup wrote an unexpected file {name}"))?;
            if !expected.contains(&oid) {
                return Err(format!(
                    "tablespace {oid} was created while the backup ran: run the backup again"
                ));
            }
            stored.push(oid);
            PathBuf::from("pg_tblspc").join(oid.to_string())
        };
        let path = dir.join(&name);
        let follow = Follow::open(&path, writer, exited.clone())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        copy_archive(&mut out, follow, &prefix)
            .map_err(|e| format!("cannot copy {name} from pg_basebackup: {e}"))?;
        let _ = std::fs::remove_file(&path);
        done.insert(name);
    }
    if !done.contains("base.tar") {
        return Err("pg_basebackup ended without writing base.tar".into());
    }
    append_manifest(&mut out, &dir.join("backup_manifest"))?;
    out.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| format!("cannot write the backup: {e}"))?;
    Ok(stored)
}

/// Append the `backup_manifest` file `pg_basebackup` wrote to `out`, as
/// the tar entry `backup_manifest` (0600, the file's owner and mtime).
pub(crate) fn append_manifest<W: Write>(
    out: &mut tar::Builder<W>,
    manifest: &Path,
) -> Result<(), String> {
    let mut file = std::fs::File::open(manifest)
        .map_err(|e| format!("pg_basebackup wrote no backup_manifest: {e}"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let mut header = tar::Header::new_ustar();
    header.set_size(meta.len());
    header.set_mode(0o600);
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    header.set_entry_type(tar::EntryType::Regular);
    out.append_data(&mut header, "backup_manifest", &mut file)
        .map_err(|e| format!("cannot write the backup: {e}"))
}

/// `tablespace_map`'s lines: `<oid> <path>`, where the path has `\` before
/// a newline, carriage return or backslash (as PostgreSQL writes it).
pub(crate) fn parse_map(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    let mut flush = |line: &mut String| {
        if let Some((oid, path)) = line.split_once(' ')
            && let Ok(oid) = oid.parse()
        {
            out.push((oid, path.to_string()));
        }
        line.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('\n' | '\r' | '\\')) => {
                line.push(chars.next().unwrap_or_default());
            }
            '\n' => flush(&mut line),
            '\r' => {}
            c => line.push(c),
        }
    }
    flush(&mut line);
    out
}

/// `tablespace_map` for `entries`, escaped as PostgreSQL reads it.
pub(crate) fn format_map(entries: &[(u32, String)]) -> String {
    let mut out = String::new();
    for (oid, path) in entries {
        let escaped: String = path
            .chars()
            .flat_map(|c| match c {
                '\n' | '\r' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        out.push_str(&format!("{oid} {escaped}\n"));
    }
    out
}

/// `OLD=NEW` pairs of `--tablespace-map` (as `pg_basebackup -T`; `\=` is
/// an `=` in a path). Both must be absolute.
///
/// # Errors
/// A message naming the malformed pair.
pub fn parse_relocations(pairs: &[String]) -> Result<Vec<(PathBuf, PathBuf)>, String> {
    pairs
        .iter()
        .map(|p| {
            let mut old = String::new();
            let mut new = None::<String>;
            let mut chars = p.chars().peekable();
            while let Some(c) = chars.next() {
                let c = match c {
                    '\\' if chars.peek() == Some(&'=') => chars.next().unwrap_or('='),
                    '=' if new.is_none() => {
                        new = Some(String::new());
                        continue;
                    }
                    '=' => {
                        return Err(format!(
                            "--tablespace-map {p:?}: more than one '=' (write \\= for one in a path)"
                        ));
                    }
                    c => c,
                };
                new.as_mut().unwrap_or(&mut old).push(c);
            }
            let new = new.ok_or_else(|| format!("--tablespace-map {p:?}: give OLD=NEW"))?;
            let (old, new) = (PathBuf::from(old), PathBuf::from(new));
            if !old.is_absolute() || !new.is_absolute() {
                return Err(format!(
                    "--tablespace-map {p:?}: both directories must be absolute paths"
                ));
            }
            Ok((old, new))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablespace_map_round_trips_with_escapes() {
        let entries = vec![
            (16384, "/srv/ts one".to_string()),
            (16390, "/odd\\path\nwith newline".to_string()),
        ];
        let text = format_map(&entries);
        assert_eq!(
            text,
            "16384 /srv/ts one\n16390 /odd\\\\path\\\nwith newline\n"
        );
        assert_eq!(parse_map(&text), entries);
        assert_eq!(
            parse_map("16384 /tmp/tsx/ts1\n"),
            vec![(16384, "/tmp/tsx/ts1".into())]
        );
    }

    #[test]
    fn relocations_are_old_new_pairs_of_absolute_paths() {
        assert_eq!(
            parse_relocations(&["/a=/b".into(), "/x\\=y=/z".into()]).unwrap(),
            vec![
                (PathBuf::from("/a"), PathBuf::from("/b")),
                (PathBuf::from("/x=y"), PathBuf::from("/z"))
            ]
        );
        assert!(
            parse_relocations(&["/a".into()])
                .unwrap_err()
                .contains("OLD=NEW")
        );
        assert!(
            parse_relocations(&["a=/b".into()])
                .unwrap_err()
                .contains("absolute")
        );
        assert!(
            parse_relocations(&["/a=/b=/c".into()])
                .unwrap_err()
                .contains("more than one")
        );
    }

    #[test]
    fn an_archive_cut_at_an_entry_boundary_is_refused() {
        let mut b = tar::Builder::new(Vec::new());
        for name in ["a", "b"] {
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o600);
            b.append_data(&mut h, name, &b"abc"[..]).unwrap();
        }
        let whole = b.into_inner().unwrap();
        let mut out = tar::Builder::new(Vec::new());
        copy_archive(&mut out, &whole[..], Path::new("pg_tblspc/1")).unwrap();
        // Without its end-of-archive blocks, it looks like a shorter archive
        // to a tar reader: refused.
        let cut = &whole[..whole.len() - 1024];
        let mut out = tar::Builder::new(Vec::new());
        let err = copy_archive(&mut out, cut, Path::new("pg_tblspc/1")).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    #[test]
    fn the_reader_of_a_channel_gets_the_writers_error() {
        let (mut w, mut r) = channel();
        std::thread::spawn(move || {
            w.write_all(b"abc").unwrap();
            w.fail("tablespace 7 was created while the backup ran".into());
        });
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).unwrap_err();
        assert_eq!(got, b"abc");
        assert!(err.to_string().contains("tablespace 7"), "{err}");
    }

    #[test]
    fn a_followed_file_is_read_until_its_writer_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap().join("f");
        // The writer is a real process holding the file open while it
        // writes in bursts.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 3>{p}; printf abc >&3; sleep 0.3; printf def >&3; sleep 0.3; exec 3>&-; sleep 1",
                p = path.display()
            ))
            .spawn()
            .unwrap();
        while !path.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut got = String::new();
        Follow::open(&path, child.id(), Exited::default())
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "abcdef");
        // It ended when the file was closed, before the writer exited.
        assert!(child.try_wait().unwrap().is_none());
        child.wait().unwrap();
    }
}
