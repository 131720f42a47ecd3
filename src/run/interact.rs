//! What the user reads and answers during a send: the plan announced before the question,
//! the confirmation, Ctrl-C, refusals, aborts, and the advice. Every piece of advice is one
//! exact command line from [`SendPlan::command`], so following it continues this run's
//! report, at this run's API, and never redoes a one-off flag.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::check::{Validated, describe_kind};
use crate::Error;
use crate::dispatch::{Stop, StopReason};
use crate::outcome::Status;
use crate::plan::{SendPlan, Then, next_limit};
use crate::progress::{counted, thousands};
use crate::report::Tally;
use crate::resume::{Refusal, Remedy, Start};
use crate::wechat::errcode;
use crate::wechat::quota::Quota;

/// What the run is about to do, printed before the confirmation question (nothing has
/// changed yet).
pub(super) fn announce(plan: &SendPlan, start: &Start, v: &Validated) {
    let report = plan.report.display();
    if start.sets_aside() {
        say!(
            "restart: a fresh report; the current {report} is kept under a new name once \
             sending starts"
        );
        if start.aside_sent > 0 {
            eprintln!(
                "wxpush: warning: restart: {} already got this message (sent in that report) \
                 and will get it again",
                recipients(start.aside_sent)
            );
        }
    }
    if let Some(rows) = start.previous_rows {
        say!(
            "resuming: {} of {} recipients done ({} rows in {report})",
            thousands(v.recipients - v.to_send),
            thousands(v.recipients),
            thousands(rows),
        );
    }
    if start.dropped > 0 {
        let which = match (plan.resume.resend_unknown, plan.resume.retry_failed) {
            (true, true) => "`unknown` or `failed` after their last retry",
            (true, false) => "`unknown`",
            _ => "`failed` after their last retry",
        };
        say!(
            "{} recipients recorded {which} will be sent again",
            thousands(start.dropped)
        );
    }
    let unknown = start.unknown().len() as u64;
    if unknown > 0 {
        say!(
            "{} sends were in flight when the previous run stopped: recorded `unknown` (they \
             may have been delivered)",
            thousands(unknown)
        );
    }
    if !start.resend.is_empty() && !plan.resume.resend_unknown {
        say!(
            "{} sends were in flight when the previous run stopped: sending them again with the \
             same client_msg_id, so WeChat delivers each at most once",
            thousands(start.resend.len() as u64)
        );
    }
}

/// Recipients of the whole report that advice can act on.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Leftovers {
    /// Rows `unknown`: may have been delivered.
    pub unknown: u64,
    /// `failed` rows `--retry-failed` sends again: retries ran out, or refused for the
    /// campaign (47003, 50002); never delivered.
    pub retryable: u64,
}

impl Leftovers {
    /// Those the report holds once `start`'s actions are taken: the previous rows the run
    /// does not drop, and the in-flight sends it records `unknown`.
    pub fn before(start: &Start, plan: &SendPlan) -> Self {
        let done = &start.done;
        let kept = |rows: usize, dropped: bool| if dropped { 0 } else { rows as u64 };
        Leftovers {
            unknown: kept(done.unknown.len(), plan.resume.resend_unknown)
                + start.unknown().len() as u64,
            retryable: kept(done.retryable.len(), plan.resume.retry_failed),
        }
    }

    /// These, plus the rows of a run's `tally`.
    pub fn plus(self, tally: &Tally) -> Self {
        Leftovers {
            unknown: self.unknown + tally.count(Status::Unknown),
            retryable: self.retryable + tally.retryable,
        }
    }

    /// The advice for them, one line each; `limit`: the `--limit` to keep.
    pub fn advice(self, plan: &SendPlan, limit: Option<u64>) -> String {
        let mut s = String::new();
        if self.retryable > 0 {
            s.push_str(&format!(
                "  {} failed without delivery (the retries ran out, or WeChat refused \
                 the campaign's data: fix it first); to try them again: {}\n",
                recipients(self.retryable),
                plan.command(Then::RetryFailed, limit)
            ));
        }
        if self.unknown > 0 {
            s.push_str(&format!(
                "  {} `unknown` (the message may have been delivered); to send them again \
                 anyway, at the risk of a second delivery: {}\n",
                recipients(self.unknown),
                plan.command(Then::ResendUnknown, limit)
            ));
        }
        s
    }
}

/// `1 recipient`, `2 recipients`.
fn recipients(n: u64) -> String {
    crate::progress::counted(n, "recipient")
}

/// The hint after a run that stopped at its `--limit` with recipients left.
pub(super) fn limit_reached(plan: &SendPlan, left: u64, used: u64) -> String {
    format!(
        "  --limit {}: {} left; to continue: {}\n",
        plan.limit.unwrap_or_default(),
        recipients(left),
        plan.command(Then::Resume, plan.next_limit(used))
    )
}

