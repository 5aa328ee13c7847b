#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

#[derive(Default)]
struct Vars {
    captures: HashMap<&'static str, &'static str>,
    headers: HashMap<&'static str, &'static str>,
}

impl TemplateVars for Vars {
    fn capture(&self, name: &str) -> Option<Cow<'_, str>> {
        self.captures.get(name).map(|v| Cow::Borrowed(*v))
    }
    fn request_id(&self) -> Option<Cow<'_, str>> {
        Some("req-1".into())
    }
    fn consumer(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn client_ip(&self) -> Option<Cow<'_, str>> {
        Some("10.0.0.7".into())
    }
    fn claim(&self, name: &str) -> Option<Cow<'_, str>> {
        (name == "sub").then(|| "alice".into())
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers.get(name).map(|v| Cow::Borrowed(*v))
    }
    fn query(&self, name: &str) -> Option<Cow<'_, str>> {
        Some(format!("q:{name}").into())
    }
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }
}

fn render(source: &str, vars: &Vars) -> String {
    let mut out = String::new();
    Template::parse(source).unwrap().render(vars, &mut out);
    out
}

#[test]
fn renders_every_variable_source() {
    let vars = Vars {
        captures: HashMap::from([("id", "42")]),
        headers: HashMap::from([("x-user", "bob")]),
    };
    assert_eq!(render("/users/{id}", &vars), "/users/42");
    assert_eq!(
        render(
            "{request_id} {client_ip} {claim.sub} {header.X-User} {query.page} {timestamp}",
            &vars
        ),
        "req-1 10.0.0.7 alice bob q:page 2023-11-14T22:13:20Z"
    );
}

#[test]
fn missing_values_render_empty() {
    let vars = Vars::default();
    assert_eq!(
        render("a{consumer}b{id}c{claim.none}d{header.x-none}", &vars),
        "abcd"
    );
}

#[test]
fn doubled_braces_are_literal() {
    let vars = Vars {
        captures: HashMap::from([("id", "7")]),
        ..Vars::default()
    };
    assert_eq!(render("{{\"id\": {id}}}", &vars), "{\"id\": 7}");
    assert_eq!(render("{{id}}", &vars), "{id}");
    assert!(Template::parse("{{id}}").unwrap().is_literal());
}

#[test]
fn syntax_errors() {
    assert_eq!(
        Template::parse("/a/{id").unwrap_err(),
        TemplateError::Unclosed { at: 3 }
    );
    assert_eq!(
        Template::parse("/a/{i{d}").unwrap_err(),
        TemplateError::Unclosed { at: 3 }
    );
    assert_eq!(
        Template::parse("/a/}").unwrap_err(),
        TemplateError::Unmatched { at: 3 }
    );
    assert_eq!(
        Template::parse("/a/{}").unwrap_err(),
        TemplateError::Empty { at: 3 }
    );
    for bad in ["{foo.bar}", "{claim.}", "{header.bad header}", "{a-b}"] {
        assert!(
            matches!(
                Template::parse(bad),
                Err(TemplateError::UnknownVariable { .. })
            ),
            "{bad}"
        );
    }
    assert!(
        Template::parse("/a/{id")
            .unwrap_err()
            .to_string()
            .contains("unclosed `{`")
    );
}

#[test]
fn capture_names_and_check() {
    let template = Template::parse("/v2/{id}/{rest}?by={consumer}").unwrap();
    assert_eq!(template.capture_names().collect::<Vec<_>>(), ["id", "rest"]);
    assert!(!template.is_literal());
    assert_eq!(template.check_captures(&["id", "rest"]), Ok(()));
    let err = template.check_captures(&["id"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`{rest}` is not a capture of the route's path (captures: id)"
    );
    assert!(Template::parse("/plain").unwrap().is_literal());
    assert!(Template::parse("").unwrap().is_literal());
}
