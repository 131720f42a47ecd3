//! What arrived: `GET /` is a page with one phone per openid and the messages it received,
//! newest first, drawn from the template lists' titles and contents; `GET /sandbox/messages`
//! is the same as JSON. A marketer rehearsing a campaign watches it land (the page reloads
//! itself every 2 s; no script).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::validate::Endpoint;
use super::{Recorded, Shared, Shr, Templates, json_response, require};

/// Phones on the page, most recently messaged first, and messages per phone.
const PHONES: usize = 24;
const PER_PHONE: usize = 10;
/// A repeat of an accepted `client_msg_id` within this many ms is the same message.
const REPEAT_WINDOW_MS: u64 = 600_000;

/// A message that arrived: accepted (errcode 0), repeats of one `client_msg_id` once.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub touser: String,
    pub template_id: String,
    /// The endpoint it came through.
    pub path: String,
    pub title: Option<String>,
    /// The template's content filled, or `key: value` per data field when the template is
    /// not in the lists.
    pub lines: Vec<String>,
    /// Where a tap opens it.
    pub opens: Option<String>,
    /// Arrival, in ms since the sandbox started.
    pub at_ms: u64,
}

pub(super) fn routes(r: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    r.route("/", get(page).fallback(|| async { require(43001) }))
        .route(
            "/sandbox/messages",
            get(|AxState(sh): Shr| async move { json_response(&messages(&sh)) })
                .fallback(|| async { require(43001) }),
        )
}

/// The messages that arrived, newest first.
fn messages(sh: &Shared) -> Vec<Message> {
    let (records, templates) = {
        let st = sh.lock();
        (st.requests(), st.templates().clone())
    };
    arrived(&records, &templates)
}

/// Accepted sends of `records` (in arrival order) as messages, newest first.
pub(super) fn arrived(records: &[Recorded], templates: &Templates) -> Vec<Message> {
    // Template messages are laid out by the template list, the others by the subscribe
    // list (the same id may be in both: `wxpush init`'s placeholder is).
    let official: HashMap<&str, (&str, &str)> = templates
        .template_list
        .iter()
        .map(|t| {
            (
                t.template_id.as_str(),
                (t.title.as_str(), t.content.as_str()),
            )
        })
        .collect();
    let subscribe: HashMap<&str, (&str, &str)> = templates
        .data
        .iter()
        .map(|t| {
            (
                t.pri_tmpl_id.as_str(),
                (t.title.as_str(), t.content.as_str()),
            )
        })
        .collect();
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.errcode == 0) {
        let b = &r.body;
        let endpoint = Endpoint::ALL.into_iter().find(|e| e.path() == r.path);
        let touser = b["touser"].as_str().unwrap_or_default().to_owned();
        // The state de-duplicates `client_msg_id` on template sends only; so does this.
        if endpoint == Some(Endpoint::Template)
            && let Some(id) = b["client_msg_id"].as_str()
        {
            let key = (touser.clone(), id.to_owned());
            if seen
                .get(&key)
                .is_some_and(|&at| r.at_ms.saturating_sub(at) < REPEAT_WINDOW_MS)
            {
                continue;
            }
            seen.insert(key, r.at_ms);
        }
        let template_id = b["template_id"].as_str().unwrap_or_default().to_owned();
        let value = |k: &str| {
            b["data"][k]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let (own, other) = match endpoint {
            Some(Endpoint::Template | Endpoint::Wxopen) => (&official, &subscribe),
            _ => (&subscribe, &official),
        };
        let shape = own
            .get(template_id.as_str())
            .or_else(|| other.get(template_id.as_str()));
        let (title, lines) = match shape {
            Some((title, content)) => (Some((*title).to_owned()), fill(content, value)),
            None => (
                None,
                b["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| format!("{k}: {}", value(k)))
                    .collect(),
            ),
        };
        let text = |k: &str| b[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let mini = b["miniprogram"]["appid"].as_str().map(|a| {
            format!(
                "mini program {a} {}",
                b["miniprogram"]["pagepath"].as_str().unwrap_or("")
            )
        });
        let opens = match endpoint {
            Some(Endpoint::Template) => mini.or_else(|| text("url")),
            Some(Endpoint::Bizsend) => mini.or_else(|| text("page")),
            _ => text("page").map(|p| format!("mini program page {p}")),
        };
        out.push(Message {
            touser,
            template_id,
            path: r.path.clone(),
            title,
            lines,
            opens: opens.map(|o| o.trim_end().to_owned()),
            at_ms: r.at_ms,
        });
    }
    out.reverse();
    out
}

/// `content` with each `{{name.DATA}}` replaced by `value(name)`, as lines.
fn fill(content: &str, value: impl Fn(&str) -> String) -> Vec<String> {
    let mut out = String::new();
    let mut rest = content;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].split_once("}}") {
            Some((inside, tail)) => {
                out.push_str(&value(inside.trim().trim_end_matches(".DATA")));
                rest = tail;
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.lines().map(str::to_owned).collect()
}

async fn page(AxState(sh): Shr) -> Response {
    let messages = messages(&sh);
    // Phones in the order of their newest message; one lookup per message.
    let mut phones: Vec<(&str, Vec<&Message>)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        match at.get(m.touser.as_str()) {
            Some(&i) => phones[i].1.push(m),
            None => {
                at.insert(&m.touser, phones.len());
                phones.push((&m.touser, vec![m]));
            }
        }
    }
    let openids: HashSet<&str> = messages.iter().map(|m| m.touser.as_str()).collect();
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\"><title>wxpush sandbox: what arrived</title>\
         <style>{STYLE}</style></head><body><h1>wxpush sandbox</h1><p class=\"sum\">{} \
         messages arrived for {} openids{}</p><main>",
        messages.len(),
        openids.len(),
        if phones.len() > PHONES {
            format!(" (the {PHONES} most recent shown)")
        } else {
            String::new()
        }
    );
    if messages.is_empty() {
        html.push_str("<p class=\"empty\">Nothing yet: send a campaign here.</p>");
    }
    for (openid, list) in phones.iter().take(PHONES) {
        let _ = write!(
            html,
            "<section class=\"phone\"><p class=\"who\">{}</p><p class=\"bar\">服务通知</p>",
            esc(openid)
        );
        for m in list.iter().take(PER_PHONE) {
            html.push_str("<article>");
            let title = m.title.as_deref().unwrap_or(&m.template_id);
            let _ = write!(html, "<h2>{}</h2>", esc(title));
            for l in &m.lines {
                let _ = write!(html, "<p>{}</p>", esc(l));
            }
            if let Some(o) = &m.opens {
                let _ = write!(html, "<p class=\"opens\">→ {}</p>", esc(o));
            }
            let _ = write!(
                html,
                "<p class=\"at\">{:.1} s</p></article>",
                m.at_ms as f64 / 1000.0
            );
        }
        if list.len() > PER_PHONE {
            let _ = write!(
                html,
                "<p class=\"more\">… {} more</p>",
                list.len() - PER_PHONE
            );
        }
        html.push_str("</section>");
    }
    html.push_str("</main></body></html>\n");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response()
}

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_text(s)
}