/// A refusal to resume, with the commands that get past it.
pub(super) fn refused(plan: &SendPlan, why: Refusal) -> Error {
    let mut advice = String::new();
    for remedy in why.remedies() {
        let own = crate::plan::default_report(&plan.campaign, plan.run_kind, false);
        if *remedy == Remedy::OwnReport && (plan.report_arg.is_none() || own == plan.report) {
            continue;
        }
        let (what, then) = match remedy {
            Remedy::Restart => (
                "to start a fresh report (the old one is kept)",
                Then::Restart,
            ),
            Remedy::ResumeChanged => ("to continue with the new list", Then::ResumeChanged),
            Remedy::OwnReport => ("to use this run's own report instead", Then::OwnReport),
        };
        advice.push_str(&format!("\n  {what}: {}", plan.command(then, plan.limit)));
    }
    Error::Refused(Box::new((why, advice)))
}

/// Prints the summary of a run that sent (`title`: what went where); the abort, if it
/// stopped early, as the error.
pub(super) fn summary(
    plan: &SendPlan,
    title: String,
    started: std::time::Instant,
    tally: &Tally,
    stop: &Stop,
) -> Result<(), Error> {
    let facts = crate::progress::Facts {
        title,
        started,
        sending: true,
        rate_limit: plan.rate,
        report: &plan.report,
    };
    say_raw!("{}", crate::progress::summary(tally, &facts));
    match stop.reason() {
        Some(reason) => Err(aborted(plan, &reason, Done::Tally(tally))),
        None => Ok(()),
    }
}

/// The text of an aborted run: why, what to do, how to resume ([`Done`]: how far it got).
pub(super) fn aborted(plan: &SendPlan, reason: &StopReason, done: Done) -> Error {
    let (why, code) = match reason {
        StopReason::Api {
            errcode: code,
            errmsg,
        } => (
            format!(
                "WeChat answered {code} ({}): {errmsg}",
                errcode::meaning(*code)
            ),
            Some(*code),
        ),
        StopReason::Token(e) => (format!("no access token: {e}"), e.errcode()),
        StopReason::Report(e) => (format!("cannot write the report or journal: {e}"), None),
        StopReason::Unhealthy(why) => (why.clone(), None),
        StopReason::Interrupted => ("interrupted".to_owned(), None),
    };
    let mut msg = format!("{} aborted: {why}", run_or_test(plan));
    let advice = match reason {
        StopReason::Token(e) => e.advice().map(str::to_owned),
        // Where the ID is written: the campaign, or its template file.
        _ if code == Some(40037) => Some(format!(
            "check {}: it must be a template of {}",
            plan.campaign.template_id_key(),
            plan.campaign.appid
        )),
        _ => code.and_then(errcode::advice).map(str::to_owned),
    };
    if let Some(advice) = advice {
        msg.push_str(&format!("\n  what to do: {advice}"));
    }
    Error::Aborted(msg + &how_to_go_on(plan, done))
}

/// How far a run that stopped early got, as far as it knows.
pub(super) enum Done<'a> {
    /// It changed nothing: the same command, one-off flags included, can simply run again.
    Untouched,
    /// It changed the report or journal, and sent nothing yet.
    Nothing,
    /// Its report writer ended: every outcome is counted.
    Tally(&'a Tally),
    /// Its report writer failed: this many outcomes were written, more may have been sent.
    Recorded(u64),
}

/// An error after the run changed the report (it may have sent): exit 1 with the resume
/// command, never the exit 2 that says nothing changed.
pub(super) fn failed_after_start(plan: &SendPlan, e: Error, done: Done) -> Error {
    Error::Aborted(format!(
        "{} aborted: {e}{}",
        run_or_test(plan),
        how_to_go_on(plan, done)
    ))
}

fn run_or_test(plan: &SendPlan) -> &'static str {
    match plan.to.is_empty() {
        true => "run",
        false => "test send",
    }
}

