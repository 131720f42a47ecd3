//! `send` and `send --dry-run`. A send decides first and acts last:
//!
//! lock the journal → read the report → decide how to start (pure) → validate every row →
//! announce → connect → authenticate and today's quota (a stable token in normal mode: a
//! fetch that changes nothing) → confirm → (a classic or external token and the quota only
//! after the yes; `--force-refresh-token`'s one forced call after both) → act on the
//! decision (set aside, drop, release, record) → send → summary and advice.
//!
//! Everything before "act" only reads, so an invalid row, a declined question, a missing
//! secret or a wrong AppSecret leave the report and journal exactly as they were.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use super::check::{self, describe_kind};
use super::interact::{self, Done, Leftovers};
use super::pipeline::{self, Sending};
use crate::Error;
use crate::dispatch::{Settings, Stop, StopReason};
use crate::journal::{self, Header, Lock};
use crate::plan::{Api, SendPlan};
use crate::progress::{self, Facts};
use crate::report;
use crate::resume::{self, Start, Subject};
use crate::sandbox::{self, Sandbox};
use crate::wechat::token::{TokenSource, Tokens};
use crate::wechat::{Client, Secret};

pub(super) async fn send(plan: &SendPlan) -> Result<(), Error> {
    if matches!(plan.api, Api::None) {
        return dry_run(plan).await;
    }
    if !plan.to.is_empty() {
        return super::test_send::test_send(plan).await;
    }
    check::warn(&plan.campaign);
    // One run per report: held from before the report is read until the run ends (a fresh
    // start has no journal to lock yet: `apply` claims the one it creates).
    let lock = lock(plan).await?;
    let start = decide(plan, lock.as_ref())?;
    tracing::debug!(
        report = %plan.report.display(),
        previous_rows = ?start.previous_rows,
        actions = start.actions.len(),
        in_doubt = start.unknown().len(),
        resend = start.resend.len(),
        dropped = start.dropped,
        "resume decided"
    );
    let v = check::validate(&plan.campaign, Some(&start.done))?;
    let to_send = v.to_send.min(plan.limit.unwrap_or(u64::MAX));
    interact::announce(plan, &start, &v);
    if to_send == 0 {
        return nothing_left(plan, &start, &v, lock);
    }
    interact::can_ask(plan)?;
    let target = connect(plan).await?;
    let mut counts = interact::Counts {
        to_send,
        done: v.recipients - v.to_send,
        repeats: v.duplicates,
        quota: None,
        quota_cap: None,
    };
    // The question states today's quota, which takes a token. It is fetched before asking
    // only where fetching changes nothing for the account's other services (the stable API,
    // in normal mode); a classic or external fetch waits for the yes, and the quota is then
    // checked after it (still before anything is sent). `--force-refresh-token` forces only
    // once the run is confirmed and fits today's quota.
    let harmless = target.sandbox.is_some() || plan.campaign.token == TokenSource::Stable;
    let mut early = None;
    if harmless {
        let (client, tokens) = authenticate(plan, &target).await?;
        // The in-process sandbox has no daily quota to ask about.
        if target.sandbox.is_none() {
            counts.quota = preflight(plan, &client, &tokens).await?;
            fit_quota(plan, &mut counts)?;
        }
        early = Some((client, tokens));
    }
    if counts.to_send == 0 {
        show_raw!("{}", interact::quota_used_up(plan, v.to_send));
        return Ok(());
    }
    interact::confirm(plan, &counts, &target.base)?;
    let (client, tokens) = match early {
        Some(signed_in) => signed_in,
        None => {
            let (client, tokens) = authenticate(plan, &target).await?;
            counts.quota = preflight(plan, &client, &tokens).await?;
            fit_quota(plan, &mut counts)?;
            if counts.to_send == 0 {
                show_raw!("{}", interact::quota_used_up(plan, v.to_send));
                return Ok(());
            }
            (client, tokens)
        }
    };
    let to_send = counts.to_send;
    if plan.force_refresh_token {
        tokens
            .force_refresh()
            .await
            .map_err(|e| interact::aborted(plan, &StopReason::Token(e), Done::Untouched))?;
    }
    // What was validated and confirmed is what is sent: a recipients file edited while the
    // question waited would be sent unchecked and would not match the journal.
    if resume::fingerprint(&plan.campaign)? != start.header.recipients {
        return Err(interact::changed_meanwhile(plan));
    }
    let opened = match resume::apply(
        &start,
        &plan.report,
        lock,
        SystemTime::now(),
        plan.campaign.utc_offset,
    ) {
        Ok(opened) => opened,
        // Another run started this report (fresh) while this one got ready.
        Err(resume::Error::Journal(e @ journal::Error::Claimed { .. })) => {
            if let Some(sb) = target.sandbox {
                sb.shutdown().await;
            }
            if !plan.wait {
                return Err(interact::held_elsewhere(plan, &e));
            }
            note!("wxpush: {e}: waiting for it to end, then deciding again");
            let waited = wait_for_lock(plan).await?;
            // Decide again only behind a run that really holds a journal: never a loop.
            if waited.is_none() {
                return Err(interact::held_elsewhere(plan, &e));
            }
            drop(waited);
            return Box::pin(send(plan)).await;
        }
        // The actions may have been taken in part: resuming decides again.
        Err(e) => return Err(interact::failed_after_start(plan, e.into(), Done::Nothing)),
    };
    if let Some(aside) = &opened.set_aside {
        say!("restart: the previous report is now {}", aside.display());
    }
    let run = Run {
        start,
        to_send,
        v,
        client,
        tokens,
        quota_cap: counts.quota_cap.is_some(),
    };
    run.go(plan, opened, target).await
}

