//! The calls around sending that a client makes before and after a campaign: the account's
//! templates (`template/get_all_private_template`, `wxaapi/newtmpl/gettemplate`), its quotas
//! (`openapi/quota/get`, `clear_quota`) and `get_api_domain_ip`. Shapes from
//! wechat-api.md §§2.3, 4.4, 6 and 7. Each checks the access token like a send does.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::validate::Reject;
use super::{Quota, Shared, Shr, error_response, json_response, object, query_get, require};

/// An Official Account template, as `get_all_private_template` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateTemplate {
    pub template_id: String,
    pub title: String,
    #[serde(default)]
    pub primary_industry: String,
    #[serde(default)]
    pub deputy_industry: String,
    /// `{{keyword1.DATA}}` placeholders, one per line.
    pub content: String,
    #[serde(default)]
    pub example: String,
}

/// A subscribe template (a Mini Program's, or an Official Account's for `bizsend`), as
/// `wxaapi/newtmpl/gettemplate` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeTemplate {
    #[serde(rename = "priTmplId")]
    pub pri_tmpl_id: String,
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub example: String,
    /// 2: one-time, 3: long-term.
    #[serde(rename = "type", default = "one_time")]
    pub kind: u8,
    #[serde(
        rename = "keywordEnumValueList",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub keyword_enum_value_list: Vec<Value>,
}

fn one_time() -> u8 {
    2
}

/// The account's templates, in the shape of the two list answers merged: a `--templates`
/// file is `{"template_list": [...], "data": [...]}` in JSON or YAML, each list optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    #[serde(default)]
    pub template_list: Vec<PrivateTemplate>,
    #[serde(default)]
    pub data: Vec<SubscribeTemplate>,
}

impl Default for Templates {
    /// The templates of the example campaigns in `campaigns/`.
    fn default() -> Templates {
        Templates {
            template_list: vec![PrivateTemplate {
                template_id: "n44_YbDNEqrrSEEvd8The8HpWYo1gWOVAXj7zIz4vHA".into(),
                title: "学习提醒".into(),
                primary_industry: "教育".into(),
                deputy_industry: "培训".into(),
                content: "{{first.DATA}}\n课程名称：{{keyword1.DATA}}\n任务：{{keyword2.DATA}}\n\
                          日期：{{keyword3.DATA}}\n{{remark.DATA}}"
                    .into(),
                example: "石头同学,提醒您背单词啦\n课程名称：巅峰单词800个背诵\n\
                          任务：今日背诵单词任务未完成\n日期：2019-06-09\n不积跬步无以至千里,加油!"
                    .into(),
            }],
            data: vec![
                SubscribeTemplate {
                    pri_tmpl_id: "9Aw5ZV1j9xdWTFEkqCpZ7mIBbSC34khK55OtzUPl0rU".into(),
                    title: "上课提醒".into(),
                    content: "课程名称:{{thing1.DATA}}\n上课时间:{{time2.DATA}}\n\
                              教室:{{character_string3.DATA}}\n温馨提示:{{thing4.DATA}}\n"
                        .into(),
                    example: "课程名称:雅思学习第二课时\n上课时间:2019年5月18日 13:00\n\
                              教室:A-301\n温馨提示:石头同学,别迟到哦\n"
                        .into(),
                    kind: 2,
                    keyword_enum_value_list: Vec::new(),
                },
                SubscribeTemplate {
                    pri_tmpl_id: "bZ3kQ9rWm2LxT7vNc4HsJ8dYp6FgA1eUo5iRtKwXqVs".into(),
                    title: "课程开课通知".into(),
                    content: "课程名称:{{thing1.DATA}}\n开课时间:{{time2.DATA}}\n\
                              备注:{{thing3.DATA}}\n"
                        .into(),
                    example: "课程名称:雅思写作精讲\n开课时间:2026年12月20日 19:30\n\
                              备注:点击查看课程详情\n"
                        .into(),
                    kind: 2,
                    keyword_enum_value_list: Vec::new(),
                },
            ],
        }
    }
}