/// The lines after why a run stopped: what it had done, and the command that goes on.
fn how_to_go_on(plan: &SendPlan, done: Done) -> String {
    let name = &plan.campaign.name;
    if !plan.to.is_empty() {
        // A test send keeps no journal: there is nothing to resume, only the test to repeat.
        let sent = match done {
            Done::Tally(t) => {
                let (sent, unknown) = (t.count(Status::Sent), t.count(Status::Unknown));
                let mut s = match sent {
                    0 => "nothing of the test sent".to_owned(),
                    n => format!("{} of the test sent", thousands(n)),
                };
                if unknown > 0 {
                    s.push_str(&format!(
                        ", {} may have arrived (no answer)",
                        thousands(unknown)
                    ));
                }
                s
            }
            Done::Recorded(n) => {
                format!(
                    "{} of the test recorded (more may have arrived)",
                    recipients(n)
                )
            }
            Done::Untouched | Done::Nothing => "nothing of the test sent".to_owned(),
        };
        return format!(
            "\n  {sent}; the campaign's own report is not touched\n  to test again (every \
             test message is sent again): {}",
            plan.command(Then::Again, None)
        );
    }
    let (what, used) = match done {
        Done::Untouched => {
            return format!(
                "\n  nothing was sent and no file was changed\n  run again with: {}",
                plan.command(Then::Again, plan.limit)
            );
        }
        Done::Nothing => (format!("nothing was sent in this run of `{name}`"), 0),
        Done::Tally(t) => (
            format!(
                "{} sent in this run of `{name}`",
                thousands(t.count(Status::Sent))
            ),
            t.outcomes(),
        ),
        Done::Recorded(n) => (
            format!(
                "{} recorded in this run of `{name}` (more may have been sent)",
                recipients(n)
            ),
            n,
        ),
    };
    format!(
        "\n  {what}; resuming sends every recipient without a row in the report\n  resume \
         with: {}",
        plan.command(Then::Resume, plan.next_limit(used))
    )
}

/// The recipients file changed between validation and the first send.
pub(super) fn changed_meanwhile(plan: &SendPlan) -> Error {
    Error::Usage(format!(
        "{} changed while wxpush was getting ready to send (after it was checked); nothing \
         was sent and no file was changed; to check it again and send: {}",
        plan.campaign.recipients.display(),
        plan.command(Then::Again, plan.limit)
    ))
}

/// Another run holds (or just claimed) the report: resume after it with `--wait`. A
/// one-off flag of this run is not repeated: what it was meant to act on is the other
/// run's to change.
pub(super) fn held_elsewhere(plan: &SendPlan, e: &crate::journal::Error) -> Error {
    let o = plan.resume;
    let dropped = if o.restart || o.resend_unknown || o.retry_failed {
        " (nothing of this run was applied; decide again once it has ended)"
    } else {
        ""
    };
    Error::Aborted(format!(
        "{e}{dropped}; to resume after it as soon as it ends: {} --wait",
        plan.command(Then::Resume, plan.limit)
    ))
}

/// Asks before sending `n` messages via `base`, unless `--yes`.
/// What the confirmation states about the recipients.
pub(super) struct Counts {
    /// Messages this run sends.
    pub to_send: u64,
    /// Recipients an earlier run of the report already has a row for.
    pub done: u64,
    /// Repeated openids, sent once.
    pub repeats: u64,
    /// Today's quota of the send API, if WeChat said.
    pub quota: Option<Quota>,
    /// `--allow-partial` cut the run to this (the quota left).
    pub quota_cap: Option<u64>,
}

/// A campaign larger than today's quota, without `--allow-partial`: refused (exit 1) before
/// anything changed, with the facts and both ways on.
pub(super) fn over_quota(plan: &SendPlan, counts: &Counts, q: Quota) -> Error {
    let path = plan.campaign.kind.endpoint().path();
    let partial = plan.command(Then::AllowPartial, plan.limit);
    let mut msg = format!(
        "{} left to send, but today's quota of {path} has {} left (of {}; {} used): refusing \
         to stop in the middle; nothing was sent and no file was changed",
        recipients(counts.to_send),
        thousands(q.remain),
        thousands(q.daily_limit),
        thousands(q.used),
    );
    match q.remain {
        0 => msg.push_str(&format!(
            "\n  tomorrow, as much as each day allows: {partial}"
        )),
        n => msg.push_str(&format!(
            "\n  to send {} today and the rest on the next days: {partial}",
            thousands(n)
        )),
    }
    // All at once only fits in a day that has room for everyone.
    if counts.to_send <= q.daily_limit {
        msg.push_str(&format!(
            "\n  or tomorrow, all at once: {}",
            plan.command(Then::Again, plan.limit)
        ));
    }
    Error::Aborted(msg)
}

/// The hint after a run that stopped at today's quota (`--allow-partial`), `left` to go.
pub(super) fn quota_used_up(plan: &SendPlan, left: u64) -> String {
    format!(
        "  today's quota of {} is used up: {} left for tomorrow; then: {}\n",
        plan.campaign.kind.endpoint().path(),
        recipients(left),
        plan.command(Then::Resume, plan.limit)
    )
}

/// Whether the question [`confirm`] asks can be answered: `--yes`, or a terminal. Checked
/// before anything is asked of WeChat, so that a run that cannot be confirmed makes no
/// request at all.
pub(super) fn can_ask(plan: &SendPlan) -> Result<(), Error> {
    if plan.yes || std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "refusing to send without confirmation: standard input is not a terminal; to send \
         without being asked: {} --yes",
        plan.command(Then::Again, plan.limit)
    )))
}

