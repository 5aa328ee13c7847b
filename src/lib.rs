//! Gatehouse: an API gateway.
//!
//! The request's path through the crate: [`server`] accepts connections and hands each request
//! to the [`pipeline`], which looks up the route in the compiled [`runtime::Runtime`] (built by
//! [`runtime::compile`] from a [`config::Config`]), runs the route's fixed-order steps and
//! forwards through [`upstream`]. See `docs/architecture.md`.
#![forbid(unsafe_code)]

pub mod config;
pub mod router;
pub mod template;
