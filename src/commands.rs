//! The commands: each wires the pipeline stages together, in order. Nothing here parses,
//! renders, sends or writes a row itself.
//!
//! `check` and `send` share one validation pass (`validate`) over every row, so nothing is
//! sent until the whole campaign is valid. `send` then streams the rows again: a blocking
//! producer reads and renders, the async dispatcher sends, a blocking writer appends outcomes
//! to the report; bounded channels between them keep memory flat.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::Error;
use crate::campaign::{self, Campaign, Kind, RunKind};
use crate::cli::{Cli, Command, SandboxArgs, SendArgs};
use crate::dispatch::{self, Outcome, Settings, Status, Stop, StopReason};
use crate::journal::{self, Header, InDoubt, Journal};
use crate::progress::{self, Facts, Progress, thousands};
use crate::recipients::{Recipient, Recipients, Row, key};
use crate::render::{self, Renderer};
use crate::report::{self, Done, Tally};
use crate::resume::{self, Resume};
use crate::sandbox::{self, Sandbox};
use crate::wechat::message::Outgoing;
use crate::wechat::token::Tokens;
use crate::wechat::{self, Client, Secret, errcode};

/// Invalid rows listed in full before the rest are only counted.
const MAX_LISTED_ERRORS: usize = 10;
/// Rendered messages queued between the producer and the dispatcher.
const INPUT_QUEUE: usize = 256;
/// Outcomes queued between the dispatcher and the report writer.
const OUTCOME_QUEUE: usize = 1024;
/// Environment variable that overrides the API base URL.
pub const API_BASE_ENV: &str = "WXPUSH_API_BASE";

pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Check { campaign } => check(&campaign),
        Command::Preview { campaign, limit } => preview(&campaign, limit),
        Command::Send(args) => send(args).await,
        Command::Sandbox(args) => serve_sandbox(args).await,
    }
}

/// Counts from the validation pass.
#[derive(Debug, Default)]
struct Validated {
    rows: u64,
    recipients: u64,
    duplicates: u64,
    /// Recipients without an outcome in the report being resumed.
    to_send: u64,
    /// Repeated-openid rows not yet reported `skipped`.
    duplicates_to_report: u64,
}

/// Streams every row through render; collects the first errors.
fn validate(c: &Campaign, done: Option<&Done>) -> Result<Validated, Error> {
    let mut rows = Recipients::open(&c.recipients, render::required_columns(c))?;
    let renderer = Renderer::new(c, rows.headers().clone())?;
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

fn describe_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Official => "official account template messages",
        Kind::Subscribe => "mini program subscribe messages",
        Kind::MiniTemplate => "mini program template messages (legacy form_id API)",
    }
}

fn warn(c: &Campaign) {
    for w in c.warnings() {
        eprintln!("wxpush: warning: {}: {w}", c.path.display());
    }
}

fn check(path: &Path) -> Result<(), Error> {
    let c = campaign::load(path)?;
    warn(&c);
    let v = validate(&c, None)?;
    let secs = v.recipients.div_ceil(u64::from(c.rate));
    println!("{}: valid", path.display());
    println!("  {}, template {}", describe_kind(c.kind), c.template_id);
    println!(
        "  {} rows: {} recipients, {} repeated openids (reported skipped, sent once)",
        thousands(v.rows),
        thousands(v.recipients),
        thousands(v.duplicates)
    );
    println!(
        "  at {}/s a full send takes about {}",
        c.rate,
        humantime::format_duration(std::time::Duration::from_secs(secs))
    );
    Ok(())
}

