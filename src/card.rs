//! A message as the follower sees it: the card WeChat draws from the template's title and
//! content, filled with the message's values, and where a tap opens it. As text for the
//! terminal, and as one self-contained HTML page (no script, style sheet, font or image
//! from anywhere else) for a browser.

use std::fmt::Write as _;

use serde_json::Value;

use crate::campaign::{Campaign, Kind};
use crate::wechat::message::Outgoing;

/// One message, ready to show.
#[derive(Debug, Clone)]
pub struct Card {
    /// `message 1 · row 1 · OPENID`.
    pub heading: String,
    pub title: Option<String>,
    pub lines: Vec<Line>,
    /// Where a tap opens the message.
    pub opens: Option<String>,
    pub endpoint: Option<&'static str>,
    /// Why the row cannot be sent (then there is nothing else).
    pub error: Option<String>,
}

/// A line of a card: `label` (the template's words before the value) and the value.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub value: String,
    /// WeChat no longer shows it (`first`, `remark` of template messages since 2023-05-04).
    pub hidden: bool,
}

impl Card {
    /// The card of `msg`: the template's content filled when the campaign knows it, the data
    /// fields one per line otherwise.
    pub fn of(c: &Campaign, msg: &Outgoing, heading: String) -> Card {
        let body: Value = serde_json::from_slice(&msg.body).unwrap_or_default();
        let value = |name: &str| {
            body["data"][name]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let hidden = |names: &[&str]| {
            c.kind == Kind::Official && names.iter().any(|n| matches!(*n, "first" | "remark"))
        };
        let shape = c.shape.as_ref().filter(|s| s.content.is_some());
        let lines = match shape {
            Some(shape) => shape
                .fill(|n| format!("\u{1}{}\u{2}", value(n)))
                .into_iter()
                .map(|(names, line)| {
                    // The label is what the line says before its first value.
                    let (label, rest) = line.split_once('\u{1}').unwrap_or(("", &line));
                    Line {
                        label: label.to_owned(),
                        value: rest.replace(['\u{1}', '\u{2}'], ""),
                        hidden: hidden(&names),
                    }
                })
                .collect(),
            None => body["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| Line {
                    label: format!("{k}: "),
                    value: v["value"].as_str().unwrap_or_default().to_owned(),
                    hidden: hidden(&[k.as_str()]),
                })
                .collect(),
        };
        let text = |k: &str| {
            body[k]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mini = body["miniprogram"]["appid"].as_str().map(|appid| {
            let page = body["miniprogram"]["pagepath"].as_str().unwrap_or("");
            format!("mini program {appid} {page}").trim_end().to_owned()
        });
        let opens = match c.kind {
            // With both, WeChat opens the mini program.
            Kind::Official => mini.or_else(|| text("url")),
            Kind::OfficialSubscribe => mini.or_else(|| text("page")),
            Kind::Subscribe | Kind::MiniTemplate => {
                text("page").map(|p| format!("mini program page {p}"))
            }
        };
        Card {
            heading,
            title: shape.and_then(|s| s.title.clone()),
            lines,
            opens,
            endpoint: Some(msg.endpoint.path()),
            error: None,
        }
    }

    /// A row that cannot be sent, with why.
    pub fn invalid(heading: String, error: String) -> Card {
        Card {
            heading,
            title: None,
            lines: Vec::new(),
            opens: None,
            endpoint: None,
            error: Some(error),
        }
    }

    /// For the terminal.
    pub fn text(&self) -> String {
        let mut out = format!("── {} ──\n", self.heading);
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  ✗ not sendable: {e}");
            return out;
        }
        if let Some(t) = &self.title {
            let _ = writeln!(out, "  【{t}】");
        }
        for l in &self.lines {
            let note = if l.hidden {
                "   (not shown by WeChat since 2023-05-04)"
            } else {
                ""
            };
            let _ = writeln!(out, "  {}{}{note}", l.label, l.value);
        }
        if let Some(o) = &self.opens {
            let _ = writeln!(out, "  → opens {o}");
        }
        if let Some(e) = self.endpoint {
            let _ = writeln!(out, "  (POST {e})");
        }
        out
    }

