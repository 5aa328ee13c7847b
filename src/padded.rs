//! [`Padded`]: a value on cache lines of its own.

use std::ops::{Deref, DerefMut};

/// A value aligned (and so padded) to 128 bytes: two cache lines, as x86 processors fetch
/// adjacent lines in pairs. State that every worker thread writes on every request (a count,
/// a lock) is kept apart from its neighbours this way, so that a write by one worker does not
/// take the line away from a worker using the value next to it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Padded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
