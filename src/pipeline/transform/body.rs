//! JSON body changes by JSON Pointer: remove → rename → set (→ select, responses), and when a
//! body qualifies for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::Value;

use super::json_pointer::Pointer;
use super::select::Selection;
use crate::config::Location;
use crate::template::{Template, TemplateVars};

/// A `set` value: JSON as written, or a string template rendered per request.
#[derive(Debug)]
enum SetValue {
    Json(Value),
    Template(Template),
}

/// The pointer lists of a `body` block, as written in the file.
pub(super) struct BodyConfig<'c> {
    /// `rename`: old pointer to new pointer.
    pub(super) rename: &'c indexmap::IndexMap<String, String>,
    /// `set`: pointer to value.
    pub(super) set: &'c indexmap::IndexMap<String, Value>,
    /// `remove`: pointers.
    pub(super) remove: &'c [String],
    /// `select`: pointers (responses only; empty for requests).
    pub(super) select: &'c [String],
}

/// Compiled JSON body changes.
#[derive(Debug)]
pub(super) struct BodyOps {
    remove: Vec<Pointer>,
    rename: Vec<(Pointer, Pointer)>,
    set: Vec<(Pointer, SetValue)>,
    select: Option<Selection>,
    /// Whether a body that is not JSON was already logged.
    warned: AtomicBool,
    route: Arc<str>,
}

impl BodyOps {
    /// Compiles the lists; errors are located at the plugin entry `at`. `None` when there are
    /// no body changes.
    pub(super) fn compile(
        body: &BodyConfig<'_>,
        route: &Arc<str>,
        captures: &[&str],
        at: Location,
        errors: &mut Vec<(Location, String)>,
    ) -> Option<Self> {
        let mut pointer = |text: &str, key: &str, whole: bool| match Pointer::parse(text) {
            Ok(p) if p.is_root() && !whole => {
                errors.push((
                    at,
                    format!("`body.{key}` cannot use the whole document `\"\"`"),
                ));
                None
            }
            Ok(p) => Some(p),
            Err(message) => {
                errors.push((at, format!("invalid `body.{key}`: {message}")));
                None
            }
        };
        let remove = body
            .remove
            .iter()
            .filter_map(|p| pointer(p, "remove", false))
            .collect();
        let rename = body
            .rename
            .iter()
            .filter_map(|(from, to)| {
                Some((
                    pointer(from, "rename", false)?,
                    pointer(to, "rename", false)?,
                ))
            })
            .collect();
        let set_pointers: Vec<_> = body
            .set
            .iter()
            .filter_map(|(p, v)| Some((pointer(p, "set", true)?, v)))
            .collect();
        let select: Vec<Pointer> = body
            .select
            .iter()
            .filter_map(|p| pointer(p, "select", true))
            .collect();
        let mut set = Vec::with_capacity(set_pointers.len());
        for (pointer, value) in set_pointers {
            let compiled = match value {
                Value::String(text) => match Template::parse(text).and_then(|t| {
                    t.check_captures(captures)?;
                    Ok(t)
                }) {
                    Ok(t) if t.is_literal() => SetValue::Json(Value::String(t.literal())),
                    Ok(t) => SetValue::Template(t),
                    Err(err) => {
                        errors.push((
                            at,
                            format!("invalid `body.set` value for `{pointer}`: {err}"),
                        ));
                        continue;
                    }
                },
                other => SetValue::Json(other.clone()),
            };
            set.push((pointer, compiled));
        }
        let ops = Self {
            remove,
            rename,
            set,
            select: (!body.select.is_empty()).then(|| Selection::new(&select)),
            warned: AtomicBool::new(false),
            route: route.clone(),
        };
        let empty = ops.remove.is_empty()
            && ops.rename.is_empty()
            && ops.set.is_empty()
            && ops.select.is_none();
        (!empty).then_some(ops)
    }

