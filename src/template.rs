//! Templates of SPEC §2.5 (`rewrite`, transforms, aggregation): parsed once at load time into
//! literal pieces and variables, rendered per request without re-parsing.

use std::borrow::Cow;
use std::time::SystemTime;

use thiserror::Error;

/// Why a template is invalid, or refers to a capture its route does not have.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed `{{` at byte {at} (write `{{{{` for a literal brace)")]
    Unclosed {
        /// Byte offset of the brace.
        at: usize,
    },
    /// A `}` that closes nothing.
    #[error("unmatched `}}` at byte {at} (write `}}}}` for a literal brace)")]
    Unmatched {
        /// Byte offset of the brace.
        at: usize,
    },
    /// `{}`.
    #[error("empty variable `{{}}` at byte {at}")]
    Empty {
        /// Byte offset of the opening brace.
        at: usize,
    },
    /// A variable that is not a capture name nor one of the known sources.
    #[error(
        "unknown variable `{{{name}}}`: use a path capture, request_id, consumer, client_ip, timestamp, \
         claim.NAME, header.NAME or query.NAME"
    )]
    UnknownVariable {
        /// The text between the braces.
        name: String,
    },
    /// A plain `{name}` that is not a capture of the route's path pattern.
    #[error("`{{{name}}}` is not a capture of the route's path (captures: {known})")]
    UnknownCapture {
        /// The variable.
        name: String,
        /// The route's capture names, comma separated.
        known: String,
    },
}

/// Where a template takes the values of its variables from, for one request.
///
/// Each method returns `None` when the value is absent; absent values render as nothing.
pub trait TemplateVars {
    /// The path capture `name` (`{id}`, `{rest}`).
    fn capture(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The request id (`{request_id}`).
    fn request_id(&self) -> Option<Cow<'_, str>>;
    /// The authenticated consumer (`{consumer}`).
    fn consumer(&self) -> Option<Cow<'_, str>>;
    /// The client's IP address (`{client_ip}`).
    fn client_ip(&self) -> Option<Cow<'_, str>>;
    /// A claim of the verified token (`{claim.NAME}`).
    fn claim(&self, name: &str) -> Option<Cow<'_, str>>;
    /// A request header (`{header.NAME}`, name in lowercase).
    fn header(&self, name: &str) -> Option<Cow<'_, str>>;
    /// A query parameter (`{query.NAME}`).
    fn query(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The time `{timestamp}` shows; tests may fix it.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A parsed template: literal text and variables, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Box<[Piece]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Box<str>),
    Capture(Box<str>),
    RequestId,
    Consumer,
    ClientIp,
    Timestamp,
    Claim(Box<str>),
    Header(Box<str>),
    Query(Box<str>),
}

impl Template {
    /// Parses a template; `{{` and `}}` are literal braces.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(i) = rest.find(['{', '}']) {
            let at = source.len() - rest.len() + i;
            literal.push_str(&rest[..i]);
            let brace = &rest[i..i + 1];
            let after = &rest[i + 1..];
            if let Some(next) = after.strip_prefix(brace) {
                literal.push_str(brace);
                rest = next;
                continue;
            }
            if brace == "}" {
                return Err(TemplateError::Unmatched { at });
            }
            let end = after
                .find(['{', '}'])
                .filter(|&e| after.as_bytes()[e] == b'}');
            let end = end.ok_or(TemplateError::Unclosed { at })?;
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
            }
            pieces.push(parse_variable(&after[..end], at)?);
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        Ok(Self {
            pieces: pieces.into(),
        })
    }

    /// The plain `{name}` variables, which must be captures of the route's path pattern.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Capture(name) => Some(name.as_ref()),
            _ => None,
        })
    }

    /// Checks that every plain `{name}` is one of the route's capture `names`.
    pub fn check_captures(&self, names: &[&str]) -> Result<(), TemplateError> {
        match self.capture_names().find(|name| !names.contains(name)) {
            None => Ok(()),
            Some(name) => Err(TemplateError::UnknownCapture {
                name: name.to_owned(),
                known: if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
            }),
        }
    }

    /// True when the template has no variables, so its output is always the same.
    pub fn is_literal(&self) -> bool {
        self.pieces
            .iter()
            .all(|piece| matches!(piece, Piece::Literal(_)))
    }

    /// The literal text of the template, variables left out (all of it when
    /// [`is_literal`](Self::is_literal)).
    pub fn literal(&self) -> String {
        self.pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Literal(text) => Some(text.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// Appends the template's text for one request to `out`; absent values render as nothing.
    pub fn render(&self, vars: &dyn TemplateVars, out: &mut String) {
        for piece in self.pieces.iter() {
            let value = match piece {
                Piece::Literal(text) => Some(Cow::Borrowed(text.as_ref())),
                Piece::Capture(name) => vars.capture(name),
                Piece::RequestId => vars.request_id(),
                Piece::Consumer => vars.consumer(),
                Piece::ClientIp => vars.client_ip(),
                Piece::Timestamp => Some(Cow::Owned(
                    humantime::format_rfc3339_seconds(vars.now()).to_string(),
                )),
                Piece::Claim(name) => vars.claim(name),
                Piece::Header(name) => vars.header(name),
                Piece::Query(name) => vars.query(name),
            };
            if let Some(value) = value {
                out.push_str(&value);
            }
        }
    }
}

fn parse_variable(name: &str, at: usize) -> Result<Piece, TemplateError> {
    let unknown = || TemplateError::UnknownVariable {
        name: name.to_owned(),
    };
    if name.is_empty() {
        return Err(TemplateError::Empty { at });
    }
    let piece = match name.split_once('.') {
        Some((_, "")) => return Err(unknown()),
        Some(("claim", claim)) => Piece::Claim(claim.into()),
        Some(("header", header)) => {
            http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| unknown())?;
            Piece::Header(header.to_ascii_lowercase().into())
        }
        Some(("query", query)) => Piece::Query(query.into()),
        Some(_) => return Err(unknown()),
        None => match name {
            "request_id" => Piece::RequestId,
            "consumer" => Piece::Consumer,
            "client_ip" => Piece::ClientIp,
            "timestamp" => Piece::Timestamp,
            _ if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                Piece::Capture(name.into())
            }
            _ => return Err(unknown()),
        },
    };
    Ok(piece)
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
