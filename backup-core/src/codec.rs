//! The codec: the byte chains between a dump and the stored object.
//!
//! Write chain ([`stream_to_upload`]): the dump's reader → zstd (multi-
//! threaded, 2 MiB jobs, frame checksum) → SHA-256 and size of the stored
//! bytes → 1 MiB chunks on a bounded channel → the sink's upload. With
//! recipients, age encryption ([`crate::crypt`]) goes between zstd and the
//! hash: the hash and size are always of the bytes the sink stores.
//!
//! Read chain ([`artifact_reader`]): the sink's stream → a bounded channel
//! → [`VerifyingReader`] (size and SHA-256 against the manifest, checked at
//! end of stream, so a reader fails instead of ending on wrong bytes) →
//! zstd decoder. Decryption goes between the verifying reader and the
//! decoder: the age header is read on the first read, on the blocking side.
//!
//! Attachments (the PostgreSQL globals) take the same stages in one piece:
//! [`encode_attachment`] and [`decode_attachment`].
//!
//! What each stage was is recorded in the manifest as typed
//! [`Compression`](crate::manifest::Compression) and
//! [`Encryption`](crate::manifest::Encryption); a reader refuses what it does
//! not know instead of guessing.

use std::io::{self, Read, Write};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::crypt::{Identities, Recipients};
use crate::error::{Error, Result};
use crate::manifest::{AttachmentInfo, CompressionAlgorithm, Manifest};
use crate::progress::{Phase, ProgressHandle};
use crate::sink::{Sink, Upload};

/// Chunk size of both chains.
pub(crate) const READ_CHUNK: usize = 1024 * 1024;
/// Chunks in flight between a blocking stage and the async side.
pub(crate) const CHANNEL_DEPTH: usize = 4;
/// zstd's job size when multithreaded.
const ZSTD_JOB_SIZE: u32 = 2 * 1024 * 1024;

/// What the write chain produced.
pub(crate) struct Compressed {
    pub(crate) raw_size: u64,
    pub(crate) stored_size: u64,
    pub(crate) sha256: String,
}

/// Writes compressed bytes into 1 MiB chunks for the uploader, hashing and
/// counting them on the way.
struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    hasher: Sha256,
    stored: u64,
}

impl ChunkSender {
    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(READ_CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.stored += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= READ_CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// After zstd: the chunk sender, or age encryption in front of it.
enum Sealed {
    Plain(ChunkSender),
    Age(Box<age::stream::StreamWriter<ChunkSender>>),
}

impl Write for Sealed {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sealed::Plain(w) => w.write(data),
            Sealed::Age(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealed::Plain(w) => w.flush(),
            Sealed::Age(w) => w.flush(),
        }
    }
}

impl Sealed {
    fn finish(self) -> io::Result<ChunkSender> {
        match self {
            Sealed::Plain(w) => Ok(w),
            Sealed::Age(w) => w.finish(),
        }
    }
}

/// What the write chain does with the reader's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Compress {
    /// Compress them with zstd.
    Zstd { level: i32, threads: u32 },
    /// They are zstd frames already (the PostgreSQL server compressed
    /// them): store them as they are.
    Already,
}

fn compress(
    mut reader: Box<dyn Read + Send>,
    tx: mpsc::Sender<Bytes>,
    how: Compress,
    progress: ProgressHandle,
    recipients: Option<Recipients>,
) -> io::Result<Compressed> {
    let sender = ChunkSender {
        tx,
        buf: Vec::with_capacity(READ_CHUNK),
        hasher: Sha256::new(),
        stored: 0,
    };
    let sealed = match &recipients {
        None => Sealed::Plain(sender),
        Some(r) => Sealed::Age(Box::new(r.wrap(sender)?)),
    };
    let (level, threads) = match how {
        Compress::Zstd { level, threads } => (level, threads),
        Compress::Already => return pass_through(reader, sealed, progress),
    };
    let mut enc = zstd::stream::write::Encoder::new(sealed, level)?;
    if threads > 1 {
        enc.multithread(threads)?;
        // 2 MiB jobs instead of zstd's default (4 × window, 8 MiB at level
        // 3): peak memory 31 MB instead of 67 MB on the 500 MB benchmark,
        // for 0.1% in size.
        enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
    }
    enc.include_checksum(true)?;
    let raw = pump(&mut reader, &mut enc, &progress)?;
    let mut sender = enc.finish()?.finish()?;
    sender.flush_chunk()?;
    Ok(Compressed {
        raw_size: raw,
        stored_size: sender.stored,
        sha256: hex::encode(std::mem::take(&mut sender.hasher).finalize()),
    })
}

