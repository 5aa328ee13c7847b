//! JSON Pointers (RFC 6901) parsed once at load time, and the edits the body transforms make
//! with them: get, remove, set (creating missing parent objects) and move.

use std::fmt;

use serde_json::{Map, Value};

/// A parsed JSON Pointer: `""` is the whole document, `/a/b~1c` the member `b/c` of `a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pointer {
    tokens: Box<[Box<str>]>,
}

impl Pointer {
    /// Parses `text`: empty, or `/`-separated tokens with `~0` for `~` and `~1` for `/`.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                tokens: Box::default(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "JSON Pointer `{text}` must start with `/` (or be empty for the whole document)"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    token.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => token.push('~'),
                    Some('1') => token.push('/'),
                    _ => {
                        return Err(format!(
                            "JSON Pointer `{text}`: `~` must be followed by `0` or `1`"
                        ));
                    }
                }
            }
            tokens.push(token.into_boxed_str());
        }
        Ok(Self {
            tokens: tokens.into(),
        })
    }

    /// True for `""`, the whole document.
    pub(super) fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The unescaped reference tokens.
    pub(super) fn tokens(&self) -> &[Box<str>] {
        &self.tokens
    }

    /// The value the pointer designates.
    #[cfg(test)]
    pub(super) fn get<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        self.tokens
            .iter()
            .try_fold(doc, |value, token| child(value, token))
    }

    /// Removes and returns the designated value (array elements after it shift down). The
    /// root cannot be removed.
    pub(super) fn remove(&self, doc: &mut Value) -> Option<Value> {
        let (last, parents) = self.tokens.split_last()?;
        let parent = parents
            .iter()
            .try_fold(doc, |value, token| child_mut(value, token))?;
        match parent {
            Value::Object(map) => map.shift_remove(last.as_ref()),
            Value::Array(items) => {
                let index = array_index(last, items.len())?;
                Some(items.remove(index))
            }
            _ => None,
        }
    }

    /// Sets the designated value, creating missing parents as objects. `-` (or the length) as
    /// an array index appends. Returns the value back when it has no place (a parent is a
    /// scalar, or an index is past the end), leaving the document unchanged.
    pub(super) fn set(&self, doc: &mut Value, value: Value) -> Result<(), Value> {
        let Some((last, parents)) = self.tokens.split_last() else {
            *doc = value;
            return Ok(());
        };
        let mut current = doc;
        for token in parents {
            current = match current {
                Value::Object(map) => map
                    .entry(token.as_ref())
                    .or_insert_with(|| Value::Object(Map::new())),
                Value::Array(items) => match array_index(token, items.len()) {
                    Some(index) => &mut items[index],
                    None if is_append(token, items.len()) => {
                        items.push(Value::Object(Map::new()));
                        let end = items.len() - 1;
                        &mut items[end]
                    }
                    None => return Err(value),
                },
                _ => return Err(value),
            };
        }
        match current {
            Value::Object(map) => {
                map.insert(last.to_string(), value);
                Ok(())
            }
            Value::Array(items) => match array_index(last, items.len()) {
                Some(index) => {
                    items[index] = value;
                    Ok(())
                }
                None if is_append(last, items.len()) => {
                    items.push(value);
                    Ok(())
                }
                None => Err(value),
            },
            _ => Err(value),
        }
    }

    /// Moves the value at `self` to `to`; nothing happens when `self` designates nothing, and
    /// the value stays where it was when `to` has no place for it.
    pub(super) fn move_to(&self, to: &Pointer, doc: &mut Value) {
        if self == to || to.tokens.starts_with(&self.tokens) {
            // Into itself: there is nothing sensible to do.
            return;
        }
        if !to.has_place(doc) {
            return;
        }
        if let Some(value) = self.remove(doc)
            && let Err(value) = to.set(doc, value)
        {
            // Removing shifted an array `to` went through: put the value back (its parent
            // exists, it was just removed from it).
            let _ = self.set(doc, value);
        }
    }

    /// Whether [`set`](Self::set) would find a place for a value in `doc`.
    fn has_place(&self, doc: &Value) -> bool {
        let Some((last, parents)) = self.tokens.split_last() else {
            return true;
        };
        let mut current = doc;
        for token in parents {
            current = match current {
                Value::Object(map) => match map.get(token.as_ref()) {
                    Some(next) => next,
                    None => return true,
                },
                Value::Array(items) => match array_index(token, items.len()) {
                    Some(index) => &items[index],
                    None => return is_append(token, items.len()),
                },
                _ => return false,
            };
        }
        match current {
            Value::Object(_) => true,
            Value::Array(items) => {
                array_index(last, items.len()).is_some() || is_append(last, items.len())
            }
            _ => false,
        }
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for token in self.tokens.iter() {
            f.write_str("/")?;
            f.write_str(&token.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

/// The index a token designates in an array of `len` elements: decimal digits, no leading zero.
pub(super) fn array_index(token: &str, len: usize) -> Option<usize> {
    let index = parse_index(token)?;
    (index < len).then_some(index)
}

/// A token that is an array index (RFC 6901: `0` or digits without a leading zero).
pub(super) fn parse_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

fn is_append(token: &str, len: usize) -> bool {
    token == "-" || parse_index(token) == Some(len)
}

#[cfg(test)]
fn child<'v>(value: &'v Value, token: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(array_index(token, items.len())?),
        _ => None,
    }
}

fn child_mut<'v>(value: &'v mut Value, token: &str) -> Option<&'v mut Value> {
    match value {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => {
            let index = array_index(token, items.len())?;
            items.get_mut(index)
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "json_pointer_tests.rs"]
mod tests;