pub(super) fn confirm(plan: &SendPlan, counts: &Counts, base: &str) -> Result<(), Error> {
    let c = &plan.campaign;
    let title = match c.shape.as_ref().and_then(|s| s.title.as_deref()) {
        Some(t) => format!("{t} ({})", c.template_id),
        None => c.template_id.clone(),
    };
    let secs = counts.to_send.div_ceil(u64::from(plan.rate));
    let facts = [
        (
            "campaign",
            format!("{} ({})", c.name, plan.campaign_arg.display()),
        ),
        (
            "messages",
            format!("{}, from {}", describe_kind(c.kind), c.appid),
        ),
        ("template", title),
        (
            "recipients",
            format!(
                "{} now; {} done before; {} skipped",
                thousands(counts.to_send),
                thousands(counts.done),
                counted(counts.repeats, "repeated openid"),
            ),
        ),
        (
            "via",
            format!(
                "{base} at {}/s: about {}",
                plan.rate,
                humantime::format_duration(std::time::Duration::from_secs(secs))
            ),
        ),
    ];
    let quota = counts.quota.map(|q| {
        let cap = match counts.quota_cap {
            Some(n) => format!(
                "; --allow-partial: {} today, the rest tomorrow",
                thousands(n)
            ),
            None => String::new(),
        };
        (
            "quota",
            format!(
                "{} of {} left today{cap}",
                thousands(q.remain),
                thousands(q.daily_limit)
            ),
        )
    });
    let facts = facts.into_iter().chain(quota);
    for (what, fact) in facts {
        // What the question is about is shown whenever it is asked, --quiet or not.
        match plan.yes {
            true => say!("  {what:<10}  {fact}"),
            false => show!("  {what:<10}  {fact}"),
        }
    }
    let question = format!("Send {}?", counted(counts.to_send, "message"));
    if plan.yes {
        say!("{question} yes (--yes)");
        return Ok(());
    }
    can_ask(plan)?;
    // On the terminal even when stderr goes to a file (`-v 2> log`): never answered blind.
    let tty = (!std::io::stderr().is_terminal())
        .then(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/tty")
                .ok()
        })
        .flatten();
    match tty {
        Some(mut t) => {
            let _ = write!(t, "{question} [y/N] ");
            let _ = t.flush();
        }
        None => {
            eprint!("{question} [y/N] ");
            let _ = std::io::stderr().flush();
        }
    }
    let mut answer = String::new();
    // A read error counts as "no".
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Error::Usage("not confirmed; nothing was sent".into()))
    }
}

/// Exit code of a second Ctrl-C, which quits at once: the run aborted (and can be resumed).
const QUIT_AT_ONCE: i32 = 1;

/// The first Ctrl-C stops the run gracefully (in-flight requests finish, their outcomes are
/// recorded); a second one quits at once, leaving the in-flight sends to the next run's
/// resume, which records them `unknown`.
pub(super) fn watch_ctrl_c(stop: Arc<Stop>, plan: &SendPlan, recorded: Arc<AtomicU64>) {
    // The advice of a second press keeps what is left of --limit by then.
    let limit = plan.limit;
    let base = plan.command(Then::Resume, None);
    let test = !plan.to.is_empty();
    tokio::spawn(async move {
        // One listener for both presses, so a second Ctrl-C is never missed.
        let mut presses = Presses::new();
        if !presses.next().await {
            return;
        }
        crate::progress::off_screen();
        eprintln!(
            "\nwxpush: interrupted: waiting for the requests in flight (Ctrl-C again to quit at once)"
        );
        stop.trigger(StopReason::Interrupted);
        if presses.next().await {
            if test {
                eprintln!(
                    "wxpush: quit at once; a test send keeps no journal: the tests in flight \
                     may or may not have arrived"
                );
                std::process::exit(QUIT_AT_ONCE);
            }
            let used = recorded.load(Ordering::Relaxed);
            let resume = match next_limit(limit, used) {
                Some(n) => format!("{base} --limit {n}"),
                None => base,
            };
            eprintln!(
                "wxpush: quit at once; the sends in flight are recorded `unknown` by the next \
                 run\n  resume with: {resume}"
            );
            std::process::exit(QUIT_AT_ONCE);
        }
    });
}

/// Ctrl-C presses.
struct Presses {
    #[cfg(unix)]
    sigint: Option<tokio::signal::unix::Signal>,
}

impl Presses {
    fn new() -> Self {
        Presses {
            #[cfg(unix)]
            sigint: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    /// The next press; false if none can be seen.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        return match &mut self.sigint {
            Some(s) => s.recv().await.is_some(),
            None => false,
        };
        #[cfg(not(unix))]
        return tokio::signal::ctrl_c().await.is_ok();
    }
}
