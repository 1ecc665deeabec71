//! Test support
pub mod faults;
pub mod gcs_double;
pub mod http;
pub mod pg;
pub mod support;
