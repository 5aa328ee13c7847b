//! Path patterns of SPEC §2.4: exact paths, `{name}`, `*`, `**`, `{name:**}` and `path_regex`.

use regex::Regex;
use thiserror::Error;

use super::normalize::normalize_path;

/// The path condition of a route, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec {
    /// A `path` pattern such as `/api/users/{id}` or `/static/**`.
    Pattern(String),
    /// A `path_regex`, matched against the normalized path; named groups are captures.
    Regex(String),
}

/// Why a path pattern or regex is invalid; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid path pattern `{pattern}`: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: String,
}

impl PatternError {
    fn new(pattern: &str, reason: impl Into<String>) -> Self {
        Self {
            pattern: pattern.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One segment of a parsed `path` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Matches exactly this (normalized) text.
    Literal(Box<str>),
    /// `{name}`: any non-empty segment, captured.
    Param(Box<str>),
    /// `*`: any non-empty segment.
    Star,
    /// `**` or `{name:**}` (last only): the prefix itself and everything below it.
    Rest(Option<Box<str>>),
}

/// A parsed, validated route path: what the router matches and what templates may refer to.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: Box<str>,
    kind: PatternKind,
    capture_names: Box<[Box<str>]>,
}

#[derive(Debug, Clone)]
pub(crate) enum PatternKind {
    Segments(Box<[Segment]>),
    Regex(Regex),
}

/// Names a capture may not take: they are the template's own variables (SPEC §2.5).
const RESERVED_NAMES: [&str; 4] = ["request_id", "consumer", "client_ip", "timestamp"];

impl Pattern {
    /// Parses a route's path condition.
    pub fn parse(spec: &PathSpec) -> Result<Self, PatternError> {
        match spec {
            PathSpec::Pattern(source) => Self::parse_segments(source),
            PathSpec::Regex(source) => Self::parse_regex(source),
        }
    }

    fn parse_segments(source: &str) -> Result<Self, PatternError> {
        let err = |reason: &str| PatternError::new(source, reason);
        let normalized = normalize_path(source).map_err(|e| err(&e.to_string()))?;
        if normalized != source {
            return Err(err(&format!("write it in normalized form: `{normalized}`")));
        }
        let raw_segments: Vec<&str> = source[1..].split('/').collect();
        let mut segments = Vec::with_capacity(raw_segments.len());
        let mut names: Vec<Box<str>> = Vec::new();
        for (i, raw) in raw_segments.iter().enumerate() {
            let is_last = i + 1 == raw_segments.len();
            let segment = parse_segment(raw).map_err(|reason| err(&reason))?;
            if matches!(segment, Segment::Rest(_)) && !is_last {
                return Err(err("`**` must be the last segment"));
            }
            if let Segment::Param(name) | Segment::Rest(Some(name)) = &segment {
                check_name(name, &names).map_err(|reason| err(&reason))?;
                names.push(name.clone());
            }
            segments.push(segment);
        }
        Ok(Self {
            source: source.into(),
            kind: PatternKind::Segments(segments.into()),
            capture_names: names.into(),
        })
    }

