//! age encryption: [`Recipients`] (public keys, all a backup host needs)
//! and [`Identities`] (secret keys, read from a file, for restore, verify,
//! drill and `wal fetch`).
//!
//! Stored objects are `age(zstd(data))`: the real `age -d -i KEY | zstd -d`
//! reads a backup artifact. The manifest records the recipients'
//! fingerprints ([`fingerprint`]), never a key.
//!
//! A backup run also encrypts to a **run key**: an X25519 identity made in
//! memory for the run and dropped with it. With it the run reads its own
//! stored copy back, decrypts and checks it (the drill before the commit)
//! without holding any secret key of the recipients'. Its stanza stays in
//! the age header, unusable once the run is over; the manifest does not
//! list it.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::x25519;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::Encryption;

/// The fingerprint of an age recipient as manifests record it:
/// `sha256:` and the first 16 hex digits of the SHA-256 of `age1…`.
pub fn fingerprint(r: &x25519::Recipient) -> String {
    let h = Sha256::digest(r.to_string().as_bytes());
    format!("sha256:{}", &hex::encode(h)[..16])
}

/// The public keys a backup is encrypted to.
#[derive(Clone)]
pub struct Recipients {
    keys: Vec<x25519::Recipient>,
    run_key: Option<x25519::Recipient>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipients")
            .field("fingerprints", &self.fingerprints())
            .finish()
    }
}

/// Lines of an age recipients or identity file: blank lines and `#`
/// comments left out.
fn key_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Recipients {
    /// The recipients given as `age1…` strings and in recipients files (one
    /// per line, `#` comments); `None` when there are none at all.
    ///
    /// # Errors
    /// [`Error::Config`] naming a key that is not an age X25519 recipient
    /// (`age1…`; SSH keys are not supported), or a file that cannot be read.
    pub fn parse(keys: &[String], files: &[PathBuf]) -> Result<Option<Self>> {
        let mut out = Vec::new();
        let bad = |what: String, why: &str| {
            Error::config(
                what,
                format!(
                    "not an age recipient ({why}): give age1… public keys (age-keygen -y KEYFILE prints one)"
                ),
            )
        };
        for k in keys {
            let k = k.trim();
            out.push(
                x25519::Recipient::from_str(k).map_err(|e| bad(format!("recipient {k:?}"), e))?,
            );
        }
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| {
                Error::config(
                    f.display().to_string(),
                    format!("cannot read the recipients file: {e}"),
                )
            })?;
            for (i, k) in key_lines(&text).enumerate() {
                out.push(
                    x25519::Recipient::from_str(k)
                        .map_err(|e| bad(format!("{} (key {})", f.display(), i + 1), e))?,
                );
            }
        }
        out.dedup();
        Ok((!out.is_empty()).then_some(Self {
            keys: out,
            run_key: None,
        }))
    }

    /// These recipients plus a fresh run key, and the identity that opens
    /// what is encrypted to it (kept in memory, for this run only).
    pub(crate) fn with_run_key(&self) -> (Self, Identities) {
        let run = x25519::Identity::generate();
        let mut r = self.clone();
        r.run_key = Some(run.to_public());
        (
            r,
            Identities {
                keys: vec![run],
                path: PathBuf::from("(this run's key)"),
                run_key: true,
            },
        )
    }

    /// The recipients' fingerprints (not the run key's).
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(fingerprint).collect()
    }

    /// What the manifest records.
    pub fn encryption(&self) -> Encryption {
        Encryption {
            scheme: "age".into(),
            recipients: self.fingerprints(),
        }
    }

    fn encryptor(&self) -> io::Result<age::Encryptor> {
        let all: Vec<&dyn age::Recipient> = self
            .keys
            .iter()
            .chain(self.run_key.iter())
            .map(|r| r as &dyn age::Recipient)
            .collect();
        age::Encryptor::with_recipients(all.into_iter()).map_err(io::Error::other)
    }

    /// A writer that encrypts into `w`; `finish` it.
    pub(crate) fn wrap<W: Write>(&self, w: W) -> io::Result<age::stream::StreamWriter<W>> {
        self.encryptor()?.wrap_output(w)
    }

    /// `data`, encrypted.
    ///
    /// # Errors
    /// An I/O error from the cipher (none expected in memory).
    pub fn encrypt(&self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() + 512);
        let mut w = self.wrap(&mut out)?;
        w.write_all(data)?;
        w.finish()?;
        Ok(out)
    }
}

/// Secret keys that decrypt backups, read from an age identity file.
#[derive(Clone)]
pub struct Identities {
    keys: Vec<x25519::Identity>,
    path: PathBuf,
    /// A backup run's own key: not among the manifest's recipients.
    run_key: bool,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("file", &self.path)
            .field("fingerprints", &self.fingerprints())
            .finish()
    }
}

