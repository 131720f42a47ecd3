//! Message bodies: the four send APIs' JSON, built by serde from typed structs.
//!
//! Tera renders each value string; the body around it is serialized here, so a quote, a
//! backslash or a newline in user data can never break the payload. `serde_json` writes
//! non-ASCII characters raw, as WeChat requires (a `\uXXXX` escape can answer 40033).
//! The access token is never part of a body: it travels in the query string.

use std::time::{Duration, SystemTime};

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
    /// Official Account subscribe notification.
    BizSend,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::TemplateSend => "/cgi-bin/message/template/send",
            Endpoint::WxopenTemplateSend => "/cgi-bin/message/wxopen/template/send",
            Endpoint::SubscribeSend => "/cgi-bin/message/subscribe/send",
            Endpoint::BizSend => "/cgi-bin/message/subscribe/bizsend",
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
    /// WeChat delivers one message per openid + `client_msg_id` within about 10 minutes, so
    /// a send whose answer was lost can be repeated safely inside that window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
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

/// Body of `POST /cgi-bin/message/subscribe/bizsend` (Official Account subscribe
/// notification), in the shape WxJava, wechatpy and silenceper send: `page` is the web page
/// to open, and `miniprogram` wins over it. The newest official page disagrees (it lists
/// `miniprogram_state` and `lang` and calls `page` a mini program page, wechat-api.md §4A).
/// Should WeChat follow it, the shape lives here, in `render` (`url` sent as `page`), in
/// `campaign` (which keys an `official_api: subscribe` campaign takes) and in the sandbox's
/// `validate` (`Endpoint::Bizsend`'s fields); the tests that pin it are
/// `official_subscribe_notifications_go_to_bizsend` and `bizsend_bodies`.
#[derive(Debug, Clone, Serialize)]
pub struct BizSubscribeMessage {
    pub touser: String,
    pub template_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<Miniprogram>,
    pub data: Data,
}

/// A message ready to send: where to, for whom, and the exact bytes to POST.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The recipient's CSV data row (1-based).
    pub row: u64,
    pub openid: String,
    pub endpoint: Endpoint,
    pub body: Bytes,
    /// The body carries a `client_msg_id`: WeChat de-duplicates it for [`DEDUP_WINDOW`].
    pub deduplicated: bool,
    /// When this recipient's first request left, if in an earlier run (a resend of a send
    /// whose outcome was lost); the de-duplication window counts from then.
    pub first_started: Option<SystemTime>,
    /// A repeat of an earlier run's send whose outcome was lost, made only because its
    /// `client_msg_id` window is open: if the window has closed by the time its turn comes
    /// (a slow confirmation, a pause), it is not sent.
    pub only_in_window: bool,
}

/// How long after its first use a `client_msg_id` is relied on to de-duplicate: WeChat
/// documents 10 minutes; the margin covers clock skew and the request's own duration.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(9 * 60);

/// The `client_msg_id` of a recipient in a run: deterministic, so every attempt and every
/// resume of the run uses the same one, and ≤ 64 ASCII bytes.
pub fn client_msg_id(run_id: &str, openid: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(run_id.as_bytes());
    h.update(b"\0");
    h.update(openid.as_bytes());
    format!("wxp-{:032x}", h.digest128())
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
            deduplicated: false,
            first_started: None,
            only_in_window: false,
        }
    }

    /// The body as text, for previews and the dry-run `payload` column.
    pub fn body_str(&self) -> &str {
        // serde_json only ever writes UTF-8.
        std::str::from_utf8(&self.body).unwrap_or("")
    }
}
