//! Test support
pub mod gcs_double;
pub mod support;
