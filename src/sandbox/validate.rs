//! Body validation for the four send endpoints of the sandbox.
//!
//! Everything here is pure: it looks at the parsed JSON body only and never at
//! sandbox state. [`check_body`] splits a body into
//! * a format verdict (47001 `data format error`, answered at step 7),
//! * the fields the stateful checks need (`touser`, `template_id`,
//!   `client_msg_id`, `form_id`),
//! * the endpoint-specific verdict that is answered at step 11 (47003 for
//!   subscribe data rules, 41028 for a bad `form_id`), and
//! * the fields WeChat ignores that the body carried.
//!
//! Two modes. By default the sandbox is as tolerant as WeChat: a field it does not know,
//! and an empty optional one (`"miniprogram_state": ""`, `"lang": ""`, `"color": ""`), is
//! accepted and listed as ignored, as real SDKs send them (co-wechat-api's `topColor`,
//! silenceper's empty strings, WxJava's `miniprogram.path`). [`Mode::Strict`] answers them
//! 47001/47003, so that a test of a client catches a body it did not mean to send.

use serde_json::{Map, Value};

/// How strictly bodies are checked (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// WeChat's tolerance: unknown and empty optional fields are ignored.
    #[default]
    Tolerant,
    /// Only the documented fields, each well formed.
    Strict,
}

/// The four send endpoints the sandbox emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    /// `/cgi-bin/message/template/send` (Official Account template message).
    Template,
    /// `/cgi-bin/message/wxopen/template/send` (retired Mini Program template message).
    Wxopen,
    /// `/cgi-bin/message/subscribe/send` (Mini Program subscribe message).
    Subscribe,
    /// `/cgi-bin/message/subscribe/bizsend` (Official Account subscribe notification).
    Bizsend,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 4] = [
        Endpoint::Template,
        Endpoint::Wxopen,
        Endpoint::Subscribe,
        Endpoint::Bizsend,
    ];

    /// The URL path of the endpoint.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Template => "/cgi-bin/message/template/send",
            Endpoint::Wxopen => "/cgi-bin/message/wxopen/template/send",
            Endpoint::Subscribe => "/cgi-bin/message/subscribe/send",
            Endpoint::Bizsend => "/cgi-bin/message/subscribe/bizsend",
        }
    }

    /// The documented top-level fields (wechat-api.md §§2–4A).
    fn known_fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::Template => &[
                "touser",
                "template_id",
                "url",
                "miniprogram",
                "client_msg_id",
                "data",
            ],
            Endpoint::Wxopen => &[
                "touser",
                "template_id",
                "page",
                "form_id",
                "data",
                "emphasis_keyword",
                "color",
            ],
            Endpoint::Subscribe => &[
                "touser",
                "template_id",
                "page",
                "data",
                "miniprogram_state",
                "lang",
            ],
            Endpoint::Bizsend => &["touser", "template_id", "page", "miniprogram", "data"],
        }
    }
}

/// An error answer: errcode plus errmsg (without the ` rid: …` suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) code: i64,
    pub(crate) msg: String,
}

impl Reject {
    pub(crate) fn new(code: i64, msg: impl Into<String>) -> Reject {
        Reject {
            code,
            msg: msg.into(),
        }
    }

    /// 47001 `data format error: <detail>`.
    pub(crate) fn format(detail: impl std::fmt::Display) -> Reject {
        Reject::new(47001, format!("data format error: {detail}"))
    }

    /// 44002 `empty post data`.
    pub(crate) fn empty_body() -> Reject {
        Reject::new(44002, "empty post data")
    }

    /// 40001: a token that is not (or no longer) one of this account's latest.
    pub(crate) fn not_latest() -> Reject {
        Reject::new(
            40001,
            "invalid credential, access_token is invalid or not latest",
        )
    }

    /// 45009: a daily quota is used up.
    pub(crate) fn daily_quota() -> Reject {
        Reject::new(45009, "reach max api daily quota limit")
    }

