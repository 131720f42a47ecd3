//! Rendering: a campaign's Tera templates, compiled once, filled per recipient into a typed
//! message body (see `wechat::message`).
//!
//! Every value string (data fields, `url`, `page`, `miniprogram.pagepath`) is a Tera template
//! whose variables are the campaign's `vars` and the recipient's CSV columns (`openid`
//! included; a column wins over a var of the same name). An undefined variable is an error
//! naming the variable, the field and the row. Rendered values are checked against WeChat's
//! rules for typed keys (`wechat::fields`) and jump URLs must be http(s).

use std::path::PathBuf;
use std::sync::Arc;

use tera::{Context, Tera};

use crate::campaign::{Campaign, Kind, check_url};
use crate::recipients::Recipient;
use crate::wechat::fields;
use crate::wechat::message::{
    BizSubscribeMessage, Data, DataField, LegacyMiniMessage, Miniprogram, Outgoing,
    SubscribeMessage, TemplateMessage, client_msg_id,
};

/// A template that does not compile, or a row that does not render.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}{}: `{field}`: invalid template:\n{message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        field: String,
        message: String,
    },
    #[error("{}: row {row} (line {line}), field `{field}`: {message}", path.display())]
    Row {
        path: PathBuf,
        row: u64,
        line: u64,
        field: String,
        message: String,
    },
}

/// The CSV columns a campaign's recipients file must have.
pub fn required_columns(campaign: &Campaign) -> &'static [&'static str] {
    match campaign.kind {
        Kind::MiniTemplate => &["openid", "form_id"],
        Kind::Official | Kind::OfficialSubscribe | Kind::Subscribe => &["openid"],
    }
}

/// Compiled templates plus everything fixed for the whole campaign.
pub struct Renderer {
    tera: Tera,
    kind: Kind,
    template_id: String,
    recipients: PathBuf,
    headers: Arc<[String]>,
    base: Context,
    /// The data fields, in order.
    fields: Vec<Field>,
    url: bool,
    page: bool,
    miniprogram_appid: Option<String>,
    pagepath: bool,
    form_id: Option<usize>,
    emphasis_keyword: Option<String>,
    miniprogram_state: Option<String>,
    lang: Option<String>,
    /// Set for sends: official messages then carry a `client_msg_id` derived from it.
    run_id: Option<String>,
}

/// A data field: its key, the name its template is registered under, its colour.
struct Field {
    key: String,
    /// `data.<key>`, built once rather than per row.
    template: String,
    color: Option<String>,
    /// Shorten an over-long value with "…" (`truncate: true`).
    truncate: bool,
    /// ` (the field is from templates/NAME.yaml:LINE)` when a template file defines it.
    origin: String,
}

impl Field {
    /// `e` with where the field is defined, when that is not the campaign file.
    fn located(&self, e: Error) -> Error {
        match e {
            Error::Row {
                path,
                row,
                line,
                field,
                message,
            } if !self.origin.is_empty() => Error::Row {
                path,
                row,
                line,
                field,
                message: format!("{message}{}", self.origin),
            },
            e => e,
        }
    }
}

const URL: &str = "url";
const PAGE: &str = "page";
const PAGEPATH: &str = "miniprogram.pagepath";

/// A jump target (`url`, `page`, `miniprogram.pagepath`), rendered when the campaign has one:
/// one that renders empty (a CSV column left blank) means no jump for that recipient, and is
/// left out of the body rather than sent as `""`.
fn jump(
    present: bool,
    render: impl FnOnce() -> Result<String, Error>,
) -> Result<Option<String>, Error> {
    Ok(if present {
        Some(render()?).filter(|s| !s.is_empty())
    } else {
        None
    })
}

impl Renderer {
    /// Compiles every template of `campaign`, for a recipients file with `headers`.
    pub fn new(campaign: &Campaign, headers: Arc<[String]>) -> Result<Self, Error> {
        let mut tera = Tera::default();
        let mut add_from = |file: &std::path::Path, name: &str, src: &str| {
            tera.add_raw_template(name, src).map_err(|e| Error::Syntax {
                path: file.to_owned(),
                line: crate::campaign::line_of(file, name),
                field: name.to_owned(),
                message: e.to_string(),
            })
        };
        for (key, spec) in &campaign.data {
            add_from(spec.file(campaign), &format!("data.{key}"), &spec.value)?;
        }
        let mut add = |name: &str, src: &str| add_from(&campaign.path, name, src);
        if let Some(url) = &campaign.url {
            add(URL, url)?;
        }
        if let Some(page) = &campaign.page {
            add(PAGE, page)?;
        }
        let pagepath = campaign
            .miniprogram
            .as_ref()
            .and_then(|m| m.pagepath.as_ref());
        if let Some(p) = pagepath {
            add(PAGEPATH, p)?;
        }
        let mut base = Context::new();
        for (k, v) in &campaign.vars {
            base.insert(k.clone(), v);
        }
        Ok(Renderer {
            tera,
            kind: campaign.kind,
            template_id: campaign.template_id.clone(),
            recipients: campaign.recipients.clone(),
            form_id: headers.iter().position(|h| h == "form_id"),
            headers,
            base,
            fields: campaign
                .data
                .iter()
                .map(|(key, spec)| Field {
                    key: key.clone(),
                    template: format!("data.{key}"),
                    color: spec.color.clone(),
                    truncate: spec.truncate,
                    origin: match &spec.from {
                        Some(file) => {
                            let at = crate::campaign::line_of(file, &format!("data.{key}"))
                                .map(|l| format!(":{l}"))
                                .unwrap_or_default();
                            format!(" (the field is from {}{at})", file.display())
                        }
                        None => String::new(),
                    },
                })
                .collect(),
            url: campaign.url.is_some(),
            page: campaign.page.is_some(),
            miniprogram_appid: campaign.miniprogram.as_ref().map(|m| m.appid.clone()),
            pagepath: pagepath.is_some(),
            emphasis_keyword: campaign.emphasis_keyword.clone(),
            miniprogram_state: campaign.miniprogram_state.clone(),
            lang: campaign.lang.clone(),
            run_id: None,
        })
    }