    fn parse_regex(source: &str) -> Result<Self, PatternError> {
        let regex = Regex::new(source).map_err(|e| PatternError::new(source, e.to_string()))?;
        let mut names: Vec<Box<str>> = Vec::new();
        for name in regex.capture_names().flatten() {
            check_name(name, &names).map_err(|reason| PatternError::new(source, reason))?;
            names.push(name.into());
        }
        Ok(Self {
            source: source.into(),
            kind: PatternKind::Regex(regex),
            capture_names: names.into(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The names this pattern captures, in order; templates may use exactly these.
    pub fn capture_names(&self) -> &[Box<str>] {
        &self.capture_names
    }

    /// True for a `path_regex` route.
    pub fn is_regex(&self) -> bool {
        matches!(self.kind, PatternKind::Regex(_))
    }

    pub(crate) fn kind(&self) -> &PatternKind {
        &self.kind
    }
}

fn parse_segment(raw: &str) -> Result<Segment, String> {
    match raw {
        "**" => return Ok(Segment::Rest(None)),
        "*" => return Ok(Segment::Star),
        _ => {}
    }
    if let Some(inner) = raw.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("unclosed or misplaced brace in segment `{raw}`"))?;
        return match inner.split_once(':') {
            None => Ok(Segment::Param(inner.into())),
            Some((name, "**")) => Ok(Segment::Rest(Some(name.into()))),
            Some((_, kind)) => Err(format!(
                "unknown capture kind `{kind}` (only `**` is allowed after `:`)"
            )),
        };
    }
    if raw.contains(['{', '}']) {
        return Err(format!(
            "a capture must be a whole segment, like `{{name}}` (found `{raw}`)"
        ));
    }
    if raw.contains('*') {
        return Err(format!(
            "`*` and `**` must be whole segments (found `{raw}`)"
        ));
    }
    Ok(Segment::Literal(raw.into()))
}

fn check_name(name: &str, earlier: &[Box<str>]) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty capture name".to_owned());
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "capture name `{name}` may only contain letters, digits and `_`"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "capture name `{name}` is reserved for the template variable of that name"
        ));
    }
    if earlier.iter().any(|e| e.as_ref() == name) {
        return Err(format!("duplicate capture name `{name}`"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
mod tests {
    use super::*;

    fn segments(source: &str) -> Vec<Segment> {
        match Pattern::parse(&PathSpec::Pattern(source.into()))
            .unwrap()
            .kind
        {
            PatternKind::Segments(s) => s.into_vec(),
            PatternKind::Regex(_) => panic!("not a segment pattern"),
        }
    }

    fn error(source: &str) -> String {
        Pattern::parse(&PathSpec::Pattern(source.into()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_every_kind() {
        use Segment::*;
        assert_eq!(
            segments("/api/users"),
            [Literal("api".into()), Literal("users".into())]
        );
        assert_eq!(
            segments("/api/{id}"),
            [Literal("api".into()), Param("id".into())]
        );
        assert_eq!(segments("/api/*"), [Literal("api".into()), Star]);
        assert_eq!(segments("/api/**"), [Literal("api".into()), Rest(None)]);
        assert_eq!(
            segments("/files/{rest:**}"),
            [Literal("files".into()), Rest(Some("rest".into()))]
        );
        assert_eq!(segments("/"), [Literal("".into())]);
        assert_eq!(segments("/a/"), [Literal("a".into()), Literal("".into())]);
    }

    #[test]
    fn knows_capture_names() {
        let p = Pattern::parse(&PathSpec::Pattern("/a/{id}/*/{rest:**}".into())).unwrap();
        assert_eq!(p.capture_names(), [Box::from("id"), Box::from("rest")]);
        let r = Pattern::parse(&PathSpec::Regex("^/v(?P<version>[0-9]+)/(x)$".into())).unwrap();
        assert_eq!(r.capture_names(), [Box::from("version")]);
        assert!(r.is_regex());
    }

    #[test]
    fn syntax_errors_are_clear() {
        assert!(error("/a/**/b").contains("`**` must be the last segment"));
        assert!(error("/a/{id").contains("unclosed"));
        assert!(error("/a/{}").contains("empty capture name"));
        assert!(error("/a/{:**}").contains("empty capture name"));
        assert!(error("/a/{id}/{id}").contains("duplicate capture name `id`"));
        assert!(error("/a/x{id}").contains("whole segment"));
        assert!(error("/a/x*").contains("whole segments"));
        assert!(error("/a/{x:int}").contains("unknown capture kind"));
        assert!(error("/a/{consumer}").contains("reserved"));
        assert!(error("a/b").contains("must start with '/'"));
        assert!(error("/a/../b").contains("normalized form: `/b`"));
        assert!(error("//a").contains("normalized form: `/a`"));
        let bad = Pattern::parse(&PathSpec::Regex("^/(x".into()))
            .unwrap_err()
            .to_string();
        assert!(
            bad.starts_with("invalid path pattern `^/(x`: regex parse error"),
            "{bad}"
        );
    }
}