    /// 47003 `argument invalid! <detail>`.
    fn argument(detail: impl std::fmt::Display) -> Reject {
        Reject::new(47003, format!("argument invalid! {detail}"))
    }
}

/// What the stateful part of the send pipeline needs from a well-formed body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SendFields {
    /// `touser`; `None` when absent, null or empty (answered 40003).
    pub(crate) touser: Option<String>,
    /// `template_id`; `None` when absent, null or empty (answered 40037).
    pub(crate) template_id: Option<String>,
    /// `client_msg_id` (template/send only), when present and non-empty.
    pub(crate) client_msg_id: Option<String>,
    /// `form_id` (wxopen only), when present and non-empty.
    pub(crate) form_id: Option<String>,
    /// Endpoint rule violation answered at step 11, before any state check.
    pub(crate) endpoint_error: Option<Reject>,
    /// Fields the body carried that WeChat ignores (tolerant mode), as dotted paths.
    pub(crate) ignored: Vec<String>,
}

/// Maximum length of `client_msg_id` in bytes.
const CLIENT_MSG_ID_MAX: usize = 64;

/// Checks a parsed send body. `Err` is a 47001 format error (step 7).
pub(crate) fn check_body(
    endpoint: Endpoint,
    body: &Value,
    mode: Mode,
) -> Result<SendFields, Reject> {
    let Value::Object(obj) = body else {
        return Err(Reject::format("body must be a JSON object"));
    };
    let mut fields = SendFields {
        touser: non_empty(opt_str(obj, "touser")?),
        template_id: non_empty(opt_str(obj, "template_id")?),
        ..SendFields::default()
    };
    let mut seen = Seen {
        mode,
        ignored: &mut fields.ignored,
    };
    seen.unknown("", obj, endpoint.known_fields())?;
    match endpoint {
        Endpoint::Template => {
            if let Some(url) = seen.optional(obj, "", "url")? {
                web_url("url", url)?;
            }
            miniprogram(obj, &mut seen)?;
            if let Some(id) = seen.optional(obj, "", "client_msg_id")? {
                if id.len() > CLIENT_MSG_ID_MAX {
                    return Err(Reject::format(format_args!(
                        "field `client_msg_id` longer than {CLIENT_MSG_ID_MAX} bytes"
                    )));
                }
                fields.client_msg_id = Some(id.to_owned());
            }
            check_data_shape(required_data(obj)?, &mut seen)?;
        }
        Endpoint::Wxopen => {
            seen.optional(obj, "", "page")?;
            opt_str(obj, "emphasis_keyword")?;
            opt_str(obj, "color")?;
            if let Some(data) = opt_obj(obj, "data")? {
                check_data_shape(data, &mut seen)?;
            }
            let form_id = opt_str(obj, "form_id")?;
            match form_id {
                None | Some("") => {
                    fields.endpoint_error = Some(Reject::new(41028, "invalid form id"));
                }
                Some(f) if f.starts_with("expired") => {
                    fields.endpoint_error = Some(Reject::new(41028, "invalid form id"));
                }
                Some(f) => fields.form_id = Some(f.to_owned()),
            }
        }
        Endpoint::Subscribe => {
            seen.optional(obj, "", "page")?;
            let state = seen.optional(obj, "", "miniprogram_state")?;
            let lang = seen.optional(obj, "", "lang")?;
            let data = required_data(obj)?;
            check_data_shape(data, &mut seen)?;
            fields.endpoint_error = subscribe_rules(data, state, lang).err();
        }
        Endpoint::Bizsend => {
            // `page` is the web page to open (wechat-api.md §4A); the tolerant sandbox, like
            // WeChat as far as anyone has reported, does not look inside it.
            if let Some(page) = seen.optional(obj, "", "page")?
                && mode == Mode::Strict
            {
                web_url("page", page)?;
            }
            miniprogram(obj, &mut seen)?;
            let data = required_data(obj)?;
            check_data_shape(data, &mut seen)?;
            fields.endpoint_error = subscribe_rules(data, None, None).err();
        }
    }
    Ok(fields)
}

