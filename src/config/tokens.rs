//! Names and words with a fixed syntax: HTTP methods, header names, request-attribute
//! selectors, and secrets.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::units::deserialize_from_str;

/// An HTTP method token, stored uppercase (`get` in the file becomes `GET`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(pub String);

impl FromStr for Method {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let upper = text.trim().to_ascii_uppercase();
        http::Method::from_bytes(upper.as_bytes())
            .map(|_| Self(upper))
            .map_err(|_| format!("invalid HTTP method `{text}`"))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

deserialize_from_str!(Method, "an HTTP method such as `GET`");

/// An HTTP header name, checked when the file is read; keeps the file's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderName(pub String);

impl FromStr for HeaderName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        http::HeaderName::from_bytes(text.as_bytes())
            .map(|_| Self(text.to_owned()))
            .map_err(|_| format!("invalid header name `{text}`"))
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

deserialize_from_str!(HeaderName, "an HTTP header name");

/// Where a value is taken from in a request: `header:NAME`, `cookie:NAME`, `query:NAME`, or
/// one of the words `ip`, `consumer`, `route`, `global`. Each key that takes a selector
/// accepts only some kinds; validation checks which.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// A request header, by name.
    Header(HeaderName),
    /// A cookie, by name.
    Cookie(String),
    /// A query parameter, by name.
    Query(String),
    /// The client IP address.
    Ip,
    /// The authenticated consumer.
    Consumer,
    /// The route (one shared key per route).
    Route,
    /// One key for everything.
    Global,
}

impl Selector {
    /// The kind as written before the colon (`header`, `ip`, …), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Header(_) => "header:NAME",
            Self::Cookie(_) => "cookie:NAME",
            Self::Query(_) => "query:NAME",
            Self::Ip => "ip",
            Self::Consumer => "consumer",
            Self::Route => "route",
            Self::Global => "global",
        }
    }
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let named = |name: &str| -> Result<String, String> {
            if name.is_empty() {
                Err(format!(
                    "invalid selector `{text}`: the name after `:` is empty"
                ))
            } else {
                Ok(name.to_owned())
            }
        };
        match text.split_once(':') {
            Some(("header", name)) => Ok(Self::Header(named(name)?.parse()?)),
            Some(("cookie", name)) => Ok(Self::Cookie(named(name)?)),
            Some(("query", name)) => Ok(Self::Query(named(name)?)),
            None if text == "ip" => Ok(Self::Ip),
            None if text == "consumer" => Ok(Self::Consumer),
            None if text == "route" => Ok(Self::Route),
            None if text == "global" => Ok(Self::Global),
            _ => Err(format!(
                "invalid selector `{text}`: expected `header:NAME`, `cookie:NAME`, `query:NAME`, `ip`, `consumer`, `route` or `global`"
            )),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Cookie(name) => write!(f, "cookie:{name}"),
            Self::Query(name) => write!(f, "query:{name}"),
            other => f.write_str(other.kind()),
        }
    }
}

deserialize_from_str!(Selector, "a selector such as `header:X-User-Id` or `ip`");

/// A secret (token, key, password hash, client secret). Its `Debug` and `Serialize` forms
/// are `***` so it never reaches logs or `GET /config`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that checks credentials.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_uppercased_tokens() {
        assert_eq!("get".parse(), Ok(Method("GET".into())));
        assert_eq!("PURGE".parse(), Ok(Method("PURGE".into())));
        assert!("GE T".parse::<Method>().is_err());
        assert!("".parse::<Method>().is_err());
    }

    #[test]
    fn selectors_parse_every_kind() {
        assert_eq!(
            "header:X-User-Id".parse(),
            Ok(Selector::Header(HeaderName("X-User-Id".into())))
        );
        assert_eq!("cookie:sid".parse(), Ok(Selector::Cookie("sid".into())));
        assert_eq!(
            "query:api_key".parse(),
            Ok(Selector::Query("api_key".into()))
        );
        assert_eq!("ip".parse(), Ok(Selector::Ip));
        assert_eq!("consumer".parse(), Ok(Selector::Consumer));
        assert!("header:".parse::<Selector>().is_err());
        assert!("header:bad name".parse::<Selector>().is_err());
        assert!("user".parse::<Selector>().is_err());
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "\"***\"");
        assert_eq!(secret.expose(), "hunter2");
    }
}