fn preview(path: &Path, limit: u64) -> Result<(), Error> {
    let c = campaign::load(path)?;
    let mut rows = Recipients::open(&c.recipients, render::required_columns(&c))?;
    let renderer = Renderer::new(&c, rows.headers().clone())?;
    let mut shown = 0;
    while shown < limit {
        let Some(row) = rows.next_row() else { break };
        let Row::New(r) = row? else { continue };
        let msg = renderer.render(&r)?;
        shown += 1;
        println!("── message {shown} · row {} · {} ──", r.row, r.openid);
        print!("{}", readable(&msg));
    }
    println!(
        "(run `wxpush check {}` to validate every row)",
        path.display()
    );
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

/// Where the run sends, and with which secret.
struct Target {
    base: String,
    secret: Secret,
    sandbox: Option<Sandbox>,
}

async fn send(args: SendArgs) -> Result<(), Error> {
    let mut c = campaign::load(&args.campaign)?;
    if let Some(rate) = args.rate {
        c.rate = rate;
    }
    if let Some(n) = args.concurrency {
        c.concurrency = n as usize;
    }
    let base = api_base(args.sandbox)?;
    let run_kind = match &base {
        _ if args.dry_run => RunKind::DryRun,
        Some(b) if !wechat::is_loopback(b) => RunKind::WeChat,
        _ => RunKind::Sandbox,
    };
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| c.default_report(run_kind));
    if args.dry_run {
        let v = validate(&c, None)?;
        let limit = args.limit.unwrap_or(u64::MAX);
        let total = v.to_send.min(limit) + v.duplicates_to_report;
        return dry_run(c, &report_path, limit, total).await;
    }
    let options = resume::Options {
        restart: args.restart,
        resend_unknown: args.resend_unknown,
        retry_failed: args.retry_failed,
        resume_changed: args.resume_changed,
    };
    let start = resume::prepare(&c, run_kind, &report_path, options)?;
    warn(&c);
    let v = validate(&c, Some(&start.done))?;
    let limit = args.limit.unwrap_or(u64::MAX);
    let to_send = v.to_send.min(limit);
    if let Some(aside) = &start.set_aside {
        println!("restart: the previous report is now {}", aside.display());
    }
    if let Some(rows) = start.previous_rows {
        println!(
            "resuming: {} of {} recipients done ({} rows in {})",
            thousands(v.recipients - v.to_send),
            thousands(v.recipients),
            thousands(rows),
            report_path.display()
        );
    }
    if start.dropped > 0 {
        println!(
            "{} recipients recorded {} will be sent again",
            thousands(start.dropped),
            match (args.resend_unknown, args.retry_failed) {
                (true, true) => "`unknown` or `failed` after their last retry",
                (true, false) => "`unknown`",
                _ => "`failed` after their last retry",
            }
        );
    }
    if !start.unknown.is_empty() {
        record_unknown(&report_path, &start.unknown)?;
        println!(
            "{} sends were in flight when the previous run stopped: recorded `unknown` (they may \
             have been delivered); --resend-unknown sends them again",
            thousands(start.unknown.len() as u64)
        );
    }
    if !start.resend.is_empty() && !args.resend_unknown {
        println!(
            "{} sends were in flight when the previous run stopped: sending them again with the \
             same client_msg_id, so WeChat delivers each at most once",
            thousands(start.resend.len() as u64)
        );
    }
    if to_send == 0 {
        if v.duplicates_to_report > 0 {
            // A run stopped between a recipient's last row and its repeats.
            record_skipped(&c, &start.done, &report_path)?;
        }
        println!("nothing left to send: every recipient has a row in the report");
        return Ok(());
    }

    let target = target(&c, base).await?;
    confirm(&c, to_send, &target, args.yes)?;
    let client = Client::new(&target.base).map_err(Error::Aborted)?;
    let tokens = Arc::new(Tokens::new(
        client.clone(),
        c.token_api,
        c.appid.clone(),
        target.secret.clone(),
    ));
    // Authenticate before the first send: a wrong AppSecret stops here, with nothing sent.
    tokens
        .get()
        .await
        .map_err(|e| aborted(&c, &args.campaign, &StopReason::Token(e), None))?;

    // The report first, then its journal: a journal never exists without its report.
    let journal_path = journal::path_for(&report_path);
    let (writer, journal) = match start.previous_rows {
        Some(_) => (
            report::Writer::append(&report_path)?,
            Journal::append(&journal_path, start.header_changed.then_some(&start.header))?,
        ),
        None => (
            report::Writer::create(&report_path, false)?,
            Journal::create(&journal_path, &start.header)?,
        ),
    };

    let stop = Arc::new(Stop::default());
    watch_ctrl_c(stop.clone());
    let started = Instant::now();
    let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTCOME_QUEUE);
    let total = to_send + v.duplicates_to_report;
    let writer = spawn_writer(writer, out_rx, total, stop.clone());
    let producer = {
        let (c, out_tx) = (c.clone(), out_tx.clone());
        tokio::task::spawn_blocking(move || {
            produce(&c, &start, limit, Sink::Send(input_tx), &out_tx)
        })
    };
    let settings = Settings {
        rate: c.rate,
        concurrency: c.concurrency,
        error_threshold: c.error_threshold,
    };
    let journal = Arc::new(journal);
    let channels = dispatch::Channels {
        client,
        tokens,
        journal: journal.clone(),
        outcomes: out_tx,
        stop: stop.clone(),
    };
    dispatch::run(input_rx, settings, channels).await;
    let journaled = journal.finish();
    let produced = join(producer).await;
    let tally = join(writer).await;
    if let Some(sb) = target.sandbox {
        sb.shutdown().await;
    }
    let tally = tally?;
    journaled?;
    let facts = Facts {
        title: format!("{}: {} → {}", c.name, describe_kind(c.kind), target.base),
        started,
        sending: true,
        rate_limit: c.rate,
        report: &report_path,
    };
    print!("{}", progress::summary(&tally, &facts));
    if let Some(reason) = stop.reason() {
        return Err(aborted(&c, &args.campaign, &reason, Some(&tally)));
    }
    produced?;
    if to_send < v.to_send {
        println!(
            "  --limit {limit}: {} recipients left; run the same command again to continue",
            thousands(v.to_send - to_send)
        );
    }
    Ok(())
}