/// Undocumented and empty optional fields, judged by the [`Mode`]: refused when strict,
/// collected in `ignored` when tolerant.
struct Seen<'a> {
    mode: Mode,
    ignored: &'a mut Vec<String>,
}

impl Seen<'_> {
    /// Every key of `obj` not in `known` (at `prefix`, e.g. `miniprogram.`).
    fn unknown(
        &mut self,
        prefix: &str,
        obj: &Map<String, Value>,
        known: &[&str],
    ) -> Result<(), Reject> {
        for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            if self.mode == Mode::Strict {
                return Err(Reject::format(format_args!("unknown field `{prefix}{k}`")));
            }
            self.ignored.push(format!("{prefix}{k}"));
        }
        Ok(())
    }

    /// An optional string field (at `prefix`): an empty one is taken as absent when
    /// tolerant, and refused when strict.
    fn optional<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        prefix: &str,
        key: &str,
    ) -> Result<Option<&'v str>, Reject> {
        let v = opt_str(obj, key).map_err(|_| wrong_type(&format!("{prefix}{key}"), "a string"))?;
        match v {
            Some("") if self.mode == Mode::Strict => Err(Reject::format(format_args!(
                "field `{prefix}{key}` is empty"
            ))),
            Some("") => {
                self.ignored.push(format!("{prefix}{key}"));
                Ok(None)
            }
            v => Ok(v),
        }
    }
}

/// `url` (template) and `page` (bizsend, strict): a web address.
fn web_url(field: &str, url: &str) -> Result<(), Reject> {
    let scheme = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if scheme.starts_with("http://") || scheme.starts_with("https://") {
        Ok(())
    } else {
        Err(Reject::format(format_args!(
            "field `{field}` must start with http:// or https://"
        )))
    }
}

/// `miniprogram: {appid, pagepath}` of the two Official Account endpoints.
fn miniprogram(obj: &Map<String, Value>, seen: &mut Seen<'_>) -> Result<(), Reject> {
    let Some(mp) = opt_obj(obj, "miniprogram")? else {
        return Ok(());
    };
    seen.unknown("miniprogram.", mp, &["appid", "pagepath"])?;
    seen.optional(mp, "miniprogram.", "appid")?;
    seen.optional(mp, "miniprogram.", "pagepath")?;
    Ok(())
}

/// `data`, which every endpoint but the retired one requires.
fn required_data(obj: &Map<String, Value>) -> Result<&Map<String, Value>, Reject> {
    opt_obj(obj, "data")?.ok_or_else(|| Reject::format("missing field `data`"))
}

/// 47001 for a field of the wrong JSON type.
fn wrong_type(field: &str, expected: &str) -> Reject {
    Reject::format(format_args!("field `{field}` must be {expected}"))
}

/// An optional string field; null counts as absent.
fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Reject> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(key, "a string")),
    }
}

/// An optional object field; null counts as absent.
fn opt_obj<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, Reject> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(wrong_type(key, "an object")),
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `data` must map each key to `{"value": string, "color"?: "#RRGGBB"}`. Tolerant: other
/// keys, and a colour that is not `#RRGGBB` (WeChat ignores colours), are ignored.
fn check_data_shape(data: &Map<String, Value>, seen: &mut Seen<'_>) -> Result<(), Reject> {
    for (key, item) in data {
        let Value::Object(item) = item else {
            return Err(wrong_type(&format!("data.{key}"), "an object"));
        };
        seen.unknown(&format!("data.{key}."), item, &["value", "color"])?;
        match item.get("value") {
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => {
                return Err(Reject::format(format_args!(
                    "missing field `data.{key}.value`"
                )));
            }
            Some(_) => return Err(wrong_type(&format!("data.{key}.value"), "a string")),
        }
        match item.get("color") {
            None | Some(Value::Null) => {}
            Some(Value::String(c)) if is_hex_color(c) => {}
            Some(Value::String(_)) if seen.mode == Mode::Tolerant => {
                seen.ignored.push(format!("data.{key}.color"));
            }
            Some(_) => return Err(wrong_type(&format!("data.{key}.color"), "\"#RRGGBB\"")),
        }
    }
    Ok(())
}

