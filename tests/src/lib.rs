//! Test support
pub mod gcs_double;
pub mod http;
pub mod pg;
pub mod support;
