//! An Official Account's followers (wechat-api.md §4B): `user/get` (10,000 per page),
//! `user/tag/get`, `user/info/batchget` (100 per call), `tags/members/getblacklist` and
//! `tags/get`, over a follower set made from the `followers` knob: `o_follower_000001`…,
//! tag 100 `VIP` every 10th, tag 101 `新客` every 3rd, every 50th blacklisted. Each checks
//! the access token like a send does.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::validate::Reject;
use super::{Shared, Shr, error_response, json_response, object, query_get, require};

/// Openids per `user/get` page, as WeChat's.
const PAGE: usize = 10_000;
/// Openids per `user/tag/get` and blacklist page: WeChat's tag page size is not documented;
/// 1,000 (the blacklist's, on the newer page) makes tests page through a tag too.
const SMALL_PAGE: usize = 1_000;
/// `user/info/batchget` takes at most this many.
const BATCH: usize = 100;

/// The sandbox's tags: id, name, every how many followers are in it.
pub const TAGS: [(u64, &str, u64); 2] = [(100, "VIP", 10), (101, "新客", 3)];
/// Every how many followers are blacklisted.
pub const BLACKLIST_EVERY: u64 = 50;

/// The n-th follower's openid (1-based).
pub fn openid(n: u64) -> String {
    format!("o_follower_{n:06}")
}

fn number(openid: &str) -> Option<u64> {
    openid.strip_prefix("o_follower_")?.parse().ok()
}

pub(super) fn routes(r: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    r.route(
        "/cgi-bin/user/get",
        get(user_get).fallback(|| async { require(43001) }),
    )
    .route(
        "/cgi-bin/user/tag/get",
        post(tag_get).fallback(|| async { require(43002) }),
    )
    .route(
        "/cgi-bin/user/info/batchget",
        post(batchget).fallback(|| async { require(43002) }),
    )
    .route(
        "/cgi-bin/tags/members/getblacklist",
        post(blacklist).fallback(|| async { require(43002) }),
    )
    .route(
        "/cgi-bin/tags/get",
        get(tags).fallback(|| async { require(43001) }),
    )
}

/// The followers (their numbers) a filter keeps, after `next` (an openid, or "" for the
/// start), one page of `size`; and how many it keeps in all.
fn page(total: u64, keep: impl Fn(u64) -> bool, next: &str, size: usize) -> Value {
    let after = match next {
        "" => 0,
        n => number(n).unwrap_or(total),
    };
    let all = (1..=total).filter(|n| keep(*n)).count();
    let ids: Vec<String> = (after + 1..=total)
        .filter(|n| keep(*n))
        .take(size)
        .map(openid)
        .collect();
    // Past the end WeChat answers no `data`, yet may still name a `next_openid`.
    let next_openid = ids.last().cloned().unwrap_or_else(|| next.to_owned());
    let mut v = json!({"total": all, "count": ids.len(), "next_openid": next_openid});
    if !ids.is_empty() {
        v["data"] = json!({ "openid": ids });
    }
    v
}

fn checked(sh: &Shared, q: Option<&str>) -> Result<u64, Reject> {
    let token = q.and_then(|q| query_get(q, "access_token"));
    let st = sh.lock();
    st.check_token(token.as_deref(), Instant::now())?;
    Ok(st.followers())
}

fn answer(result: Result<Value, Reject>) -> Response {
    match result {
        Ok(v) => json_response(&v),
        Err(r) => error_response(&r),
    }
}

async fn user_get(AxState(sh): Shr, RawQuery(q): RawQuery) -> Response {
    let next = q
        .as_deref()
        .and_then(|q| query_get(q, "next_openid"))
        .map(|c| c.into_owned())
        .unwrap_or_default();
    answer(checked(&sh, q.as_deref()).map(|total| page(total, |_| true, &next, PAGE)))
}

async fn tag_get(AxState(sh): Shr, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let result = checked(&sh, q.as_deref()).and_then(|total| {
        let o = object(&body)?;
        let id = o.get("tagid").and_then(Value::as_u64);
        let Some(&(_, _, every)) = TAGS.iter().find(|t| Some(t.0) == id) else {
            return Err(Reject::new(45159, "invalid tag id"));
        };
        let next = o.get("next_openid").and_then(Value::as_str).unwrap_or("");
        let mut v = page(total, |n| n % every == 0, next, SMALL_PAGE);
        // This page has no `total`.
        v.as_object_mut().map(|m| m.remove("total"));
        Ok(v)
    });
    answer(result)
}

async fn blacklist(AxState(sh): Shr, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let result = checked(&sh, q.as_deref()).and_then(|total| {
        let o = object(&body)?;
        let next = o.get("begin_openid").and_then(Value::as_str).unwrap_or("");
        Ok(page(total, |n| n % BLACKLIST_EVERY == 0, next, SMALL_PAGE))
    });
    answer(result)
}

async fn batchget(AxState(sh): Shr, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let result = checked(&sh, q.as_deref()).and_then(|total| {
        let o = object(&body)?;
        let list = o
            .get("user_list")
            .and_then(Value::as_array)
            .ok_or_else(|| Reject::format("field `user_list` must be a list"))?;
        if list.is_empty() || list.len() > BATCH {
            return Err(Reject::new(40032, "invalid openid list size"));
        }
        let infos: Vec<Value> = list
            .iter()
            .map(|u| {
                let id = u["openid"].as_str().unwrap_or_default();
                match number(id).filter(|n| (1..=total).contains(n)) {
                    Some(n) => json!({
                        "subscribe": 1,
                        "openid": id,
                        "language": "zh_CN",
                        "subscribe_time": 1_700_000_000 + n * 60,
                        "unionid": "",
                        "remark": if n % 7 == 0 { "老客户" } else { "" },
                        "groupid": 0,
                        "tagid_list": TAGS.iter().filter(|t| n % t.2 == 0).map(|t| t.0).collect::<Vec<_>>(),
                        "subscribe_scene": "ADD_SCENE_QR_CODE",
                        "qr_scene": 0,
                        "qr_scene_str": "",
                    }),
                    None => json!({"subscribe": 0, "openid": id}),
                }
            })
            .collect();
        Ok(json!({ "user_info_list": infos }))
    });
    answer(result)
}

async fn tags(AxState(sh): Shr, RawQuery(q): RawQuery) -> Response {
    answer(checked(&sh, q.as_deref()).map(|total| {
        let tags: Vec<Value> = TAGS
            .iter()
            .map(|(id, name, every)| json!({"id": id, "name": name, "count": total / every}))
            .collect();
        json!({ "tags": tags })
    }))
}
