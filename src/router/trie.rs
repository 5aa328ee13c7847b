//! A segment trie over `path` patterns that yields every route whose pattern matches a path,
//! most specific first, so the router can fall back when a route's conditions fail.

use std::collections::HashMap;
use std::ops::{ControlFlow, Range};

use super::pattern::Segment;

/// Index of a route in the router's entry list.
pub(crate) type RouteId = usize;

#[derive(Debug, Default)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
}

/// One position in the pattern tree. Children are tried literal → `{param}` → `*`, then the
/// `**` routes of the node itself: exactly the specificity order of SPEC §2.4.
#[derive(Debug, Default)]
struct Node {
    literals: Literals,
    param: Option<usize>,
    star: Option<usize>,
    /// Routes whose pattern ends here; conditional ones first, then in input order.
    ends: Vec<RouteId>,
    /// `**` routes rooted here, in the same order.
    rest: Vec<RouteId>,
}

/// The literal children of a node, by segment text.
#[derive(Debug)]
enum Literals {
    /// Few children: sorted for binary search, which beats hashing the segment.
    Sorted(Box<[(Box<str>, usize)]>),
    /// Many children (`/svc1` … `/svc5000`): a hash lookup instead of a long binary search.
    Hashed(HashMap<Box<str>, usize>),
}

/// From this many literal children on, a node hashes instead of binary searching.
const HASHED_FROM: usize = 32;

impl Default for Literals {
    fn default() -> Self {
        Self::Sorted(Box::default())
    }
}

impl Literals {
    fn new(children: HashMap<Box<str>, usize>) -> Self {
        if children.len() >= HASHED_FROM {
            return Self::Hashed(children);
        }
        let mut sorted: Vec<(Box<str>, usize)> = children.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Self::Sorted(sorted.into())
    }

    fn get(&self, segment: &str) -> Option<usize> {
        match self {
            Self::Sorted(sorted) => sorted
                .binary_search_by(|(text, _)| text.as_ref().cmp(segment))
                .ok()
                .map(|i| sorted[i].1),
            Self::Hashed(map) => map.get(segment).copied(),
        }
    }
}

/// The trie while routes are being added; literal children in a hash map for quick inserts.
#[derive(Debug, Default)]
pub(crate) struct TrieBuilder {
    nodes: Vec<BuilderNode>,
}

#[derive(Debug, Default)]
struct BuilderNode {
    literals: HashMap<Box<str>, usize>,
    node: Node,
}

impl TrieBuilder {
    /// Adds a route; routes must be added in specificity order within one slot (the caller
    /// adds conditional routes first, each group in input order).
    pub(crate) fn insert(&mut self, segments: &[Segment], route: RouteId) {
        if self.nodes.is_empty() {
            self.nodes.push(BuilderNode::default());
        }
        let mut at = 0;
        for segment in segments {
            let next = self.nodes.len();
            let current = &mut self.nodes[at];
            let child = match segment {
                Segment::Literal(text) => *current.literals.entry(text.clone()).or_insert(next),
                Segment::Param(_) => *current.node.param.get_or_insert(next),
                Segment::Star => *current.node.star.get_or_insert(next),
                Segment::Rest(_) => {
                    current.node.rest.push(route);
                    return;
                }
            };
            if child == next {
                self.nodes.push(BuilderNode::default());
            }
            at = child;
        }
        self.nodes[at].node.ends.push(route);
    }

    /// The route lists of every node: each list holds routes with the same path shape.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &[RouteId]> {
        self.nodes
            .iter()
            .flat_map(|n| [n.node.ends.as_slice(), n.node.rest.as_slice()])
    }

    pub(crate) fn finish(self) -> Trie {
        let nodes = self
            .nodes
            .into_iter()
            .map(|b| Node {
                literals: Literals::new(b.literals),
                ..b.node
            })
            .collect();
        Trie { nodes }
    }
}

impl Trie {
    /// Calls `visit` with every route whose pattern matches the path, most specific first,
    /// until it breaks. `segments` are the byte ranges of the path's segments.
    pub(crate) fn candidates(
        &self,
        path: &str,
        segments: &[Range<usize>],
        visit: &mut impl FnMut(RouteId) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.nodes.is_empty() {
            return ControlFlow::Continue(());
        }
        self.walk(0, path, segments, visit)
    }

    fn walk(
        &self,
        at: usize,
        path: &str,
        segments: &[Range<usize>],
        visit: &mut impl FnMut(RouteId) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let node = &self.nodes[at];
        match segments.split_first() {
            None => node.ends.iter().try_for_each(|&id| visit(id))?,
            Some((first, below)) => {
                let segment = &path[first.clone()];
                if let Some(child) = node.literals.get(segment) {
                    self.walk(child, path, below, visit)?;
                }
                if !segment.is_empty() {
                    for child in [node.param, node.star].into_iter().flatten() {
                        self.walk(child, path, below, visit)?;
                    }
                }
            }
        }
        node.rest.iter().try_for_each(|&id| visit(id))
    }
}
