//! Campaign files: YAML in, a validated [`Campaign`] out.
//!
//! This module owns the campaign format (every key, its default, its rules), the merge with a
//! reusable message template from `templates/NAME.yaml`, and the checks that need no recipient
//! row (target-specific keys, colours, static URLs). Template *strings* stay strings here: they
//! are compiled by `render`, which also knows the CSV columns.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::account;
use crate::timezone::UtcOffset;
use crate::wechat::message::Endpoint;
pub use crate::wechat::token::{TokenApi, TokenSource};
use crate::wechat::{Proxy, looks_like_appid};

pub use crate::account::DEFAULT_SECRET_ENV;
/// Messages per second when the campaign sets no `rate`: well under anything WeChat is known
/// to throttle (it documents no per-second limit, wechat-api.md §6).
pub const DEFAULT_RATE: u32 = 50;
/// Requests in flight when the campaign sets no `concurrency`: covers `DEFAULT_RATE` at an
/// RTT of up to 160 ms (Little's law: 50/s × 0.16 s = 8).
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The most requests in flight a campaign or `--concurrency` may ask for: far above what
/// any WeChat account's rate needs (1,024 at 200 ms is 5,000/s), and low enough that the
/// dispatcher's queue (4 × concurrency) stays small.
pub const MAX_CONCURRENCY: u32 = 1024;
/// Fraction of recent sends failing for non-recipient reasons that aborts the run.
pub const DEFAULT_ERROR_THRESHOLD: f64 = 0.5;

/// Where a campaign sends: an Official Account template message or a Mini Program message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Official,
    Mini,
}

/// Which Official Account API an `official` campaign uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfficialApi {
    /// `template/send`, template messages.
    #[default]
    Template,
    /// `subscribe/bizsend`, subscribe notifications (公众号订阅通知, since 2021).
    Subscribe,
}

/// Which Mini Program API a `mini` campaign uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MiniApi {
    /// `subscribe/send`, the current API.
    #[default]
    Subscribe,
    /// `wxopen/template/send` with a `form_id` per recipient (retired by WeChat in 2020).
    Template,
}

/// The message kind, which fixes the endpoint and the body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Official Account template message.
    Official,
    /// Official Account subscribe notification (`bizsend`): typed keys like a Mini Program
    /// subscribe message, a web `url` or a `miniprogram` jump like a template message.
    OfficialSubscribe,
    /// Mini Program subscribe message.
    Subscribe,
    /// Mini Program legacy template message (needs a `form_id` column).
    MiniTemplate,
}

impl Kind {
    /// The endpoint its messages are POSTed to.
    pub fn endpoint(self) -> Endpoint {
        match self {
            Kind::Official => Endpoint::TemplateSend,
            Kind::OfficialSubscribe => Endpoint::BizSend,
            Kind::Subscribe => Endpoint::SubscribeSend,
            Kind::MiniTemplate => Endpoint::WxopenTemplateSend,
        }
    }

    /// Subscribe messages and notifications: WeChat refuses an empty value in any field
    /// (47003 "value is empty"), typed or not.
    pub fn is_subscribe(self) -> bool {
        matches!(self, Kind::Subscribe | Kind::OfficialSubscribe)
    }

    /// Whether the body carries a `client_msg_id`, so WeChat delivers a repeat at most once
    /// within its window (only template messages have one).
    pub fn deduplicates(self) -> bool {
        self == Kind::Official
    }
}

/// One data field: a Tera template for the value and an optional fixed colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub value: String,
    pub color: Option<String>,
    /// `truncate: true`: an over-long value is shortened to its type's limit with "…".
    pub truncate: bool,
    /// The template file (`templates/NAME.yaml`) the field comes from; `None`: the campaign.
    pub from: Option<PathBuf>,
}

impl FieldSpec {
    /// The file that defines the field, for messages about it.
    pub fn file<'a>(&'a self, campaign: &'a Campaign) -> &'a Path {
        self.from.as_deref().unwrap_or(&campaign.path)
    }
}

/// A template as registered in the WeChat backend (what the template list APIs return): its
/// title and its content, one line per field, `{{name.DATA}}` where a value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub title: Option<String>,
    pub content: Option<String>,
}

impl Shape {
    /// The field names of `content`, in order: the `name` of each `{{name.DATA}}`.
    pub fn keys(&self) -> Vec<&str> {
        // The names `fill` finds, line by line: one reading of the placeholders.
        let mut keys = Vec::new();
        for (names, _) in self.fill(|_| String::new()) {
            for name in names.into_iter().filter(|n| !n.is_empty()) {
                if !keys.contains(&name) {
                    keys.push(name);
                }
            }
        }
        keys
    }

    /// A `{{…` of the content that is not a `{{name.DATA}}` placeholder (a typo such as
    /// `{{thing1.DAT}}`, a missing `}}`), if there is one.
    pub fn broken_placeholder(&self) -> Option<String> {
        let content = self.content.as_deref()?;
        let ok = |inside: &str| {
            inside.trim().strip_suffix(".DATA").is_some_and(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        };
        let mut rest = content;
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            match after.split_once("}}") {
                Some((inside, tail)) if ok(inside) && !inside.contains("{{") => rest = tail,
                Some((inside, _)) => return Some(format!("{{{{{inside}}}}}")),
                None => {
                    return Some(
                        after
                            .lines()
                            .next()
                            .map_or(String::new(), |l| format!("{{{{{l}")),
                    );
                }
            }
        }
        None
    }

    /// The content's lines, each with the fields it shows, and filled by `value(name)`.
    pub fn fill(&self, value: impl Fn(&str) -> String) -> Vec<(Vec<&str>, String)> {
        let Some(content) = &self.content else {
            return Vec::new();
        };
        content
            .lines()
            .map(|line| {
                let mut out = String::new();
                let mut names = Vec::new();
                let mut rest = line;
                while let Some(i) = rest.find("{{") {
                    out.push_str(&rest[..i]);
                    let after = &rest[i + 2..];
                    match after.split_once("}}") {
                        Some((inside, tail)) if inside.trim().ends_with(".DATA") => {
                            let name = inside.trim().trim_end_matches(".DATA");
                            out.push_str(&value(name));
                            names.push(name);
                            rest = tail;
                        }
                        _ => {
                            out.push_str("{{");
                            rest = after;
                        }
                    }
                }
                out.push_str(rest);
                (names, out)
            })
            .collect()
    }
}

