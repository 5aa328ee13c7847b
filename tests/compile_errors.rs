//! Errors found when compiling a valid-looking config (route conflicts, path patterns,
//! templates), with exact `FILE:LINE:COL` messages, snapshot-tested.

fn check(text: &str) -> String {
    match gatehouse::check_str("gatehouse.yaml", text) {
        Ok(summary) => summary,
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn conflicting_routes_name_both_lines() {
    insta::assert_snapshot!(check(
        r#"services:
  a: { url: http://127.0.0.1:9001 }
routes:
  - path: /users/{id}
    methods: [GET, POST]
    service: a
  - path: /users/{user}
    methods: [GET]
    service: a
  - path: /same
    service: a
  - path: /same
    service: a
"#
    ));
}

#[test]
fn bad_patterns_and_templates_are_located() {
    insta::assert_snapshot!(check(
        r#"services:
  a: { url: http://127.0.0.1:9001 }
routes:
  - path: /files/**/x
    service: a
  - path: /users/{id}
    service: a
    rewrite: /people/{user}
  - path: /x/{id
    service: a
  - path: /y
    service: a
    strip_prefix: y
"#
    ));
}

#[test]
fn fine_configs_report_counts() {
    assert_eq!(
        check(
            r#"services:
  a: { url: http://127.0.0.1:9001 }
  b: { url: http://127.0.0.1:9002 }
routes:
  - { path: "/users/{id}", methods: [GET], service: a }
  - { path: "/users/{id}", methods: [POST], service: b }
  - { path: /users/**, service: a }
  - { path: "/users/{id}", methods: [DELETE], hosts: [api.example.com], service: b }
"#
        ),
        "ok: 4 routes, 2 services"
    );
}
