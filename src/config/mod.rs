//! The configuration file: plain serde types, loading, environment interpolation, units and
//! validation with `FILE:LINE:COL` errors.