/// The jump target of an Official Account message into a Mini Program.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniprogramSpec {
    pub appid: String,
    /// A Tera template.
    #[serde(default)]
    pub pagepath: Option<String>,
}

/// A campaign, validated: every key checked, paths resolved, defaults applied.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub name: String,
    /// The campaign file itself.
    pub path: PathBuf,
    pub kind: Kind,
    /// `account:`, the accounts file's name for the account (its appid, secret_env, token
    /// and proxy are then the account's).
    pub account: Option<String>,
    pub appid: String,
    /// The variable holding the AppSecret (for the `stable` and `classic` token sources).
    pub secret_env: String,
    pub token: TokenSource,
    /// The account's `proxy:` (else the proxy variables apply).
    pub proxy: Option<Proxy>,
    pub template_id: String,
    /// Tera template (official only).
    pub url: Option<String>,
    pub miniprogram: Option<MiniprogramSpec>,
    /// Tera template (mini only).
    pub page: Option<String>,
    pub emphasis_keyword: Option<String>,
    pub miniprogram_state: Option<String>,
    pub lang: Option<String>,
    pub recipients: PathBuf,
    pub vars: BTreeMap<String, serde_json::Value>,
    pub data: IndexMap<String, FieldSpec>,
    /// The template as WeChat shows it, when the template file says (`title`, `content`).
    pub shape: Option<Shape>,
    pub rate: u32,
    pub concurrency: usize,
    pub error_threshold: f64,
    /// The offset the report's times are written at (`utc_offset`, default `+08:00`).
    pub utc_offset: UtcOffset,
    /// The template file `template_id` comes from (`None`: the campaign's own).
    pub template_id_from: Option<PathBuf>,
    /// A template file whose `data` values are WeChat's examples (`examples: true`, as
    /// `templates pull` writes it).
    pub examples_from: Option<PathBuf>,
}

impl Campaign {
    /// Where `template_id` is written, for messages about it: `` `template_id` (in
    /// templates/x.yaml) ``.
    pub fn template_id_key(&self) -> String {
        match &self.template_id_from {
            Some(p) => format!("`template_id` (in {})", p.display()),
            None => "`template_id`".to_owned(),
        }
    }

    /// Valid settings that probably do not do what the author expects.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.template_id == "TEMPLATE_ID_FROM_THE_WECHAT_BACKEND" {
            out.push(format!(
                "{} is still the placeholder `wxpush init` wrote: only the sandbox accepts it; \
                 copy your template's ID from the WeChat backend",
                self.template_id_key()
            ));
        }
        if let Some(file) = &self.examples_from {
            let still: Vec<&str> = self
                .data
                .iter()
                .filter(|(_, f)| f.from.as_ref() == Some(file))
                .map(|(k, _)| k.as_str())
                .collect();
            if !still.is_empty() {
                out.push(format!(
                    "{} of {} are still WeChat's examples (it says `examples: true`): every \
                     recipient would get that same text; give them your own values (under the \
                     campaign's `data:`, or in the file, then remove `examples: true`)",
                    still.join(", "),
                    file.display()
                ));
            }
        }
        if self.token == TokenSource::Classic {
            out.push(
                "the classic token API (/cgi-bin/token) invalidates the token every other \
                 service of this account is using, 5 minutes after each fetch; `stable` (the \
                 default) does not"
                    .to_owned(),
            );
        }
        if self.kind == Kind::MiniTemplate {
            out.push(
                "WeChat retired the legacy form_id API in 2020 and answers every send with \
                 45103: use `mini_api: subscribe` (the sandbox still emulates it)"
                    .to_owned(),
            );
        }
        if self.kind == Kind::Official {
            let hidden: Vec<String> = ["first", "remark"]
                .into_iter()
                .filter_map(|k| Some(self.field_name(k, self.data.get(k)?)))
                .collect();
            if !hidden.is_empty() {
                out.push(format!(
                    "WeChat no longer displays {} of template messages (since 2023-05-04): \
                     they are sent, and dropped",
                    hidden.join(" and ")
                ));
            }
        }
        let coloured: Vec<String> = self
            .data
            .iter()
            .filter(|(_, f)| f.color.is_some())
            .map(|(k, f)| self.field_name(k, f))
            .collect();
        if !coloured.is_empty() && self.kind != Kind::MiniTemplate {
            let what = if self.kind == Kind::Official {
                "the colours of template messages (since 2023-05-04)"
            } else {
                "colours in subscribe messages"
            };
            out.push(format!("WeChat ignores {what}: {}", coloured.join(", ")));
        }
        out
    }

    /// `` `key` ``, plus the template file it comes from when it is not the campaign's.
    fn field_name(&self, key: &str, field: &FieldSpec) -> String {
        match &field.from {
            Some(file) => {
                let at = line_of(file, &format!("data.{key}"))
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                format!("`{key}` (from {}{at})", file.display())
            }
            None => format!("`{key}`"),
        }
    }
}

/// What went wrong with a campaign file, naming the file, the line where known, and the key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), at_line(*line))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// Keys of a campaign file.
const CAMPAIGN_KEYS: &[&str] = &[
    "name",
    "template",
    "target",
    "account",
    "appid",
    "secret_env",
    "token_api",
    "template_id",
    "url",
    "miniprogram",
    "page",
    "official_api",
    "mini_api",
    "emphasis_keyword",
    "miniprogram_state",
    "lang",
    "title",
    "content",
    "recipients",
    "vars",
    "data",
    "rate",
    "concurrency",
    "error_threshold",
    "utc_offset",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    name: Option<String>,
    template: Option<String>,
    target: Option<Target>,
    account: Option<String>,
    appid: Option<String>,
    secret_env: Option<String>,
    token_api: Option<TokenApi>,
    template_id: Option<String>,
    url: Option<String>,
    miniprogram: Option<MiniprogramSpec>,
    page: Option<String>,
    official_api: Option<OfficialApi>,
    mini_api: Option<MiniApi>,
    emphasis_keyword: Option<String>,
    miniprogram_state: Option<String>,
    lang: Option<String>,
    title: Option<String>,
    content: Option<String>,
    recipients: Option<String>,
    vars: Option<BTreeMap<String, serde_json::Value>>,
    data: Option<IndexMap<String, RawField>>,
    rate: Option<u32>,
    concurrency: Option<usize>,
    error_threshold: Option<f64>,
    utc_offset: Option<String>,
}

