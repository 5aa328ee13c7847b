//! Query-parameter changes of `request_transform`: remove → rename → set. Names are compared
//! percent-decoded; parameters no operation touches keep their exact original text.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::{self, Location};
use crate::pipeline::form;
use crate::template::{Template, TemplateVars};

/// Everything but the unreserved characters of RFC 3986 is encoded in names and values the
/// transform writes.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Compiled query changes.
#[derive(Debug, Default)]
pub(super) struct QueryStep {
    remove: Vec<String>,
    /// Old name, new name, new name encoded.
    rename: Vec<(String, String, String)>,
    /// Decoded name, encoded name, value template.
    set: Vec<(String, String, Template)>,
}

impl QueryStep {
    /// Compiles `ops`; value templates may use the route's `captures`.
    pub(super) fn compile(
        ops: &config::QueryOps,
        captures: &[&str],
        at: Location,
        errors: &mut Vec<(Location, String)>,
    ) -> Self {
        let mut step = Self::default();
        let check = |name: &str, errors: &mut Vec<(Location, String)>| {
            if name.is_empty() {
                errors.push((at, "query parameter names cannot be empty".to_owned()));
            }
        };
        for name in &ops.remove {
            check(name, errors);
            step.remove.push(name.clone());
        }
        for (from, to) in &ops.rename {
            check(from, errors);
            check(to, errors);
            step.rename.push((from.clone(), to.clone(), encode(to)));
        }
        for (name, value) in &ops.set {
            check(name, errors);
            match Template::parse(&value.value).and_then(|t| {
                t.check_captures(captures)?;
                Ok(t)
            }) {
                Ok(template) => step.set.push((name.clone(), encode(name), template)),
                Err(err) => errors.push((
                    value.referenced,
                    format!("invalid value for query parameter `{name}`: {err}"),
                )),
            }
        }
        step
    }

    /// True when there is nothing to do.
    pub(super) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.rename.is_empty() && self.set.is_empty()
    }

    /// Renders the `set` values for one request, percent-encoded.
    pub(super) fn render(&self, vars: &dyn TemplateVars) -> Vec<String> {
        self.set
            .iter()
            .map(|(_, _, template)| {
                let mut out = String::new();
                template.render(vars, &mut out);
                encode(&out)
            })
            .collect()
    }

    /// The query with the changes made, given the values `render` gave (empty: no query).
    pub(super) fn apply(&self, query: Option<&str>, rendered: &[String]) -> String {
        let mut params: Vec<Param<'_>> = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => Param::new(k, Some(Cow::Borrowed(v))),
                None => Param::new(pair, None),
            })
            .collect();
        params.retain(|p| !self.remove.iter().any(|name| p.is(name)));
        for (from, to, encoded) in &self.rename {
            for param in params.iter_mut().filter(|p| p.is(from)) {
                param.raw_name = Cow::Owned(encoded.clone());
                param.name.clone_from(to);
            }
        }
        for ((name, encoded, _), value) in self.set.iter().zip(rendered) {
            let value = Some(Cow::Owned(value.clone()));
            match params.iter().position(|p| p.is(name)) {
                Some(first) => {
                    params[first].value = value;
                    let mut index = 0;
                    params.retain(|p| {
                        index += 1;
                        index - 1 == first || !p.is(name)
                    });
                }
                None => params.push(Param::new(encoded, value)),
            }
        }
        let mut out = String::with_capacity(query.map_or(16, str::len));
        for param in &params {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&param.raw_name);
            if let Some(value) = &param.value {
                out.push('=');
                out.push_str(value);
            }
        }
        out
    }
}

/// One query parameter: its name as written and as meant, and its value as written.
struct Param<'q> {
    raw_name: Cow<'q, str>,
    name: String,
    value: Option<Cow<'q, str>>,
}

impl<'q> Param<'q> {
    fn new(raw_name: &'q str, value: Option<Cow<'q, str>>) -> Self {
        Self {
            name: form::decode(raw_name).into_owned(),
            raw_name: Cow::Borrowed(raw_name),
            value,
        }
    }

    fn is(&self, name: &str) -> bool {
        self.name == name
    }
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;
    use serde_saphyr::Spanned;

    use super::*;
    use crate::pipeline::transform::NoVars;

    fn step(remove: &[&str], rename: &[(&str, &str)], set: &[(&str, &str)]) -> QueryStep {
        let ops = config::QueryOps {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            rename: rename
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            set: set
                .iter()
                .map(|(k, v)| {
                    let v = Spanned::new(v.to_string(), Location::UNKNOWN, Location::UNKNOWN);
                    (k.to_string(), v)
                })
                .collect::<IndexMap<_, _>>(),
        };
        let mut errors = Vec::new();
        let step = QueryStep::compile(&ops, &[], Location::UNKNOWN, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        step
    }

    fn run(step: &QueryStep, query: Option<&str>) -> String {
        let rendered = step.render(&NoVars);
        step.apply(query, &rendered)
    }

    #[test]
    fn untouched_parameters_keep_their_encoding() {
        let s = step(&["debug"], &[("old", "new name")], &[("v", "2 & 3")]);
        assert_eq!(
            run(
                &s,
                Some("a=%2Fx%20y&debug=1&old=k%26&flag&v=1&v=9&de%62ug=2")
            ),
            "a=%2Fx%20y&new%20name=k%26&flag&v=2%20%26%203"
        );
        assert_eq!(run(&s, None), "v=2%20%26%203");
        assert_eq!(run(&step(&["a"], &[], &[]), Some("a=1")), "");
    }

    #[test]
    fn order_is_remove_rename_set() {
        // `b` is renamed to `a` after `a` was removed, then `c` set.
        let s = step(&["a"], &[("b", "a")], &[("c", "x")]);
        assert_eq!(run(&s, Some("a=1&b=2&c=3")), "a=2&c=x");
    }
}