const STYLE: &str = "\
body{margin:0;background:#f4f4f4;font-family:-apple-system,'PingFang SC','Noto Sans CJK SC',\
'WenQuanYi Micro Hei',sans-serif;color:#191919}h1{font-size:18px;margin:16px 16px 4px}\
.sum,.empty{color:#7f7f7f;margin:0 16px 12px;font-size:14px}\
main{display:flex;flex-wrap:wrap;gap:16px;padding:0 16px 16px}\
.phone{width:300px;background:#ededed;border:10px solid #222;border-radius:28px;padding:8px}\
.who{font-size:11px;color:#7f7f7f;margin:4px 8px;word-break:break-all}\
.bar{text-align:center;font-weight:600;margin:4px 0 8px}\
article{background:#fff;border-radius:8px;padding:10px 12px;margin:8px 0}\
article h2{font-size:15px;margin:0 0 6px}article p{margin:2px 0;font-size:13px}\
.opens{color:#576b95}.at,.more{color:#b2b2b2;font-size:11px!important;text-align:right}";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn rec(path: &str, body: Value, errcode: i64, at_ms: u64) -> Recorded {
        Recorded {
            path: path.into(),
            body,
            ignored: Vec::new(),
            errcode,
            at_ms,
        }
    }

    #[test]
    fn accepted_sends_once_newest_first_filled_from_the_template_lists() {
        let t = "/cgi-bin/message/template/send";
        let body = |to: &str, id: &str| {
            json!({"touser": to, "template_id": "n44_YbDNEqrrSEEvd8The8HpWYo1gWOVAXj7zIz4vHA",
                "client_msg_id": id, "url": "https://e.com",
                "data": {"first": {"value": "你好"}, "keyword1": {"value": "单词"},
                    "keyword2": {"value": "任务"}, "keyword3": {"value": "今天"},
                    "remark": {"value": "加油"}}})
        };
        let records = [
            rec(t, body("o1", "a"), 0, 1),
            rec(t, body("o1", "a"), 0, 2), // a client_msg_id repeat: the same message
            rec(t, body("o2", "b"), 40003, 3), // refused: never arrived
            rec(
                "/cgi-bin/message/subscribe/send",
                json!({"touser": "o2", "template_id": "unknown", "page": "pages/x",
                    "data": {"thing1": {"value": "好"}}}),
                0,
                4,
            ),
        ];
        let got = arrived(&records, &Templates::default());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].touser, "o2");
        assert_eq!(got[0].lines, ["thing1: 好"]);
        assert_eq!(got[0].opens.as_deref(), Some("mini program page pages/x"));
        assert_eq!(got[1].title.as_deref(), Some("学习提醒"));
        assert_eq!(got[1].lines[1], "课程名称：单词");
        assert_eq!(got[1].opens.as_deref(), Some("https://e.com"));
    }
}