/// Keys of a reusable message template (`templates/NAME.yaml`).
const TEMPLATE_KEYS: &[&str] = &[
    "examples",
    "target",
    "template_id",
    "official_api",
    "mini_api",
    "url",
    "miniprogram",
    "page",
    "emphasis_keyword",
    "title",
    "content",
    "data",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    /// `templates pull` wrote `data`'s values from WeChat's example.
    examples: Option<bool>,
    target: Option<Target>,
    template_id: Option<String>,
    official_api: Option<OfficialApi>,
    mini_api: Option<MiniApi>,
    url: Option<String>,
    miniprogram: Option<MiniprogramSpec>,
    page: Option<String>,
    emphasis_keyword: Option<String>,
    /// The template as registered in the WeChat backend: its title…
    title: Option<String>,
    /// …and its content, with `{{keyword1.DATA}}` placeholders.
    content: Option<String>,
    data: Option<IndexMap<String, RawField>>,
}

/// One `data` field as written: a string, or `{ value, color }`. Kept as YAML until
/// [`Validator::field`], which says what is wrong with anything else at the field's own line.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
struct RawField(serde_yaml::Value);

/// Reads, merges and validates the campaign at `path`. A campaign naming an `account:`
/// finds it in `accounts` if given (`--accounts`, `WXPUSH_ACCOUNTS`), else in the
/// `accounts.yaml` beside it or in a folder above.
pub fn load(path: &Path, accounts: Option<&Path>) -> Result<Campaign, Error> {
    let src = read(path)?;
    let raw: RawCampaign = parse(path, &src, CAMPAIGN_KEYS)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let template = match &raw.template {
        Some(name) => Some(load_template(path, &src, dir, name)?),
        None => None,
    };
    let v = Validator { path, src: &src };
    let account = match &raw.account {
        Some(name) => Some(v.account(&raw, name, dir, accounts)?),
        None => None,
    };
    v.campaign(raw, template, account, dir)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Deserializes YAML, turning serde's messages into ones that name the line and, for an
/// unknown key, suggest the nearest valid one.
fn parse<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    src: &str,
    keys: &[&str],
) -> Result<T, Error> {
    if src.trim().is_empty() {
        return Err(Error::Invalid {
            path: path.to_owned(),
            line: None,
            message: "the file is empty".into(),
        });
    }
    if let Some((key, first, again)) = repeated_key(src) {
        return Err(Error::Invalid {
            path: path.to_owned(),
            line: Some(again),
            message: format!(
                "`{key}` is given twice, on lines {first} and {again}; keep one (YAML would \
                 silently use the last)"
            ),
        });
    }
    serde_yaml::from_str(src).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let mut message = e.to_string();
        // serde_yaml appends " at line L column C"; the line is already in the prefix.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        if let Some(unknown) = unknown_key(&message) {
            // A nested map (`miniprogram:`) has its own keys; serde names them.
            let original = std::mem::take(&mut message);
            let (at, own) = nested_keys(&original);
            let keys: Vec<&str> = own.unwrap_or_else(|| keys.to_vec());
            message = format!("{at}unknown key `{unknown}`");
            // Or the one key it is the end of (`path` for WxJava's `pagepath`).
            let ends_one = || {
                let mut ends = keys.iter().filter(|k| k.ends_with(unknown.as_str()));
                ends.next().filter(|_| ends.next().is_none()).copied()
            };
            if let Some(near) = nearest(&unknown, &keys).or_else(ends_one) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
            message.push_str(&format!("; valid keys: {}", keys.join(", ")));
        }
        Error::Invalid {
            path: path.to_owned(),
            line,
            message,
        }
    })
}

/// A key given twice at the top level or directly under `data:` (block style, as campaign
/// files are written): its path and both lines.
fn repeated_key(src: &str) -> Option<(String, usize, usize)> {
    let mut top: HashMap<&str, usize> = HashMap::new();
    let mut data: HashMap<&str, usize> = HashMap::new();
    let mut in_data = false;
    let mut data_indent = None;
    for (i, line) in src.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        let Some((key, _)) = content.split_once(':') else {
            continue;
        };
        let plain = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_');
        if indent == 0 {
            in_data = key == "data";
            data_indent = None;
            if plain && let Some(first) = top.insert(key, i + 1) {
                return Some((key.to_owned(), first, i + 1));
            }
            continue;
        }
        if !in_data || !plain {
            continue;
        }
        let child = *data_indent.get_or_insert(indent);
        if indent == child
            && let Some(first) = data.insert(key, i + 1)
        {
            return Some((format!("data.{key}"), first, i + 1));
        }
    }
    None
}

/// Whether a YAML value holds a number with a decimal point anywhere in it.
fn has_float(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// For an unknown key inside a nested map, serde_yaml's message starts with the map's path
/// (`miniprogram: unknown field …, expected `appid` or `pagepath``): that prefix, and the
/// keys serde expected there.
fn nested_keys(message: &str) -> (&str, Option<Vec<&str>>) {
    let Some(i) = message.find("unknown field `") else {
        return ("", None);
    };
    let at = &message[..i];
    if at.is_empty() {
        return ("", None);
    }
    let expected = message[i..]
        .split(", expected ")
        .nth(1)
        .map(|list| list.split('`').skip(1).step_by(2).collect::<Vec<&str>>());
    (at, expected.filter(|k| !k.is_empty()))
}

fn unknown_key(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// The valid key closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn load_template(
    campaign: &Path,
    campaign_src: &str,
    dir: &Path,
    name: &str,
) -> Result<Template, Error> {
    let file = format!("{name}.yaml");
    let candidates = [
        dir.join("templates").join(&file),
        dir.join("..").join("templates").join(&file),
    ];
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        return Err(Error::Invalid {
            path: campaign.to_owned(),
            line: key_line(campaign_src, "template"),
            message: format!(
                "template `{name}` not found (looked for {} and {})",
                candidates[0].display(),
                candidates[1].display()
            ),
        });
    };
    let found = tidy(found);
    let src = read(&found)?;
    let raw = parse(&found, &src, TEMPLATE_KEYS)?;
    Ok(Template {
        path: found,
        src,
        raw,
    })
}

