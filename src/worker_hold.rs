//! Holds on a shared `Arc` that each worker thread makes for its own requests.
//!
//! A request that clones a shared `Arc` writes its count, and so does its drop: with every
//! worker doing that on every request, the count's cache line moves between the cores each
//! time. A [`WorkerHolds`] gives each worker one hold of its own (an `Arc` over the shared
//! one) that its requests clone instead, for as long as any of them holds it and the shared
//! value stays the one they hold. Only the worker's own lines are written.
//!
//! [`WorkerCopies`] does the same for values a request clones from the config, such as a
//! header value (a clone of one shares its bytes' count): each worker gets a copy of its own.

use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

use http::HeaderValue;

use crate::padded::Padded;

/// Each worker's hold on a shared value, kept while its requests use it.
#[derive(Debug)]
pub struct WorkerHolds<T> {
    /// Each worker's slot: the hold its requests share, while any of them keeps it.
    slots: WorkerCopies<Mutex<Weak<Arc<T>>>>,
}

/// A hold on a shared value, made by one worker and shared by its requests; dereferences to
/// the value.
#[derive(Debug)]
#[allow(
    clippy::redundant_allocation,
    reason = "the outer `Arc` is the worker's own count; the inner one is the shared value's"
)]
pub struct WorkerHold<T>(Arc<Arc<T>>);

impl<T> Clone for WorkerHold<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Deref for WorkerHold<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Default for WorkerHolds<T> {
    fn default() -> Self {
        Self {
            slots: WorkerCopies::new(|| Mutex::new(Weak::new())),
        }
    }
}

impl<T> WorkerHolds<T> {
    /// A hold on `current` for the calling worker (threads outside the workers count as the
    /// first): the worker's own while it still holds `current`, else a new one.
    pub fn hold(&self, current: &Arc<T>) -> WorkerHold<T> {
        let mut held = self.slots.here().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hold) = held.upgrade()
            && Arc::ptr_eq(&*hold, current)
        {
            return WorkerHold(hold);
        }
        let hold = Arc::new(Arc::clone(current));
        *held = Arc::downgrade(&hold);
        WorkerHold(hold)
    }
}

/// One copy of a value per worker thread, each made on its own (not a clone sharing a count)
/// and on cache lines of its own; cloning the whole set shares it. Also the per-worker slots
/// of state each worker writes for itself (a count, a hold).
#[derive(Debug)]
pub struct WorkerCopies<T>(Arc<[Padded<T>]>);

impl<T> Clone for WorkerCopies<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> WorkerCopies<T> {
    /// A copy per worker, each from `make`.
    pub fn new(mut make: impl FnMut() -> T) -> Self {
        Self(
            (0..crate::server::worker_count())
                .map(|_| Padded(make()))
                .collect(),
        )
    }

    /// The calling worker's copy (threads outside the workers use the first).
    pub fn here(&self) -> &T {
        &self.0[crate::server::current_worker() % self.0.len()]
    }

    /// Every worker's copy.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|copy| &copy.0)
    }
}

impl WorkerCopies<HeaderValue> {
    /// Copies of a header value whose bytes are each worker's own.
    pub fn of_value(value: &HeaderValue) -> Self {
        Self::new(|| {
            let mut copy =
                HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
            copy.set_sensitive(value.is_sensitive());
            copy
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_shared_while_the_value_stays() {
        let holds = WorkerHolds::default();
        let value = Arc::new(1);
        let first = holds.hold(&value);
        let second = holds.hold(&value);
        assert!(Arc::ptr_eq(&first.0, &second.0), "one hold for the worker");
        assert_eq!(Arc::strong_count(&value), 2, "the value is cloned once");

        let newer = Arc::new(2);
        let third = holds.hold(&newer);
        assert_eq!(*third, 2, "a new value gets a new hold");
        assert_eq!(*first, 1, "the old hold still reads the old value");

        drop((first, second, third));
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "the last request lets the value go"
        );
        let again = holds.hold(&newer);
        assert_eq!(*again, 2);
    }

    #[test]
    fn header_value_copies_are_equal_and_apart() {
        let value = HeaderValue::from_str("users.internal:8080").expect("value");
        let copies = WorkerCopies::of_value(&value);
        assert_eq!(*copies.here(), value);
        let first = copies.0[0].as_bytes().as_ptr();
        for copy in copies.0.iter().skip(1) {
            assert_eq!(**copy, value);
            assert_ne!(copy.as_bytes().as_ptr(), first, "each worker's own bytes");
        }
    }
}