/// The report row of a repeated openid.
fn skipped(r: Recipient) -> Outcome {
    let why = "repeated openid: sent once, for its first row".to_owned();
    Outcome::unsent(r.row, r.openid, Status::Skipped, why)
}

/// Reports the repeated openids not reported yet, when nothing is left to send.
fn record_skipped(c: &Campaign, done: &Done, report_path: &Path) -> Result<(), Error> {
    let mut rows = Recipients::open(&c.recipients, render::required_columns(c))?;
    let mut writer = report::Writer::append(report_path)?;
    while let Some(row) = rows.next_row() {
        if let Row::Duplicate(r) = row?
            && !done.has_skipped_row(r.row)
        {
            writer.write(&skipped(r))?;
        }
    }
    Ok(writer.finish()?)
}

/// Records the sends the previous run left in flight as `unknown`.
fn record_unknown(report_path: &Path, unknown: &[InDoubt]) -> Result<(), Error> {
    let mut writer = report::Writer::append(report_path)?;
    for d in unknown {
        let why = "in flight when the previous run stopped: may or may not have been delivered";
        let mut o = Outcome::unsent(d.row, d.openid.clone(), Status::Unknown, why.into());
        o.sent_at = Some(d.started);
        writer.write(&o)?;
    }
    Ok(writer.finish()?)
}

async fn dry_run(c: Campaign, report_path: &Path, limit: u64, total: u64) -> Result<(), Error> {
    let started = Instant::now();
    let writer = report::Writer::create(report_path, true)?;
    let (out_tx, out_rx) = mpsc::channel(OUTCOME_QUEUE);
    let writer = spawn_writer(writer, out_rx, total, Arc::new(Stop::default()));
    let c = Arc::new(c);
    let producer = {
        let c = c.clone();
        // A dry run shows the exact bodies, `client_msg_id` included (that of a fresh run).
        let header = Header::new(&c.name, &c.template_id, String::new(), "dry-run");
        let start = Resume::fresh(header);
        tokio::task::spawn_blocking(move || produce(&c, &start, limit, Sink::DryRun, &out_tx))
    };
    join(producer).await?;
    let tally = join(writer).await?;
    let facts = Facts {
        title: format!(
            "{}: dry run of {}, nothing sent",
            c.name,
            describe_kind(c.kind)
        ),
        started,
        sending: false,
        rate_limit: c.rate,
        report: report_path,
    };
    print!("{}", progress::summary(&tally, &facts));
    println!("  the payload column holds each exact JSON body");
    Ok(())
}