/// `campaigns/../templates/x.yaml` as `templates/x.yaml`, for messages: a `..` after a
/// plain folder name cancels it. Kept only when both paths name the same file (through a
/// symlinked folder they may not).
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().is_ok_and(|b| a == b))
    };
    if out.as_os_str().is_empty() || !same(&out, path) {
        return path.to_owned();
    }
    out
}

/// A template as `templates/NAME.yaml` says the account has registered it: for the sandbox
/// to list and to lay its messages out ([`registered`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The template file.
    pub file: PathBuf,
    pub template_id: String,
    /// A subscribe message or subscribe notification (WeChat lists them with
    /// `wxaapi/newtmpl/gettemplate`); otherwise an Official Account template message.
    pub subscribe: bool,
    pub title: String,
    pub content: String,
}

/// Every template file in `dir` (`*.yaml`, by name) that has a `template_id`, a `title` and
/// a `content`; a file that is not a valid template file is an error naming it.
pub fn registered(dir: &Path) -> Result<Vec<Registered>, Error> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let raw: RawTemplate = parse(&path, &read(&path)?, TEMPLATE_KEYS)?;
        let (Some(template_id), Some(title), Some(content)) =
            (raw.template_id, raw.title, raw.content)
        else {
            continue;
        };
        let subscribe = match raw.target {
            Some(Target::Mini) => raw.mini_api != Some(MiniApi::Template),
            _ => raw.official_api == Some(OfficialApi::Subscribe),
        };
        out.push(Registered {
            file: path.clone(),
            template_id,
            subscribe,
            title,
            content,
        });
    }
    Ok(out)
}

/// A template file as read: where, its text (for line numbers) and its keys.
struct Template {
    path: PathBuf,
    src: String,
    raw: RawTemplate,
}

/// The line of a dotted key (`data.first`) in the YAML file at `path`, for errors found
/// after loading (a template that does not compile). `None` if the file cannot be read or
/// does not have the key.
pub fn line_of(path: &Path, key: &str) -> Option<usize> {
    key_line(&std::fs::read_to_string(path).ok()?, key)
}

/// The 1-based line of a dotted key (`data.first.color`), to point errors that serde cannot
/// locate (a value that parsed but breaks a rule) at the right place. Each segment is looked
/// for below its parent, more indented; a segment written inline (`{ value: x, color: y }`)
/// gives its parent's line.
fn key_line(src: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = src.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut found: Option<(usize, usize)> = None; // (line index, indentation)
    for segment in path.split('.') {
        let start = found.map_or(0, |(i, _)| i + 1);
        let hit = lines[start.min(lines.len())..]
            .iter()
            .enumerate()
            .take_while(|(_, l)| {
                found.is_none_or(|(_, ind)| l.trim().is_empty() || indent(l) > ind)
            })
            .find(|(_, l)| {
                let deeper = found.is_none_or(|(_, ind)| indent(l) > ind);
                let top = found.is_some() || indent(l) == 0;
                deeper
                    && top
                    && l.trim_start()
                        .strip_prefix(segment)
                        .is_some_and(|r| r.starts_with(':'))
            })
            .map(|(i, l)| (start + i, indent(l)));
        match hit {
            Some(h) => found = Some(h),
            None if found.is_some() => break,
            None => return None,
        }
    }
    found.map(|(i, _)| i + 1)
}

struct Validator<'a> {
    path: &'a Path,
    src: &'a str,
}

