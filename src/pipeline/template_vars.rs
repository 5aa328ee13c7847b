//! The values a request offers to templates (SPEC §2.5).

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};

use crate::router::Captures;
use crate::template::TemplateVars;

/// One request's template variables.
pub(super) struct RequestVars<'a> {
    pub(super) path: &'a str,
    pub(super) captures: &'a Captures<'a>,
    pub(super) request_id: &'a HeaderValue,
    pub(super) client_ip: IpAddr,
    pub(super) headers: &'a HeaderMap,
    pub(super) query: Option<&'a str>,
    pub(super) identity: Option<&'a super::auth::Identity>,
}

impl TemplateVars for RequestVars<'_> {
    fn capture(&self, name: &str) -> Option<Cow<'_, str>> {
        self.captures.get(self.path, name).map(Cow::Borrowed)
    }

    fn request_id(&self) -> Option<Cow<'_, str>> {
        self.request_id.to_str().ok().map(Cow::Borrowed)
    }

    fn consumer(&self) -> Option<Cow<'_, str>> {
        self.identity?.consumer.as_deref().map(Cow::Borrowed)
    }

    fn client_ip(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.client_ip.to_string()))
    }

    fn claim(&self, name: &str) -> Option<Cow<'_, str>> {
        self.identity?.claim_text(name)
    }

    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    }

    fn query(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.query?;
        super::form::pairs(query)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}
