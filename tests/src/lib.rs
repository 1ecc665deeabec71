//! Test support
pub mod gcs_double;
pub mod pg;
pub mod support;
