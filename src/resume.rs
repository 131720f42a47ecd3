//! Resume: decide how a send starts from what its report and journal say, then, only once
//! the run is validated, confirmed and authenticated, act on the decision.
//!
//! A recipient with a report row is done. A recipient the journal says was started but that
//! has no row was in flight: it is recorded `unknown` and not sent again (WeChat has no way
//! to ask whether it was delivered), except for Official Account messages still inside their
//! `client_msg_id` window, which are re-sent with the same id (WeChat delivers at most one).
//! `--resend-unknown` sends the `unknown` ones again, `--retry-failed` those whose retries ran
//! out (released in the journal: they were answered, never delivered); `--restart` sets the
//! old report aside.
//!
//! The split is the point: [`read`] looks at the files (under the journal's lock when there
//! is a journal, so no other run changes them meanwhile; a fresh start is claimed when
//! [`apply`] creates the journal), [`decide`] is a pure function of what was read, the flags and
//! the time, and returns a [`Start`] holding every [`Action`] to take; [`apply`] takes them.
//! Nothing on disk changes before `apply`, so a declined confirmation, a missing secret or an
//! invalid row leaves the report and journal exactly as they were.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::campaign::{Campaign, Kind};
use crate::journal::{self, Header, InDoubt, Journal, Lock, RunKind};
use crate::outcome::{Outcome, Status};
use crate::recipients::key;
use crate::report::{self, Done, DropRows, RowRef};
use crate::timezone::UtcOffset;
use crate::wechat::message::DEDUP_WINDOW;

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// What a report and its journal hold, as [`read`] found them.
#[derive(Debug, Default)]
pub struct Found {
    /// The report's rows; `None`: there is no report.
    pub report: Option<Done>,
    pub journal: Option<JournalFound>,
}

/// What a journal holds.
#[derive(Debug)]
pub struct JournalFound {
    /// The header in force; `None` in a journal cut short before its header was written.
    pub header: Option<Header>,
    /// Whether it records any send.
    pub records_sends: bool,
    /// Sends started without an outcome in the report.
    pub in_doubt: Vec<InDoubt>,
    /// The starts of the recipients the report records `unknown` (for `--resend-unknown`:
    /// their `client_msg_id` window counts from then).
    pub unknown_started: Vec<InDoubt>,
}

/// The run being started: what it is, for [`decide`].
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub campaign: &'a str,
    pub template_id: &'a str,
    pub kind: Kind,
    pub api: RunKind,
    /// Fingerprint of the recipients file now.
    pub fingerprint: &'a str,
    pub recipients: &'a Path,
}

/// A change to the report or journal, taken by [`apply`] in the order listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `--restart`: rename the report and journal to a free `<stem>.<time>.csv` name.
    SetAside,
    /// Journal `released` lines for these recipients (gave-up `failed` rows about to be
    /// dropped: every attempt was answered, none delivered them).
    Release(Vec<RowRef>),
    /// Remove these rows of the report, so their recipients are sent again.
    DropRows(DropRows),
    /// Report these sends of the previous run `unknown`.
    RecordUnknown(Vec<InDoubt>),
    /// Append the new header to the journal (`--resume-changed`).
    AppendHeader,
}

/// A send of an earlier run, without an outcome, that this run sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resend {
    /// When its first request left (the `client_msg_id` window counts from then).
    pub started: SystemTime,
    /// Sent again because the window is open (not because `--resend-unknown` asked): only
    /// while it still is, when its turn comes.
    pub only_in_window: bool,
}

/// How a send starts.
#[derive(Debug)]
pub struct Start {
    pub header: Header,
    /// Recipients that have (or will have once the actions are taken) a report row.
    pub done: Done,
    /// Rows in the report when resuming; `None` for a fresh report.
    pub previous_rows: Option<u64>,
    /// What [`apply`] does, in order.
    pub actions: Vec<Action>,
    /// In flight when the previous run stopped, to send again: openid key → how.
    pub resend: HashMap<u128, Resend>,
    /// Rows the actions drop from the report.
    pub dropped: u64,
    /// `--restart`: recipients the report being set aside records `sent` (they will get
    /// the message again).
    pub aside_sent: u64,
}

