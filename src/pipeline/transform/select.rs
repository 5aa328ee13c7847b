//! `response_transform.body.select`: keep only the listed pointers, in a minimal skeleton of
//! the document.
//!
//! The pointers are merged into a tree at load time. On an object, each selected member is
//! kept (in the document's order). On an array, a token that is an index (`/items/0`) keeps
//! that element, and any other token applies to every element (`/items/name` keeps `name` in
//! each element of `items`; on a top-level array, `/id` keeps `id` in each element); elements
//! nothing selects are dropped and the kept ones keep their order. Scalars where the pointer
//! expects a container select nothing. A document with nothing selected becomes `{}` (or `[]`).

use serde_json::{Map, Value};

use super::json_pointer::{Pointer, parse_index};

/// A compiled selection: a tree of the selected pointers' tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Selection {
    /// The whole value at this point is selected.
    whole: bool,
    children: Vec<(Box<str>, Selection)>,
}

impl Selection {
    /// The selection of `pointers` (empty: nothing selected).
    pub(super) fn new<'p>(pointers: impl IntoIterator<Item = &'p Pointer>) -> Self {
        let mut root = Self::default();
        for pointer in pointers {
            let mut node = &mut root;
            for token in pointer.tokens() {
                let at = match node.children.iter().position(|(t, _)| t == token) {
                    Some(at) => at,
                    None => {
                        node.children.push((token.clone(), Self::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at].1;
            }
            node.whole = true;
        }
        root
    }

    /// The document reduced to the selection.
    pub(super) fn apply(&self, doc: Value) -> Value {
        match self.pick(doc) {
            Some(value) => value,
            None => Value::Object(Map::new()),
        }
    }

    /// The selected part of `value`, `None` when nothing in it is selected.
    fn pick(&self, value: Value) -> Option<Value> {
        if self.whole {
            return Some(value);
        }
        match value {
            Value::Object(map) => {
                let kept: Map<String, Value> = map
                    .into_iter()
                    .filter_map(|(name, member)| {
                        let node = self.child(&name)?;
                        node.pick(member).map(|picked| (name, picked))
                    })
                    .collect();
                Some(Value::Object(kept))
            }
            Value::Array(items) => {
                let kept: Vec<Value> = items
                    .into_iter()
                    .enumerate()
                    .filter_map(|(index, item)| self.pick_element(index, item))
                    .collect();
                Some(Value::Array(kept))
            }
            _ => None,
        }
    }

    /// An array element: selected by its index, by the member tokens, or both (merged).
    fn pick_element(&self, index: usize, item: Value) -> Option<Value> {
        let by_index = self
            .children
            .iter()
            .find(|(token, _)| parse_index(token) == Some(index))
            .map(|(_, node)| node);
        let members: Vec<&(Box<str>, Selection)> = self
            .children
            .iter()
            .filter(|(token, _)| parse_index(token).is_none())
            .collect();
        let by_members = (!members.is_empty()).then(|| Selection {
            whole: false,
            children: members.into_iter().cloned().collect(),
        });
        match (by_index, by_members) {
            (Some(node), None) => node.pick(item),
            (None, Some(node)) => node.pick(item),
            (Some(a), Some(b)) => match (a.pick(item.clone()), b.pick(item)) {
                (Some(x), Some(y)) => Some(merge(x, y)),
                (x, y) => x.or(y),
            },
            (None, None) => None,
        }
    }

    fn child(&self, name: &str) -> Option<&Selection> {
        self.children
            .iter()
            .find(|(token, _)| token.as_ref() == name)
            .map(|(_, node)| node)
    }
}

/// `a` with `b`'s members added, deeply.
fn merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (name, value) in b {
                let merged = match a.shift_remove(&name) {
                    Some(old) => merge(old, value),
                    None => value,
                };
                a.insert(name, merged);
            }
            Value::Object(a)
        }
        (_, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn select(pointers: &[&str], doc: Value) -> Value {
        let parsed: Vec<Pointer> = pointers
            .iter()
            .map(|p| Pointer::parse(p).expect("pointer"))
            .collect();
        Selection::new(&parsed).apply(doc)
    }

    #[test]
    fn keeps_members_in_document_order() {
        let doc =
            json!({"id": 1, "name": "a", "price": 3, "secret": "x", "thumb": {"url": "u", "w": 3}});
        assert_eq!(
            select(&["/thumb/url", "/id", "/name", "/missing"], doc).to_string(),
            r#"{"id":1,"name":"a","thumb":{"url":"u"}}"#
        );
    }

    #[test]
    fn member_tokens_apply_to_every_array_element() {
        let doc = json!([{"id": 1, "x": 0}, {"id": 2, "x": 0}, 7]);
        assert_eq!(select(&["/id"], doc), json!([{"id": 1}, {"id": 2}]));
        let doc = json!({"items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "total": 2});
        assert_eq!(
            select(&["/items/name", "/total"], doc),
            json!({"items": [{"name": "a"}, {"name": "b"}], "total": 2})
        );
    }

    #[test]
    fn index_tokens_pick_elements_and_merge_with_member_tokens() {
        let doc = json!({"items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3}]});
        assert_eq!(
            select(&["/items/1"], doc.clone()),
            json!({"items": [{"id": 2, "name": "b"}]})
        );
        assert_eq!(
            select(&["/items/0/name", "/items/id"], doc),
            json!({"items": [{"id": 1, "name": "a"}, {"id": 2}, {"id": 3}]})
        );
    }

    #[test]
    fn nothing_selected_is_an_empty_object_and_root_keeps_all() {
        assert_eq!(select(&["/a/b"], json!({"a": 5})), json!({}));
        assert_eq!(select(&["/a"], json!("text")), json!({}));
        assert_eq!(select(&[""], json!({"a": 1})), json!({"a": 1}));
        assert_eq!(
            select(&["/~1a"], json!({"/a": 1, "b": 2})),
            json!({"/a": 1})
        );
    }
}
