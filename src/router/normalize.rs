//! Path normalization (SPEC §2.5): the one canonical form of a request path that routes are
//! matched against and that is forwarded upstream.

use std::borrow::Cow;
use std::fmt;

/// Why a request path could not be normalized; the request is answered with 400.
///
/// The message (its `Display`) is safe to show to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathError {
    kind: PathErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathErrorKind {
    NotAbsolute,
    InvalidEscape,
    AboveRoot,
}

impl PathError {
    const fn new(kind: PathErrorKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            PathErrorKind::NotAbsolute => "the path must start with '/'",
            PathErrorKind::InvalidEscape => "the path contains an invalid percent-encoding",
            PathErrorKind::AboveRoot => "the path goes above the root with '..'",
        })
    }
}

impl std::error::Error for PathError {}

/// Normalizes the path part of a request target (without the query) as SPEC §2.5 requires.
///
/// - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; every other
///   escape stays encoded, with uppercase hex (`%2f` → `%2F`, which is never a separator);
/// - `.` and `..` segments are resolved after decoding (`/a/%2e%2e/b` → `/b`);
/// - repeated slashes are merged; a trailing slash is kept (`/a/` stays `/a/`).
///
/// Errors: a path not starting with `/`, an invalid escape (`%zz`, `%4`), or `..` above the
/// root. Returns the input borrowed, without allocating, when it is already normalized.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::new(PathErrorKind::NotAbsolute));
    }
    if is_normalized(path.as_bytes()) {
        Ok(Cow::Borrowed(path))
    } else {
        normalize_slow(path).map(Cow::Owned)
    }
}

/// True when `normalize_slow` would return `path` unchanged (a quick scan, no allocation):
/// only the slashes and percent signs are looked at, found a word at a time.
fn is_normalized(path: &[u8]) -> bool {
    let mut segment_start = 1;
    let mut from = 0;
    while let Some(offset) = super::scan::find2(&path[from..], b'/', b'%') {
        let i = from + offset;
        if path[i] == b'/' {
            if i > 0 && is_dot_segment(&path[segment_start..i]) {
                return false;
            }
            if path.get(i + 1) == Some(&b'/') {
                return false;
            }
            segment_start = i + 1;
            from = i + 1;
        } else {
            match escape_at(path, i) {
                Some(byte) if !is_unreserved(byte) && is_upper_hex_escape(path, i) => from = i + 3,
                _ => return false,
            }
        }
    }
    !is_dot_segment(&path[segment_start.min(path.len())..])
}

fn normalize_slow(path: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    // Start offsets (in `out`) of the segments written so far, for `..`.
    let mut starts: Vec<usize> = Vec::new();
    let mut segment = String::new();
    let mut trailing_slash = false;
    for raw in path[1..].split('/') {
        segment.clear();
        decode_segment(raw, &mut segment)?;
        trailing_slash = matches!(segment.as_str(), "" | "." | "..");
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                let start = starts
                    .pop()
                    .ok_or(PathError::new(PathErrorKind::AboveRoot))?;
                out.truncate(start);
            }
            _ => {
                starts.push(out.len());
                out.push('/');
                out.push_str(&segment);
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Appends `raw` to `out` with unreserved escapes decoded and the others in uppercase hex.
fn decode_segment(raw: &str, out: &mut String) -> Result<(), PathError> {
    let bytes = raw.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = escape_at(bytes, i).ok_or(PathError::new(PathErrorKind::InvalidEscape))?;
            out.push_str(&raw[copied..i]);
            if is_unreserved(byte) {
                out.push(char::from(byte));
            } else {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(byte & 0xF)]));
            }
            i += 3;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&raw[copied..]);
    Ok(())
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The byte encoded by the escape starting at `bytes[i] == b'%'`, if it is valid.
pub(crate) fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(i + 1)?)?;
    let lo = hex_value(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

fn is_upper_hex_escape(bytes: &[u8], i: usize) -> bool {
    !bytes[i + 1].is_ascii_lowercase() && !bytes[i + 2].is_ascii_lowercase()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_dot_segment(segment: &[u8]) -> bool {
    matches!(segment, b"." | b"..")
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
