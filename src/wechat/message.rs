//! Message bodies: the three send APIs' JSON, built by serde from typed structs.
//!
//! Tera renders each value string; the body around it is serialized here, so a quote, a
//! backslash or a newline in user data can never break the payload. `serde_json` writes
//! non-ASCII characters raw, as WeChat requires (a `\uXXXX` escape can answer 40033).
//! The access token is never part of a body: it travels in the query string.

use bytes::Bytes;
use indexmap::IndexMap;
use serde::Serialize;

/// The send endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Official Account template message.
    TemplateSend,
    /// Mini Program legacy template message with `form_id` (retired by WeChat in 2020).
    WxopenTemplateSend,
    /// Mini Program subscribe message.
    SubscribeSend,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::TemplateSend => "/cgi-bin/message/template/send",
            Endpoint::WxopenTemplateSend => "/cgi-bin/message/wxopen/template/send",
            Endpoint::SubscribeSend => "/cgi-bin/message/subscribe/send",
        }
    }
}

/// One entry of `data`: `{"value": "...", "color": "#RRGGBB"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataField {
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// `data`, in the campaign's field order.
pub type Data = IndexMap<String, DataField>;

/// `miniprogram` of an Official Account template message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Miniprogram {
    pub appid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
}

/// Body of `POST /cgi-bin/message/template/send`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateMessage {
    pub touser: String,
    pub template_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<Miniprogram>,
    pub data: Data,
}

/// Body of `POST /cgi-bin/message/wxopen/template/send`.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyMiniMessage {
    pub touser: String,
    pub template_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    pub form_id: String,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub data: Data,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emphasis_keyword: Option<String>,
}

/// Body of `POST /cgi-bin/message/subscribe/send`.
#[derive(Debug, Clone, Serialize)]
pub struct SubscribeMessage {
    pub touser: String,
    pub template_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    pub data: Data,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// A message ready to send: where to, for whom, and the exact bytes to POST.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The recipient's CSV data row (1-based).
    pub row: u64,
    pub openid: String,
    pub endpoint: Endpoint,
    pub body: Bytes,
}

impl Outgoing {
    /// Serializes `message` for `endpoint`.
    pub fn new(row: u64, openid: String, endpoint: Endpoint, message: &impl Serialize) -> Self {
        // Serializing these structs cannot fail: every field is a string or a map of strings.
        let body = serde_json::to_vec(message).expect("message bodies are plain strings");
        Outgoing {
            row,
            openid,
            endpoint,
            body: Bytes::from(body),
        }
    }

    /// The body as text, for previews and the dry-run `payload` column.
    pub fn body_str(&self) -> &str {
        // serde_json only ever writes UTF-8.
        std::str::from_utf8(&self.body).unwrap_or("")
    }
}