impl Start {
    /// A fresh start: nothing done, nothing to change.
    pub fn fresh(header: Header) -> Self {
        Start {
            header,
            done: Done::default(),
            previous_rows: None,
            actions: Vec::new(),
            resend: HashMap::new(),
            dropped: 0,
            aside_sent: 0,
        }
    }

    pub fn sets_aside(&self) -> bool {
        self.actions.contains(&Action::SetAside)
    }

    /// The sends the previous run left in flight that this one records `unknown`.
    pub fn unknown(&self) -> &[InDoubt] {
        self.actions
            .iter()
            .find_map(|a| match a {
                Action::RecordUnknown(u) => Some(u.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

/// Why a report cannot be resumed as it is. The driver adds the commands that get past it
/// ([`Refusal::remedies`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{} records sends of an earlier run but its report {} is missing, so resuming could \
         send to those recipients again; restore the report to resume",
        journal.display(),
        report.display()
    )]
    JournalWithoutReport { report: PathBuf, journal: PathBuf },
    #[error(
        "{} exists but its journal {} does not, so wxpush cannot tell which sends were in \
         flight when it stopped",
        report.display(),
        journal.display()
    )]
    ReportWithoutJournal { report: PathBuf, journal: PathBuf },
    #[error(
        "{} belongs to campaign `{found_campaign}` (template {found_template}), not to \
         `{campaign}` (template {template}); use --report to write elsewhere",
        report.display()
    )]
    OtherCampaign {
        report: PathBuf,
        found_campaign: String,
        found_template: String,
        campaign: String,
        template: String,
    },
    #[error(
        "{} records sends to {found}, and this run sends to {this}: the two never share a \
         report; use --report to write elsewhere",
        report.display()
    )]
    OtherApi {
        report: PathBuf,
        found: String,
        this: &'static str,
    },
    #[error(
        "{} records sends to {found}, and the campaign now sends to {this} (`official_api` or \
         `mini_api` changed): a message in doubt could be sent again as the other kind",
        report.display()
    )]
    OtherEndpoint {
        report: PathBuf,
        found: String,
        this: &'static str,
    },
    #[error(
        "{} changed since {} was started; resuming skips every openid that already has a \
         row, so nobody gets the message twice",
        recipients.display(),
        report.display()
    )]
    RecipientsChanged {
        report: PathBuf,
        recipients: PathBuf,
    },
}

/// A way past a [`Refusal`]: a flag added to the same command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// `--restart`: a fresh report (the old one is kept under another name).
    Restart,
    /// `--resume-changed`: continue with the new list.
    ResumeChanged,
    /// Leave out `--report`: this run's own default report (when `--report` was given).
    OwnReport,
}

