//! Checksum read-back: what the sink holds is what was sent.

use std::time::Instant;

use async_trait::async_trait;

use super::{Verifier, VerifyInput};
use crate::error::Result;
use crate::manifest::Verdict;
use crate::sink::SinkExt;

/// Reads the stored objects back (the artifact and every attachment) and
/// compares their sizes and SHA-256 with the manifest. An object that is
/// gone is a failed check, not an error: the backup is not restorable.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChecksumReadBack;

/// `Ok(None)` when `key` holds `size` bytes hashing to `sha256`, else what
/// differs. Errors only when the sink cannot be read.
async fn check_object(
    sink: &dyn crate::sink::Sink,
    key: &str,
    size: u64,
    sha256: &str,
) -> Result<Result<u64, String>> {
    let head = match sink.head(key).await {
        Ok(h) => h,
        Err(crate::Error::NotFound { .. }) => {
            return Ok(Err(format!("{key} is missing from the sink")));
        }
        Err(e) => return Err(e),
    };
    if head.size != size {
        return Ok(Err(format!(
            "{key} is {} bytes, the manifest says {size}",
            head.size
        )));
    }
    let (got, sha) = match sink.sha256(key).await {
        Ok(v) => v,
        Err(crate::Error::NotFound { .. }) => {
            return Ok(Err(format!("{key} is missing from the sink")));
        }
        Err(e) => return Err(e),
    };
    if got == size && sha == sha256 {
        Ok(Ok(got))
    } else {
        Ok(Err(format!(
            "{key}: read back {got} bytes with sha256 {sha}, the manifest says {size} bytes with {sha256}"
        )))
    }
}

#[async_trait]
impl Verifier for ChecksumReadBack {
    fn name(&self) -> &str {
        "checksum"
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        let started = Instant::now();
        let m = input.manifest;
        let art = &m.artifact;
        let mut problems = Vec::new();
        let mut detail = String::new();
        match check_object(input.sink, &art.key, art.stored_size, &art.sha256).await? {
            Ok(size) => detail = format!("read back {size} bytes, sha256 {} matches", art.sha256),
            Err(p) => problems.push(p),
        }
        for a in &m.attachments {
            if let Err(p) = check_object(input.sink, &a.key, a.stored_size, &a.sha256).await? {
                problems.push(p);
            }
        }
        if !m.attachments.is_empty() && problems.is_empty() {
            detail.push_str(&format!("; {} attachment(s) match", m.attachments.len()));
        }
        let passed = problems.is_empty();
        if !passed {
            detail = problems.join("; ");
        }
        Ok(Verdict::new(self.name(), passed, detail, started))
    }
}
