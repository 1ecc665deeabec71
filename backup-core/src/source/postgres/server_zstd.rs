//! A base backup the server compresses (`pg_basebackup -Ft -D dir
//! --compress=server-zstd:level=L,workers=N`, PostgreSQL 15 and later).
//!
//! The server sends zstd frames instead of the raw tar: about a tenth of
//! the bytes cross the connection, and neither `pg_basebackup` nor this
//! process copies the raw data directory through pipes. On 2 cores a local
//! `--no-drill` base backup went from 5.9 s to 4.2–4.4 s (BENCHMARKS.md,
//! fourth run).
//!
//! `pg_basebackup` writes `base.tar.zst` (followed as it grows, see
//! [`Follow`]) and, at the end, `backup_manifest` beside it: it cannot put
//! the manifest into an archive it does not decompress. So the stored
//! artifact is the server's zstd stream as it came, then one more zstd
//! frame holding a tar entry `backup_manifest` and the end-of-archive
//! blocks. Decompressed, it is the server's tar followed by that entry:
//! `tar -x --ignore-zeros` (GNU tar's `-i`) and Lifeboat's own readers
//! (which skip zero blocks) see the manifest; a plain `tar -x` stops at
//! the server's end-of-archive and restores everything else.
//!
//! On its way the whole stream, the last frame included, is decompressed
//! once in another thread. That counts its raw bytes (the manifest's
//! `raw_size`), proves that what is stored decodes (the server's frames
//! carry no content checksum), and checks the tar as it passes against
//! the `backup_manifest` at its end ([`super::manifest_check`]): the same
//! check the read-back makes, on exactly the bytes the sink is sent. The
//! backup's read-back SHA-256 then proves that the sink holds those bytes,
//! so an unencrypted backup needs no second decompression before its
//! commit (see `pipeline/backup.rs`).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::manifest_check::{Checked, StreamError, check_stream};
use super::tablespaces::{Counting, Exited, Follow, POLL, append_manifest, channel};

/// What the relay saw of the stream it stored.
#[derive(Debug)]
pub(crate) struct Relayed {
    /// The raw (decompressed) size of all of it.
    pub(crate) raw: u64,
    /// The tar checked against its `backup_manifest` (`Err`: why it does
    /// not match), its WAL written to the directory given; `None` when the
    /// WAL could not be written there, so the check did not run.
    pub(crate) check: Option<std::result::Result<Checked, String>>,
}

/// Copy `dir/base.tar.zst` as `pg_basebackup` (process `writer`) writes
/// it, then the `backup_manifest` frame, to `out`, checking all of it as
/// it passes (the WAL segments go into `wal_dir`, which must exist).
///
/// # Errors
/// A message when a file cannot be read, the stream does not decode, or
/// `pg_basebackup` ends without writing what it should.
pub(crate) fn relay(
    dir: &Path,
    writer: u32,
    exited: &Exited,
    level: i32,
    wal_dir: &Path,
    mut out: impl Write,
) -> Result<Relayed, String> {
    let alive = || !exited.load(Ordering::SeqCst);
    let base = dir.join("base.tar.zst");
    while !base.is_file() {
        if !alive() {
            return Err("pg_basebackup ended before writing base.tar.zst".into());
        }
        std::thread::sleep(POLL);
    }
    let base = base
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", base.display()))?;
    let mut follow = Follow::open(&base, writer, exited.clone())
        .map_err(|e| format!("cannot read {}: {e}", base.display()))?;
    // The decoder counts and checks on its own thread.
    let (mut to_decoder, from_relay) = channel();
    let wal_dir = wal_dir.to_path_buf();
    let decoder = std::thread::spawn(move || -> Result<Relayed, String> {
        let d = zstd::stream::read::Decoder::new(from_relay).map_err(|e| e.to_string())?;
        // The tar reader reads headers 512 bytes at a time.
        let mut counted = std::io::BufReader::with_capacity(1 << 18, Counting(d, 0));
        let check = match check_stream(&mut counted, &wal_dir) {
            Ok(c) => Some(c),
            Err(StreamError::Read(e)) => return Err(e.to_string()),
            Err(StreamError::Local(e)) => {
                tracing::warn!(dir = %wal_dir.display(), error = %e, "cannot write the backup's WAL to check it on its way; the stored copy is read back instead");
                None
            }
        };
        // A check that stopped early (a mismatch, the local disk) still
        // counts the rest.
        std::io::copy(&mut counted, &mut std::io::sink()).map_err(|e| e.to_string())?;
        Ok(Relayed {
            raw: counted.get_ref().1,
            check,
        })
    });
    // Whatever happens below, the decoder is told the stream ended and
    // joined before this returns: it writes WAL into `wal_dir`, which the
    // caller removes.
    let sent = send(
        &mut follow,
        &base,
        dir,
        &alive,
        level,
        &mut out,
        &mut to_decoder,
    );
    drop(to_decoder);
    let decoded = decoder
        .join()
        .unwrap_or_else(|_| Err("the decoder panicked".into()));
    sent?;
    decoded.map_err(|e| format!("the stored stream does not decode: {e}"))
}

