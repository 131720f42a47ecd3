//! `POST /cgi-bin/openapi/quota/get`: how many calls of one API the account has left today
//! (wechat-api.md §6), asked before a real send so that a campaign larger than what is left
//! stops before its first message instead of at 45009 in its middle.

use serde::Deserialize;

use super::token::Token;
use super::{CallError, Client};

/// One API's daily quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Quota {
    pub daily_limit: u64,
    pub used: u64,
    pub remain: u64,
}

#[derive(Deserialize)]
struct Answer {
    quota: Quota,
}

pub const PATH: &str = "/cgi-bin/openapi/quota/get";

/// The quota of `cgi_path` (`/cgi-bin/message/template/send`).
pub async fn get(client: &Client, token: &Token, cgi_path: &str) -> Result<Quota, CallError> {
    let body = serde_json::json!({ "cgi_path": cgi_path });
    let a: Answer = client.call(token, PATH, &[], Some(&body)).await?;
    Ok(a.quota)
}