/// The API base URL, or `None` for the in-process sandbox.
fn api_base(use_sandbox: bool) -> Result<Option<String>, Error> {
    if use_sandbox {
        return Ok(None);
    }
    let base = std::env::var(API_BASE_ENV)
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| wechat::DEFAULT_API_BASE.to_owned());
    if !wechat::is_safe_base(&base) {
        return Err(Error::Usage(format!(
            "{API_BASE_ENV}={base}: the AppSecret and tokens would cross the network unencrypted; \
             use https:// (plain http:// is allowed only for 127.0.0.1 and localhost)"
        )));
    }
    Ok(Some(base))
}

/// Connects the run to `base`, or starts the in-process sandbox for `None`.
async fn target(c: &Campaign, base: Option<String>) -> Result<Target, Error> {
    let Some(base) = base else {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let sb = Sandbox::start(addr, sandbox::Knobs::default())
            .await
            .map_err(|e| Error::Aborted(format!("cannot start the sandbox: {e}")))?;
        return Ok(Target {
            base: sb.base_url(),
            secret: Secret::new(sandbox::SANDBOX_SECRET.to_owned()),
            sandbox: Some(sb),
        });
    };
    let secret = match std::env::var(&c.secret_env) {
        Ok(s) if !s.trim().is_empty() => Secret::new(s.trim().to_owned()),
        _ => {
            return Err(Error::Usage(format!(
                "the environment variable {} is not set: it must hold the AppSecret of {} \
                 (or try the built-in emulator with --sandbox)",
                c.secret_env, c.appid
            )));
        }
    };
    Ok(Target {
        base,
        secret,
        sandbox: None,
    })
}

fn confirm(c: &Campaign, n: u64, target: &Target, yes: bool) -> Result<(), Error> {
    let question = format!(
        "Send {} {} (template {}) via {} at {}/s?",
        thousands(n),
        describe_kind(c.kind),
        c.template_id,
        target.base,
        c.rate
    );
    if yes {
        println!("{question} yes (--yes)");
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "refusing to send without confirmation: standard input is not a terminal; pass --yes"
                .into(),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    // A read error counts as "no".
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Error::Usage("not confirmed; nothing was sent".into()))
    }
}

/// The text of an aborted run: why, what to do, how to resume.
fn aborted(c: &Campaign, path: &Path, reason: &StopReason, tally: Option<&Tally>) -> Error {
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
    let mut msg = format!("run aborted: {why}");
    if let Some(advice) = code.and_then(errcode::advice) {
        msg.push_str(&format!("\n  what to do: {advice}"));
    }
    let sent = tally.map_or(0, |t| t.count(Status::Sent));
    msg.push_str(&format!(
        "\n  {} sent in this run of `{}`; every recipient without a row in the report is \
         sent when you run the same command again",
        thousands(sent),
        c.name
    ));
    msg.push_str(&format!("\n  resume with: wxpush send {}", path.display()));
    Error::Aborted(msg)
}

