//! The values a matched route captured from the path.

use std::ops::Range;

use smallvec::SmallVec;

/// Path captures of a matched route: names borrowed from the router, values as byte ranges
/// into the request path, so a match costs no allocation for up to four captures.
///
/// Values are read with the same path that was given to [`Router::find`](super::Router::find).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captures<'r> {
    names: &'r [Box<str>],
    /// One per name; `None` for a regex group that did not take part in the match.
    spans: SmallVec<[Option<Range<usize>>; 4]>,
}

impl<'r> Captures<'r> {
    pub(crate) fn new(names: &'r [Box<str>], spans: SmallVec<[Option<Range<usize>>; 4]>) -> Self {
        debug_assert_eq!(names.len(), spans.len());
        Self { names, spans }
    }

    /// The value captured as `name` (`""` for `{rest:**}` matching the prefix itself).
    pub fn get<'p>(&self, path: &'p str, name: &str) -> Option<&'p str> {
        let index = self.names.iter().position(|n| n.as_ref() == name)?;
        self.spans[index].clone().and_then(|span| path.get(span))
    }

    /// Every capture that has a value, as `(name, value)`, in pattern order.
    pub fn iter<'a, 'p>(&'a self, path: &'p str) -> impl Iterator<Item = (&'r str, &'p str)> + 'a
    where
        'p: 'a,
    {
        self.names
            .iter()
            .zip(&self.spans)
            .filter_map(move |(name, span)| Some((name.as_ref(), path.get(span.clone()?)?)))
    }

    /// The number of capture names of the route.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the route captures nothing.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