/// Copy the followed `base` to `out` and to the decoder, then, once
/// `pg_basebackup` has written it, the `backup_manifest` frame.
fn send(
    follow: &mut Follow,
    base: &Path,
    dir: &Path,
    alive: &dyn Fn() -> bool,
    level: i32,
    out: &mut impl Write,
    to_decoder: &mut impl Write,
) -> Result<(), String> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match follow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", base.display())),
        };
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write the backup: {e}"))?;
        // A decoder that stopped has its reason after the join.
        let _ = to_decoder.write_all(&buf[..n]);
    }
    let _ = std::fs::remove_file(base);

    // pg_basebackup writes the manifest after the archive, under a
    // temporary name renamed into place: once it is there, it is whole.
    let manifest = dir.join("backup_manifest");
    while !manifest.is_file() {
        if !alive() {
            if manifest.is_file() {
                break;
            }
            return Err("pg_basebackup ended without writing its backup_manifest".into());
        }
        std::thread::sleep(POLL);
    }
    let mut tail = tar::Builder::new(Vec::new());
    append_manifest(&mut tail, &manifest)?;
    let tail = tail.into_inner().map_err(|e| e.to_string())?;
    let mut enc =
        zstd::stream::write::Encoder::new(Vec::new(), level).map_err(|e| e.to_string())?;
    enc.include_checksum(true).map_err(|e| e.to_string())?;
    enc.write_all(&tail).map_err(|e| e.to_string())?;
    let frame = enc.finish().map_err(|e| e.to_string())?;
    let _ = to_decoder.write_all(&frame);
    out.write_all(&frame)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the backup: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::super::manifest_check::fixtures::{FILES, manifest, tar_of};
    use super::*;

    /// What `pg_basebackup --compress=server-zstd -Ft -D dir` leaves once
    /// it has exited: `base.tar.zst` (here `server`) and `backup_manifest`.
    fn relay_of(server: &[u8], manifest: &[u8]) -> (Result<Relayed, String>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.tar.zst"), server).unwrap();
        std::fs::write(dir.path().join("backup_manifest"), manifest).unwrap();
        let wal = dir.path().join("wal");
        std::fs::create_dir(&wal).unwrap();
        let exited: Exited = Arc::new(AtomicBool::new(true));
        let mut out = Vec::new();
        let r = relay(dir.path(), std::process::id(), &exited, 1, &wal, &mut out);
        (r, out)
    }

    #[test]
    fn the_stored_stream_is_counted_and_checked_against_its_manifest() {
        let server = zstd::encode_all(&tar_of(FILES)[..], 1).unwrap();
        let (r, out) = relay_of(&server, &manifest(FILES));
        let relayed = r.unwrap();
        // Stored: the server's frames as they came, then one more.
        assert_eq!(&out[..server.len()], &server[..]);
        let raw = zstd::decode_all(&out[..]).unwrap();
        assert_eq!(relayed.raw, raw.len() as u64);
        let checked = relayed.check.unwrap().unwrap();
        assert_eq!((checked.files, checked.bytes), (3, 3 + 2 * 8192));
        // The manifest is behind the server's end-of-archive blocks.
        let mut tar = tar::Archive::new(&raw[..]);
        tar.set_ignore_zeros(true);
        let names: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names.last().map(String::as_str), Some("backup_manifest"));
    }

    #[test]
    fn a_stream_that_does_not_match_its_manifest_is_named_and_still_counted() {
        let changed = [("PG_VERSION", &b"16\n"[..]), FILES[1], FILES[2]];
        let server = zstd::encode_all(&tar_of(&changed)[..], 1).unwrap();
        let (r, out) = relay_of(&server, &manifest(FILES));
        let relayed = r.unwrap();
        let why = relayed.check.unwrap().unwrap_err();
        assert!(why.contains("PG_VERSION has checksum"), "{why}");
        assert_eq!(
            relayed.raw,
            zstd::decode_all(&out[..]).unwrap().len() as u64
        );
    }

    #[test]
    fn a_stream_that_does_not_decode_fails_the_relay() {
        let mut server = zstd::encode_all(&tar_of(FILES)[..], 1).unwrap();
        let mid = server.len() / 2;
        server[mid] ^= 0xff;
        server.truncate(server.len() - 3);
        let (r, _) = relay_of(&server, &manifest(FILES));
        let why = r.unwrap_err();
        assert!(why.contains("does not decode"), "{why}");
    }
}
