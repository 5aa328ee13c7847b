//! Black-box tests of config loading: the exact error text a user sees.

use gatehouse::config::{load_str, parse_str};

/// The errors of loading `yaml` as `gatehouse.yaml`, one per line.
fn errors(yaml: &str) -> String {
    match load_str("gatehouse.yaml", yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(errors(
        "listen: 0.0.0.0:8080\nservices:\n  users: { url: http://127.0.0.1:9001\nroutes: []\n"
    ));
}

#[test]
fn unknown_key_with_did_you_mean() {
    insta::assert_snapshot!(errors(
        "listn: 0.0.0.0:8080\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn unknown_nested_key_with_did_you_mean() {
    insta::assert_snapshot!(errors(
        "services:\n  users:\n    url: http://127.0.0.1:9001\n    timeouts: { conect: 1s }\nroutes:\n  - path: /\n    service: users\n"
    ));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(errors(
        "limits:\n  max_connections: lots\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn bad_duration() {
    insta::assert_snapshot!(errors(
        "limits:\n  idle_timeout: 2 minutes\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn bad_size() {
    insta::assert_snapshot!(errors(
        "limits:\n  max_body: 10mb\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn missing_env_var() {
    insta::assert_snapshot!(errors(
        "admin:\n  listen: 0.0.0.0:9901\n  token: \"${GATEHOUSE_TEST_UNSET_VARIABLE_7F3A}\"\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn env_default_is_used_when_unset() {
    let config = load_str(
        "gatehouse.yaml",
        "listen: \"${GATEHOUSE_TEST_UNSET_VARIABLE_7F3A:-127.0.0.1:8081}\"\nroutes:\n  - path: /\n    respond: { status: 200 }\n",
    )
    .expect("valid");
    assert_eq!(config.listen_addresses()[0].value, "127.0.0.1:8081");
}

#[test]
fn unknown_service_with_did_you_mean() {
    insta::assert_snapshot!(errors(
        "services:\n  users:\n    url: http://127.0.0.1:9001\nroutes:\n  - path: /api/users/**\n    service: user\n"
    ));
}

#[test]
fn bad_cidr() {
    insta::assert_snapshot!(errors(
        "trusted_proxies: [10.0.0.0/8, 10.0.0.0/33, proxy.local]\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn bad_regex() {
    insta::assert_snapshot!(errors(
        "routes:\n  - path_regex: ^/v[0-9+/items$\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn missing_admin_token_on_non_loopback_listen() {
    insta::assert_snapshot!(errors(
        "admin:\n  listen: 0.0.0.0:9901\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn cors_any_origin_with_credentials() {
    insta::assert_snapshot!(errors(
        "plugins:\n  cors:\n    origins: \"*\"\n    credentials: true\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn cache_methods_cannot_list_writes() {
    let text = errors(
        "services:\n  users:\n    url: http://127.0.0.1:9001\nroutes:\n  - path: /api/users\n    service: users\n    plugins:\n      cache:\n        methods: [GET, post]\n",
    );
    assert!(text.starts_with("gatehouse.yaml:8:7"), "{text}");
    assert!(
        text.contains(
            "cache `methods` cannot list POST: writes are never cached, a successful POST invalidates the path's entries instead"
        ),
        "{text}"
    );
}

#[test]
fn authorize_without_auth() {
    insta::assert_snapshot!(errors(
        "services:\n  users:\n    url: http://127.0.0.1:9001\nroutes:\n  - path: /api/users\n    service: users\n    plugins:\n      authorize: { scopes: [users:read] }\n"
    ));
}

#[test]
fn unsupported_feature() {
    insta::assert_snapshot!(errors(
        "services:\n  users:\n    url: http://127.0.0.1:9001\n  orders:\n    url: http://127.0.0.1:9002\nroutes:\n  - path: /profile\n    aggregate:\n      parts:\n        user: { service: users, path: /users/1 }\n"
    ));
}

#[test]
fn several_errors_at_once() {
    insta::assert_snapshot!(errors(
        r#"listen: 0.0.0.0:80800
admin:
  listen: 10.0.0.5:9901
services:
  users:
    url: http://127.0.0.1:9001/api
routes:
  - name: users
    path: /api/users
    service: users
  - name: users
    path: /api/orders
    service: order
  - path: /nowhere
  - path: /both
    path_regex: ^/both$
    service: users
    respond: { status: 700 }
"#
    ));
}

#[test]
fn request_id_cannot_be_turned_off() {
    insta::assert_snapshot!(errors(
        "plugins:\n  request_id: false\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn missing_file_is_an_error() {
    let err = gatehouse::config::load_file(std::path::Path::new("/nonexistent/gatehouse.yaml"))
        .expect_err("no such file");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/gatehouse.yaml:1:1: cannot read: "),
        "{err}"
    );
}

#[test]
fn full_example_parses() {
    let text = include_str!("../examples/full.yaml");
    let config = parse_str("examples/full.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.len(), 5);
    assert_eq!(config.services.len(), 6);
    let validation = gatehouse::config::validate(&config);
    assert!(
        validation.is_empty(),
        "full.yaml should be valid apart from unsupported features:\n{}",
        gatehouse::config::ConfigErrors(validation)
    );
}

#[test]
fn quickstart_example_loads() {
    let text = include_str!("../examples/quickstart.yaml");
    let config = load_str("examples/quickstart.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.len(), 3);
    assert_eq!(config.services.len(), 2);
}

#[test]
fn unknown_plugin_with_did_you_mean() {
    insta::assert_snapshot!(errors(
        "plugins:\n  security_header: true\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn plugin_turned_off_on_a_route_no_longer_counts() {
    let text = errors(
        "plugins:\n  auth: { api_key: {} }\nroutes:\n  - path: /\n    respond: { status: 200 }\n    plugins:\n      auth: false\n      authorize: { groups: [admins] }\n",
    );
    assert!(
        text.contains("gatehouse.yaml:8:7: `authorize` needs `auth` on the route"),
        "{text}"
    );
}

#[test]
fn inherited_auth_satisfies_authorize() {
    load_str(
        "gatehouse.yaml",
        "services:\n  users:\n    url: http://127.0.0.1:9001\n    plugins:\n      auth: { api_key: {} }\nroutes:\n  - path: /\n    service: users\n    plugins:\n      authorize: { groups: [admins] }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn security_headers_are_supported_and_request_id_accepts_true() {
    load_str(
        "gatehouse.yaml",
        "plugins:\n  request_id: true\n  security_headers: { x_frame_options: false }\nroutes:\n  - path: /\n    respond: { status: 200 }\n    plugins: { security_headers: false }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_unsupported_feature_of_the_full_example_is_reported() {
    let text = include_str!("../examples/full.yaml");
    let config = parse_str("examples/full.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    let messages: Vec<String> = gatehouse::config::unsupported(&config)
        .iter()
        .map(ToString::to_string)
        .collect();
    insta::assert_snapshot!(messages.join("\n"));
}

#[test]
fn duplicate_key() {
    insta::assert_snapshot!(errors(
        "listen: 0.0.0.0:8080\nlisten: 0.0.0.0:8081\nroutes:\n  - path: /\n    respond: { status: 200 }\n"
    ));
}

#[test]
fn wrong_keyword_value_with_did_you_mean() {
    insta::assert_snapshot!(errors(
        "services:\n  users:\n    url: http://127.0.0.1:9001\n    balance: round_robbin\nroutes:\n  - path: /\n    service: users\n"
    ));
}

#[test]
fn load_file_reads_and_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gatehouse.yaml");
    std::fs::write(&path, "routes:\n  - path: /\n    service: nope\n").expect("write");
    let err = gatehouse::config::load_file(&path).expect_err("unknown service");
    assert_eq!(
        err.to_string(),
        format!("{}:3:14: unknown service `nope`", path.display())
    );
    std::fs::write(&path, include_str!("../examples/quickstart.yaml")).expect("write");
    let config = gatehouse::config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.file, path.display().to_string());
}