impl Validator<'_> {
    fn err(&self, key: &str, message: impl fmt::Display) -> Error {
        Error::Invalid {
            path: self.path.to_owned(),
            line: key_line(self.src, key),
            message: format!("`{key}`: {message}"),
        }
    }

    /// The account a campaign names, from the accounts file. The campaign may not also
    /// give what the account says (both at once would leave one of them unused).
    fn account(
        &self,
        raw: &RawCampaign,
        name: &str,
        dir: &Path,
        accounts: Option<&Path>,
    ) -> Result<account::Account, Error> {
        let given: Vec<&str> = [
            ("appid", raw.appid.is_some()),
            ("secret_env", raw.secret_env.is_some()),
            ("token_api", raw.token_api.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, given)| given.then_some(k))
        .collect();
        if let Some(first) = given.first() {
            return Err(self.err(
                first,
                format!(
                    "`account` and `{}` are both given: the account in accounts.yaml says the \
                     appid, secret_env and token; keep one",
                    given.join("`, `")
                ),
            ));
        }
        let from_account = |e: account::Error| self.err("account", e);
        let file = account::find(dir, accounts).map_err(from_account)?;
        let all = account::load(&file).map_err(from_account)?;
        all.named(name).cloned().map_err(|mut message| {
            if let Some(near) = nearest(name, &all.names()) {
                message.push_str(&format!("; did you mean `{near}`?"));
            }
            self.err("account", message)
        })
    }

    fn campaign(
        &self,
        raw: RawCampaign,
        template: Option<Template>,
        account: Option<account::Account>,
        dir: &Path,
    ) -> Result<Campaign, Error> {
        let (tpl_file, tpl) = match template {
            Some(t) => (Some((t.path, t.src)), t.raw),
            None => (None, RawTemplate::default()),
        };

        let name = match raw.name {
            Some(n) => n,
            None => self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "campaign".into()),
        };
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(self.err("name", "must be a plain name usable as a file name"));
        }

        let target = raw.target.or(tpl.target).ok_or_else(|| {
            self.err(
                "target",
                "missing: say `target: official` or `target: mini`",
            )
        })?;
        let official_api = raw.official_api.or(tpl.official_api);
        let mini_api = raw.mini_api.or(tpl.mini_api);
        let kind = match (target, official_api, mini_api) {
            (Target::Official, _, Some(_)) => {
                return Err(self.err("mini_api", "only for `target: mini`"));
            }
            (Target::Mini, Some(_), _) => {
                return Err(self.err("official_api", "only for `target: official`"));
            }
            (Target::Official, None | Some(OfficialApi::Template), None) => Kind::Official,
            (Target::Official, Some(OfficialApi::Subscribe), None) => Kind::OfficialSubscribe,
            (Target::Mini, None, None | Some(MiniApi::Subscribe)) => Kind::Subscribe,
            (Target::Mini, None, Some(MiniApi::Template)) => Kind::MiniTemplate,
        };

        let (account_name, appid, secret_env, token, proxy) = match account {
            Some(a) => (Some(a.name), a.appid, a.secret_env, a.token, a.proxy),
            None => {
                let appid = raw.appid.ok_or_else(|| {
                    self.err("appid", "missing (or name an `account:` of accounts.yaml)")
                })?;
                if !looks_like_appid(&appid) {
                    return Err(self.err(
                        "appid",
                        format!(
                            "`{appid}` does not look like an AppID (wx followed by 16 letters or \
                             digits)"
                        ),
                    ));
                }
                let secret_env = raw
                    .secret_env
                    .unwrap_or_else(|| DEFAULT_SECRET_ENV.to_owned());
                account::check_secret_env(&secret_env).map_err(|m| self.err("secret_env", m))?;
                let token = match raw.token_api.unwrap_or_default() {
                    TokenApi::Stable => TokenSource::Stable,
                    TokenApi::Classic => TokenSource::Classic,
                };
                (None, appid, secret_env, token, None)
            }
        };

        let template_id_from = match (&raw.template_id, &tpl_file) {
            (None, Some((path, _))) => Some(path.clone()),
            _ => None,
        };
        let template_id = raw
            .template_id
            .or(tpl.template_id)
            .ok_or_else(|| self.err("template_id", "missing"))?;
        if template_id.trim().is_empty() {
            return Err(self.err("template_id", "is empty"));
        }

        let url = raw.url.or(tpl.url);
        let miniprogram = raw.miniprogram.or(tpl.miniprogram);
        let page = raw.page.or(tpl.page);
        let emphasis_keyword = raw.emphasis_keyword.or(tpl.emphasis_keyword);
        match kind {
            Kind::Official | Kind::OfficialSubscribe => {
                if page.is_some() {
                    let message = if kind == Kind::OfficialSubscribe {
                        "write the web page to open as `url` (wxpush sends it as WeChat's \
                         `page`), or open a mini program with `miniprogram.pagepath`"
                    } else {
                        "only for `target: mini`; an official message jumps with `url` or \
                         `miniprogram.pagepath`"
                    };
                    return Err(self.err("page", message));
                }
                if let Some(url) = &url {
                    check_url(url).map_err(|m| self.err("url", m))?;
                }
                if let Some(mp) = &miniprogram
                    && !looks_like_appid(&mp.appid)
                {
                    return Err(self.err(
                        "miniprogram.appid",
                        format!("`{}` does not look like an AppID", mp.appid),
                    ));
                }
                if emphasis_keyword.is_some() {
                    return Err(self.err("emphasis_keyword", "only for `mini_api: template`"));
                }
            }
            Kind::Subscribe | Kind::MiniTemplate => {
                if url.is_some() {
                    return Err(self.err(
                        "url",
                        "only for `target: official`; a mini program message jumps with `page`",
                    ));
                }
                if miniprogram.is_some() {
                    return Err(self.err(
                        "miniprogram",
                        "only for `target: official`; a mini program message jumps with `page`",
                    ));
                }
                if kind == Kind::Subscribe && emphasis_keyword.is_some() {
                    return Err(self.err("emphasis_keyword", "only for `mini_api: template`"));
                }
            }
        }
        if kind != Kind::Subscribe {
            if raw.miniprogram_state.is_some() {
                return Err(self.err(
                    "miniprogram_state",
                    "only for mini program subscribe messages (`target: mini`)",
                ));
            }
            if raw.lang.is_some() {
                return Err(self.err(
                    "lang",
                    "only for mini program subscribe messages (`target: mini`)",
                ));
            }
        }
        if let Some(s) = &raw.miniprogram_state
            && !["developer", "trial", "formal"].contains(&s.as_str())
        {
            return Err(self.err(
                "miniprogram_state",
                format!("`{s}` is not one of developer, trial, formal"),
            ));
        }
        if let Some(l) = &raw.lang
            && !["zh_CN", "en_US", "zh_HK", "zh_TW"].contains(&l.as_str())
        {
            return Err(self.err(
                "lang",
                format!("`{l}` is not one of zh_CN, en_US, zh_HK, zh_TW"),
            ));
        }

        let recipients = raw
            .recipients
            .ok_or_else(|| self.err("recipients", "missing: name the CSV file of openids"))?;
        let recipients = dir.join(recipients);

        // A pulled template's example values that the campaign leaves as they are.
        let examples_from = tpl_file
            .as_ref()
            .filter(|_| tpl.examples == Some(true))
            .map(|(p, _)| p.clone());
        // Template fields first, campaign fields override them one by one.
        let mut data = IndexMap::new();
        let in_template = tpl_file.as_ref().map(|(path, src)| Validator { path, src });
        let sources = [
            (
                in_template.as_ref(),
                tpl_file.as_ref().map(|(p, _)| p),
                tpl.data,
            ),
            (Some(self), None, raw.data),
        ];
        for (file, from, fields) in sources {
            let Some(file) = file else { continue };
            for (key, field) in fields.unwrap_or_default() {
                let mut spec = file.field(&key, field)?;
                spec.from = from.cloned();
                data.insert(key, spec);
            }
        }
        if data.is_empty() && kind != Kind::MiniTemplate {
            return Err(self.err("data", "missing: a message needs at least one data field"));
        }
        // The campaign's own `title`/`content` win over its template file's.
        let content_file = match (&raw.content, &in_template) {
            (None, Some(t)) if tpl.content.is_some() => t,
            _ => self,
        };
        let title = raw.title.or(tpl.title);
        let content = raw.content.or(tpl.content);
        let shape = (title.is_some() || content.is_some()).then_some(Shape { title, content });
        if let Some(shape) = &shape
            && shape.content.is_some()
        {
            self.fits(content_file, in_template.as_ref(), shape, &data, kind)?;
        }

        let vars = raw.vars.unwrap_or_default();
        for (key, value) in &vars {
            if has_float(value) {
                return Err(self.err(
                    &format!("vars.{key}"),
                    "a number with a decimal point is rewritten by YAML (99.00 becomes 99.0): \
                     quote it (\"99.00\") so that it is sent as written",
                ));
            }
        }

        let rate = raw.rate.unwrap_or(DEFAULT_RATE);
        if rate == 0 {
            return Err(self.err("rate", "must be at least 1 message per second"));
        }
        let concurrency = raw.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY as usize).contains(&concurrency) {
            return Err(self.err(
                "concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }

        let error_threshold = raw.error_threshold.unwrap_or(DEFAULT_ERROR_THRESHOLD);
        if !(error_threshold > 0.0 && error_threshold <= 1.0) {
            return Err(self.err(
                "error_threshold",
                "must be a fraction above 0 and at most 1 (1: abort only when every recent send fails)",
            ));
        }

        let utc_offset = match raw.utc_offset.as_deref() {
            None => UtcOffset::CHINA,
            Some(o) => UtcOffset::parse(o).ok_or_else(|| {
                self.err(
                    "utc_offset",
                    format!(
                        "`{o}` is not an offset from UTC: write it as \"+08:00\" (China; \
                         Asia/Shanghai), \"+09:00\", \"-05:00\"…"
                    ),
                )
            })?,
        };

        Ok(Campaign {
            name,
            path: self.path.to_owned(),
            kind,
            account: account_name,
            appid,
            secret_env,
            token,
            proxy,
            template_id,
            url,
            miniprogram,
            page,
            emphasis_keyword,
            miniprogram_state: raw.miniprogram_state,
            lang: raw.lang,
            recipients,
            vars,
            data,
            shape,
            rate,
            concurrency,
            error_threshold,
            utc_offset,
            template_id_from,
            examples_from,
        })
    }

    /// The campaign fills exactly the fields of the template's `content`: an extra key (a
    /// typo such as `thign2`) or a missing one is an error naming it.
    fn fits(
        &self,
        content_file: &Validator<'_>,
        template: Option<&Validator<'_>>,
        shape: &Shape,
        data: &IndexMap<String, FieldSpec>,
        kind: Kind,
    ) -> Result<(), Error> {
        if let Some(bad) = shape.broken_placeholder() {
            return Err(content_file.err(
                "content",
                format!(
                    "`{bad}` is not a placeholder: WeChat's are `{{{{name.DATA}}}}` (copy the \
                     content from the WeChat backend)"
                ),
            ));
        }
        let keys = shape.keys();
        if keys.is_empty() {
            return Err(content_file.err(
                "content",
                "has no `{{name.DATA}}` placeholder: copy it from the WeChat backend",
            ));
        }
        let title = shape
            .title
            .as_deref()
            .map(|t| format!(" `{t}`"))
            .unwrap_or_default();
        for (key, spec) in data {
            if !keys.contains(&key.as_str()) {
                let file = template.filter(|_| spec.from.is_some()).unwrap_or(self);
                let hint = nearest(key, &keys)
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                return Err(file.err(
                    &format!("data.{key}"),
                    format!(
                        "is not a field of the template{title}{hint}; its fields: {}",
                        keys.join(", ")
                    ),
                ));
            }
        }
        // `first` and `remark` of template messages are no longer shown (since 2023-05-04):
        // leaving them out is what WeChat advises, not a mistake.
        let optional = |k: &str| kind == Kind::Official && matches!(k, "first" | "remark");
        if let Some(missing) = keys
            .iter()
            .find(|k| !data.contains_key(**k) && !optional(k))
        {
            return Err(self.err(
                "data",
                format!(
                    "the template{title} has a field `{missing}` that the campaign does not \
                     fill: add `{missing}:` under `data:`"
                ),
            ));
        }
        Ok(())
    }

    fn field(&self, key: &str, field: RawField) -> Result<FieldSpec, Error> {
        let valid_key =
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(self.err(
                &format!("data.{key}"),
                "a field name is letters, digits and `_` (the name inside {{name.DATA}})",
            ));
        }
        use serde_yaml::Value;
        let at = format!("data.{key}");
        let mut truncate = false;
        let (value, color) = match field.0 {
            Value::String(value) => (value, None),
            Value::Mapping(m) => {
                let mut value = None;
                let mut color = None;
                for (k, v) in m {
                    let name = k.as_str().unwrap_or_default().to_owned();
                    if !matches!(name.as_str(), "value" | "color" | "truncate") {
                        let hint = nearest(&name, &["value", "color", "truncate"])
                            .map(|n| format!(" (did you mean `{n}`?)"))
                            .unwrap_or_default();
                        return Err(self.err(
                            &at,
                            format!(
                                "unknown key `{name}`{hint}; a field has `value`, `color` and `truncate`"
                            ),
                        ));
                    }
                    if name == "truncate" {
                        let Value::Bool(b) = v else {
                            return Err(self.err(&format!("{at}.truncate"), "is true or false"));
                        };
                        if b && !crate::wechat::fields::can_shorten(key) {
                            // A misspelled key first: that is the mistake to fix.
                            if let Some(near) = crate::wechat::fields::misspelled_type(key) {
                                return Err(self.err(
                                    &at,
                                    format!(
                                        "`{key}` is none of WeChat's typed keys (did you mean \
                                         `{near}`?)"
                                    ),
                                ));
                            }
                            return Err(self.err(
                                &format!("{at}.truncate"),
                                format!(
                                    "`{key}` has no length limit that \"…\" can keep (only \
                                     thing, character_string, name and the like)"
                                ),
                            ));
                        }
                        truncate = b;
                        continue;
                    }
                    let text = match v {
                        Value::String(s) => s,
                        other => {
                            let e = self.not_a_string(&format!("{at}.{name}"), &other);
                            return Err(e);
                        }
                    };
                    // Only `value` and `color` get here (other keys were refused above).
                    if name == "value" {
                        value = Some(text);
                    } else {
                        color = Some(text);
                    }
                }
                let Some(value) = value else {
                    return Err(self.err(&at, "has no `value`"));
                };
                (value, color)
            }
            other => return Err(self.not_a_string(&at, &other)),
        };
        if let Some(c) = &color
            && !is_color(c)
        {
            return Err(self.err(
                &format!("{at}.color"),
                format!("`{c}` is not a colour like #173177 (# and 6 hex digits)"),
            ));
        }
        Ok(FieldSpec {
            value,
            color,
            truncate,
            from: None,
        })
    }

    /// A field (or its `value`/`color`) that YAML read as something other than text: say
    /// what it is, and how to write it as text, in the user's own characters.
    fn not_a_string(&self, at: &str, v: &serde_yaml::Value) -> Error {
        use serde_yaml::Value;
        let written = key_line(self.src, at)
            .and_then(|l| self.src.lines().nth(l - 1))
            .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
            // Inside `{ … }` the line holds more than this value: show the value itself.
            .filter(|w| !w.is_empty() && !w.starts_with('{'))
            .or_else(|| match v {
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            });
        match v {
            Value::Number(_) | Value::Bool(_) => {
                let w = written.unwrap_or_else(|| "…".into());
                self.err(
                    at,
                    format!("is a YAML number or boolean; quote it (\"{w}\") so it is sent exactly as written"),
                )
            }
            Value::Null => self.err(
                at,
                "is empty; give it a value (a string, in quotes if it has `{` or `:`)",
            ),
            Value::Sequence(_) => self.err(
                at,
                "is a list; a field is a string, or { value: \"…\", color: \"#RRGGBB\" }",
            ),
            _ => self.err(
                at,
                "is not a string; a field is a string, or { value: \"…\", color: \"#RRGGBB\" }",
            ),
        }
    }
}

