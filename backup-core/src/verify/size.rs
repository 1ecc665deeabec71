//! The size floor (seed 000: a dump under 1 KiB is a failure).

use std::time::Instant;

use async_trait::async_trait;

use super::{Verifier, VerifyInput};
use crate::error::Result;
use crate::manifest::Verdict;

/// Default floor: 1 KiB.
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// Fails a backup whose uncompressed dump is smaller than a floor: the
/// signature of a dump that "succeeded" but holds nothing.
#[derive(Debug, Clone, Copy)]
pub struct MinSize {
    min: u64,
}

impl MinSize {
    /// A floor of `min` bytes.
    pub fn new(min: u64) -> Self {
        Self { min }
    }
}

impl Default for MinSize {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_SIZE)
    }
}

#[async_trait]
impl Verifier for MinSize {
    fn name(&self) -> &str {
        "min-size"
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        let started = Instant::now();
        let raw = input.manifest.artifact.raw_size;
        let passed = raw >= self.min;
        let detail = if passed {
            format!("dump is {raw} bytes (floor {})", self.min)
        } else {
            format!(
                "dump is only {raw} bytes, below the floor of {} bytes",
                self.min
            )
        };
        Ok(Verdict::new(self.name(), passed, detail, started))
    }
}