/// Copy `reader` to `out` in [`READ_CHUNK`]s, advancing `progress`;
/// returns the bytes read.
fn pump(reader: &mut dyn Read, out: &mut impl Write, progress: &ProgressHandle) -> io::Result<u64> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut read = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(read),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        read += n as u64;
        out.write_all(&buf[..n])?;
        progress.advance(n as u64);
    }
}

/// A stream compressed already (by the PostgreSQL server): only sealed,
/// hashed and counted. `raw_size` is the compressed bytes read; the source
/// gives the real one.
fn pass_through(
    mut reader: Box<dyn Read + Send>,
    mut sealed: Sealed,
    progress: ProgressHandle,
) -> io::Result<Compressed> {
    let read = pump(&mut reader, &mut sealed, &progress)?;
    let mut sender = sealed.finish()?;
    sender.flush_chunk()?;
    Ok(Compressed {
        raw_size: read,
        stored_size: sender.stored,
        sha256: hex::encode(std::mem::take(&mut sender.hasher).finalize()),
    })
}

/// Compress (and, given recipients, encrypt) `reader` into `upload`; a
/// `precompressed` reader is only sealed. On error the upload is aborted.
pub(crate) async fn stream_to_upload(
    reader: Box<dyn Read + Send>,
    mut upload: Box<dyn Upload>,
    how: Compress,
    progress: ProgressHandle,
    total: Option<u64>,
    recipients: Option<Recipients>,
) -> Result<(Box<dyn Upload>, Compressed)> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    progress.start(Phase::Upload, total);
    let p = progress.clone();
    let compressor = tokio::task::spawn_blocking(move || compress(reader, tx, how, p, recipients));
    let mut upload_err = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = upload.write(chunk).await {
            upload_err = Some(e);
            break;
        }
    }
    drop(rx); // stops the compressor if the upload failed
    let compressed = compressor.await;
    progress.finish(Phase::Upload);
    if let Some(e) = upload_err {
        let _ = upload.abort().await;
        return Err(e);
    }
    match compressed {
        Ok(Ok(c)) => Ok((upload, c)),
        Ok(Err(e)) => {
            let _ = upload.abort().await;
            Err(Error::Source {
                location: "dump".into(),
                message: format!("reading or compressing the dump failed: {e}"),
                source: Some(Box::new(e)),
            })
        }
        Err(e) => {
            let _ = upload.abort().await;
            Err(Error::source_err("dump", format!("compressor failed: {e}")))
        }
    }
}

/// An attachment as stored: compressed, with its SHA-256 and size.
pub(crate) struct EncodedAttachment {
    pub(crate) bytes: Bytes,
    pub(crate) sha256: String,
    pub(crate) stored_size: u64,
}

/// Compress (and, given recipients, encrypt) an attachment (`name` for
/// messages) the way the artifact is.
pub(crate) async fn encode_attachment(
    data: Bytes,
    level: i32,
    name: &str,
    recipients: Option<&Recipients>,
) -> Result<EncodedAttachment> {
    let recipients = recipients.cloned();
    let compressed = tokio::task::spawn_blocking(move || {
        let z = zstd::bulk::compress(&data, level)?;
        match &recipients {
            None => Ok(z),
            Some(r) => r.encrypt(&z),
        }
    })
    .await
    .map_err(|e| Error::source_err("dump", format!("compressor failed: {e}")))?
    .map_err(|e| Error::source_err("dump", format!("cannot compress {name}: {e}")))?;
    Ok(EncodedAttachment {
        sha256: hex::encode(Sha256::digest(&compressed)),
        stored_size: compressed.len() as u64,
        bytes: Bytes::from(compressed),
    })
}

/// The zstd skippable-frame magic Lifeboat uses for the metadata in front
/// of a self-describing object (a WAL segment): `zstd -d` skips the frame,
/// so the object still decompresses with the standard tool.
const METADATA_FRAME_MAGIC: u32 = 0x184D_2A5C;

/// `data` compressed (zstd at `level`, with zstd's own content checksum)
/// behind a skippable frame holding `metadata`: one object that says what
/// it is, and that `zstd -d` reads as `data`.
pub fn encode_with_metadata(metadata: &[u8], data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let len = u32::try_from(metadata.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "metadata too large"))?;
    let mut out = Vec::with_capacity(8 + metadata.len() + data.len() / 3);
    out.extend_from_slice(&METADATA_FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(metadata);
    // One shot over the whole buffer, not the streaming encoder: fed a
    // 16 MiB segment through its window, the stream compressor takes the
    // slower external-dictionary path (`ZSTD_compressBlock_*_extDict`, 43%
    // of the CPU of `wal push` in a profile). Same format: one frame with a
    // content checksum (and now its content size).
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))?;
    let frame = c.compress(data)?;
    out.extend_from_slice(&frame);
    Ok(out)
}