    /// Renders the `set` values that are templates, for one request.
    pub(super) fn render(&self, vars: &dyn TemplateVars) -> Vec<Value> {
        self.set
            .iter()
            .filter_map(|(_, value)| match value {
                SetValue::Template(t) => {
                    let mut out = String::new();
                    t.render(vars, &mut out);
                    Some(Value::String(out))
                }
                SetValue::Json(_) => None,
            })
            .collect()
    }

    /// The body with the changes made, or `None` when it is not JSON (logged once per route).
    pub(super) fn transform(&self, body: &[u8], rendered: Vec<Value>) -> Option<Bytes> {
        let Ok(mut doc) = serde_json::from_slice::<Value>(body) else {
            self.not_json();
            return None;
        };
        for pointer in &self.remove {
            pointer.remove(&mut doc);
        }
        for (from, to) in &self.rename {
            from.move_to(to, &mut doc);
        }
        let mut rendered = rendered.into_iter();
        for (pointer, value) in &self.set {
            let value = match value {
                SetValue::Json(v) => v.clone(),
                SetValue::Template(_) => rendered.next().unwrap_or_default(),
            };
            let _ = pointer.set(&mut doc, value);
        }
        if let Some(selection) = &self.select {
            doc = selection.apply(doc);
        }
        serde_json::to_vec(&doc).ok().map(Bytes::from)
    }

    /// Logs, once per compiled route, that a body declared or expected as JSON was not.
    pub(super) fn not_json(&self) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                route = %self.route,
                "a body transform met a body that is not JSON; it passes through unchanged \
                 (logged once per route)"
            );
        }
    }
}

/// Whether a message's body is JSON the transforms can read: `Content-Type` is
/// `application/json` or `…+json`, with no `Content-Encoding` (compressed bytes are not JSON
/// text; they pass through).
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    let encoded = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return false;
    }
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use indexmap::IndexMap;
    use serde_json::json;

    use super::*;

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (ct, yes) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/json", false),
            ("application/jsonx", false),
            ("text/plain", false),
        ] {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&headers), yes, "{ct}");
        }
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(!is_json(&headers));
    }

    #[test]
    fn ops_run_remove_rename_set_select() {
        let rename = IndexMap::from([("/userId".to_owned(), "/user_id".to_owned())]);
        let set = IndexMap::from([
            ("/meta/by".to_owned(), json!("{request_id}")),
            ("/n".to_owned(), json!(5)),
            ("/userId".to_owned(), json!("literal {{x}}")),
        ]);
        let remove = vec!["/internal".to_owned()];
        let select = vec![
            "/user_id".to_owned(),
            "/meta".to_owned(),
            "/n".to_owned(),
            "/userId".to_owned(),
        ];
        let mut errors = Vec::new();
        let cfg = BodyConfig {
            rename: &rename,
            set: &set,
            remove: &remove,
            select: &select,
        };
        let route: Arc<str> = "r".into();
        let ops = BodyOps::compile(&cfg, &route, &[], Location::UNKNOWN, &mut errors).expect("ops");
        assert!(errors.is_empty(), "{errors:?}");
        let out = ops
            .transform(
                br#"{"userId": 7, "internal": true, "other": 1}"#,
                vec![json!("rid")],
            )
            .expect("json");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            r#"{"user_id":7,"meta":{"by":"rid"},"n":5,"userId":"literal {x}"}"#
        );
        assert!(ops.transform(b"not json", Vec::new()).is_none());
        assert!(ops.warned.load(Ordering::Relaxed));
    }

    #[test]
    fn bad_pointers_are_errors() {
        let rename = IndexMap::from([("userId".to_owned(), "/x".to_owned())]);
        let set = IndexMap::from([("/a~2".to_owned(), json!(1))]);
        let remove = vec![String::new()];
        let cfg = BodyConfig {
            rename: &rename,
            set: &set,
            remove: &remove,
            select: &[],
        };
        let mut errors = Vec::new();
        let route: Arc<str> = "r".into();
        BodyOps::compile(&cfg, &route, &[], Location::UNKNOWN, &mut errors);
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