fn is_hex_color(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 7 && b[0] == b'#' && b[1..].iter().all(u8::is_ascii_hexdigit)
}

/// Subscribe-message rules (wechat-api.md §4): 47003 on the first violation.
fn subscribe_rules(
    data: &Map<String, Value>,
    state: Option<&str>,
    lang: Option<&str>,
) -> Result<(), Reject> {
    if let Some(s) = state
        && !matches!(s, "developer" | "trial" | "formal")
    {
        return Err(Reject::argument("miniprogram_state invalid"));
    }
    if let Some(l) = lang
        && !matches!(l, "zh_CN" | "en_US" | "zh_HK" | "zh_TW")
    {
        return Err(Reject::argument("lang invalid"));
    }
    for (key, item) in data {
        // check_data_shape ran first, so every value is a string; be defensive anyway.
        let value = item.get("value").and_then(Value::as_str).unwrap_or("");
        if value.is_empty() {
            return Err(Reject::argument(format_args!("data.{key}.value is empty")));
        }
        if !subscribe_value_ok(key_type(key), value) {
            return Err(Reject::argument(format_args!("data.{key}.value invalid")));
        }
    }
    Ok(())
}

/// The type prefix of a data key: the key without its trailing digits
/// (`thing1` -> `thing`, `character_string08` -> `character_string`).
pub(crate) fn key_type(key: &str) -> &str {
    key.trim_end_matches(|c: char| c.is_ascii_digit())
}

/// A CJK ideograph (what the WeChat tables call a Chinese character): Unified Ideographs
/// and extension A, the compatibility ideographs, and planes 2 and 3.
pub(crate) fn is_chinese(c: char) -> bool {
    let u = c as u32;
    (0x3400..=0x4DBF).contains(&u)
        || (0x4E00..=0x9FFF).contains(&u)
        || (0xF900..=0xFAFF).contains(&u)
        || (0x20000..=0x2FA1F).contains(&u)
        || (0x30000..=0x323AF).contains(&u)
}

/// Whether a non-empty `value` satisfies the rule of subscribe key type `ty`
/// (wechat-api.md §4.2). Written apart from the client's `wechat::fields` on purpose: the
/// two are compared on a shared table, so a client bug cannot hide in a shared helper.
pub(crate) fn subscribe_value_ok(ty: &str, value: &str) -> bool {
    let len = value.chars().count();
    match ty {
        "thing" | "const" => len <= 20,
        "short_thing" => len <= 5,
        "number" => len <= 32 && decimal(value),
        "letter" => len <= 32 && value.chars().all(|c| c.is_ascii_alphabetic()),
        "symbol" => {
            len <= 5
                && value
                    .chars()
                    .all(|c| !c.is_alphanumeric() && !c.is_whitespace())
        }
        "character_string" => len <= 32 && !value.chars().any(is_chinese),
        "phone_number" => {
            len <= 17
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_punctuation())
        }
        "car_number" => len <= 8 && plate(value),
        "name" => {
            if value.chars().any(is_chinese) {
                len <= 10
            } else {
                len <= 20
            }
        }
        "phrase" => len <= 5 && value.chars().all(is_chinese),
        "time" => either(value, |p| moment(p, false)),
        "date" => either(value, |p| moment(p, true)),
        "amount" => money(value),
        // enum, enum_string and unknown types: only non-empty.
        _ => true,
    }
}

/// Digits, optionally a point followed by more digits.
fn decimal(v: &str) -> bool {
    let mut seen_point = false;
    let mut run = 0;
    for b in v.bytes() {
        match b {
            b'0'..=b'9' => run += 1,
            b'.' if !seen_point && run > 0 => {
                seen_point = true;
                run = 0;
            }
            _ => return false,
        }
    }
    run > 0
}

/// First and last letter/digit or Chinese, everything between letters and digits.
fn plate(v: &str) -> bool {
    let n = v.chars().count();
    n >= 2
        && v.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || ((i == 0 || i == n - 1) && is_chinese(c)))
}