    fn html(&self, out: &mut String, account: &str) {
        let _ = write!(
            out,
            "<section class=\"card\"><p class=\"meta\">{}</p>",
            esc(&self.heading)
        );
        if let Some(e) = &self.error {
            let _ = write!(
                out,
                "<p class=\"error\">not sendable: {}</p></section>",
                esc(e)
            );
            return;
        }
        let _ = write!(out, "<p class=\"account\">{}</p>", esc(account));
        if let Some(t) = &self.title {
            let _ = write!(out, "<h2>{}</h2>", esc(t));
        }
        out.push_str("<dl>");
        for l in &self.lines {
            let class = if l.hidden { " class=\"hidden\"" } else { "" };
            let _ = write!(
                out,
                "<div{class}><dt>{}</dt><dd>{}</dd></div>",
                esc(l.label.trim_end_matches(['：', ':', ' '])),
                esc(&l.value)
            );
        }
        out.push_str("</dl>");
        if let Some(o) = &self.opens {
            // WeChat's own words for the jump.
            let link = if o.starts_with("mini program") {
                "进入小程序查看"
            } else {
                "详情"
            };
            let _ = write!(
                out,
                "<p class=\"opens\"><span>{link}</span><span>›</span></p>"
            );
            let _ = write!(out, "<p class=\"target\">opens {}</p>", esc(o));
        }
        out.push_str("</section>");
    }
}

/// One HTML page of `cards`, styled like WeChat's service notifications, that needs nothing
/// from anywhere else.
pub fn page(title: &str, account: &str, cards: &[Card]) -> String {
    let mut out = String::with_capacity(4096 + cards.len() * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><header>服务通知 · {}</header>",
        esc(title),
        esc(title)
    );
    for c in cards {
        c.html(&mut out, account);
    }
    out.push_str(
        "<footer>Rendered by wxpush preview. Lines marked 已隐藏 are sent, but WeChat no \
         longer shows them.</footer></body></html>\n",
    );
    out
}

/// Text for HTML element content and (double-quoted) attribute values.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(s)
}

const STYLE: &str = "\
body{margin:0;background:#ededed;font-family:-apple-system,'PingFang SC','Noto Sans CJK SC',\
'Source Han Sans SC','WenQuanYi Micro Hei','Microsoft YaHei',sans-serif;color:#191919}\
header{background:#ededed;text-align:center;padding:14px;font-size:17px;font-weight:600}\
.card{background:#fff;margin:12px;border-radius:8px;padding:16px 16px 0;box-shadow:0 1px 2px #0001}\
.meta{color:#b2b2b2;font-size:12px;margin:0 0 8px}\
.account{color:#7f7f7f;font-size:14px;margin:0 0 8px}\
h2{font-size:17px;font-weight:600;margin:0 0 12px}\
dl{margin:0 0 12px}dl div{display:flex;font-size:15px;line-height:1.7}\
dt{color:#7f7f7f;min-width:5.5em;margin-right:8px}dd{margin:0;word-break:break-all}\
.hidden{opacity:.45}.hidden dd::after{content:' 已隐藏';font-size:12px;color:#b2b2b2}\
.opens{display:flex;justify-content:space-between;border-top:1px solid #eee;margin:0;padding:12px 0;\
font-size:15px}.target{color:#b2b2b2;font-size:12px;margin:-8px 0 0;padding-bottom:12px;word-break:break-all}\
.error{color:#fa5151;font-size:14px;padding-bottom:16px;margin:0}\
footer{color:#b2b2b2;font-size:12px;text-align:center;padding:8px 16px 24px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
        let card = Card::invalid("m".into(), "<script>".into());
        let html = page("t", "wx1", &[card]);
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        // Nothing is loaded from elsewhere.
        for outside in ["src=", "href=", "@import", "url("] {
            assert!(!html.contains(outside), "{outside}");
        }
    }
}
