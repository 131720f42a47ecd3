//! An Official Account's followers (wechat-api.md §4B): every follower (`user/get`, 10,000
//! per page), a tag's (`user/tag/get`), the blacklist (`tags/members/getblacklist`), the
//! tags (`tags/get`) and details of up to 100 at a time (`user/info/batchget`). Mini programs
//! have no follower list.

use serde::Deserialize;

use super::token::Token;
use super::{CallError, Client};

pub const USERS: &str = "/cgi-bin/user/get";
pub const TAGGED: &str = "/cgi-bin/user/tag/get";
pub const BLACKLIST: &str = "/cgi-bin/tags/members/getblacklist";
pub const TAGS: &str = "/cgi-bin/tags/get";
pub const DETAILS: &str = "/cgi-bin/user/info/batchget";
/// `user/info/batchget` takes at most this many openids.
pub const DETAILS_BATCH: usize = 100;

/// One page of openids.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    /// All of them (not on every list).
    pub total: Option<u64>,
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    data: Option<Openids>,
    #[serde(default)]
    pub next_openid: String,
}

#[derive(Debug, Default, Deserialize)]
struct Openids {
    #[serde(default)]
    openid: Vec<String>,
}

impl Page {
    /// The page's openids. A page without `data` (or with none) is past the end, whatever
    /// its `next_openid` says.
    pub fn openids(self) -> Vec<String> {
        self.data.map(|d| d.openid).unwrap_or_default()
    }
}

/// A tag of the account.
#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub count: u64,
}

/// What `user/info/batchget` says of one follower (nicknames and avatars are no longer
/// given, since 2021).
#[derive(Debug, Clone, Deserialize)]
pub struct Info {
    pub openid: String,
    /// 0: not following (a send would be answered 43004).
    #[serde(default)]
    pub subscribe: u8,
    #[serde(default)]
    pub subscribe_time: Option<u64>,
    #[serde(default)]
    pub remark: String,
    #[serde(default)]
    pub tagid_list: Vec<u64>,
}

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    All,
    Tag(u64),
    Blacklist,
}

/// The page of `list` after `next` ("" for the first).
pub async fn page(
    client: &Client,
    token: &Token,
    list: List,
    next: &str,
) -> Result<Page, CallError> {
    match list {
        List::All => {
            client
                .call(token, USERS, &[("next_openid", next)], None)
                .await
        }
        List::Tag(id) => {
            let body = serde_json::json!({"tagid": id, "next_openid": next});
            client.call(token, TAGGED, &[], Some(&body)).await
        }
        List::Blacklist => {
            let body = serde_json::json!({ "begin_openid": next });
            client.call(token, BLACKLIST, &[], Some(&body)).await
        }
    }
}

pub async fn tags(client: &Client, token: &Token) -> Result<Vec<Tag>, CallError> {
    #[derive(Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Vec<Tag>,
    }
    let t: Tags = client.call(token, TAGS, &[], None).await?;
    Ok(t.tags)
}

/// Details of `openids` (at most [`DETAILS_BATCH`]).
pub async fn details(
    client: &Client,
    token: &Token,
    openids: &[String],
) -> Result<Vec<Info>, CallError> {
    #[derive(Deserialize)]
    struct Infos {
        #[serde(default)]
        user_info_list: Vec<Info>,
    }
    let list: Vec<_> = openids
        .iter()
        .map(|o| serde_json::json!({"openid": o, "lang": "zh_CN"}))
        .collect();
    let body = serde_json::json!({ "user_list": list });
    let i: Infos = client.call(token, DETAILS, &[], Some(&body)).await?;
    Ok(i.user_info_list)
}
