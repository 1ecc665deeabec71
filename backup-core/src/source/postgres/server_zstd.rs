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
//! On its way the stream is decompressed once in another thread, only to
//! count its raw bytes (the manifest's `raw_size`) and to prove that what
//! is stored decodes (the server's frames carry no content checksum: the
//! stored SHA-256 and the manifest's CRC32C per file are the integrity
//! checks).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::tablespaces::{Exited, Follow, POLL, append_manifest, channel};

/// Copy `dir/base.tar.zst` as `pg_basebackup` (process `writer`) writes
/// it, then the `backup_manifest` frame, to `out`. Returns the raw
/// (decompressed) size of all of it.
///
/// # Errors
/// A message when a file cannot be read, the server's stream does not
/// decode, or `pg_basebackup` ends without writing what it should.
pub(crate) fn relay(
    dir: &Path,
    writer: u32,
    exited: &Exited,
    level: i32,
    mut out: impl Write,
) -> Result<u64, String> {
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
    // The decoder counts the raw bytes on its own thread.
    let (mut to_decoder, from_relay) = channel();
    let decoder = std::thread::spawn(move || -> Result<u64, String> {
        let mut d = zstd::stream::read::Decoder::new(from_relay).map_err(|e| e.to_string())?;
        std::io::copy(&mut d, &mut std::io::sink()).map_err(|e| e.to_string())
    });
    let mut buf = vec![0u8; 1 << 20];
    let copied = loop {
        let n = match follow.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(format!("cannot read {}: {e}", base.display())),
        };
        if let Err(e) = out.write_all(&buf[..n]) {
            break Err(format!("cannot write the backup: {e}"));
        }
        // A decoder that stopped has its reason below.
        let _ = to_decoder.write_all(&buf[..n]);
    };
    drop(to_decoder);
    let decoded = decoder
        .join()
        .unwrap_or_else(|_| Err("the decoder panicked".into()));
    copied?;
    let raw =
        decoded.map_err(|e| format!("the server's compressed stream does not decode: {e}"))?;
    let _ = std::fs::remove_file(&base);

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
    out.write_all(&frame)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the backup: {e}"))?;
    Ok(raw + tail.len() as u64)
}
