//! `POST /cgi-bin/openapi/quota/get`: how many calls of one API the account has left today
//! (wechat-api.md §6), asked before a real send so that a campaign larger than what is left
//! stops before its first message instead of at 45009 in its middle.

use serde::Deserialize;

use super::token::Token;
use super::{Client, describe};

/// One API's daily quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Quota {
    pub daily_limit: u64,
    pub used: u64,
    pub remain: u64,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    quota: Option<Quota>,
}

pub const PATH: &str = "/cgi-bin/openapi/quota/get";

/// The quota of `cgi_path` (`/cgi-bin/message/template/send`). `Err`: why WeChat did not
/// say (the caller sends without a preflight, saying so).
pub async fn get(client: &Client, token: &Token, cgi_path: &str) -> Result<Quota, String> {
    let res = client
        .http()
        .post(client.url(PATH))
        .query(&[("access_token", token.expose())])
        .json(&serde_json::json!({ "cgi_path": cgi_path }))
        .send()
        .await
        .map_err(|e| describe(e.without_url()))?;
    let status = res.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let a: Answer = res
        .json()
        .await
        .map_err(|e| format!("answer is not WeChat JSON: {}", describe(e.without_url())))?;
    match a.quota {
        Some(q) if a.errcode == 0 => Ok(q),
        _ => Err(format!("errcode {}: {}", a.errcode, a.errmsg)),
    }
}
