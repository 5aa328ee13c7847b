//! The `gatehouse` command line.
fn main() {}
