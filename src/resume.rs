//! Resume: from an existing report and its journal, what is done, what was in flight when
//! the previous run stopped, and whether the report belongs to this campaign at all.
//!
//! A recipient with a report row is done. A recipient the journal says was started but that
//! has no row was in flight: it is recorded `unknown` and not sent again (WeChat has no way
//! to ask whether it was delivered), except for Official Account messages still inside their
//! `client_msg_id` window, which are re-sent with the same id (WeChat delivers at most one).
//! `--resend-unknown` sends the `unknown` ones again, `--retry-failed` those whose retries ran
//! out; `--restart` puts the old report aside.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::campaign::{Campaign, Kind, RunKind};
use crate::journal::{self, Header, InDoubt};
use crate::recipients::key;
use crate::report::{self, Done};
use crate::wechat::message::DEDUP_WINDOW;

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Put the old report and journal aside and start fresh.
    pub restart: bool,
    /// Send again the recipients recorded `unknown`.
    pub resend_unknown: bool,
    /// Send again the recipients whose retries ran out.
    pub retry_failed: bool,
    /// Resume although the recipients file changed.
    pub resume_changed: bool,
}

/// Where a send starts from.
#[derive(Debug)]
pub struct Resume {
    pub header: Header,
    /// Recipients that have (or are about to get, see `unknown`) a report row.
    pub done: Done,
    /// Rows in the report when resuming; `None` for a fresh report.
    pub previous_rows: Option<u64>,
    /// `header` differs from the journal's (`--resume-changed`): the journal must record it.
    pub header_changed: bool,
    /// In flight when the previous run stopped, to be recorded `unknown` now.
    pub unknown: Vec<InDoubt>,
    /// In flight when the previous run stopped, safe to send again (inside the
    /// `client_msg_id` window): openid key → when the first request left.
    pub resend: HashMap<u128, SystemTime>,
    /// Where the old report was put by `--restart`.
    pub set_aside: Option<PathBuf>,
    /// Rows removed by `--resend-unknown` and `--retry-failed`.
    pub dropped: u64,
}

impl Resume {
    /// A fresh start: nothing done.
    pub fn fresh(header: Header) -> Self {
        Resume {
            header,
            done: Done::default(),
            previous_rows: None,
            header_changed: false,
            unknown: Vec::new(),
            resend: HashMap::new(),
            set_aside: None,
            dropped: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The report cannot be resumed as it is; the message says what to do.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Recipients(#[from] crate::recipients::Error),
    #[error(transparent)]
    Report(#[from] report::Error),
    #[error(transparent)]
    Journal(#[from] journal::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Decides how a send of `c` to `api` with its report at `report_path` starts.
pub fn prepare(
    c: &Campaign,
    api: RunKind,
    report_path: &Path,
    opts: Options,
) -> Result<Resume, Error> {
    let journal_path = journal::path_for(report_path);
    let fingerprint =
        journal::fingerprint(&c.recipients).map_err(|source| crate::recipients::Error::Io {
            path: c.recipients.clone(),
            source,
        })?;
    let fresh = |set_aside| Resume {
        set_aside,
        ..Resume::fresh(Header::new(
            &c.name,
            &c.template_id,
            fingerprint.clone(),
            api.as_str(),
        ))
    };
    let shown = report_path.display();
    if opts.restart && (report_path.exists() || journal_path.exists()) {
        let aside = set_aside(report_path, &journal_path)?;
        return Ok(fresh(Some(aside)));
    }
    if !report_path.exists() {
        if journal_path.exists() {
            // The journal says sends happened; without their outcomes, a fresh start could
            // send to every one of those recipients again.
            return Err(Error::Refused(format!(
                "{} records sends of an earlier run but its report {shown} is missing; restore \
                 the report to resume, or pass --restart to start over (the journal is kept)",
                journal_path.display()
            )));
        }
        return Ok(fresh(None));
    }
    if !journal_path.exists() {
        return Err(Error::Refused(format!(
            "{shown} exists but its journal {} does not, so wxpush cannot tell which sends were \
             in flight when it stopped; --restart starts a fresh report (the old one is kept)",
            journal_path.display()
        )));
    }
    let mut header = journal::header(&journal_path)?;
    if header.campaign != c.name || header.template_id != c.template_id {
        return Err(Error::Refused(format!(
            "{shown} belongs to campaign `{}` (template {}), not to `{}` (template {}); \
             use --report to write elsewhere, or --restart to start a fresh report here (the \
             old one is kept)",
            header.campaign, header.template_id, c.name, c.template_id
        )));
    }
    if header.api != api.as_str() {
        return Err(Error::Refused(format!(
            "{shown} records sends to {}, and this run sends to {}: the two never share a \
             report; use --report to write elsewhere",
            header.api,
            api.as_str()
        )));
    }
    let header_changed = header.recipients != fingerprint;
    if header_changed {
        if !opts.resume_changed {
            return Err(Error::Refused(format!(
                "{} changed since {shown} was started. Resuming skips every openid that \
                 already has a row, so nobody gets the message twice: pass --resume-changed \
                 to continue with the new list, or --restart to send to everyone again (the \
                 old report is kept)",
                c.recipients.display()
            )));
        }
        header.recipients = fingerprint;
    }
    let which = report::Drop {
        unknown: opts.resend_unknown,
        gave_up: opts.retry_failed,
    };
    let dropped = if which.unknown || which.gave_up {
        report::drop_rows(report_path, which)?
    } else {
        0
    };
    let mut done = report::read(report_path)?;
    let previous_rows = Some(done.rows);
    let in_doubt = journal::in_doubt(&journal_path, |o| done.has_openid(o))?;
    let now = SystemTime::now();
    let mut unknown = Vec::new();
    let mut resend = HashMap::new();
    for d in in_doubt {
        let window_open = c.kind == Kind::Official && now < d.started + DEDUP_WINDOW;
        if window_open || opts.resend_unknown {
            resend.insert(key(&d.openid), d.started);
        } else {
            done.insert(&d.openid);
            unknown.push(d);
        }
    }
    Ok(Resume {
        header,
        done,
        previous_rows,
        header_changed,
        unknown,
        resend,
        set_aside: None,
        dropped,
    })
}

/// Renames the report (and its journal) to `<stem>.<time>.csv` so a fresh one can start.
fn set_aside(report: &Path, journal: &Path) -> Result<PathBuf, Error> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_owned();
    let stem = report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = report.with_file_name(format!("{stem}.{stamp}.csv"));
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|source| Error::Io {
            path: from.to_owned(),
            source,
        })
    };
    if report.exists() {
        rename(report, &aside)?;
    }
    if journal.exists() {
        rename(journal, &aside.with_extension("journal"))?;
    }
    Ok(aside)
}
