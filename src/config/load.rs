//! Reading a config: YAML parsing with environment interpolation, then validation and the
//! check for features that have not landed yet.

use std::path::Path;

use serde::Deserialize;

use super::Config;
use super::env::{Env, EnvDeserializer, ProcessEnv};
use super::error::{ConfigError, ConfigErrors};
use super::unsupported::unsupported;
use super::validate::validate;

/// Reads, validates and checks the config file at `path`. The file name in errors is `path`
/// as given. A file that cannot be read is one error at line 1, column 1:
/// `FILE:1:1: cannot read: REASON`.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let file_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&file_name, &text),
        Err(err) => Err(ConfigErrors(vec![ConfigError {
            file: file_name,
            line: 1,
            col: 1,
            message: format!("cannot read: {err}"),
        }])),
    }
}

/// Parses `text` (named `file_name` in errors), validates it and rejects features that are
/// not supported yet; every error found is returned, in file order.
pub fn load_str(file_name: &str, text: &str) -> Result<Config, ConfigErrors> {
    let config = parse_str(file_name, text)?;
    let mut errors = validate(&config);
    errors.extend(unsupported(&config));
    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        Err(ConfigErrors(errors))
    }
}

/// Parses `text` into a [`Config`] with `${NAME}` references replaced from the process
/// environment, without validating it. Parsing stops at the first syntax or type error.
pub fn parse_str(file_name: &str, text: &str) -> Result<Config, ConfigErrors> {
    parse_with_env(file_name, text, &ProcessEnv)
}