/// What the report and journal say, decided on. Reads only.
fn decide(plan: &SendPlan, lock: Option<&Lock>) -> Result<Start, Error> {
    let c = &plan.campaign;
    let found = resume::read(&plan.report, lock)?;
    let fingerprint = resume::fingerprint(c)?;
    let subject = Subject {
        campaign: &c.name,
        template_id: &c.template_id,
        kind: c.kind,
        api: plan.run_kind,
        fingerprint: &fingerprint,
        recipients: &c.recipients,
    };
    resume::decide(
        found,
        &subject,
        &plan.report,
        plan.resume,
        SystemTime::now(),
    )
    .map_err(|why| interact::refused(plan, why))
}

/// The client and a token: a wrong AppSecret stops here, with nothing sent and nothing on
/// disk touched.
pub(super) async fn authenticate(
    plan: &SendPlan,
    target: &Target,
) -> Result<(Client, Arc<Tokens>), Error> {
    let c = &plan.campaign;
    // The in-process sandbox is this machine: never through a proxy.
    let proxy = c.proxy.as_ref().filter(|_| target.sandbox.is_none());
    let client = Client::new(&target.base, proxy).map_err(Error::Aborted)?;
    let tokens = Arc::new(Tokens::new(
        client.clone(),
        // The in-process sandbox knows only its own secret, whatever the account's source.
        match target.sandbox {
            Some(_) => TokenSource::Stable,
            None => c.token.clone(),
        },
        c.appid.clone(),
        target.secret.clone(),
    ));
    tokens
        .get()
        .await
        .map_err(|e| interact::aborted(plan, &StopReason::Token(e), Done::Untouched))?;
    Ok((client, tokens))
}

/// Holds the run to today's quota: more recipients than it allows are refused (exit 1,
/// nothing sent or changed) unless `--allow-partial`, which sends what it allows.
fn fit_quota(plan: &SendPlan, counts: &mut interact::Counts) -> Result<(), Error> {
    if let Some(q) = counts.quota
        && counts.to_send > q.remain
    {
        if !plan.allow_partial {
            return Err(interact::over_quota(plan, counts, q));
        }
        counts.quota_cap = Some(q.remain);
        counts.to_send = q.remain;
    }
    Ok(())
}

