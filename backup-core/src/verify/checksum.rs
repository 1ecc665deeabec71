//! Checksum read-back: what the sink holds is what was sent.

use std::time::Instant;

use async_trait::async_trait;

use super::{Verifier, VerifyInput, verdict};
use crate::error::Result;
use crate::manifest::Verdict;
use crate::sink::SinkExt;

/// Reads the stored object back and compares its size and SHA-256 with the
/// manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChecksumReadBack;

#[async_trait]
impl Verifier for ChecksumReadBack {
    fn name(&self) -> &str {
        "checksum"
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        let started = Instant::now();
        let art = &input.manifest.artifact;
        let head = input.sink.head(&art.key).await?;
        if head.size != art.stored_size {
            return Ok(verdict(
                self.name(),
                false,
                format!(
                    "stored object is {} bytes, manifest says {}",
                    head.size, art.stored_size
                ),
                started,
            ));
        }
        let (size, sha) = input.sink.sha256(&art.key).await?;
        let passed = size == art.stored_size && sha == art.sha256;
        let detail = if passed {
            format!("read back {size} bytes, sha256 {sha} matches")
        } else {
            format!(
                "read back {size} bytes with sha256 {sha}, manifest says {} bytes with {}",
                art.stored_size, art.sha256
            )
        };
        Ok(verdict(self.name(), passed, detail, started))
    }
}