/// Split an object written by [`encode_with_metadata`] into its metadata
/// and its decompressed data.
///
/// # Errors
/// A message when the object has no metadata frame or does not decompress.
pub fn decode_with_metadata(stored: &[u8]) -> std::result::Result<(&[u8], Vec<u8>), String> {
    let (meta, rest) = split_metadata(stored)?;
    let data = zstd::stream::decode_all(rest).map_err(|e| format!("does not decompress: {e}"))?;
    Ok((meta, data))
}

/// The metadata frame of an object written by [`encode_with_metadata`],
/// and what follows it, without decompressing.
///
/// # Errors
/// A message when the object does not start with a metadata frame.
pub fn split_metadata(stored: &[u8]) -> std::result::Result<(&[u8], &[u8]), String> {
    if stored.len() < 8 || stored[0..4] != METADATA_FRAME_MAGIC.to_le_bytes() {
        return Err("has no Lifeboat metadata frame".into());
    }
    let len = u32::from_le_bytes(stored[4..8].try_into().expect("4 bytes")) as usize;
    if stored.len() < 8 + len {
        return Err("its metadata frame is cut short".into());
    }
    Ok((&stored[8..8 + len], &stored[8 + len..]))
}

/// An attachment's stored bytes back to its content: size and SHA-256
/// checked against `info`, then decompressed. `None` when they do not
/// match (the caller says what that means for it).
///
/// # Errors
/// A message when the bytes do not match, or the codec is unknown.
pub fn decode_attachment(
    stored: &[u8],
    info: &AttachmentInfo,
    keys: Option<&Identities>,
) -> std::result::Result<Vec<u8>, String> {
    if stored.len() as u64 != info.stored_size || hex::encode(Sha256::digest(stored)) != info.sha256
    {
        return Err(format!(
            "{} does not match its manifest entry (size or SHA-256)",
            info.key
        ));
    }
    let opened;
    let stored = match &info.encryption {
        None => stored,
        Some(enc) => {
            let keys = keys.ok_or_else(|| {
                format!(
                    "{} is encrypted ({enc}): give an identity file (--identity)",
                    info.key
                )
            })?;
            opened = keys
                .decrypt(stored)
                .map_err(|e| format!("{}: {e}", info.key))?;
            &opened[..]
        }
    };
    match info.compression.as_ref().map(|c| &c.algorithm) {
        None | Some(CompressionAlgorithm::Zstd) => {
            zstd::bulk::decompress(stored, info.raw_size as usize)
                .map_err(|e| format!("cannot decompress {}: {e}", info.key))
        }
        Some(other) => Err(format!("{}: unknown compression {other}", info.key)),
    }
}

/// The sink error inside an I/O error from [`ChannelReader`], if that is
/// what it is.
pub(crate) fn sink_error(e: io::Error) -> std::result::Result<Error, io::Error> {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        let inner = e.into_inner().expect("checked above");
        return Ok(*inner.downcast::<Error>().expect("checked above"));
    }
    Err(e)
}

/// A blocking reader over a channel of downloaded chunks.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                // Kept typed, so a reader of the stream can tell a sink
                // that failed from bytes that are wrong (see `sink_error`).
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Hashes what passes through and, at end of stream, fails unless size and
/// SHA-256 match what the manifest recorded.
struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    expected_size: u64,
    expected_sha: String,
    progress: ProgressHandle,
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 {
            let sha = hex::encode(std::mem::take(&mut self.hasher).finalize());
            if self.size != self.expected_size || sha != self.expected_sha {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "checksum mismatch: got {} bytes with sha256 {sha}, manifest says {} bytes with {}",
                        self.size, self.expected_size, self.expected_sha
                    ),
                ));
            }
            return Ok(0);
        }
        self.hasher.update(&out[..n]);
        self.size += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Download a backup's artifact as a blocking reader of the decompressed