impl Identities {
    /// The X25519 identities (`AGE-SECRET-KEY-1…` lines, `#` comments) of
    /// an identity file, as `age-keygen` writes it. A file that others can
    /// read is used, with a warning.
    ///
    /// # Errors
    /// [`Error::Config`] for a file that cannot be read or holds no key;
    /// the message never quotes the file's content.
    pub fn from_file(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let err = |m: String| Error::config(path.display().to_string(), m);
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read the identity file: {e}")))?;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "the identity file can be read by other users: chmod 600 it");
        }
        let mut keys = Vec::new();
        for (i, line) in key_lines(&text).enumerate() {
            let key = x25519::Identity::from_str(line).map_err(|_| {
                err(format!(
                    "entry {} is not an age X25519 secret key (AGE-SECRET-KEY-1…, as age-keygen writes; SSH keys are not supported)",
                    i + 1
                ))
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(err("the identity file holds no key".into()));
        }
        Ok(Self {
            keys,
            path: path.to_path_buf(),
            run_key: false,
        })
    }

    /// The fingerprints of the recipients these identities open.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| fingerprint(&k.to_public()))
            .collect()
    }

    /// Whether one of these identities is among `enc`'s recipients (a
    /// backup run's own key opens what that run wrote).
    pub fn opens(&self, enc: &Encryption) -> bool {
        self.run_key
            || self
                .fingerprints()
                .iter()
                .any(|f| enc.recipients.contains(f))
    }

    /// A reader of the plaintext of the age stream `r`. It reads the age
    /// header from `r` first, so call it where blocking is allowed.
    ///
    /// # Errors
    /// `InvalidData` when `r` is not age, or none of these keys opens it.
    pub fn decrypting<R: Read>(&self, r: R) -> io::Result<age::stream::StreamReader<R>> {
        let d =
            age::Decryptor::new(r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        d.decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("cannot decrypt with {} ({e})", self.path.display()),
                )
            })
    }

    /// `data` decrypted.
    ///
    /// # Errors
    /// A message when it is not age, or none of these keys opens it.
    pub fn decrypt(&self, data: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(data.len());
        self.decrypting(data)
            .and_then(|mut r| r.read_to_end(&mut out))
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// A reader that decrypts `inner` with `keys`, reading the age header on
/// its first read (so that it can be built where blocking is not allowed).
pub(crate) struct LazyDecrypt<R: Read> {
    state: LazyState<R>,
}

enum LazyState<R: Read> {
    Pending(R, Identities),
    Open(age::stream::StreamReader<R>),
    Failed,
}

impl<R: Read> LazyDecrypt<R> {
    pub(crate) fn new(inner: R, keys: Identities) -> Self {
        Self {
            state: LazyState::Pending(inner, keys),
        }
    }
}

impl<R: Read> Read for LazyDecrypt<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let LazyState::Pending(..) = self.state {
            let LazyState::Pending(inner, keys) =
                std::mem::replace(&mut self.state, LazyState::Failed)
            else {
                unreachable!("checked above")
            };
            self.state = LazyState::Open(keys.decrypting(inner)?);
        }
        match &mut self.state {
            LazyState::Open(r) => r.read(out),
            _ => Err(io::Error::other("decryption failed earlier")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn keypair(dir: &Path, name: &str) -> (String, PathBuf) {
        let id = x25519::Identity::generate();
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "# created: test\n# public key: {}\n{}\n",
                id.to_public(),
                id.to_string().expose_secret()
            ),
        )
        .unwrap();
        (id.to_public().to_string(), path)
    }

    #[test]
    fn two_recipients_each_decrypt_and_a_stranger_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_file) = keypair(dir.path(), "a.key");
        let (b, b_file) = keypair(dir.path(), "b.key");
        let (_, c_file) = keypair(dir.path(), "c.key");
        let list = dir.path().join("recipients.txt");
        std::fs::write(&list, format!("# team\n{b}\n")).unwrap();
        let r = Recipients::parse(&[a], &[list]).unwrap().unwrap();
        assert_eq!(r.fingerprints().len(), 2);
        let sealed = r.encrypt(b"the data").unwrap();
        for f in [&a_file, &b_file] {
            let ids = Identities::from_file(f).unwrap();
            assert!(ids.opens(&r.encryption()));
            assert_eq!(ids.decrypt(&sealed).unwrap(), b"the data");
        }
        let stranger = Identities::from_file(&c_file).unwrap();
        assert!(!stranger.opens(&r.encryption()));
        let e = stranger.decrypt(&sealed).unwrap_err();
        assert!(e.contains("cannot decrypt"), "{e}");
        // The run key opens it too, and is not in the manifest's list.
        let (with_run, run_ids) = r.with_run_key();
        let sealed = with_run.encrypt(b"x").unwrap();
        assert_eq!(run_ids.decrypt(&sealed).unwrap(), b"x");
        assert_eq!(with_run.fingerprints(), r.fingerprints());
    }

    #[test]
    fn bad_keys_are_config_errors_that_never_quote_a_secret() {
        assert!(Recipients::parse(&[], &[]).unwrap().is_none());
        let e = Recipients::parse(&["age1nope".into()], &[]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id");
        std::fs::write(&f, "AGE-SECRET-KEY-1NOTAKEYBUTSECRETISH\n").unwrap();
        let e = Identities::from_file(&f).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(!e.to_string().contains("SECRETISH"), "{e}");
        std::fs::write(&f, "# nothing\n").unwrap();
        assert!(
            Identities::from_file(&f)
                .unwrap_err()
                .to_string()
                .contains("no key")
        );
    }
}
