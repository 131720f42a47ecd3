//! The WeChat server API as wxpush uses it: one HTTP client for the run, the send call,
//! token calls (in [`token`]), the errcode table (in [`errcode`]) and the message bodies (in
//! [`message`]).
//!
//! Secrets live here and do not leave: the AppSecret is a [`Secret`], tokens are
//! [`token::Token`]s, both with a redacting `Debug` and no `Display`. Every URL this module
//! builds holds one of them in its query string, so transport errors are stripped of their
//! URL ([`reqwest::Error::without_url`]) before they are turned into text.

pub mod errcode;
pub mod fields;
pub mod followers;
pub mod message;
pub mod quota;
pub mod templates;
pub mod token;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use message::Endpoint;
use token::Token;

/// The real API. `WXPUSH_API_BASE` overrides it (wechat-api.md §7 lists the alternates).
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
/// Connecting is cheap to retry, so fail it fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout. A send that times out after its body left is `unknown`, so this is
/// generous: WeChat answers in well under a second when healthy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A secret string (the AppSecret). `Debug` prints `[redacted]`; there is no `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// WeChat's answer to a send: HTTP 200 with a JSON body.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    /// 19 digits have been seen: a `u64`, never a float.
    #[serde(default)]
    pub msgid: Option<u64>,
}

/// A send that got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The request never left (connection refused, DNS, TLS handshake): safe to retry.
    #[error("not sent: {0}")]
    NotSent(String),
    /// WeChat (or a proxy) answered, but not with a WeChat JSON body (HTTP ≠ 200, HTML, …).
    /// The body was rejected before processing: safe to retry.
    #[error("bad answer: {0}")]
    BadAnswer(String),
    /// The request may have reached WeChat but no answer came (timeout, reset after writing):
    /// the message may or may not have been delivered.
    #[error("no answer: {0}")]
    Ambiguous(String),
}

/// An egress proxy (an account's `proxy:`): `http://[user:password@]host:port`. The
/// password is a secret: `Debug` and [`Proxy::redacted`] replace it.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy(reqwest::Url);

impl Proxy {
    pub fn parse(s: &str) -> Result<Proxy, String> {
        // The message never repeats `s`: it may hold the password.
        let url = reqwest::Url::parse(s)
            .map_err(|e| format!("not a proxy URL like http://host:3128 ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("not a proxy URL like http://host:3128 (http:// or https://)".into());
        }
        Ok(Proxy(url))
    }

    /// The URL with its password as `***`.
    pub fn redacted(&self) -> String {
        let mut u = self.0.clone();
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        u.to_string()
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({})", self.redacted())
    }
}

/// An AppID: `wx` and 16 letters or digits.
pub fn looks_like_appid(s: &str) -> bool {
    s.len() == 18 && s.starts_with("wx") && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `url` without its query string and credentials (either may hold a key or a token), for
/// messages.
pub fn without_query(url: &str) -> String {
    let bare = url.split(['?', '#']).next().unwrap_or(url);
    match reqwest::Url::parse(bare) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => bare.to_owned(),
    }
}

/// The HTTP side of the API: one keep-alive client and the base URL.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client of `base`, through `proxy` when given (else the proxy variables:
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, as reqwest reads them).
    pub fn new(base: &str, proxy: Option<&Proxy>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("wxpush/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(p) = proxy {
            // Credentials in the URL become its Proxy-Authorization.
            let p = reqwest::Proxy::all(p.0.clone()).map_err(|e| describe(e.without_url()))?;
            builder = builder.proxy(p);
        }
        let http = builder.build().map_err(|e| describe(e.without_url()))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs `body` to `endpoint` with `token`.
    pub async fn send(
        &self,
        endpoint: Endpoint,
        token: &Token,
        body: Bytes,
    ) -> Result<Reply, SendError> {
        // The body only: the URL holds the token.
        tracing::trace!(endpoint = endpoint.path(), body = %String::from_utf8_lossy(&body), "POST");
        let res = self
            .http
            .post(self.url(endpoint.path()))
            .query(&[("access_token", token.expose())])
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| {
            // The request was processed; only the answer was lost.
            SendError::Ambiguous(describe(e.without_url()))
        })?;
        tracing::trace!(http = status.as_u16(), answer = %loggable(&bytes, token), "answered");
        if !status.is_success() {
            return Err(SendError::BadAnswer(format!("HTTP {status}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            SendError::BadAnswer(format!(
                "answer is not WeChat JSON ({e}): {}",
                snippet(&bytes)
            ))
        })
    }
}