/// dump. The reader fails instead of ending if the stored bytes do not match
/// the manifest. Read it on a blocking thread.
pub async fn artifact_reader(
    sink: &dyn Sink,
    manifest: &Manifest,
    progress: ProgressHandle,
    keys: Option<&Identities>,
) -> Result<Box<dyn Read + Send>> {
    let art = &manifest.artifact;
    let keys = match &art.encryption {
        None => None,
        Some(enc) if enc.scheme != "age" => {
            return Err(Error::restore_err(
                manifest.source.location.clone(),
                format!("backup is encrypted ({enc}); this version of lifeboat cannot decrypt it"),
            ));
        }
        Some(enc) => {
            let keys = keys.ok_or_else(|| {
                Error::config(
                    "--identity",
                    format!(
                        "backup {} is encrypted ({enc}): give the age identity file that decrypts it (--identity FILE, or identity_file in [encryption])",
                        manifest.backup_id
                    ),
                )
            })?;
            if !keys.opens(enc) && !enc.recipients.is_empty() {
                return Err(Error::config(
                    "--identity",
                    format!(
                        "backup {} is encrypted to {}; the identity file holds {}",
                        manifest.backup_id,
                        enc.recipients.join(", "),
                        keys.fingerprints().join(", ")
                    ),
                ));
            }
            Some(keys.clone())
        }
    };
    if art.compression.algorithm != CompressionAlgorithm::Zstd {
        return Err(Error::restore_err(
            manifest.source.location.clone(),
            format!(
                "unknown compression {}; this version of lifeboat cannot read it",
                art.compression.algorithm
            ),
        ));
    }
    let mut stream = sink.get(&art.key).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(CHANNEL_DEPTH);
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            let stop = chunk.is_err();
            if tx.send(chunk).await.is_err() || stop {
                break;
            }
        }
    });
    progress.start(Phase::Download, Some(art.stored_size));
    let verifying = VerifyingReader {
        inner: ChannelReader {
            rx,
            current: Bytes::new(),
        },
        hasher: Sha256::new(),
        size: 0,
        expected_size: art.stored_size,
        expected_sha: art.sha256.clone(),
        progress,
    };
    let opened: Box<dyn Read + Send> = match keys {
        None => Box::new(verifying),
        Some(k) => Box::new(crate::crypt::LazyDecrypt::new(verifying, k)),
    };
    let decoder = zstd::stream::read::Decoder::new(opened)
        .map_err(|e| Error::restore_err(manifest.source.location.clone(), e.to_string()))?;
    Ok(Box::new(decoder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Compression, Encryption};

    fn info(
        enc: &EncodedAttachment,
        raw: usize,
        compression: Option<Compression>,
    ) -> AttachmentInfo {
        AttachmentInfo {
            name: "globals".into(),
            key: "s/backups/d/globals.sql.zst".into(),
            raw_size: raw as u64,
            stored_size: enc.stored_size,
            sha256: enc.sha256.clone(),
            compression,
            encryption: None,
            format: None,
        }
    }

    #[tokio::test]
    async fn attachments_round_trip_and_wrong_bytes_or_codecs_are_refused() {
        let data = Bytes::from("CREATE ROLE app;\n".repeat(100));
        let enc = encode_attachment(data.clone(), 3, "globals", None)
            .await
            .unwrap();
        let i = info(&enc, data.len(), Some(Compression::zstd(3)));
        assert_eq!(
            decode_attachment(&enc.bytes, &i, None).unwrap(),
            data.to_vec()
        );
        let mut bad = enc.bytes.to_vec();
        bad[10] ^= 1;
        assert!(
            decode_attachment(&bad, &i, None)
                .unwrap_err()
                .contains("does not match")
        );
        let other = info(
            &enc,
            data.len(),
            Some(Compression {
                algorithm: CompressionAlgorithm::Other("brotli".into()),
                level: 3,
            }),
        );
        assert!(
            decode_attachment(&enc.bytes, &other, None)
                .unwrap_err()
                .contains("brotli")
        );
    }

    #[test]
    fn codecs_this_version_does_not_know_still_parse() {
        let c: Compression = serde_json::from_str(r#"{"algorithm":"lz4","level":1}"#).unwrap();
        assert_eq!(c.algorithm, CompressionAlgorithm::Other("lz4".into()));
        assert_eq!(
            serde_json::to_string(&Compression::zstd(3)).unwrap(),
            r#"{"algorithm":"zstd","level":3}"#
        );
        let e: Encryption = serde_json::from_str(r#""age""#).unwrap();
        assert_eq!((e.scheme.as_str(), e.recipients.len()), ("age", 0));
        let e: Encryption =
            serde_json::from_str(r#"{"scheme":"age","recipients":["age1abc"]}"#).unwrap();
        assert_eq!(e.to_string(), "age to age1abc");
    }
}
