//! The read-only modes, `check` and `preview`, and the validation pass every mode shares:
//! every row streamed through render, the first errors listed, nothing sent.

use crate::Error;
use std::path::Path;

use crate::campaign::{Campaign, Kind};
use crate::card::{self, Card};
use crate::plan::Pick;
use crate::progress::counted;
use crate::recipients::{Recipients, Row};
use crate::render::{self, Renderer};
use crate::report::Done;
use crate::wechat::message::Outgoing;

/// Invalid rows listed in full before the rest are only counted.
const MAX_LISTED_ERRORS: usize = 10;

/// Counts from the validation pass.
#[derive(Debug, Default)]
pub(super) struct Validated {
    pub rows: u64,
    pub recipients: u64,
    pub duplicates: u64,
    /// Recipients without an outcome in the report being resumed.
    pub to_send: u64,
    /// Repeated-openid rows not yet reported `skipped`.
    pub duplicates_to_report: u64,
}

/// The campaign's recipients, opened with a renderer for their columns.
pub(super) fn open(c: &Campaign) -> Result<(Recipients, Renderer), Error> {
    let rows = Recipients::open(&c.recipients, render::required_columns(c))?;
    let renderer = Renderer::new(c, rows.headers().clone())?;
    Ok((rows, renderer))
}