/// Why a call of the account's APIs (template lists, followers) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{path} answered {errcode} ({}): {errmsg}", errcode::meaning(*errcode))]
    Refused {
        path: &'static str,
        errcode: i64,
        errmsg: String,
    },
    #[error("{path}: {message}")]
    Transport { path: &'static str, message: String },
}

impl CallError {
    pub fn errcode(&self) -> Option<i64> {
        match self {
            CallError::Refused { errcode, .. } => Some(*errcode),
            CallError::Transport { .. } => None,
        }
    }
}

impl Client {
    /// GETs `path` (or POSTs `body` to it) with `token`, and reads WeChat's JSON answer as
    /// `T`; an answer with a non-zero `errcode` is [`CallError::Refused`].
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        token: &Token,
        path: &'static str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, CallError> {
        let transport = |message| CallError::Transport { path, message };
        let req = match body {
            Some(b) => self.http.post(self.url(path)).json(b),
            None => self.http.get(self.url(path)),
        };
        let res = req
            .query(&[("access_token", token.expose())])
            .query(query)
            .send()
            .await
            .map_err(|e| transport(describe(e.without_url())))?;
        let status = res.status();
        if !status.is_success() {
            return Err(transport(format!("HTTP {status}")));
        }
        let v: serde_json::Value = res.json().await.map_err(|e| {
            transport(format!(
                "answer is not WeChat JSON: {}",
                describe(e.without_url())
            ))
        })?;
        let code = v
            .get("errcode")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        if code != 0 {
            return Err(CallError::Refused {
                path,
                errcode: code,
                errmsg: v["errmsg"].as_str().unwrap_or_default().to_owned(),
            });
        }
        serde_json::from_value(v).map_err(|e| transport(format!("unexpected answer: {e}")))
    }
}

fn classify_transport(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    if e.is_connect() || e.is_builder() {
        SendError::NotSent(describe(e))
    } else {
        SendError::Ambiguous(describe(e))
    }
}

/// The error and its causes on one line. The URL was removed by the caller.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// An answer for the `-vv` log: a proxy's error page could echo the request URL, and with
/// it the token; such an answer is withheld.
fn loggable(bytes: &[u8], token: &Token) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.contains(token.expose()) || s.contains("access_token") || s.contains("secret") {
        return "[answer withheld: it mentions credentials]".into();
    }
    s.into_owned()
}

/// The start of an unexpected answer, for the report. A proxy error page could echo the
/// request URL, and with it the token: such a snippet is withheld.
fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    if s.contains("access_token") || s.contains("secret") {
        return "[answer withheld: it mentions credentials]".into();
    }
    s.replace(['\n', '\r'], " ")
}

/// Secrets may travel only over https, or over plain http to this machine (the sandbox).
pub fn is_safe_base(base: &str) -> bool {
    base.to_ascii_lowercase().starts_with("https://") || is_loopback(base)
}

/// The base URL is this machine: a sandbox, not WeChat.
pub fn is_loopback(base: &str) -> bool {
    let lower = base.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_safe() {
        assert!(is_safe_base("https://api.weixin.qq.com"));
        assert!(is_safe_base("http://127.0.0.1:8960"));
        assert!(is_safe_base("http://localhost"));
        assert!(is_safe_base("http://[::1]:80/"));
        assert!(!is_safe_base("http://api.weixin.qq.com"));
        assert!(!is_safe_base("http://127.0.0.1.evil.com"));
        assert!(!is_safe_base("ftp://x"));
        assert!(!is_safe_base("http://user:pw@tokens.example.com/t"));
        assert_eq!(
            without_query("http://user:pw@127.0.0.1:9/t?key=k"),
            "http://127.0.0.1:9/t"
        );
        assert!(is_loopback("http://127.0.0.1:8960"));
        assert!(!is_loopback("https://api.weixin.qq.com"));
    }

    #[test]
    fn snippets_mentioning_tokens_are_withheld() {
        assert!(!snippet(b"<html>GET /x?access_token=abc</html>").contains("abc"));
        assert_eq!(snippet(b"<html>\nbad</html>"), "<html> bad</html>");
        // The -vv log too, even when the page names the token without its parameter name.
        let t = Token::for_test("tok123");
        assert!(!loggable(b"<html>/x?access_token=tok123</html>", &t).contains("tok123"));
        assert!(!loggable(b"denied: tok123", &t).contains("tok123"));
        assert_eq!(loggable(br#"{"errcode":0}"#, &t), r#"{"errcode":0}"#);
    }
}
