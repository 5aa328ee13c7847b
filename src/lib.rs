//! Gatehouse: an API gateway.
//!
//! The request's path through the crate: [`server`] accepts connections and hands each request
//! to the [`pipeline`], which looks up the route in the compiled [`runtime::Runtime`] (built by
//! [`runtime::compile`] from a [`config::Config`]), runs the route's fixed-order steps and
//! forwards through [`upstream`]. See `docs/architecture.md`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod body;
pub mod commands;
pub mod config;
pub mod error;
pub mod http1;
pub mod observability;
pub mod padded;
pub mod pipeline;
pub mod poll_clock;
pub mod router;
pub mod runtime;
pub mod server;
pub mod store;
pub mod sweep;
pub mod template;
pub mod upstream;
pub mod worker_hold;

use std::path::Path;

use config::ConfigErrors;

/// `gatehouse check`: loads, validates and compiles the config file at `path` without
/// starting anything; `ok: N routes, M services` or every error.
pub fn check(path: &Path) -> Result<String, ConfigErrors> {
    let config = config::load_file(path)?;
    check_config(&config)
}

/// [`check`] on config text; `file_name` is used in error locations.
pub fn check_str(file_name: &str, text: &str) -> Result<String, ConfigErrors> {
    let config = config::load_str(file_name, text)?;
    check_config(&config)
}

fn check_config(config: &config::Config) -> Result<String, ConfigErrors> {
    let state = runtime::State::dry_run();
    let compiled = runtime::compile(config, &state)?;
    Ok(format!(
        "ok: {} routes, {} services",
        compiled.route_count, compiled.service_count
    ))
}
