//! Routes (SPEC §2.4, §4.3, §4.4): what requests match, and where they go.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::plugins::Plugins;
use super::shapes::RespondBody;
use super::tokens::{HeaderName, Method, Selector};
use super::units::{ByteSize, Duration};

/// A route: match conditions and a destination (a service, a split, an aggregate or a
/// direct response).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Route {
    /// Name shown in metrics and logs. Absent: derived from the path by the runtime.
    pub name: Option<Spanned<String>>,
    /// Path pattern (SPEC §2.4), checked by the router.
    pub path: Option<Spanned<String>>,
    /// Regular expression on the normalized path (instead of `path`).
    pub path_regex: Option<Spanned<String>>,
    /// Allowed methods, uppercase. Empty: all.
    pub methods: Vec<Spanned<Method>>,
    /// Host names (`*.example.com` wildcards allowed). Empty: any host.
    pub hosts: Vec<Spanned<String>>,
    /// Headers that must be equal (case-insensitive names).
    pub headers: IndexMap<HeaderName, String>,
    /// Query parameters that must be equal.
    pub query: IndexMap<String, String>,
    /// The service requests go to.
    pub service: Option<Spanned<String>>,
    /// Prefix removed from the forwarded path.
    pub strip_prefix: Option<Spanned<String>>,
    /// Template of the forwarded path (SPEC §2.5), checked by the router.
    pub rewrite: Option<Spanned<String>>,
    /// `true`: forward the client's `Host` instead of the target's.
    pub preserve_host: bool,
    /// Overrides `limits.max_body` for this route.
    pub max_body: Option<ByteSize>,
    /// Overrides the service's request timeout for this route.
    pub timeout: Option<Duration>,
    /// Weighted traffic split between services (instead of `service`).
    pub split: Option<Spanned<Vec<SplitTarget>>>,
    /// Keeps a client on one side of a split: `header:NAME`, `cookie:NAME` or `consumer`.
    pub sticky: Option<Spanned<Selector>>,
    /// A copy of each request sent to another service, its response discarded.
    pub mirror: Option<Spanned<Mirror>>,
    /// Several upstream calls merged into one JSON answer (instead of `service`).
    pub aggregate: Option<Spanned<Aggregate>>,
    /// REST to gRPC transcoding: `package.Service/Method` or `annotations`.
    pub grpc: Option<Spanned<String>>,
    /// A fixed answer with no upstream (excludes `service`, `split` and `aggregate`).
    pub respond: Option<Spanned<Respond>>,
    /// Plugins for this route; they replace the service's and global ones of the same name.
    pub plugins: Plugins,
}

impl Route {
    /// The service whose plugins the route takes: its `service`, or the side of its `split`
    /// with the largest weight (the first of those on a tie).
    pub fn main_service(&self) -> Option<&Spanned<String>> {
        if let Some(service) = &self.service {
            return Some(service);
        }
        let split = &self.split.as_ref()?.value;
        let mut main: Option<&SplitTarget> = None;
        for side in split {
            if main.is_none_or(|m| side.weight.value > m.weight.value) {
                main = Some(side);
            }
        }
        main.map(|side| &side.service)
    }
}

/// One side of a traffic split.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitTarget {
    /// The service this share goes to.
    pub service: Spanned<String>,
    /// Relative share (at least 1).
    pub weight: Spanned<u32>,
}

/// Request mirroring.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// The service that receives the copies.
    pub service: Spanned<String>,
    /// Share of requests copied, 0–100. Default 100.
    #[serde(default = "hundred")]
    pub percent: Spanned<f64>,
}

fn hundred() -> Spanned<f64> {
    Spanned::new(
        100.0,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// Aggregation of several upstream calls (SPEC §4.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// Time for the whole response. Absent: the route's timeout.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// The parts, by the member name they get in the answer.
    pub parts: IndexMap<String, AggregatePart>,
    /// `true`: object parts are merged into the top level.
    #[serde(default)]
    pub merge: bool,
}

/// One upstream call of an aggregate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatePart {
    /// The service called.
    pub service: Spanned<String>,
    /// Path and query template of the call (SPEC §2.5).
    pub path: Spanned<String>,
    /// `true`: a failure of this part fails the request.
    #[serde(default)]
    pub required: bool,
    /// Value used when an optional part fails. Absent: null.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// JSON Pointers of the members kept from the part's answer. Empty: all.
    #[serde(default)]
    pub select: Vec<String>,
}

/// A fixed answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    /// Status code, 100–599.
    pub status: Spanned<u16>,
    /// Body: text, or a mapping or list sent as JSON. Default empty.
    #[serde(default)]
    pub body: RespondBody,
    /// Extra response headers.
    #[serde(default)]
    pub headers: IndexMap<HeaderName, String>,
}