/// Today's quota of the campaign's send API, or `None` (with a warning) when WeChat does
/// not say: the run then goes on without a preflight, as before there was one. A token it
/// refuses is replaced once; refused again, the run stops here, before anything is sent.
async fn preflight(
    plan: &SendPlan,
    client: &Client,
    tokens: &Tokens,
) -> Result<Option<crate::wechat::quota::Quota>, Error> {
    let path = plan.campaign.kind.endpoint().path();
    let token_error = |e| interact::aborted(plan, &StopReason::Token(e), Done::Untouched);
    // `authenticate` has just fetched it: this is the cached one.
    let token = tokens.get().await.map_err(token_error)?;
    let mut answer = crate::wechat::quota::get(client, &token, path).await;
    if let Err(e) = &answer
        && matches!(e.errcode(), Some(40001 | 40014 | 42001))
    {
        let fresh = tokens.rejected(&token).await.map_err(token_error)?;
        answer = crate::wechat::quota::get(client, &fresh, path).await;
    }
    match answer {
        Ok(q) => {
            tracing::debug!(path, ?q, "quota");
            Ok(Some(q))
        }
        Err(e) if matches!(e.errcode(), Some(40001 | 40014 | 42001)) => {
            Err(token_error(tokens.still_rejected()))
        }
        Err(e) => {
            eprintln!(
                "wxpush: warning: today's quota of {path} is unknown ({e}): sending without \
                 checking it first"
            );
            Ok(None)
        }
    }
}

/// A send that is confirmed, authenticated and has its report open.
struct Run {
    start: Start,
    to_send: u64,
    v: check::Validated,
    client: Client,
    tokens: Arc<Tokens>,
    /// `to_send` is what today's quota allows (`--allow-partial`).
    quota_cap: bool,
}

impl Run {
    /// Sends, then prints the summary and the advice.
    async fn go(
        self,
        plan: &SendPlan,
        opened: resume::Opened,
        target: Target,
    ) -> Result<(), Error> {
        let c = &plan.campaign;
        let stop = Arc::new(Stop::default());
        let recorded = Arc::new(AtomicU64::new(0));
        interact::watch_ctrl_c(stop.clone(), plan, recorded.clone());
        let started = Instant::now();
        let journal = Arc::new(opened.journal);
        let via = Sending {
            client: self.client,
            tokens: self.tokens,
            ledger: journal.clone(),
            settings: Settings {
                rate: plan.rate,
                concurrency: plan.concurrency,
                error_threshold: c.error_threshold,
            },
            stop: stop.clone(),
            recorded: recorded.clone(),
        };
        let leftovers = Leftovers::before(&self.start, plan);
        let total = self.to_send + self.v.duplicates_to_report;
        // Today's quota caps the run like a --limit.
        let limit = match self.quota_cap {
            true => self.to_send,
            false => plan.limit.unwrap_or(u64::MAX),
        };
        let sent = pipeline::send(c, self.start, limit, opened.report, total, via).await;
        let journaled = journal.finish();
        if let Some(sb) = target.sandbox {
            sb.shutdown().await;
        }
        let written = Done::Recorded(recorded.load(Ordering::Relaxed));
        let (tally, produced) = sent.map_err(|e| interact::failed_after_start(plan, e, written))?;
        journaled.map_err(|e| interact::failed_after_start(plan, e.into(), Done::Tally(&tally)))?;
        let title = format!("{}: {} → {}", c.name, describe_kind(c.kind), target.base);
        interact::summary(plan, title, started, &tally, &stop)?;
        produced.map_err(|e| interact::failed_after_start(plan, e, Done::Tally(&tally)))?;
        let used = tally.outcomes();
        if self.to_send < self.v.to_send {
            let left = self.v.to_send - self.to_send;
            // What is left to do is shown even with --quiet: the run exits 0.
            match self.quota_cap {
                true => show_raw!("{}", interact::quota_used_up(plan, left)),
                false => show_raw!("{}", interact::limit_reached(plan, left, used)),
            }
        }
        show_raw!(
            "{}",
            leftovers.plus(&tally).advice(plan, plan.next_limit(used))
        );
        Ok(())
    }
}

/// The journal's lock, waiting for another run to end if `--wait`.
async fn lock(plan: &SendPlan) -> Result<Option<Lock>, Error> {
    match Lock::acquire(&journal::path_for(&plan.report), false) {
        Err(e @ journal::Error::Locked { .. }) if plan.wait => {
            note!("wxpush: {e}: waiting for it to end");
            wait_for_lock(plan).await
        }
        Err(e @ journal::Error::Locked { .. }) => Err(interact::held_elsewhere(plan, &e)),
        other => Ok(other?),
    }
}

/// Blocks, on a thread of its own, until the journal's lock is this run's.
async fn wait_for_lock(plan: &SendPlan) -> Result<Option<Lock>, Error> {
    let path = journal::path_for(&plan.report);
    tokio::task::spawn_blocking(move || Lock::acquire(&path, true))
        .await
        .map_err(|e| Error::Aborted(format!("internal task failed: {e}")))?
        .map_err(Error::from)
}