    /// Makes official messages carry the `client_msg_id` of `run_id` (see
    /// [`crate::wechat::message::client_msg_id`]).
    pub fn with_run_id(mut self, run_id: &str) -> Self {
        self.run_id = Some(run_id.to_owned());
        self
    }

    /// The jump of an Official Account message: the rendered web `url` (checked) and the
    /// `miniprogram` with its rendered `pagepath`.
    fn official_jump(
        &self,
        render: &impl Fn(&str) -> Result<String, Error>,
        err: &impl Fn(&str, String) -> Error,
    ) -> Result<(Option<String>, Option<Miniprogram>), Error> {
        let url = jump(self.url, || render(URL))?;
        if let Some(u) = &url {
            check_url(u).map_err(|m| err(URL, format!("rendered {m}")))?;
        }
        let miniprogram = match &self.miniprogram_appid {
            Some(appid) => Some(Miniprogram {
                appid: appid.clone(),
                pagepath: jump(self.pagepath, || render(PAGEPATH))?,
            }),
            None => None,
        };
        Ok((url, miniprogram))
    }

    /// The message for `r`, serialized and ready to send.
    pub fn render(&self, r: &Recipient) -> Result<Outgoing, Error> {
        let mut ctx = self.base.clone();
        for (h, v) in self.headers.iter().zip(r.record.iter()) {
            ctx.insert(h.clone(), v);
        }
        ctx.insert("openid", r.openid.as_str());
        let err = |field: &str, message: String| Error::Row {
            path: self.recipients.clone(),
            row: r.row,
            line: r.line,
            field: field.to_owned(),
            message,
        };
        let render = |name: &str| {
            self.tera
                .render(name, &ctx)
                .map_err(|e| err(name, e.to_string()))
        };
        let optional = |present: bool, name: &str| jump(present, || render(name));

        let mut data = Data::with_capacity(self.fields.len());
        for f in &self.fields {
            let mut value = render(&f.template).map_err(|e| f.located(e))?;
            if f.truncate
                && let Some(short) = fields::shorten(&f.key, &value)
            {
                value = short;
            }
            if self.kind.is_subscribe() && value.is_empty() {
                return Err(f.located(err(
                    &f.template,
                    "is empty; WeChat refuses an empty value in a subscribe message (47003)".into(),
                )));
            }
            if self.kind != Kind::MiniTemplate {
                fields::check(&f.key, &value).map_err(|m| {
                    f.located(err(&f.template, format!("{m} (rendered: {value:?})")))
                })?;
            }
            data.insert(
                f.key.clone(),
                DataField {
                    value,
                    color: f.color.clone(),
                },
            );
        }
        let touser = r.openid.clone();
        let template_id = self.template_id.clone();
        Ok(match self.kind {
            Kind::Official => {
                let (url, miniprogram) = self.official_jump(&render, &err)?;
                let client_msg_id = self
                    .run_id
                    .as_deref()
                    .map(|id| client_msg_id(id, &r.openid));
                let m = TemplateMessage {
                    touser,
                    template_id,
                    url,
                    miniprogram,
                    client_msg_id,
                    data,
                };
                let mut out = Outgoing::new(r.row, r.openid.clone(), self.kind.endpoint(), &m);
                out.deduplicated = m.client_msg_id.is_some();
                out
            }
            Kind::OfficialSubscribe => {
                let (page, miniprogram) = self.official_jump(&render, &err)?;
                let m = BizSubscribeMessage {
                    touser,
                    template_id,
                    page,
                    miniprogram,
                    data,
                };
                Outgoing::new(r.row, r.openid.clone(), self.kind.endpoint(), &m)
            }
            Kind::Subscribe => {
                let m = SubscribeMessage {
                    touser,
                    template_id,
                    page: optional(self.page, PAGE)?,
                    data,
                    miniprogram_state: self.miniprogram_state.clone(),
                    lang: self.lang.clone(),
                };
                Outgoing::new(r.row, r.openid.clone(), self.kind.endpoint(), &m)
            }
            Kind::MiniTemplate => {
                let form_id = self
                    .form_id
                    .and_then(|i| r.record.get(i))
                    .map(str::trim)
                    .unwrap_or_default();
                if form_id.is_empty() {
                    return Err(err(
                        "form_id",
                        "`form_id` is empty; the legacy mini program API needs one per message"
                            .into(),
                    ));
                }
                let m = LegacyMiniMessage {
                    touser,
                    template_id,
                    page: optional(self.page, PAGE)?,
                    form_id: form_id.to_owned(),
                    data,
                    emphasis_keyword: self.emphasis_keyword.clone(),
                };
                Outgoing::new(r.row, r.openid.clone(), self.kind.endpoint(), &m)
            }
        })
    }
}
