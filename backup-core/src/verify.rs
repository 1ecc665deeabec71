//! Proving something about one stored backup.
//!
//! A [`Verifier`] returns a [`Verdict`] with evidence. A check that fails is
//! `Ok(verdict)` with `passed: false`; `Err` means the check could not run
//! (the sink was unreachable), which is a different failure with its own
//! exit code.
//!
//! This module holds the trait and the checks every source gets (`min-size`,
//! `checksum`). Each engine owns its own verifiers
//! ([`crate::source::sqlite::SqliteIntegrity`],
//! [`crate::source::postgres::PgToc`], the restore drills) and says which a
//! stored backup gets ([`crate::source::SourceKind::stored_verifiers`]).

mod checksum;
pub mod size;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::manifest::{Manifest, Verdict};
use crate::sink::Sink;

pub use checksum::ChecksumReadBack;
pub use size::MinSize;

/// What a verifier gets to look at.
#[derive(Debug)]
#[non_exhaustive]
pub struct VerifyInput<'a> {
    /// The backup's manifest (at backup time: everything but the verdicts).
    pub manifest: &'a Manifest,
    /// The sink that holds it.
    pub sink: &'a dyn Sink,
    /// The decompressed artifact on local disk, when the caller has one (at
    /// verify time, for verifiers with [`Verifier::needs_local_copy`]).
    pub local_copy: Option<&'a Path>,
    /// Keys that decrypt the backup's encrypted attachments, when it has
    /// them (an identity file, or a backup run's own key).
    pub keys: Option<&'a crate::crypt::Identities>,
}

impl<'a> VerifyInput<'a> {
    /// Input for one verification.
    pub fn new(manifest: &'a Manifest, sink: &'a dyn Sink, local_copy: Option<&'a Path>) -> Self {
        Self {
            manifest,
            sink,
            local_copy,
            keys: None,
        }
    }

    /// With keys that decrypt the backup's attachments.
    pub fn with_keys(mut self, keys: Option<&'a crate::crypt::Identities>) -> Self {
        self.keys = keys;
        self
    }
}

/// A check on a stored backup.
#[async_trait]
pub trait Verifier: Send + Sync + fmt::Debug {
    /// A short stable name (`min-size`, `checksum`, `sqlite-integrity`).
    fn name(&self) -> &str;

    /// Whether the verifier reads the decompressed artifact from
    /// [`VerifyInput::local_copy`]. The caller downloads it once for all
    /// verifiers that need it.
    fn needs_local_copy(&self) -> bool {
        false
    }

    /// Whether the verifier wants the local copy as the directory the
    /// artifact (a tar) unpacks to, rather than as one file. When every
    /// verifier of a run wants that, the download is unpacked as it
    /// streams: no second copy of the data on disk.
    fn wants_unpacked_tar(&self) -> bool {
        false
    }

    /// Run the check.
    ///
    /// # Errors
    /// Only when the check could not run; a failed check is a verdict.
    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict>;
}

/// The verifiers every backup gets, whatever its source: size floor and
/// checksum read-back.
pub fn default_verifiers(min_size: u64) -> Vec<Arc<dyn Verifier>> {
    vec![Arc::new(MinSize::new(min_size)), Arc::new(ChecksumReadBack)]
}