/// `#RRGGBB`.
pub fn is_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A jump URL must be absolute http(s). A URL that starts with a Tera expression is checked
/// after rendering instead (see `render`).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("{{") || url.starts_with("{%") {
        return Ok(());
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        Ok(())
    } else {
        Err(format!("`{url}` must start with http:// or https://"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(yaml: &str) -> Result<Campaign, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        load(&path, None)
    }

    const OK: &str = "target: official\nappid: wx0123456789abcdef\ntemplate_id: T\nrecipients: r.csv\ndata:\n  first: \"{{ name }}\"\n";

    #[test]
    fn minimal_official_campaign_loads_with_defaults() {
        let c = load_str(OK).unwrap();
        assert_eq!(c.kind, Kind::Official);
        assert_eq!(c.name, "c");
        assert_eq!(c.rate, DEFAULT_RATE);
        assert_eq!(c.secret_env, DEFAULT_SECRET_ENV);
        assert_eq!(c.data["first"].value, "{{ name }}");
    }

    #[test]
    fn hidden_fields_and_colours_are_warned_about() {
        let c = load_str(&OK.replace(
            "first: \"{{ name }}\"",
            "first: { value: x, color: \"#173177\" }",
        ))
        .unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("`first`"));
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        let e = load_str(&OK.replace("template_id", "tempalte_id")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains(":3:"), "{m}");
        assert!(m.contains("did you mean `template_id`"), "{m}");
    }

    /// Issue 13 §1: a template file with WeChat's `content` makes `check` hold the campaign
    /// to exactly its fields.
    #[test]
    fn a_template_s_content_fixes_the_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/t.yaml"),
            "title: 上课提醒\ncontent: \"课程：{{thing1.DATA}}\\n时间：{{ time2.DATA }}\"\n",
        )
        .unwrap();
        let load_with = |data: &str| {
            let path = dir.path().join("c.yaml");
            let yaml = format!(
                "template: t\ntarget: mini\nappid: wx0123456789abcdef\ntemplate_id: T\n\
                 recipients: r.csv\ndata:\n{data}"
            );
            std::fs::write(&path, yaml).unwrap();
            load(&path, None).map_err(|e| e.to_string())
        };
        let ok = load_with("  thing1: a\n  time2: \"15:01\"\n").unwrap();
        let shape = ok.shape.unwrap();
        assert_eq!(shape.keys(), ["thing1", "time2"]);
        let filled = shape.fill(|k| format!("<{k}>"));
        assert_eq!(
            filled,
            [
                (vec!["thing1"], "课程：<thing1>".to_owned()),
                (vec!["time2"], "时间：<time2>".to_owned())
            ]
        );
        let e = load_with("  thing1: a\n  time2: \"15:01\"\n  thign3: x\n").unwrap_err();
        assert!(
            e.contains(":9: `data.thign3`: is not a field of the template `上课提醒`")
                && e.contains("its fields: thing1, time2"),
            "{e}"
        );
        let e = load_with("  thign1: a\n  time2: \"15:01\"\n").unwrap_err();
        assert!(e.contains("did you mean `thing1`?"), "{e}");
        let e = load_with("  thing1: a\n").unwrap_err();
        assert!(
            e.contains("has a field `time2` that the campaign does not fill"),
            "{e}"
        );
    }

    #[test]
    fn placeholder_typos_in_content_are_named_as_such() {
        let shape = |c: &str| Shape {
            title: None,
            content: Some(c.to_owned()),
        };
        assert_eq!(shape("a {{x1.DATA}} b").broken_placeholder(), None);
        assert_eq!(
            shape("课程：{{thing1.DAT}}")
                .broken_placeholder()
                .as_deref(),
            Some("{{thing1.DAT}}")
        );
        assert_eq!(
            shape("课程：{{thing1.DATA}\n时间")
                .broken_placeholder()
                .as_deref(),
            Some("{{thing1.DATA}")
        );
        // A misspelled sub-key of a field is named before its value's type.
        let m = load_str(&OK.replace(
            "first: \"{{ name }}\"",
            "first: { value: x, trucate: true }",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            m.contains("unknown key `trucate` (did you mean `truncate`?)"),
            "{m}"
        );
    }

    #[test]
    fn a_misspelled_key_with_truncate_is_named_as_misspelled() {
        let e = load_str(&format!("{OK}  thign1: {{ value: x, truncate: true }}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(":7: `data.thign1`: `thign1` is none of WeChat's typed keys (did you mean `thing1`?)"), "{e}");
        let e = load_str(&format!(
            "{OK}  number2: {{ value: \"1\", truncate: true }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`number2` has no length limit"), "{e}");
    }

    #[test]
    fn a_decimal_number_in_vars_must_be_quoted() {
        let m = load_str(&format!("{OK}vars: {{ price: 99.00 }}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains(":7: `vars.price`") && m.contains("quote it"),
            "{m}"
        );
        assert!(load_str(&format!("{OK}vars: {{ n: 3, price: \"99.00\" }}\n")).is_ok());
    }

    #[test]
    fn an_unknown_nested_key_lists_its_own_map_s_keys() {
        let yaml = format!("{OK}miniprogram: {{ appid: wx2210554e092c3f99, path: index }}\n");
        let m = load_str(&yaml).unwrap_err().to_string();
        assert!(
            m.contains("miniprogram: unknown key `path` (did you mean `pagepath`?); valid keys: appid, pagepath"),
            "{m}"
        );
    }

    #[test]
    fn official_api_selects_the_kind_and_belongs_to_official_campaigns() {
        let sub = OK.replace(
            "target: official\n",
            "target: official\nofficial_api: subscribe\n",
        );
        assert_eq!(load_str(&sub).unwrap().kind, Kind::OfficialSubscribe);
        let tpl = OK.replace(
            "target: official\n",
            "target: official\nofficial_api: template\n",
        );
        assert_eq!(load_str(&tpl).unwrap().kind, Kind::Official);
        let mini = OK.replace(
            "target: official\n",
            "target: mini\nofficial_api: subscribe\n",
        );
        let e = load_str(&mini).unwrap_err().to_string();
        assert!(
            e.contains("`official_api`: only for `target: official`"),
            "{e}"
        );
        let typo = OK.replace(
            "target: official\n",
            "target: official\nofficial_api: notice\n",
        );
        let e = load_str(&typo).unwrap_err().to_string();
        assert!(e.contains("expected `template` or `subscribe`"), "{e}");
        let e = load_str(&format!("{sub}page: https://example.com\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("write the web page to open as `url`"), "{e}");
        // From a template file, like the other keys of a message.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/n.yaml"),
            "target: official\nofficial_api: subscribe\n",
        )
        .unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, OK.replace("target: official\n", "template: n\n")).unwrap();
        assert_eq!(load(&path, None).unwrap().kind, Kind::OfficialSubscribe);
    }

    #[test]
    fn template_paths_are_tidied_only_when_they_name_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("campaigns")).unwrap();
        std::fs::create_dir_all(root.join("templates")).unwrap();
        std::fs::write(root.join("templates/t.yaml"), "").unwrap();
        let found = root.join("campaigns/../templates/t.yaml");
        assert_eq!(tidy(&found), root.join("templates/t.yaml"));
        // Leading `..`s stay: nothing named to cancel them.
        let up = Path::new("../x/../y");
        assert_eq!(
            tidy(up),
            Path::new("../x/../y"),
            "a missing file is left as found"
        );
        // Through a symlinked folder `link/..` is not `.`: the path is kept as found.
        let elsewhere = root.join("elsewhere/deep");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::create_dir_all(root.join("elsewhere/templates")).unwrap();
        std::fs::write(root.join("elsewhere/templates/t.yaml"), "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("campaigns/link")).unwrap();
        let via_link = root.join("campaigns/link/../templates/t.yaml");
        assert!(via_link.is_file());
        assert_eq!(tidy(&via_link), via_link);
    }

    #[test]
    fn page_on_official_is_rejected_with_its_line() {
        let e = load_str(&format!("{OK}page: p\n")).unwrap_err().to_string();
        assert!(e.contains(":7: `page`"), "{e}");
    }

    #[test]
    fn bad_color_and_url_are_rejected() {
        let e = load_str(&OK.replace("first: \"{{ name }}\"", "first: { value: x, color: red }"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.first.color"), "{e}");
        let e = load_str(&format!("{OK}url: ftp://x\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http:// or https://"), "{e}");
    }

    #[test]
    fn repeated_keys_are_found_at_the_top_and_under_data() {
        let top = "name: a\nrecipients: p.csv\ndata:\n  thing1: x\nrecipients: q.csv\n";
        assert_eq!(repeated_key(top), Some(("recipients".into(), 2, 5)));
        let data = "data:\n  thing1: x\n  thing2: { value: y, color: z }\n  thing1: w\n";
        assert_eq!(repeated_key(data), Some(("data.thing1".into(), 2, 4)));
        // Same names at other levels, comments and nested maps are not repeats.
        let fine = "data:\n  thing1:\n    value: x\n  thing2:\n    value: y\n# data: again\nvars: { value: 1 }\n";
        assert_eq!(repeated_key(fine), None);
    }

    #[test]
    fn key_line_finds_nested_keys() {
        let src = "a: 1\nfirst: 0\ndata:\n  first: { value: x, color: y }\n  second:\n    color: z\nb: 2\n";
        assert_eq!(key_line(src, "data.first"), Some(4));
        assert_eq!(key_line(src, "data.first.color"), Some(4));
        assert_eq!(key_line(src, "data.second.color"), Some(6));
        assert_eq!(key_line(src, "first"), Some(2));
        assert_eq!(key_line(src, "firs"), None);
        assert_eq!(key_line(src, "b"), Some(7));
    }
}