/// Every recipient has a row: record what the previous run left unrecorded (in-flight sends,
/// repeated openids), and say what the report still holds that advice can act on.
fn nothing_left(
    plan: &SendPlan,
    start: &Start,
    v: &check::Validated,
    lock: Option<Lock>,
) -> Result<(), Error> {
    if !start.actions.is_empty() || v.duplicates_to_report > 0 {
        let record = || -> Result<(), Error> {
            let mut opened = resume::apply(
                start,
                &plan.report,
                lock,
                SystemTime::now(),
                plan.campaign.utc_offset,
            )?;
            if v.duplicates_to_report > 0 {
                // A run stopped between a recipient's last row and its repeats.
                pipeline::record_skipped(&plan.campaign, &start.done, &mut opened.report)?;
            }
            opened.report.finish()?;
            Ok(opened.journal.finish()?)
        };
        record().map_err(|e| interact::failed_after_start(plan, e, Done::Nothing))?;
    }
    say!("nothing left to send: every recipient has a row in the report");
    show_raw!(
        "{}",
        Leftovers::before(start, plan).advice(plan, plan.limit)
    );
    Ok(())
}

/// Where the run sends, and with which secret.
pub(super) struct Target {
    pub base: String,
    secret: Option<Secret>,
    pub sandbox: Option<Sandbox>,
}

/// Connects the run to its API base, or starts the in-process sandbox.
pub(super) async fn connect(plan: &SendPlan) -> Result<Target, Error> {
    match &plan.api {
        Api::Remote { base, secret, .. } => Ok(Target {
            base: base.clone(),
            secret: secret.clone(),
            sandbox: None,
        }),
        Api::InProcess | Api::None => {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            // Only wxpush talks to it, so it is strict: a body wxpush did not mean to send
            // fails the rehearsal instead of passing as WeChat's tolerance would let it. It
            // lives for one run, so a daily quota could only stop a big rehearsal for good.
            let knobs = sandbox::Knobs {
                mode: sandbox::Mode::Strict,
                daily_quota: Some(u64::MAX),
                ..sandbox::Knobs::default()
            };
            let sb = Sandbox::start(addr, knobs)
                .await
                .map_err(|e| Error::Aborted(format!("cannot start the sandbox: {e}")))?;
            Ok(Target {
                base: sb.base_url(),
                secret: Some(Secret::new(sandbox::SANDBOX_SECRET.to_owned())),
                sandbox: Some(sb),
            })
        }
    }
}

/// Renders every row into a dry-run report with each exact payload; sends nothing.
async fn dry_run(plan: &SendPlan) -> Result<(), Error> {
    let c = &plan.campaign;
    check::warn(c);
    let real = journal::path_for(&plan.report).exists()
        || (plan.report.exists() && !report::is_dry_run(&plan.report));
    if real {
        let own = shell_words::quote(&plan.campaign_arg.to_string_lossy()).into_owned();
        return Err(Error::Usage(format!(
            "{} is the report of a real send, and a dry run never overwrites one; a dry run \
             into its own report: wxpush send {own} --dry-run",
            plan.report.display(),
        )));
    }
    let v = check::validate(c, None)?;
    let limit = plan.limit.unwrap_or(u64::MAX);
    let total = v.to_send.min(limit) + v.duplicates_to_report;
    let started = Instant::now();
    let writer = report::Writer::create(&plan.report, true, plan.campaign.utc_offset)?;
    // A dry run shows the exact bodies, `client_msg_id` included (that of a fresh run).
    let header = Header::new(
        &c.name,
        &c.template_id,
        String::new(),
        "dry-run",
        c.kind.endpoint().path(),
    );
    let tally = pipeline::dry_run(c, Start::fresh(header), limit, writer, total).await?;
    let facts = Facts {
        title: format!(
            "{}: dry run of {}, nothing sent",
            c.name,
            describe_kind(c.kind)
        ),
        started,
        sending: false,
        rate_limit: plan.rate,
        report: &plan.report,
    };
    say_raw!("{}", progress::summary(&tally, &facts));
    say!("  the payload column holds each exact JSON body");
    Ok(())
}