/// Optional currency sign, digits (≤ 10 before the point), optional `元`.
fn money(v: &str) -> bool {
    let mut rest = v.strip_suffix('元').unwrap_or(v);
    for sign in ["¥", "￥", "$", "€", "£", "₩", "₹", "₽"] {
        if let Some(r) = rest.strip_prefix(sign) {
            rest = r;
            break;
        }
    }
    let before_point = rest.find('.').unwrap_or(rest.len());
    decimal(rest) && before_point <= 10
}

/// A moment, or two joined by `~`.
fn either(v: &str, one: impl Fn(&str) -> bool) -> bool {
    let halves: Vec<&str> = v.split('~').map(str::trim).collect();
    matches!(halves.len(), 1 | 2) && halves.iter().all(|h| one(h))
}

/// `[day] [clock]` with a day when `day_needed`, a clock otherwise (both allowed).
fn moment(p: &str, day_needed: bool) -> bool {
    let words: Vec<&str> = p.split(' ').collect();
    match words[..] {
        [w] if w.contains(':') => !day_needed && clock(w),
        [w] => day_needed && day(w),
        [d, c] => day(d) && clock(c),
        _ => false,
    }
}

/// `2019年10月1日`, `2019-10-01`, `2019/10/1`.
fn day(d: &str) -> bool {
    let cn = d.ends_with('日') && d.contains('年') && d.contains('月');
    let fields: Vec<&str> = if cn {
        d.trim_end_matches('日').split(['年', '月']).collect()
    } else {
        d.split(['-', '/']).collect()
    };
    let within = |s: &str, lo: u32, hi: u32, width: std::ops::RangeInclusive<usize>| {
        width.contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| n >= lo && n <= hi)
    };
    fields.len() == 3
        && within(fields[0], 1000, 9999, 4..=4)
        && within(fields[1], 1, 12, 1..=2)
        && within(fields[2], 1, 31, 1..=2)
}

/// `H:MM` or `HH:MM`, with optional `:SS`.
fn clock(c: &str) -> bool {
    let f: Vec<&str> = c.split(':').collect();
    let ok = |s: &str, hi: u32, width: std::ops::RangeInclusive<usize>| {
        width.contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| n <= hi)
    };
    matches!(f.len(), 2 | 3)
        && ok(f[0], 23, 1..=2)
        && ok(f[1], 59, 2..=2)
        && f.get(2).is_none_or(|s| ok(s, 59, 2..=2))
}

/// The differential test: the client's rules and this oracle against one table of values.
/// It is the only place the sandbox's code meets the client's, and only in tests.
#[cfg(test)]
mod value_rules_agree {
    use super::{is_chinese, is_hex_color, subscribe_value_ok};
    use crate::wechat::fields;

    const TABLE: &str = include_str!("../../tests/data/value-rules.tsv");