/// The routes of this module.
pub(super) fn routes(r: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    r.route(
        "/cgi-bin/get_api_domain_ip",
        get(domain_ip).fallback(|| async { require(43001) }),
    )
    .route(
        "/cgi-bin/template/get_all_private_template",
        get(private_templates).fallback(|| async { require(43001) }),
    )
    .route(
        "/wxaapi/newtmpl/gettemplate",
        get(subscribe_templates).fallback(|| async { require(43001) }),
    )
    .route(
        "/cgi-bin/openapi/quota/get",
        post(quota_get).fallback(|| async { require(43002) }),
    )
    .route(
        "/cgi-bin/clear_quota",
        post(clear_quota).fallback(|| async { require(43002) }),
    )
}

/// The access token of the query string, checked.
fn authorized(sh: &Shared, q: Option<&str>) -> Result<(), Reject> {
    let token = q.and_then(|q| query_get(q, "access_token"));
    sh.lock().check_token(token.as_deref(), Instant::now())
}

fn answer<T: Serialize>(result: Result<T, Reject>) -> Response {
    match result {
        Ok(v) => json_response(&v),
        Err(r) => error_response(&r),
    }
}

async fn domain_ip(AxState(sh): Shr, RawQuery(q): RawQuery) -> Response {
    #[derive(Serialize)]
    struct IpList {
        ip_list: [&'static str; 1],
    }
    answer(authorized(&sh, q.as_deref()).map(|()| IpList {
        ip_list: ["127.0.0.1"],
    }))
}

async fn private_templates(AxState(sh): Shr, RawQuery(q): RawQuery) -> Response {
    #[derive(Serialize)]
    struct List {
        template_list: Vec<PrivateTemplate>,
    }
    answer(authorized(&sh, q.as_deref()).map(|()| List {
        template_list: sh.lock().templates().template_list.clone(),
    }))
}

async fn subscribe_templates(AxState(sh): Shr, RawQuery(q): RawQuery) -> Response {
    #[derive(Serialize)]
    struct List {
        errcode: i64,
        errmsg: &'static str,
        data: Vec<SubscribeTemplate>,
    }
    answer(authorized(&sh, q.as_deref()).map(|()| List {
        errcode: 0,
        errmsg: "ok",
        data: sh.lock().templates().data.clone(),
    }))
}

async fn quota_get(AxState(sh): Shr, RawQuery(q): RawQuery, body: Bytes) -> Response {
    #[derive(Serialize)]
    struct Counts {
        daily_limit: u64,
        used: u64,
        remain: u64,
    }
    #[derive(Serialize)]
    struct Rate {
        call_count: u32,
        refresh_second: u32,
    }
    #[derive(Serialize)]
    struct Answer {
        errcode: i64,
        errmsg: &'static str,
        quota: Counts,
        #[serde(skip_serializing_if = "Option::is_none")]
        rate_limit: Option<Rate>,
    }
    let result = authorized(&sh, q.as_deref())
        .and_then(|()| object(&body))
        .and_then(|o| {
            let path = o.get("cgi_path").and_then(Value::as_str).unwrap_or("");
            sh.lock().quota(path)
        })
        .map(|q: Quota| Answer {
            errcode: 0,
            errmsg: "ok",
            quota: Counts {
                daily_limit: q.daily_limit,
                used: q.used,
                remain: q.remain,
            },
            rate_limit: q.rate_limit.map(|call_count| Rate {
                call_count,
                refresh_second: 1,
            }),
        });
    answer(result)
}

async fn clear_quota(AxState(sh): Shr, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let result = authorized(&sh, q.as_deref())
        .and_then(|()| object(&body))
        .and_then(|o| {
            let appid = o.get("appid").and_then(Value::as_str);
            sh.lock().clear_quota(appid)
        })
        .map(|()| super::OkBody::OK);
    answer(result)
}
