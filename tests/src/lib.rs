//! Test support
pub mod gcs_double;
