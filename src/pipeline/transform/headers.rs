//! Header changes of both transforms: remove → rename → set → add, values templates.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{self, Location};
use crate::template::{Template, TemplateVars};

/// Headers the transforms may not touch: they frame the message or belong to one connection.
const MANAGED: [HeaderName; 9] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::CONTENT_ENCODING,
];

/// A header value: fixed text, or a template rendered per request.
#[derive(Debug)]
enum Value {
    Fixed(HeaderValue),
    Template(Template),
}

/// Compiled header changes.
#[derive(Debug, Default)]
pub(super) struct HeaderStep {
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    set: Vec<(HeaderName, Value)>,
    add: Vec<(HeaderName, Value)>,
}

/// The values of one request's `set` and `add` headers, in that order; `None` when a rendered
/// value is not a valid header value (that header is then left alone).
pub(super) type Rendered = Vec<Option<HeaderValue>>;

impl HeaderStep {
    /// Compiles `ops`; templates may use the route's `captures`. Errors are located at the
    /// value, or at the plugin entry `at` for names.
    pub(super) fn compile(
        ops: &config::HeaderOps,
        captures: &[&str],
        at: Location,
        errors: &mut Vec<(Location, String)>,
    ) -> Self {
        let name = |text: &str, errors: &mut Vec<(Location, String)>| {
            let parsed = HeaderName::from_bytes(text.as_bytes()).ok()?;
            if MANAGED.contains(&parsed) {
                errors.push((
                    at,
                    format!("`{text}` is managed by the gateway and cannot be transformed"),
                ));
                return None;
            }
            Some(parsed)
        };
        let mut step = Self::default();
        for header in &ops.remove {
            step.remove.extend(name(&header.0, errors));
        }
        for (from, to) in &ops.rename {
            if let (Some(from), Some(to)) = (name(&from.0, errors), name(&to.0, errors)) {
                step.rename.push((from, to));
            }
        }
        for (list, out) in [(&ops.set, &mut step.set), (&ops.add, &mut step.add)] {
            for (header, value) in list {
                let Some(header) = name(&header.0, errors) else {
                    continue;
                };
                match compile_value(&value.value, captures) {
                    Ok(v) => out.push((header, v)),
                    Err(message) => errors.push((
                        value.referenced,
                        format!("invalid value for `{header}`: {message}"),
                    )),
                }
            }
        }
        step
    }

    /// Renders the `set` and `add` values for one request.
    pub(super) fn render(&self, vars: &dyn TemplateVars) -> Rendered {
        self.set
            .iter()
            .chain(&self.add)
            .map(|(_, value)| match value {
                Value::Fixed(v) => Some(v.clone()),
                Value::Template(t) => {
                    let mut out = String::new();
                    t.render(vars, &mut out);
                    HeaderValue::from_str(&out).ok()
                }
            })
            .collect()
    }

    /// Applies the changes to `headers` with the values `render` gave.
    pub(super) fn apply(&self, headers: &mut HeaderMap, rendered: Rendered) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (from, to) in &self.rename {
            if let header::Entry::Occupied(entry) = headers.entry(from) {
                let values: Vec<HeaderValue> = entry.remove_entry_mult().1.collect();
                headers.remove(to);
                for value in values {
                    headers.append(to, value);
                }
            }
        }
        let mut values = rendered.into_iter();
        for (name, _) in &self.set {
            if let Some(value) = values.next().flatten() {
                headers.insert(name, value);
            }
        }
        for (name, _) in &self.add {
            if let Some(value) = values.next().flatten() {
                headers.append(name, value);
            }
        }
    }
}

fn compile_value(text: &str, captures: &[&str]) -> Result<Value, String> {
    let template = Template::parse(text).map_err(|e| e.to_string())?;
    template
        .check_captures(captures)
        .map_err(|e| e.to_string())?;
    if template.is_literal() {
        return HeaderValue::from_str(&template.literal())
            .map(Value::Fixed)
            .map_err(|_| "not a valid header value".to_owned());
    }
    Ok(Value::Template(template))
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;
    use serde_saphyr::Spanned;

    use super::*;
    use crate::config::HeaderOps;

    fn spanned(text: &str) -> Spanned<String> {
        Spanned {
            value: text.to_owned(),
            referenced: Location::UNKNOWN,
            defined: Location::UNKNOWN,
        }
    }

    fn name(text: &str) -> config::HeaderName {
        config::HeaderName(text.to_owned())
    }

    #[test]
    fn remove_rename_set_add_in_that_order() {
        let ops = HeaderOps {
            set: IndexMap::from([(name("X-New"), spanned("set")), (name("X-S"), spanned("s"))]),
            add: IndexMap::from([(name("X-New"), spanned("added"))]),
            remove: vec![name("Cookie"), name("X-S")],
            rename: IndexMap::from([(name("X-Old"), name("X-New"))]),
        };
        let mut errors = Vec::new();
        let step = HeaderStep::compile(&ops, &[], Location::UNKNOWN, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("a=1"));
        headers.append("x-old", HeaderValue::from_static("1"));
        headers.append("x-old", HeaderValue::from_static("2"));
        headers.insert("x-s", HeaderValue::from_static("old"));
        let rendered = step.render(&super::super::NoVars);
        step.apply(&mut headers, rendered);
        assert!(!headers.contains_key("cookie") && !headers.contains_key("x-old"));
        let new: Vec<_> = headers.get_all("x-new").iter().collect();
        assert_eq!(new, ["set", "added"]);
        assert_eq!(headers["x-s"], "s", "set after remove");
    }

    #[test]
    fn refuses_framing_headers_and_unknown_captures() {
        let ops = HeaderOps {
            set: IndexMap::from([(name("X-A"), spanned("{nope}"))]),
            remove: vec![name("Content-Length")],
            ..HeaderOps::default()
        };
        let mut errors = Vec::new();
        HeaderStep::compile(&ops, &["id"], Location::UNKNOWN, &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].1.contains("managed by the gateway"));
        assert!(errors[1].1.contains("not a capture"));
    }
}
