//! `send --to OPENID,…`: the campaign's message to a few chosen openids, to see it on your
//! own phone before the real send. Each openid gets its own CSV row's values when it has
//! one, else the first row's. It writes its own report (`reports/test/NAME.csv`), keeps no journal
//! and never touches the campaign's report: the real send afterwards needs no `--restart`.
//! Every test send sends again (with a `client_msg_id` of its own), since that is what a
//! test is for.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::check;
use super::interact;
use super::pipeline::{self, Sending};
use super::send::{authenticate, connect};
use crate::Error;
use crate::dispatch::{Ledger, Settings, Stop, StopReason};
use crate::outcome::{Outcome, Status};
use crate::plan::{SendPlan, Then};
use crate::progress::counted;
use crate::recipients::{Recipient, Row};
use crate::report;

/// The (row, openid) of every row of the test report at `path` (none if there is none).
fn test_rows(path: &std::path::Path) -> Vec<(u64, String)> {
    let mut rows = Vec::new();
    let _ = report::rows(path, false, |r| rows.push((r.row, r.openid.to_owned())));
    rows
}

/// Writes a `failed` row for each test message the stopped run left without one.
fn record_unsent(
    plan: &SendPlan,
    sending: &[(u64, String)],
    before: usize,
    errcode: i64,
    errmsg: &str,
    mut tally: report::Tally,
) -> Result<report::Tally, Error> {
    let written: Vec<(u64, String)> = test_rows(&plan.report).split_off(before);
    let mut w = report::Writer::append(&plan.report, plan.campaign.utc_offset)
        .map_err(|e| Error::Aborted(e.to_string()))?;
    for (row, openid) in sending.iter().filter(|m| !written.contains(m)) {
        let why = format!("not delivered: the test stopped at WeChat's {errcode}: {errmsg}");
        let mut o = Outcome::unsent(*row, openid.clone(), Status::Failed, why);
        o.errcode = Some(errcode);
        w.write(&o).map_err(|e| Error::Aborted(e.to_string()))?;
    }
    w.finish().map_err(|e| Error::Aborted(e.to_string()))?;
    let t = w.tally();
    *tally.by_status.entry(Status::Failed).or_default() += t.count(Status::Failed);
    for (code, p) in &t.problems {
        let e = tally
            .problems
            .entry(*code)
            .or_insert_with(|| (0, p.1.clone()));
        e.0 += p.0;
    }
    Ok(tally)
}

/// A test send records nothing before its requests leave: it has no journal to resume.
struct Unjournaled;

impl Ledger for Unjournaled {
    fn started(&self, _: &str, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn released(&self, _: &str, _: u64) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) async fn test_send(plan: &SendPlan) -> Result<(), Error> {
    let c = &plan.campaign;
    check::warn(c);
    let (mut rows, renderer) = check::open(c)?;
    // The openids' own rows, and the first row for those without one.
    let mut own: Vec<Option<Recipient>> = plan.to.iter().map(|_| None).collect();
    let mut first = None;
    while let Some(row) = rows.next_row() {
        let Row::New(r) = row? else { continue };
        if let Some(i) = plan.to.iter().position(|o| *o == r.openid) {
            own[i].get_or_insert_with(|| r.clone());
        }
        if first.is_none() {
            first = Some(r);
        }
        if own.iter().all(Option::is_some) {
            break;
        }
    }
    let Some(first) = first else {
        return Err(Error::Usage(format!(
            "{}: no recipients, so no values to test with",
            c.recipients.display()
        )));
    };
    // A `client_msg_id` of its own, so that a second test within WeChat's 10 minutes arrives.
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let renderer = renderer.with_run_id(&format!("test-{stamp:x}"));
    let own_rows: Vec<bool> = own.iter().map(Option::is_some).collect();
    let mut messages = Vec::new();
    let mut borrowed = 0;
    for (openid, r) in plan.to.iter().zip(own) {
        let r = r.unwrap_or_else(|| {
            borrowed += 1;
            Recipient {
                openid: openid.clone(),
                ..first.clone()
            }
        });
        messages.push(renderer.render(&r)?);
    }
    // A test report is only ever a test report: never the campaign's, never another file.
    if plan.report.exists() {
        let journal = crate::journal::path_for(&plan.report);
        if journal.exists() {
            return Err(Error::Usage(format!(
                "{} has a journal beside it: it is a campaign's report, not a test report",
                plan.report.display()
            )));
        }
        report::rows(&plan.report, false, |_| {}).map_err(|e| Error::Usage(e.to_string()))?;
    }
    if c.kind.is_subscribe() {
        let listed: Vec<&str> = plan
            .to
            .iter()
            .zip(&own_rows)
            .filter(|(_, own)| **own)
            .map(|(o, _)| o.as_str())
            .collect();
        if !listed.is_empty() {
            eprintln!(
                "wxpush: warning: {} in the recipients list: a test uses up the one-time \
                 subscription, and the campaign's send to them then answers 43101",
                listed.join(", ")
            );
        }
    }
    say!(
        "test send of `{}`: {} to {}{}; the campaign's report is not touched",
        c.name,
        counted(messages.len() as u64, "message"),
        plan.to.join(", "),
        match borrowed {
            0 => String::new(),
            n => format!(" ({n} with the values of row {}, the first)", first.row),
        }
    );
    let target = connect(plan).await?;
    let counts = interact::Counts {
        to_send: messages.len() as u64,
        done: 0,
        repeats: 0,
        // A few messages: no preflight.
        quota: None,
        quota_cap: None,
    };
    interact::confirm(plan, &counts, &target.base)?;
    let (client, tokens) = authenticate(plan, &target).await?;
    let writer = match plan.report.exists() {
        true => report::Writer::append(&plan.report, c.utc_offset),
        false => report::Writer::create(&plan.report, false, c.utc_offset),
    }
    .map_err(|e| Error::Aborted(e.to_string()))?;
    let stop = Arc::new(Stop::default());
    let recorded = Arc::new(AtomicU64::new(0));
    interact::watch_ctrl_c(stop.clone(), plan, recorded.clone());
    let started = Instant::now();
    let via = Sending {
        client,
        tokens,
        ledger: Arc::new(Unjournaled),
        settings: Settings {
            rate: plan.rate,
            concurrency: plan.concurrency,
            error_threshold: c.error_threshold,
        },
        stop: stop.clone(),
        recorded,
    };
    let sending: Vec<(u64, String)> = messages.iter().map(|m| (m.row, m.openid.clone())).collect();
    let before = test_rows(&plan.report).len();
    let mut tally = pipeline::send_these(messages, writer, via).await?;
    if let Some(sb) = target.sandbox {
        sb.shutdown().await;
    }
    if let Some(StopReason::Api { errcode, errmsg }) = stop.reason() {
        // The message WeChat refused so that the run stopped has no outcome (a campaign's
        // would be sent again on resume): a test's report says what became of each.
        tally = record_unsent(plan, &sending, before, errcode, &errmsg, tally)?;
    }
    let title = format!("{}: test send → {}", c.name, target.base);
    interact::summary(plan, title, started, &tally, &stop)?;
    say!(
        "  to send the campaign itself: {}",
        plan.command(Then::WholeCampaign, None)
    );
    Ok(())
}