fn watch_ctrl_c(stop: Arc<Stop>) {
    tokio::spawn(async move {
        // One listener for both presses, so a second Ctrl-C is never missed.
        let mut presses = Presses::new();
        if !presses.next().await {
            return;
        }
        eprintln!(
            "\nwxpush: interrupted: waiting for the requests in flight (Ctrl-C again to quit at once)"
        );
        stop.trigger(StopReason::Interrupted);
        if presses.next().await {
            eprintln!(
                "wxpush: quit at once; the sends in flight are recorded `unknown` by the next run"
            );
            std::process::exit(1);
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

/// Where rendered messages go.
enum Sink {
    Send(mpsc::Sender<Outgoing>),
    DryRun,
}

/// Reads and renders every row not yet done: messages to the sink, `skipped` rows (and, in a
/// dry run, `dry_run` rows) straight to the report.
fn produce(
    c: &Campaign,
    start: &Resume,
    limit: u64,
    sink: Sink,
    outcomes: &mpsc::Sender<Outcome>,
) -> Result<(), Error> {
    let mut rows = Recipients::open(&c.recipients, render::required_columns(c))?;
    let renderer = Renderer::new(c, rows.headers().clone())?.with_run_id(&start.header.run_id);
    let done = &start.done;
    let mut produced = 0;
    while let Some(row) = rows.next_row() {
        // A closed channel means the run stopped: the rest waits for the next run.
        let outcome = match row? {
            Row::New(r) => {
                if done.has_openid(&r.openid) {
                    continue;
                }
                if produced == limit {
                    break;
                }
                produced += 1;
                let mut msg = renderer.render(&r)?;
                msg.first_started = start.resend.get(&key(&r.openid)).copied();
                match &sink {
                    Sink::Send(tx) => {
                        if tx.blocking_send(msg).is_err() {
                            break;
                        }
                        continue;
                    }
                    Sink::DryRun => Outcome {
                        payload: Some(msg.body),
                        ..Outcome::unsent(r.row, r.openid, Status::DryRun, String::new())
                    },
                }
            }
            Row::Duplicate(r) if done.has_skipped_row(r.row) => continue,
            Row::Duplicate(r) => skipped(r),
        };
        if outcomes.blocking_send(outcome).is_err() {
            break;
        }
    }
    Ok(())
}

/// The report writer on a blocking thread of the runtime.
fn spawn_writer(
    writer: report::Writer,
    rx: mpsc::Receiver<Outcome>,
    total: u64,
    stop: Arc<Stop>,
) -> tokio::task::JoinHandle<Result<Tally, Error>> {
    tokio::task::spawn_blocking(move || write_outcomes(writer, rx, total, &stop))
}

/// Appends outcomes as they arrive, flushing after each batch; stops the run if the report
/// cannot be written (an outcome that cannot be recorded must not be followed by more sends).
fn write_outcomes(
    mut writer: report::Writer,
    mut rx: mpsc::Receiver<Outcome>,
    total: u64,
    stop: &Stop,
) -> Result<Tally, Error> {
    let mut progress = Progress::new(total);
    let result = (|| {
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(o) = next {
                writer.write(&o)?;
                progress.record(o.status);
                next = rx.try_recv().ok();
            }
            writer.flush()?;
        }
        writer.finish()
    })();
    progress.finish();
    if let Err(e) = result {
        stop.trigger(StopReason::Report(e.to_string()));
        return Err(e.into());
    }
    Ok(writer.tally().clone())
}

async fn join<T>(h: tokio::task::JoinHandle<Result<T, Error>>) -> Result<T, Error> {
    h.await
        .map_err(|e| Error::Aborted(format!("internal task failed: {e}")))?
}

async fn serve_sandbox(args: SandboxArgs) -> Result<(), Error> {
    let knobs = sandbox::Knobs {
        secret: args.secret,
        token_ttl: args.token_ttl,
        busy_ratio: args.busy,
        reset_ratio: args.reset,
        latency: args.latency,
        rate_limit: args.rate_limit,
        daily_quota: args.daily_quota,
        fail_prefixes: args.fail,
        legacy_retired: args.legacy_retired,
        seed: args.seed,
        ..sandbox::Knobs::default()
    };
    if ![knobs.busy_ratio, knobs.reset_ratio]
        .iter()
        .all(|r| (0.0..=1.0).contains(r))
    {
        return Err(Error::Usage(
            "--busy and --reset must be between 0 and 1".into(),
        ));
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let sb = Sandbox::start(addr, knobs)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    println!("wxpush sandbox: a WeChat API emulator on {}", sb.base_url());
    println!("  send to it with:");
    println!(
        "    {API_BASE_ENV}={} WXPUSH_SECRET={} wxpush send CAMPAIGN.yaml",
        sb.base_url(),
        sandbox::SANDBOX_SECRET
    );
    println!(
        "  counters: {}/sandbox/stats   Ctrl-C stops it",
        sb.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    sb.shutdown().await;
    Ok(())
}