/// Streams every row through render; collects the first errors.
pub(super) fn validate(c: &Campaign, done: Option<&Done>) -> Result<Validated, Error> {
    let (mut rows, renderer) = open(c)?;
    let mut v = Validated::default();
    let mut errors = Vec::new();
    let mut more = 0;
    let mut note = |e: String| {
        if errors.len() < MAX_LISTED_ERRORS {
            errors.push(e);
        } else {
            more += 1;
        }
    };
    while let Some(row) = rows.next_row() {
        v.rows += 1;
        match row {
            Ok(Row::New(r)) => {
                v.recipients += 1;
                match renderer.render(&r) {
                    Err(e) => note(e.to_string()),
                    Ok(_) if done.is_some_and(|d| d.has_openid(&r.openid)) => {}
                    Ok(_) => v.to_send += 1,
                }
            }
            Ok(Row::Duplicate(r)) => {
                v.duplicates += 1;
                if !done.is_some_and(|d| d.has_skipped_row(r.row)) {
                    v.duplicates_to_report += 1;
                }
            }
            Err(e @ crate::recipients::Error::Row { .. }) => note(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    if !errors.is_empty() {
        return Err(Error::Rows(errors, more));
    }
    if v.recipients == 0 {
        return Err(Error::Usage(format!(
            "{}: has a header but no recipient rows",
            c.recipients.display()
        )));
    }
    Ok(v)
}

pub(super) fn describe_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Official => "official account template messages",
        Kind::OfficialSubscribe => "official account subscribe notifications",
        Kind::Subscribe => "mini program subscribe messages",
        Kind::MiniTemplate => "mini program template messages (legacy form_id API)",
    }
}

pub(super) fn warn(c: &Campaign) {
    for w in c.warnings() {
        eprintln!("wxpush: warning: {}: {w}", c.path.display());
    }
}

pub(super) fn check(c: &Campaign) -> Result<(), Error> {
    warn(c);
    let v = validate(c, None)?;
    let secs = v.recipients.div_ceil(u64::from(c.rate));
    say!("{}: valid", c.path.display());
    say!("  {}, template {}", describe_kind(c.kind), c.template_id);
    say!(
        "  {}: {}, {} (reported skipped, sent once)",
        counted(v.rows, "row"),
        counted(v.recipients, "recipient"),
        counted(v.duplicates, "repeated openid")
    );
    say!(
        "  at {}/s a full send takes about {}",
        c.rate,
        humantime::format_duration(std::time::Duration::from_secs(secs))
    );
    Ok(())
}

/// The first messages as a follower would see them: cards when the template's `content` is
/// known, the request's fields otherwise. A row that does not render is shown with its
/// error, and the preview goes on.
pub(super) fn preview(c: &Campaign, pick: &Pick, html: Option<&Path>) -> Result<(), Error> {
    warn(c);
    let (mut rows, renderer) = open(c)?;
    let mut cards = Vec::new();
    let mut invalid = 0;
    let mut last_row = 0;
    let mut repeated: Option<u64> = None;
    while (cards.len() as u64) < pick.limit {
        let Some(row) = rows.next_row() else { break };
        let r = match row? {
            Row::New(r) => r,
            Row::Duplicate(r) => {
                last_row = r.row;
                if pick.row == Some(r.row) {
                    repeated = Some(r.row);
                }
                continue;
            }
        };
        last_row = r.row;
        let wanted = pick.row.is_none_or(|n| n == r.row)
            && pick.openid.as_ref().is_none_or(|o| *o == r.openid);
        if !wanted {
            continue;
        }
        let heading = format!("message {} · row {} · {}", cards.len() + 1, r.row, r.openid);
        // Without the template's content, the request's fields say more in the terminal.
        let shapeless = c.shape.as_ref().is_none_or(|s| s.content.is_none());
        let (card, fields) = match renderer.render(&r) {
            Ok(msg) => {
                let fields = shapeless.then(|| readable(&msg));
                (Card::of(c, &msg, heading.clone()), fields)
            }
            Err(e) => {
                invalid += 1;
                (Card::invalid(heading.clone(), e.to_string()), None)
            }
        };
        if html.is_none() {
            match fields {
                Some(text) => show_raw!("── {heading} ──\n{text}"),
                None => show_raw!("{}", card.text()),
            }
        }
        cards.push(card);
    }
    if cards.is_empty() {
        if let Some(n) = repeated {
            return Err(Error::Usage(format!(
                "{}: row {n} repeats an earlier row's openid: it is sent once, as that row, and \
                 reported `skipped` (preview the first row with that openid: --openid)",
                c.recipients.display()
            )));
        }
        let which = match (&pick.row, &pick.openid) {
            (Some(n), Some(o)) => format!("no row {n} with openid `{o}`"),
            (Some(n), _) => format!("no row {n} (the last data row is {last_row})"),
            (_, Some(o)) => format!("no row with openid `{o}`"),
            _ => "no recipients".to_owned(),
        };
        return Err(Error::Usage(format!("{}: {which}", c.recipients.display())));
    }
    if let Some(path) = html {
        let title = c
            .shape
            .as_ref()
            .and_then(|s| s.title.clone())
            .unwrap_or_else(|| c.name.clone());
        let page = card::page(&title, &c.appid, &cards);
        let inputs: Vec<&Path> = [c.path.as_path(), c.recipients.as_path()]
            .into_iter()
            .chain(c.data.values().filter_map(|f| f.from.as_deref()))
            .collect();
        super::write_output(path, page.as_bytes(), &inputs)?;
        say!(
            "wrote {} as cards to {} (open it in a browser)",
            counted(cards.len() as u64, "message"),
            path.display()
        );
    }
    if invalid > 0 {
        show!(
            "{} shown cannot be sent; `wxpush check {}` lists every invalid row",
            counted(invalid, "message"),
            shell_words::quote(&c.path.to_string_lossy())
        );
    } else {
        say!(
            "(run `wxpush check {}` to validate every row)",
            c.path.display()
        );
    }
    Ok(())
}

/// A message body as aligned `key  value` lines, data fields flattened.
fn readable(msg: &Outgoing) -> String {
    let mut out = format!("POST {}\n", msg.endpoint.path());
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(&msg.body) else {
        return out + msg.body_str() + "\n";
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut lines = Vec::new();
    for (k, v) in &body {
        match (k.as_str(), v) {
            ("data", serde_json::Value::Object(fields)) => {
                for (name, f) in fields {
                    let mut value = f.get("value").map(text).unwrap_or_default();
                    if let Some(color) = f.get("color") {
                        value.push_str(&format!("   (color {})", text(color)));
                    }
                    lines.push((format!("data.{name}"), value));
                }
            }
            (_, serde_json::Value::Object(inner)) => {
                for (ik, iv) in inner {
                    lines.push((format!("{k}.{ik}"), text(iv)));
                }
            }
            _ => lines.push((k.clone(), text(v))),
        }
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in lines {
        out.push_str(&format!("  {k:<width$}  {v}\n"));
    }
    out
}