/// [`parse_str`] with variables read from `env`.
pub(crate) fn parse_with_env(
    file_name: &str,
    text: &str,
    env: &dyn Env,
) -> Result<Config, ConfigErrors> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        Config::deserialize(EnvDeserializer::new(de, env))
    });
    match parsed {
        Ok(mut config) => {
            config.file = file_name.to_owned();
            Ok(config)
        }
        Err(err) => Err(ConfigErrors(vec![ConfigError::from_yaml(file_name, &err)])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeaderSetting, PerConsumer, PluginSetting, RespondBody, VaryQuery};

    const ROUTE: &str = "routes:\n  - path: /\n    respond: { status: 200 }\n";

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3#cr: et".to_owned()),
            "PORT" => Some("8081".to_owned()),
            "NOT_A_DURATION" => Some("soon".to_owned()),
            _ => None,
        }
    }

    fn parse(yaml: &str) -> Result<Config, ConfigErrors> {
        parse_with_env("g.yaml", &format!("{yaml}{ROUTE}"), &env)
    }

    fn parse_err(yaml: &str) -> String {
        parse(yaml).expect_err("should fail").to_string()
    }

    #[test]
    fn env_values_are_substituted_after_yaml_parsing() {
        let config = parse("admin:\n  listen: 127.0.0.1:${PORT}\n  token: ${SECRET} # comment\n")
            .expect("valid");
        let admin = config.admin.expect("admin").value;
        assert_eq!(admin.listen.value, "127.0.0.1:8081");
        assert_eq!(admin.token.expect("token").value.expose(), "s3#cr: et");
        assert_eq!(
            (
                admin.listen.referenced.line(),
                admin.listen.referenced.column()
            ),
            (2, 11)
        );
    }

    #[test]
    fn env_applies_inside_quoted_strings_lists_and_typed_values() {
        let config = parse("listen: [\"0.0.0.0:${PORT}\"]\nlimits:\n  idle_timeout: ${IDLE:-5s}\n")
            .expect("valid");
        assert_eq!(config.listen_addresses()[0].value, "0.0.0.0:8081");
        assert_eq!(
            config.limits.idle_timeout,
            crate::config::Duration::from_secs(5)
        );
    }

    #[test]
    fn missing_env_is_located_at_the_value() {
        assert_eq!(
            parse_err("admin:\n  listen: 127.0.0.1:9901\n  token: ${NOPE}\n"),
            "g.yaml:3:10: environment variable `NOPE` is not set"
        );
    }

    #[test]
    fn errors_on_env_values_show_the_reference_not_the_value() {
        let err = parse_err("limits:\n  idle_timeout: ${NOT_A_DURATION}\n");
        assert!(err.contains("${NOT_A_DURATION}"), "{err}");
        assert!(!err.contains("soon"), "{err}");
    }

    #[test]
    fn escaped_references_stay_literal() {
        let config = parse("consumers:\n  a:\n    keys: [\"$${NOT_ENV}\"]\n").expect("valid");
        assert_eq!(config.consumers["a"].keys[0].value.expose(), "${NOT_ENV}");
    }

    #[test]
    fn plugin_entries_may_be_settings_true_or_false() {
        let config = parse(
            "plugins:\n  request_id: true\n  security_headers: true\n  cors: false\n  cache: { vary_query: [page], per_consumer: true }\n",
        )
        .expect("valid");
        let plugins = &config.plugins;
        assert!(matches!(
            plugins.request_id.as_ref().map(|p| &p.value),
            Some(PluginSetting::On(_))
        ));
        assert!(matches!(
            plugins.cors.as_ref().map(|p| &p.value),
            Some(PluginSetting::Off)
        ));
        let headers = plugins
            .security_headers
            .as_ref()
            .and_then(|p| p.value.settings());
        assert_eq!(
            headers.map(|h| h.x_frame_options.clone()),
            Some(HeaderSetting::value("DENY"))
        );
        let cache = plugins
            .cache
            .as_ref()
            .and_then(|p| p.value.settings())
            .expect("cache");
        assert_eq!(cache.vary_query, VaryQuery::Only(vec!["page".into()]));
        assert_eq!(cache.per_consumer, PerConsumer::Yes);
    }

    #[test]
    fn true_is_refused_for_plugins_with_required_settings() {
        let err = parse_err("plugins:\n  rate_limit: true\n");
        assert!(
            err.starts_with("g.yaml:2:15: `true` turns a plugin on"),
            "{err}"
        );
        assert!(err.contains("limits"), "{err}");
    }

    #[test]
    fn security_header_values_may_be_false() {
        let config = parse("plugins:\n  security_headers: { x_frame_options: false, referrer_policy: same-origin }\n")
            .expect("valid");
        let headers = config
            .plugins
            .security_headers
            .and_then(|p| p.value.settings().cloned());
        let headers = headers.expect("on");
        assert_eq!(headers.x_frame_options, HeaderSetting::Off);
        assert_eq!(headers.referrer_policy, HeaderSetting::value("same-origin"));
        assert_eq!(
            headers.x_content_type_options,
            HeaderSetting::value("nosniff")
        );
    }

    #[test]
    fn defaults_match_the_spec() {
        let config = parse("").expect("valid");
        assert_eq!(config.limits.max_body.bytes(), 10 * 1024 * 1024);
        assert_eq!(config.limits.max_header_bytes.bytes(), 64 * 1024);
        assert_eq!(config.limits.max_connections, 25_000);
        assert_eq!(config.limits.shutdown_grace.get().as_secs(), 30);
        assert_eq!(
            config.listen_addresses()[0].value,
            crate::config::DEFAULT_LISTEN
        );
    }

    #[test]
    fn respond_bodies_are_text_or_json() {
        let config = parse_with_env(
            "g.yaml",
            "routes:\n  - path: /a\n    respond: { status: 200, body: ok }\n  - path: /b\n    respond: { status: 200, body: { a: [1, \"${PORT}\"] } }\n",
            &env,
        )
        .expect("valid");
        let body = |i: usize| {
            config.routes[i]
                .value
                .respond
                .as_ref()
                .map(|r| r.value.body.clone())
        };
        assert_eq!(body(0), Some(RespondBody::Text("ok".into())));
        assert_eq!(
            body(1),
            Some(RespondBody::Json(serde_json::json!({ "a": [1, "8081"] })))
        );
    }

    #[test]
    fn an_empty_file_is_one_error_about_routes() {
        for text in ["", "# only a comment\n"] {
            let err = parse_with_env("g.yaml", text, &env).map(|c| validate(&c));
            let messages: Vec<String> = match err {
                Ok(errors) => errors.iter().map(ToString::to_string).collect(),
                Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
            };
            assert_eq!(
                messages,
                ["g.yaml:1:1: the config needs at least one route in `routes`"],
                "{text:?}"
            );
        }
    }

    #[test]
    fn empty_sections_are_allowed() {
        let config = parse("plugins:\nconsumers:\n").expect("valid");
        assert!(config.consumers.is_empty());
        assert!(config.plugins.cors.is_none());
    }

    #[test]
    fn methods_are_uppercased() {
        let config = parse_with_env(
            "g.yaml",
            "routes:\n  - path: /\n    methods: [get, Post]\n    respond: { status: 200 }\n",
            &env,
        )
        .expect("valid");
        let methods: Vec<String> = config.routes[0]
            .value
            .methods
            .iter()
            .map(|m| m.value.0.clone())
            .collect();
        assert_eq!(methods, ["GET", "POST"]);
    }
}
