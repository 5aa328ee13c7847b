//! The work behind each CLI command (SPEC §1); `main.rs` only parses arguments.

pub mod demo;
pub mod hash_key;
pub mod token;
