//! Header fields the gateway adds to a request on its way upstream (`X-Forwarded-*`,
//! `X-Request-Id`, identity headers), kept beside the request's header map rather than
//! inserted into it: the HTTP/1.1 client writes them after the map's fields, in place of any
//! of the same names, which saves hashing each name into the map. Whatever needs the whole
//! map (HTTP/2, retries, transforms, mirrors) gets them inserted ([`AddedHeaders::insert_into`]).

use http::{HeaderMap, HeaderName, HeaderValue};

/// No added fields.
pub static NO_ADDED_HEADERS: AddedHeaders = AddedHeaders(Vec::new());

/// The fields added to one request, each name once.
#[derive(Debug, Default, Clone)]
pub struct AddedHeaders(Vec<(HeaderName, HeaderValue)>);

impl AddedHeaders {
    /// Room for `fields` fields.
    pub fn with_capacity(fields: usize) -> Self {
        Self(Vec::with_capacity(fields))
    }

    /// Sets `name` to `value`, replacing a value added before.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Adds `name`, which the caller knows was not added before (one of the forwarding
    /// fields, added first): no search.
    pub fn push_new(&mut self, name: HeaderName, value: HeaderValue) {
        debug_assert!(!self.replaces(&name), "{name} added twice");
        self.0.push((name, value));
    }

    /// Whether the request's own field `name` is replaced (and so not sent).
    pub fn replaces(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Each field, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter().map(|(name, value)| (name, value))
    }

    /// Whether no field was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Inserts the fields into `headers`, replacing those of the same names.
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.0 {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// Moves the fields into `headers` (as [`AddedHeaders::insert_into`]), leaving none.
    pub fn move_into(&mut self, headers: &mut HeaderMap) {
        for (name, value) in self.0.drain(..) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_insert_into_overrides_the_map() {
        let mut added = AddedHeaders::default();
        added.set(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("1"),
        );
        added.set(
            HeaderName::from_static("x-b"),
            HeaderValue::from_static("2"),
        );
        added.set(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("3"),
        );
        let listed: Vec<_> = added
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(listed, [("x-a", &b"3"[..]), ("x-b", &b"2"[..])]);
        assert!(added.replaces(&HeaderName::from_static("x-b")));
        assert!(!added.replaces(&http::header::HOST));

        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("client"));
        headers.append("x-a", HeaderValue::from_static("client-2"));
        headers.insert(http::header::HOST, HeaderValue::from_static("h"));
        added.insert_into(&mut headers);
        let a: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["3"]);
        assert_eq!(headers["x-b"], "2");
        assert_eq!(headers.len(), 3);

        added.move_into(&mut headers);
        assert!(added.is_empty());
        assert_eq!(headers.len(), 3);
    }
}
