//! Logs, and later metrics and traces (SPEC §8).

pub mod access_log;
