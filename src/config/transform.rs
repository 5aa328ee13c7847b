//! `request_transform` and `response_transform` settings (SPEC §3.7). Values may be
//! templates (SPEC §2.5); they keep their location for the code that compiles them.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::tokens::HeaderName;

/// Changes to the request before it is forwarded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestTransform {
    /// Header changes.
    pub headers: HeaderOps,
    /// Query-parameter changes.
    pub query: QueryOps,
    /// JSON body changes.
    pub body: RequestBodyOps,
}

/// Changes to the upstream response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseTransform {
    /// Header changes.
    pub headers: HeaderOps,
    /// JSON body changes.
    pub body: ResponseBodyOps,
    /// Status codes replaced (`404: 200`).
    pub status: IndexMap<u16, u16>,
}

/// Header changes, applied remove → rename → set → add.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderOps {
    /// Headers set (replacing), value templates.
    pub set: IndexMap<HeaderName, Spanned<String>>,
    /// Headers added (keeping existing ones), value templates.
    pub add: IndexMap<HeaderName, Spanned<String>>,
    /// Headers removed.
    pub remove: Vec<HeaderName>,
    /// Headers renamed, old name to new name.
    pub rename: IndexMap<HeaderName, HeaderName>,
}

/// Query-parameter changes, applied remove → rename → set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryOps {
    /// Parameters set, value templates.
    pub set: IndexMap<String, Spanned<String>>,
    /// Parameters removed.
    pub remove: Vec<String>,
    /// Parameters renamed, old name to new name.
    pub rename: IndexMap<String, String>,
}

/// JSON request-body changes by JSON Pointer, applied remove → rename → set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestBodyOps {
    /// Members moved, old pointer to new pointer.
    pub rename: IndexMap<String, String>,
    /// Members set; string values are templates.
    pub set: IndexMap<String, serde_json::Value>,
    /// Members removed.
    pub remove: Vec<String>,
}

/// JSON response-body changes by JSON Pointer, applied remove → rename → set → select.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseBodyOps {
    /// Members moved, old pointer to new pointer.
    pub rename: IndexMap<String, String>,
    /// Members set; string values are templates.
    pub set: IndexMap<String, serde_json::Value>,
    /// Members removed.
    pub remove: Vec<String>,
    /// Members kept (all others dropped). Empty: all kept.
    pub select: Vec<String>,
}