impl Refusal {
    pub fn remedies(&self) -> &'static [Remedy] {
        match self {
            Refusal::JournalWithoutReport { .. } | Refusal::ReportWithoutJournal { .. } => {
                &[Remedy::Restart]
            }
            Refusal::OtherCampaign { .. } | Refusal::OtherEndpoint { .. } => {
                &[Remedy::OwnReport, Remedy::Restart]
            }
            Refusal::OtherApi { .. } => &[Remedy::OwnReport],
            Refusal::RecipientsChanged { .. } => &[Remedy::ResumeChanged, Remedy::Restart],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refusal),
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

/// Reads the report at `report_path` and its journal (which `lock` holds, if there is one).
pub fn read(report_path: &Path, lock: Option<&Lock>) -> Result<Found, Error> {
    let report = match report_path.exists() {
        true => Some(report::read(report_path)?),
        false => None,
    };
    let Some(lock) = lock else {
        return Ok(Found {
            report,
            journal: None,
        });
    };
    let path = lock.path();
    let journal::Head {
        header,
        records_sends,
    } = journal::head(path)?;
    // One pass over the journal for both: starts without a row, and starts of `unknown` rows.
    let unknown: HashSet<u128> = report
        .iter()
        .flat_map(|done| done.unknown.iter().map(|r| key(&r.openid)))
        .collect();
    let (unknown_started, in_doubt) = match &report {
        Some(done) => {
            journal::in_doubt(path, |o| done.has_openid(o) && !unknown.contains(&key(o)))?
                .into_iter()
                .partition(|d| unknown.contains(&key(&d.openid)))
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Found {
        report,
        journal: Some(JournalFound {
            header,
            records_sends,
            in_doubt,
            unknown_started,
        }),
    })
}

/// Decides how a send of `run` starts from `found`, at `now`. Pure: it changes nothing.
pub fn decide(
    found: Found,
    run: &Subject,
    report_path: &Path,
    opts: Options,
    now: SystemTime,
) -> Result<Start, Refusal> {
    let journal_path = journal::path_for(report_path);
    let endpoint = run.kind.endpoint().path();
    let header = Header::new(
        run.campaign,
        run.template_id,
        run.fingerprint.to_owned(),
        run.api.as_str(),
        endpoint,
    );
    let Found { report, journal } = found;
    if opts.restart && (report.is_some() || journal.is_some()) {
        let sent = report
            .as_ref()
            .map_or(0, |d| d.by_status.get(&Status::Sent).copied().unwrap_or(0));
        return Ok(Start {
            actions: vec![Action::SetAside],
            aside_sent: sent,
            ..Start::fresh(header)
        });
    }
    let (mut done, journal) = match (report, journal) {
        (None, None) => return Ok(Start::fresh(header)),
        // A journal that records no send, with no report: a run that stopped between the
        // two files' creation. Nothing was sent; start over it.
        (None, Some(j)) if !j.records_sends => return Ok(Start::fresh(header)),
        (None, Some(_)) => {
            return Err(Refusal::JournalWithoutReport {
                report: report_path.to_owned(),
                journal: journal_path,
            });
        }
        (Some(_), None) => {
            return Err(Refusal::ReportWithoutJournal {
                report: report_path.to_owned(),
                journal: journal_path,
            });
        }
        (Some(done), Some(j)) => (done, j),
    };
    let Some(mut found) = journal.header else {
        return Err(Refusal::ReportWithoutJournal {
            report: report_path.to_owned(),
            journal: journal_path,
        });
    };
    if found.campaign != run.campaign || found.template_id != run.template_id {
        return Err(Refusal::OtherCampaign {
            report: report_path.to_owned(),
            found_campaign: found.campaign,
            found_template: found.template_id,
            campaign: run.campaign.to_owned(),
            template: run.template_id.to_owned(),
        });
    }
    if found.api != run.api.as_str() {
        return Err(Refusal::OtherApi {
            report: report_path.to_owned(),
            found: found.api,
            this: run.api.as_str(),
        });
    }
    if let Some(recorded) = &found.endpoint
        && recorded != endpoint
    {
        return Err(Refusal::OtherEndpoint {
            report: report_path.to_owned(),
            found: recorded.clone(),
            this: endpoint,
        });
    }
    // A journal from before endpoints were recorded cannot say its sends were template
    // messages: none of them is resent under a `client_msg_id` window. A header appended
    // from here on records the endpoint.
    let endpoint_known = found.endpoint.is_some();
    found.endpoint = Some(endpoint.to_owned());
    let mut actions = Vec::new();
    if found.recipients != run.fingerprint {
        if !opts.resume_changed {
            return Err(Refusal::RecipientsChanged {
                report: report_path.to_owned(),
                recipients: run.recipients.to_owned(),
            });
        }
        found.recipients = run.fingerprint.to_owned();
        actions.push(Action::AppendHeader);
    }
    let previous_rows = Some(done.rows);
    let drop = DropRows {
        unknown: opts.resend_unknown,
        retryable: opts.retry_failed,
    };
    let mut dropped = 0;
    if drop.retryable && !done.retryable.is_empty() {
        actions.push(Action::Release(done.retryable.clone()));
    }
    let mut to_drop = Vec::new();
    if drop.unknown {
        to_drop.extend(done.unknown.iter().map(|r| r.openid.clone()));
    }
    if drop.retryable {
        to_drop.extend(done.retryable.iter().map(|r| r.openid.clone()));
    }
    for openid in &to_drop {
        done.remove(openid);
        dropped += 1;
    }
    if dropped > 0 {
        actions.push(Action::DropRows(drop));
    }
    let mut unknown = Vec::new();
    let mut resend = HashMap::new();
    // The `unknown` rows --resend-unknown drops are in doubt again, like sends without a row.
    let dropped_unknown = journal
        .unknown_started
        .into_iter()
        .filter(|_| opts.resend_unknown);
    for d in journal.in_doubt.into_iter().chain(dropped_unknown) {
        let window_open =
            endpoint_known && run.kind.deduplicates() && now < d.started + DEDUP_WINDOW;
        if window_open || opts.resend_unknown {
            let how = Resend {
                started: d.started,
                only_in_window: !opts.resend_unknown,
            };
            resend.insert(key(&d.openid), how);
        } else {
            done.insert(&d.openid);
            unknown.push(d);
        }
    }
    if !unknown.is_empty() {
        actions.push(Action::RecordUnknown(unknown));
    }
    Ok(Start {
        header: found,
        done,
        previous_rows,
        actions,
        resend,
        dropped,
        aside_sent: 0,
    })
}

/// The journal and report [`apply`] opened for the run.
pub struct Opened {
    pub journal: Journal,
    pub report: report::Writer,
    /// Where `--restart` put the old report.
    pub set_aside: Option<PathBuf>,
}

/// Takes the actions of `start` and opens the journal, then the report, for the run. The
/// journal first: it is the claim on the report (a second run that raced this one to a
/// fresh start finds it and stops, having touched nothing).
pub fn apply(
    start: &Start,
    report_path: &Path,
    lock: Option<Lock>,
    now: SystemTime,
    offset: UtcOffset,
) -> Result<Opened, Error> {
    let journal_path = journal::path_for(report_path);
    let fresh = |lock, set_aside| -> Result<Opened, Error> {
        let journal = Journal::create(&journal_path, lock, &start.header)?;
        let report = report::Writer::create(report_path, false, offset)?;
        Ok(Opened {
            journal,
            report,
            set_aside,
        })
    };
    if start.sets_aside() {
        let aside = set_aside(report_path, &journal_path, now)?;
        // The old journal's lock is released only once the new journal (and report) are in
        // place: a run waiting on it (`--wait`) then finds the new journal, locked by this
        // run, instead of a moment with no journal at all.
        let opened = fresh(None, Some(aside));
        drop(lock);
        return opened;
    }
    let lock = match (start.previous_rows, lock) {
        (None, lock) => return fresh(lock, None),
        (Some(_), Some(lock)) => lock,
        (Some(_), None) => unreachable!("a resumed report has a locked journal (`decide`)"),
    };
    let changed = start
        .actions
        .contains(&Action::AppendHeader)
        .then_some(&start.header);
    let journal = Journal::append(lock, changed)?;
    for action in &start.actions {
        match action {
            Action::SetAside | Action::AppendHeader => {}
            Action::Release(rows) => {
                // Released before the rows are dropped: a crash in between leaves rows that
                // are still `failed`, never recipients held `unknown`.
                for r in rows {
                    journal.released(&r.openid, r.row)?;
                }
                journal.finish()?;
            }
            Action::DropRows(which) => {
                report::drop_rows(report_path, *which)?;
            }
            Action::RecordUnknown(unknown) => record_unknown(report_path, unknown, offset)?,
        }
    }
    Ok(Opened {
        journal,
        report: report::Writer::append(report_path, offset)?,
        set_aside: None,
    })
}

/// Records the sends the previous run left in flight as `unknown`.
fn record_unknown(report_path: &Path, unknown: &[InDoubt], offset: UtcOffset) -> Result<(), Error> {
    let mut writer = report::Writer::append(report_path, offset)?;
    for d in unknown {
        let why = "in flight when the previous run stopped: may or may not have been delivered";
        let mut o = Outcome::unsent(d.row, d.openid.clone(), Status::Unknown, why.into());
        // A start of unknown date (a damaged journal line) has no time to show.
        o.sent_at = (d.started != std::time::UNIX_EPOCH).then_some(d.started);
        writer.write(&o)?;
    }
    Ok(writer.finish()?)
}

/// Renames the report (and its journal) to `<stem>.<time>.csv` (with `-2`, `-3`… when that
/// name is taken) so a fresh one can start. Returns the new report name.
fn set_aside(report: &Path, journal: &Path, now: SystemTime) -> Result<PathBuf, Error> {
    let stamp = humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_owned();
    let stem = report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = (1..)
        .map(|n| match n {
            1 => report.with_file_name(format!("{stem}.{stamp}.csv")),
            n => report.with_file_name(format!("{stem}.{stamp}-{n}.csv")),
        })
        .find(|p| !p.exists() && !p.with_extension("journal").exists())
        .unwrap_or_else(|| unreachable!("(1..) is endless"));
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
    let dir = report.parent().filter(|d| !d.as_os_str().is_empty());
    crate::appendfile::sync_dir(dir.unwrap_or(Path::new(".")));
    Ok(aside)
}

/// The recipients file's fingerprint, as the journal records it.
pub fn fingerprint(c: &Campaign) -> Result<String, Error> {
    journal::fingerprint(&c.recipients).map_err(|source| {
        Error::Recipients(crate::recipients::Error::Io {
            path: c.recipients.clone(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FP: &str = "fingerprint";

    fn subject(kind: Kind) -> Subject<'static> {
        Subject {
            campaign: "c",
            template_id: "T",
            kind,
            api: RunKind::Sandbox,
            fingerprint: FP,
            recipients: Path::new("people.csv"),
        }
    }

    /// A report of `rows`: (openid, status, gave up).
    fn report(rows: &[(&str, Status, bool)]) -> Done {
        let mut done = Done::default();
        for (i, (openid, status, gave_up)) in rows.iter().enumerate() {
            let at = RowRef {
                openid: (*openid).into(),
                row: i as u64 + 1,
            };
            done.add(at, *status, *gave_up);
        }
        done
    }

    fn journal(header: Header, records_sends: bool, in_doubt: &[(&str, Duration)]) -> JournalFound {
        let now = now();
        JournalFound {
            header: Some(header),
            records_sends,
            unknown_started: Vec::new(),
            in_doubt: in_doubt
                .iter()
                .enumerate()
                .map(|(i, (openid, age))| InDoubt {
                    openid: (*openid).into(),
                    row: 100 + i as u64,
                    started: now - *age,
                })
                .collect(),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    /// This campaign's header, as a journal from before endpoints were recorded has it (so
    /// it fits every kind).
    fn ours() -> Header {
        Header {
            endpoint: None,
            ..Header::new("c", "T", FP.into(), "sandbox", "")
        }
    }

    fn flags(f: &str) -> Options {
        Options {
            restart: f.contains('R'),
            resend_unknown: f.contains('U'),
            retry_failed: f.contains('F'),
            resume_changed: f.contains('C'),
        }
    }

    fn decided(found: Found, kind: Kind, f: &str) -> Result<Start, Refusal> {
        decide(found, &subject(kind), Path::new("r.csv"), flags(f), now())
    }

    fn actions(found: Found, f: &str) -> Vec<Action> {
        decided(found, Kind::Subscribe, f).unwrap().actions
    }

    fn both(done: Done, j: JournalFound) -> Found {
        Found {
            report: Some(done),
            journal: Some(j),
        }
    }

    fn row(openid: &str, row: u64) -> RowRef {
        RowRef {
            openid: openid.into(),
            row,
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn fresh_starts_change_nothing_and_restart_sets_aside_only_what_exists() {
        let s = decided(Found::default(), Kind::Official, "").unwrap();
        assert_eq!((s.actions, s.previous_rows), (vec![], None));
        assert_eq!(actions(Found::default(), "R"), []);
        let sent = || report(&[("a", Status::Sent, false)]);
        let s = decided(
            both(sent(), journal(ours(), true, &[])),
            Kind::Official,
            "R",
        )
        .unwrap();
        assert_eq!((s.actions, s.aside_sent), (vec![Action::SetAside], 1));
        // A header-only journal without a report: a run that never sent; started over.
        let only_header = Found {
            report: None,
            journal: Some(journal(ours(), false, &[])),
        };
        assert_eq!(actions(only_header, ""), []);
    }

    #[test]
    fn reports_that_cannot_be_resumed_are_refused_with_their_remedies() {
        let sent = || report(&[("a", Status::Sent, false)]);
        let other = |f: fn(&mut Header)| {
            let mut h = ours();
            f(&mut h);
            both(sent(), journal(h, true, &[]))
        };
        let cases: Vec<(Found, &str, &[Remedy])> = vec![
            (
                Found {
                    report: None,
                    journal: Some(journal(ours(), true, &[])),
                },
                "journal without report",
                &[Remedy::Restart],
            ),
            (
                Found {
                    report: Some(sent()),
                    journal: None,
                },
                "report without journal",
                &[Remedy::Restart],
            ),
            (
                other(|h| h.campaign = "x".into()),
                "other campaign",
                &[Remedy::OwnReport, Remedy::Restart],
            ),
            (
                other(|h| h.template_id = "X".into()),
                "other template",
                &[Remedy::OwnReport, Remedy::Restart],
            ),
            (
                other(|h| h.api = "wechat".into()),
                "other api",
                &[Remedy::OwnReport],
            ),
            (
                other(|h| h.recipients = "old".into()),
                "changed list",
                &[Remedy::ResumeChanged, Remedy::Restart],
            ),
            (
                other(|h| h.endpoint = Some(Kind::OfficialSubscribe.endpoint().path().into())),
                "subscribe notifications, now template messages",
                &[Remedy::OwnReport, Remedy::Restart],
            ),
        ];
        for (found, what, remedies) in cases {
            let refusal = decided(found, Kind::Official, "").unwrap_err();
            assert_eq!(refusal.remedies(), remedies, "{what}: {refusal}");
        }
        // The same endpoint resumes.
        let same = other(|h| h.endpoint = Some(Kind::Official.endpoint().path().into()));
        assert!(decided(same, Kind::Official, "").is_ok());
    }

    #[test]
    fn a_changed_list_with_its_flag_appends_the_new_header() {
        let mut old = ours();
        old.recipients = "old".into();
        let run_id = old.run_id.clone();
        let found = both(
            report(&[("a", Status::Sent, false)]),
            journal(old, true, &[]),
        );
        let s = decided(found, Kind::Official, "C").unwrap();
        assert_eq!(s.actions, [Action::AppendHeader]);
        // The appended header records the endpoint, so later resumes can check it.
        assert_eq!(
            s.header.endpoint.as_deref(),
            Some(Kind::Official.endpoint().path())
        );
        assert_eq!(
            (s.header.recipients.as_str(), s.header.run_id),
            (FP, run_id)
        );
    }

    #[test]
    fn sends_in_flight_are_resent_only_under_an_open_client_msg_id_window() {
        let sent_to = |kind: Kind| {
            let header = Header {
                endpoint: Some(kind.endpoint().path().into()),
                ..ours()
            };
            both(
                report(&[("a", Status::Sent, false)]),
                journal(header, true, &[("b", MIN), ("c", 11 * MIN)]),
            )
        };
        let in_flight = || sent_to(Kind::Subscribe);
        // Official: b's window (about 10 minutes) is open, c's is closed.
        let s = decided(sent_to(Kind::Official), Kind::Official, "").unwrap();
        assert_eq!(s.resend.len(), 1);
        assert!(s.resend.contains_key(&key("b")));
        assert_eq!(s.unknown().len(), 1);
        assert_eq!(s.unknown()[0].openid, "c");
        assert!(s.done.has_openid("c") && !s.done.has_openid("b"));
        // Subscribe messages and notifications: no idempotency key, both recorded unknown.
        for kind in [Kind::Subscribe, Kind::OfficialSubscribe] {
            let s = decided(sent_to(kind), kind, "").unwrap();
            assert!(s.resend.is_empty(), "{kind:?}");
            assert_eq!(s.unknown().len(), 2, "{kind:?}");
        }
        // A journal that does not say it recorded template messages: no window is trusted.
        let old = both(
            report(&[("a", Status::Sent, false)]),
            journal(ours(), true, &[("b", MIN)]),
        );
        let s = decided(old, Kind::Official, "").unwrap();
        assert_eq!((s.resend.len(), s.unknown().len()), (0, 1));
        // --resend-unknown: both sent again, deliberately.
        let s = decided(in_flight(), Kind::Subscribe, "U").unwrap();
        assert_eq!((s.resend.len(), s.unknown().len()), (2, 0));
    }

    #[test]
    fn retry_failed_releases_and_drops_only_the_rows_whose_retries_ran_out() {
        let rows = || {
            report(&[
                ("a", Status::Sent, false),
                ("b", Status::Failed, true),
                ("c", Status::Failed, false),
                ("d", Status::Unknown, false),
            ])
        };
        let s = decided(
            both(rows(), journal(ours(), true, &[])),
            Kind::Subscribe,
            "F",
        )
        .unwrap();
        assert_eq!(
            s.actions,
            [
                Action::Release(vec![row("b", 2)]),
                Action::DropRows(DropRows {
                    unknown: false,
                    retryable: true
                })
            ]
        );
        assert_eq!(s.dropped, 1);
        assert!(!s.done.has_openid("b"), "b is sent again");
        assert!(
            s.done.has_openid("c") && s.done.has_openid("d"),
            "a refusal stays"
        );
        // Nothing gave up: nothing to do.
        let sent = report(&[("a", Status::Sent, false)]);
        assert_eq!(actions(both(sent, journal(ours(), true, &[])), "F"), []);
        // Both flags: one drop of both kinds; d's first start is known for its window.
        let s = decided(
            both(rows(), journal(ours(), true, &[("d", MIN)])),
            Kind::Official,
            "UF",
        )
        .unwrap();
        assert_eq!(s.dropped, 2);
        assert_eq!(
            s.actions.last(),
            Some(&Action::DropRows(DropRows {
                unknown: true,
                retryable: true
            }))
        );
        assert!(s.resend.contains_key(&key("d")));
    }

    #[test]
    fn a_restart_never_overwrites_an_archive_of_the_same_second() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.csv");
        let journal = dir.path().join("r.journal");
        let at = now();
        let mut names = Vec::new();
        for i in 0..3 {
            std::fs::write(&report, format!("report {i}")).unwrap();
            std::fs::write(&journal, format!("journal {i}")).unwrap();
            names.push(set_aside(&report, &journal, at).unwrap());
        }
        let names: Vec<String> = names
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "r.20270115T080000.csv",
                "r.20270115T080000-2.csv",
                "r.20270115T080000-3.csv"
            ]
        );
        for (i, n) in names.iter().enumerate() {
            assert_eq!(
                std::fs::read_to_string(dir.path().join(n)).unwrap(),
                format!("report {i}")
            );
        }
    }
}