    #[test]
    fn client_and_sandbox_agree_with_the_table() {
        let mut rows = 0;
        let mut wrong = Vec::new();
        for line in TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            let [ty, value, valid, why] = f[..] else {
                panic!("not 4 columns: {line:?}");
            };
            let want = match valid {
                "yes" => true,
                "no" => false,
                other => panic!("valid? is yes or no, not {other:?}"),
            };
            let client = fields::check(&format!("{ty}1"), value);
            let sandbox = subscribe_value_ok(ty, value);
            if client.is_ok() != want || sandbox != want {
                wrong.push(format!(
                    "{ty} {value:?} ({why}): table {valid}, client {client:?}, sandbox {sandbox}"
                ));
            }
            rows += 1;
        }
        assert!(rows >= 80, "{rows} rows");
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn chinese_and_colours_are_the_same_sets_on_both_sides() {
        for c in [
            '中', '㐀', '鿿', '豈', '𠮷', '𰀀', 'a', '1', '，', '。', 'ア', '한',
        ] {
            assert_eq!(fields::is_chinese(c), is_chinese(c), "{c}");
        }
        for c in [
            "#173177", "#ABCDEF", "#abcdeg", "173177", "#1731777", "#FFF",
        ] {
            assert_eq!(crate::campaign::is_color(c), is_hex_color(c), "{c}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The strict checks (the tolerant ones have their own tests below).
    fn check_body(endpoint: Endpoint, body: &Value) -> Result<SendFields, Reject> {
        super::check_body(endpoint, body, Mode::Strict)
    }

    fn tolerant(endpoint: Endpoint, body: Value) -> Result<SendFields, Reject> {
        super::check_body(endpoint, &body, Mode::Tolerant)
    }

    /// What real SDKs send (issue 12 §3): co-wechat-api's `topColor`, silenceper's empty
    /// `miniprogram_state`/`lang`, WxJava's `miniprogram.path`, an empty colour. WeChat
    /// accepts them; so does the tolerant sandbox, listing them as ignored. Strict refuses.
    #[test]
    fn tolerant_mode_accepts_what_sdks_send() {
        let template = json!({
            "touser": "o1", "template_id": "t", "topColor": "#FF0000",
            "miniprogram": {"appid": "wxmini", "path": "index"},
            "data": {"keyword1": {"value": "x", "color": ""}}
        });
        let f = tolerant(Endpoint::Template, template.clone()).expect("tolerated");
        assert_eq!(
            f.ignored,
            ["topColor", "miniprogram.path", "data.keyword1.color"]
        );
        assert_eq!(
            check_body(Endpoint::Template, &template).unwrap_err().code,
            47001
        );

        let subscribe = json!({
            "touser": "o1", "template_id": "t", "page": "", "miniprogram_state": "",
            "lang": "", "data": {"thing1": {"value": "好", "color": ""}}
        });
        let f = tolerant(Endpoint::Subscribe, subscribe.clone()).expect("tolerated");
        assert_eq!(f.endpoint_error, None);
        assert_eq!(
            f.ignored,
            ["page", "miniprogram_state", "lang", "data.thing1.color"]
        );
        let strict = check_body(Endpoint::Subscribe, &subscribe).unwrap_err();
        assert_eq!(strict, Reject::format("field `page` is empty"));
        // Upper-case schemes are web addresses too (wxpush's `check` accepts them).
        let upper = json!({"touser": "o", "template_id": "t", "url": "HTTPS://EXAMPLE.COM",
            "data": {"k": {"value": "v"}}});
        assert!(check_body(Endpoint::Template, &upper).is_ok());

        // Tolerance is not blindness: wrong types and broken value rules still fail.
        let e = tolerant(
            Endpoint::Template,
            json!({"touser": "o", "data": {"k": {"value": 1}}}),
        );
        assert_eq!(e.unwrap_err().code, 47001);
        let f = tolerant(
            Endpoint::Subscribe,
            json!({"touser": "o", "template_id": "t", "lang": "fr", "data": {"thing1": {"value": "x"}}}),
        )
        .unwrap();
        assert_eq!(f.endpoint_error.map(|e| e.code), Some(47003));
    }

    #[test]
    fn bizsend_bodies() {
        let body = json!({
            "touser": "o1", "template_id": "t", "page": "https://example.com/a",
            "miniprogram": {"appid": "wxmini", "pagepath": "index"},
            "data": {"thing1": {"value": "好"}, "time2": {"value": "15:01"}}
        });
        let f = check_body(Endpoint::Bizsend, &body).expect("valid");
        assert_eq!(f.endpoint_error, None);
        assert_eq!(f.client_msg_id, None);
        let mut bad = body.clone();
        bad["data"]["time2"]["value"] = json!("明天");
        let f = check_body(Endpoint::Bizsend, &bad).expect("format ok");
        assert_eq!(
            f.endpoint_error,
            Some(Reject::new(
                47003,
                "argument invalid! data.time2.value invalid"
            ))
        );
        // A client_msg_id is not part of bizsend: strict refuses it, tolerant ignores it.
        let mut with_id = body.clone();
        with_id["client_msg_id"] = json!("x");
        assert_eq!(
            check_body(Endpoint::Bizsend, &with_id).unwrap_err().code,
            47001
        );
        assert_eq!(
            tolerant(Endpoint::Bizsend, with_id).unwrap().ignored,
            ["client_msg_id"]
        );
        let mut not_web = body;
        not_web["page"] = json!("pages/index");
        assert_eq!(
            check_body(Endpoint::Bizsend, &not_web).unwrap_err().code,
            47001
        );
        assert!(tolerant(Endpoint::Bizsend, not_web).is_ok());
    }

    fn template_body() -> Value {
        json!({
            "touser": "o_user1",
            "template_id": "tpl1",
            "url": "https://example.com/x",
            "miniprogram": {"appid": "wxmini", "pagepath": "index?x=1"},
            "client_msg_id": "run1-row1",
            "data": {"keyword1": {"value": "巧克力", "color": "#173177"}}
        })
    }

    #[test]
    fn template_body_ok() {
        let f = check_body(Endpoint::Template, &template_body()).expect("valid body");
        assert_eq!(f.touser.as_deref(), Some("o_user1"));
        assert_eq!(f.template_id.as_deref(), Some("tpl1"));
        assert_eq!(f.client_msg_id.as_deref(), Some("run1-row1"));
        assert_eq!(f.endpoint_error, None);
    }

    #[test]
    fn template_format_errors_name_the_field() {
        let mut b = template_body();
        b["color"] = json!("#FF0000");
        let e = check_body(Endpoint::Template, &b).expect_err("unknown field");
        assert_eq!(e.code, 47001);
        assert_eq!(e.msg, "data format error: unknown field `color`");

        let mut b = template_body();
        b["touser"] = json!(12);
        let e = check_body(Endpoint::Template, &b).expect_err("wrong type");
        assert_eq!(e.code, 47001);
        assert!(e.msg.contains("`touser`"), "{}", e.msg);

        let mut b = template_body();
        b["url"] = json!("ftp://x");
        assert_eq!(
            check_body(Endpoint::Template, &b).map_err(|e| e.code),
            Err(47001)
        );

        let mut b = template_body();
        b["miniprogram"]["path"] = json!("x");
        assert_eq!(
            check_body(Endpoint::Template, &b).map_err(|e| e.code),
            Err(47001)
        );

        let mut b = template_body();
        b["client_msg_id"] = json!("x".repeat(65));
        assert_eq!(
            check_body(Endpoint::Template, &b).map_err(|e| e.code),
            Err(47001)
        );

        let mut b = template_body();
        b["data"]["keyword1"]["color"] = json!("red");
        assert_eq!(
            check_body(Endpoint::Template, &b).map_err(|e| e.code),
            Err(47001)
        );

        let mut b = template_body();
        b["data"]["keyword1"] = json!({"color": "#000000"});
        assert_eq!(
            check_body(Endpoint::Template, &b).map_err(|e| e.code),
            Err(47001)
        );

        let mut b = template_body();
        b.as_object_mut().map(|o| o.remove("data"));
        assert_eq!(
            check_body(Endpoint::Template, &b).map_err(|e| e.code),
            Err(47001)
        );

        assert_eq!(
            check_body(Endpoint::Template, &json!([1])).map_err(|e| e.code),
            Err(47001)
        );
    }

    #[test]
    fn missing_touser_is_not_a_format_error() {
        let f = check_body(Endpoint::Template, &json!({"touser": "", "data": {}})).expect("ok");
        assert_eq!(f.touser, None);
        assert_eq!(f.template_id, None);
    }

    #[test]
    fn wxopen_form_id_rules() {
        let b = |form: Value| json!({"touser": "o1", "template_id": "t", "form_id": form});
        let f = check_body(Endpoint::Wxopen, &b(json!("fid1"))).expect("ok");
        assert_eq!(f.form_id.as_deref(), Some("fid1"));
        assert_eq!(f.endpoint_error, None);
        for bad in [json!(""), json!(null), json!("expired-123")] {
            let f = check_body(Endpoint::Wxopen, &b(bad)).expect("format ok");
            assert_eq!(f.endpoint_error.map(|e| e.code), Some(41028));
        }
        let f = check_body(
            Endpoint::Wxopen,
            &json!({"touser": "o1", "template_id": "t"}),
        )
        .expect("format ok");
        assert_eq!(f.endpoint_error.map(|e| e.code), Some(41028));
        assert_eq!(
            check_body(Endpoint::Wxopen, &b(json!(5))).map_err(|e| e.code),
            Err(47001)
        );
    }

    fn sub(data: Value) -> Option<Reject> {
        check_body(
            Endpoint::Subscribe,
            &json!({"touser": "o1", "template_id": "t", "data": data}),
        )
        .expect("format ok")
        .endpoint_error
    }

    #[test]
    fn subscribe_messages() {
        assert_eq!(sub(json!({"thing1": {"value": "好"}})), None);
        assert_eq!(
            sub(json!({"thing1": {"value": ""}})),
            Some(Reject::new(
                47003,
                "argument invalid! data.thing1.value is empty"
            ))
        );
        assert_eq!(
            sub(json!({"thing18": {"value": "一二三四五六七八九十一二三四五六七八九十一"}})),
            Some(Reject::new(
                47003,
                "argument invalid! data.thing18.value invalid"
            ))
        );
        let e = check_body(
            Endpoint::Subscribe,
            &json!({"touser": "o1", "template_id": "t", "data": {}, "lang": "fr"}),
        )
        .expect("format ok")
        .endpoint_error;
        assert_eq!(e.map(|e| e.code), Some(47003));
        let e = check_body(
            Endpoint::Subscribe,
            &json!({"touser": "o1", "template_id": "t", "data": {}, "miniprogram_state": "beta"}),
        )
        .expect("format ok")
        .endpoint_error;
        assert_eq!(e.map(|e| e.code), Some(47003));
    }

    #[test]
    fn key_types() {
        assert_eq!(key_type("thing1"), "thing");
        assert_eq!(key_type("character_string8"), "character_string");
        assert_eq!(key_type("number01"), "number");
        assert_eq!(key_type("phrase"), "phrase");
    }

    #[test]
    fn subscribe_value_rules() {
        let ok = |t: &str, v: &str| subscribe_value_ok(t, v);
        assert!(ok("thing", &"字".repeat(20)));
        assert!(!ok("thing", &"字".repeat(21)));
        assert!(ok("number", "12.50"));
        assert!(!ok("number", "1.2.3"));
        assert!(!ok("number", "12a"));
        assert!(!ok("number", &"1".repeat(33)));
        assert!(ok("letter", "abcXYZ"));
        assert!(!ok("letter", "abc1"));
        assert!(ok("symbol", "%$#"));
        assert!(!ok("symbol", "%%%%%%"));
        assert!(!ok("symbol", "a"));
        assert!(ok("character_string", "ORDER-2024-0001"));
        assert!(!ok("character_string", "订单1"));
        assert!(!ok("character_string", &"x".repeat(33)));
        assert!(ok("phone_number", "+86-0766-66888866"));
        assert!(!ok("phone_number", "+86-0766-668888661"));
        assert!(!ok("phone_number", "call me"));
        assert!(ok("car_number", "粤A8Z888挂"));
        assert!(!ok("car_number", "粤A8Z888挂12"));
        assert!(ok("name", &"张".repeat(10)));
        assert!(!ok("name", &"张".repeat(11)));
        assert!(!ok("name", "张abcdefghij"));
        assert!(ok("name", &"a".repeat(20)));
        assert!(!ok("name", &"a".repeat(21)));
        assert!(ok("phrase", "配送中"));
        assert!(!ok("phrase", "配送中abc"));
        assert!(!ok("phrase", "一二三四五六"));
        assert!(ok("time", "2019年10月1日 15:01"));
        assert!(ok("amount", "¥99.00"));
        assert!(ok("enum_string", "anything"));
        assert!(ok("whatever", &"x".repeat(500)));
    }
}
