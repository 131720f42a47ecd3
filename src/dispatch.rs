//! Dispatch: rendered messages in, one [`Outcome`] per message out, at a bounded rate.
//!
//! Each attempt takes a concurrency permit, then a rate-limiter slot (governor), then the
//! shared token; a message's first attempt is written to the journal before its request
//! leaves. The answer is classified by `wechat::errcode` and acted on: done, recipient
//! failed, retry after a jittered exponential backoff (the permit is given back while
//! waiting, and the retry takes a new rate slot: every attempt counts against the account's
//! quota), pause every send (account throttled), refresh the token, or abort the run. A send
//! that may have reached WeChat without an answer is `unknown`, unless its `client_msg_id`
//! makes a repeat safe. An aborted or interrupted run stops taking messages, lets the
//! requests in flight finish, and writes no row for a message that was not sent, so that
//! resuming sends it. [`Health`] aborts a run whose recent sends mostly fail for reasons
//! that are not about the recipients.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::outcome::{Outcome, Status};
use crate::wechat::errcode::{self, Action};
use crate::wechat::message::Endpoint;
use crate::wechat::message::{DEDUP_WINDOW, Outgoing};
use crate::wechat::token::Token;
use crate::wechat::token::{self, Tokens};
use crate::wechat::{Client, Reply, SendError};

/// The one call dispatch makes per attempt: [`Client`] in a run, a scripted fake in tests
/// (which then run minutes of backoff and pauses in paused time).
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        endpoint: Endpoint,
        token: &Token,
        body: Bytes,
    ) -> impl std::future::Future<Output = Result<Reply, SendError>> + Send;
}

impl Transport for Client {
    fn send(
        &self,
        endpoint: Endpoint,
        token: &Token,
        body: Bytes,
    ) -> impl std::future::Future<Output = Result<Reply, SendError>> + Send {
        Client::send(self, endpoint, token, body)
    }
}

/// Where dispatch records that a message's first request is about to leave, and that a
/// message whose every request was answered (none delivered) was left unsent: the journal in
/// a run, a list in memory in tests. Both return only once the line is handed to the OS.
pub trait Ledger: Send + Sync {
    fn started(&self, openid: &str, row: u64) -> std::io::Result<()>;
    fn released(&self, openid: &str, row: u64) -> std::io::Result<()>;
}

/// Attempts per message (the first send included) before a transient failure is final.
pub const MAX_ATTEMPTS: u32 = 6;
/// Time after a message's first attempt beyond which it is not retried again.
pub const MAX_RETRY_TIME: Duration = Duration::from_secs(180);
/// Token refreshes one message may cause; more means the new tokens are rejected too.
const MAX_REFRESHES: u32 = 2;
/// First backoff step; it doubles per retry up to [`BACKOFF_CAP`], with full jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Why a run stopped early.
#[derive(Debug, Clone)]
pub enum StopReason {
    /// WeChat answered an errcode that every further send would get too.
    Api { errcode: i64, errmsg: String },
    /// No access token could be had.
    Token(token::Error),
    /// The report or the journal could not be written.
    Report(String),
    /// Most recent sends failed for reasons that are not about the recipients.
    Unhealthy(String),
    /// Ctrl-C.
    Interrupted,
}

/// The run-wide stop signal: the first reason wins.
pub struct Stop {
    tx: watch::Sender<Option<StopReason>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            tx: watch::channel(None).0,
        }
    }
}

impl Stop {
    pub fn trigger(&self, reason: StopReason) {
        self.tx.send_if_modified(|cur| {
            let first = cur.is_none();
            if first {
                *cur = Some(reason);
            }
            first
        });
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.tx.borrow().clone()
    }

    pub fn is_stopped(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Completes when the run is told to stop.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so the channel cannot close under us.
        let _ = rx.wait_for(Option::is_some).await;
    }
}

/// How fast and how wide to send.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Messages per second.
    pub rate: u32,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Abort when this fraction of the last [`HEALTH_WINDOW`] outcomes failed for reasons
    /// that are not about the recipients.
    pub error_threshold: f64,
}

impl Settings {
    /// The limiter's burst: 1 % of the rate, at least 1. Burst 1 makes governor undershoot
    /// by 11–14 % at 1,000/s because a late wake-up loses its slot (perf-notes.md §3); a
    /// burst of 1 % hits the rate, and any 1 s window then holds at most rate + burst.
    pub fn burst(&self) -> u32 {
        (self.rate / 100).max(1)
    }
}

/// Outcomes the error threshold looks back on.
pub const HEALTH_WINDOW: usize = 50;
/// Outcomes needed before the error threshold can fire (a small campaign's first failures
/// are not a trend).
const HEALTH_MIN: usize = 20;
/// Identical failures in a row, for codes that are suspicious when repeated, that abort.
const STREAK_LIMIT: u32 = 10;

/// The run's recent outcomes, to stop a run that fails for the campaign's reasons (wrong
/// field for every row, network down, an account restriction) within a few dozen requests
/// instead of after thousands.
pub struct Health {
    threshold: f64,
    recent: VecDeque<bool>,
    systemic: usize,
    streak: Option<(i64, String)>,
    streak_len: u32,
}

impl Health {
    pub fn new(threshold: f64) -> Self {
        Health {
            threshold,
            recent: VecDeque::with_capacity(HEALTH_WINDOW),
            systemic: 0,
            streak: None,
            streak_len: 0,
        }
    }

    /// Records `o`; returns why the run should stop, if it should.
    pub fn observe(&mut self, o: &Outcome, systemic: bool) -> Option<String> {
        if self.recent.len() == HEALTH_WINDOW && self.recent.pop_front() == Some(true) {
            self.systemic -= 1;
        }
        self.recent.push_back(systemic);
        self.systemic += usize::from(systemic);
        let n = self.recent.len();
        if n >= HEALTH_MIN && self.systemic as f64 >= self.threshold * n as f64 {
            return Some(format!(
                "{} of the last {n} sends failed for reasons that are not about the recipients \
                 (last: {})",
                self.systemic, o.errmsg
            ));
        }
        let key = o
            .errcode
            .filter(|&c| o.status == Status::Failed && errcode::suspicious_when_repeated(c))
            .map(|c| (c, without_rid(&o.errmsg).to_owned()));
        if key.is_some() && key == self.streak {
            self.streak_len += 1;
        } else {
            self.streak = key;
            self.streak_len = 1;
        }
        match &self.streak {
            Some((code, msg)) if self.streak_len >= STREAK_LIMIT => Some(format!(
                "{STREAK_LIMIT} recipients in a row failed with {code} ({}): {msg}; once the \
                 campaign is fixed, resuming sends the rest and --retry-failed these",
                errcode::meaning(*code)
            )),
            _ => None,
        }
    }
}

/// An errmsg without WeChat's per-request ` rid: …` suffix.
fn without_rid(errmsg: &str) -> &str {
    errmsg.split(" rid:").next().unwrap_or(errmsg)
}

struct Shared<T> {
    client: T,
    tokens: Arc<Tokens>,
    ledger: Arc<dyn Ledger>,
    limiter: DefaultDirectRateLimiter,
    inflight: Semaphore,
    stop: Arc<Stop>,
    outcomes: mpsc::Sender<Outcome>,
    /// No send leaves before this instant (the account is throttled).
    paused_until: Mutex<Option<Instant>>,
    health: Mutex<Health>,
}

/// What a run sends through, and where its outcomes go.
pub struct Deps<T> {
    pub client: T,
    pub tokens: Arc<Tokens>,
    pub ledger: Arc<dyn Ledger>,
    pub outcomes: mpsc::Sender<Outcome>,
    pub stop: Arc<Stop>,
}

/// Sends every message of `input`, writing outcomes to `deps.outcomes`, until the input
/// ends or `deps.stop` fires. Returns when every started message has its outcome.
pub async fn run<T: Transport>(
    mut input: mpsc::Receiver<Outgoing>,
    settings: Settings,
    deps: Deps<T>,
) {
    // `rate` and the burst are at least 1 (campaign validation, `burst()`).
    let quota = Quota::per_second(NonZeroU32::new(settings.rate).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(settings.burst()).unwrap_or(NonZeroU32::MIN));
    // Campaign validation bounds it to 1..=MAX_CONCURRENCY; clamped again so that no value
    // can make the queue below zero permits (a hang) or more than tokio allows (a panic).
    let concurrency = settings
        .concurrency
        .clamp(1, crate::campaign::MAX_CONCURRENCY as usize);
    let Deps {
        client,
        tokens,
        ledger,
        outcomes,
        stop,
    } = deps;
    let shared = Arc::new(Shared {
        client,
        tokens,
        ledger,
        limiter: RateLimiter::direct(quota),
        inflight: Semaphore::new(concurrency),
        stop,
        outcomes,
        paused_until: Mutex::new(None),
        health: Mutex::new(Health::new(settings.error_threshold)),
    });
    // Messages being worked on (in flight or backing off). Bounded, so memory stays flat.
    let queued = concurrency * 4;
    tracing::debug!(
        rate = settings.rate,
        burst = settings.burst(),
        concurrency,
        "dispatching"
    );
    let tasks = Arc::new(Semaphore::new(queued));
    loop {
        let msg = tokio::select! {
            m = input.recv() => m,
            _ = shared.stop.stopped() => None,
        };
        let Some(msg) = msg else { break };
        // The semaphore is never closed.
        let Ok(permit) = tasks.clone().acquire_owned().await else {
            break;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            deliver(&shared, msg).await;
            drop(permit);
        });
    }
    // Every task holds a permit until it has sent its outcome.
    // `queued` ≤ 4 × MAX_CONCURRENCY fits in a u32.
    let _all = tasks.acquire_many(queued as u32).await;
}

/// Requests made for a message so far.
#[derive(Debug, Default)]
struct Attempts {
    count: u32,
    /// Some request's answer was lost: it may have been delivered. Sticky: a later answer
    /// (a -1 to a retry) does not undo it. True from the start for a resend of an earlier
    /// run's send whose outcome was lost.
    ambiguous: bool,
}

/// One message, with its retries, to its outcome. If the run stops first, the message gets
/// no row (the next run sends it); if every request it made was answered, none delivered it,
/// and the journal is told so, so that the next run does not hold it `unknown`.
async fn deliver<T: Transport>(ctx: &Shared<T>, msg: Outgoing) {
    let mut attempts = Attempts {
        count: 0,
        ambiguous: msg.first_started.is_some(),
    };
    match attempt(ctx, &msg, &mut attempts).await {
        Some((outcome, systemic)) => emit(ctx, outcome, systemic).await,
        None if attempts.count > 0 && !attempts.ambiguous => {
            if let Err(e) = ctx.ledger.released(&msg.openid, msg.row) {
                ctx.stop.trigger(StopReason::Report(e.to_string()));
            }
        }
        None => {}
    }
}

/// The attempts of one message: its outcome and whether a failure is systemic (not about
/// the recipient), or `None` if the run stopped first.
async fn attempt<T: Transport>(
    ctx: &Shared<T>,
    msg: &Outgoing,
    state: &mut Attempts,
) -> Option<(Outcome, bool)> {
    let mut refreshes = 0;
    let mut backoff = Backoff::default();
    let first = Instant::now();
    // WeChat de-duplicates a `client_msg_id` for a while after its first use (perhaps in an
    // earlier run). The window is open while both clocks say so: the wall clock counts a
    // machine's sleep (tokio's monotonic one does not), tokio's lets paused-time tests see
    // it close.
    let dedup_until = msg.deduplicated.then(|| {
        let wall = msg.first_started.unwrap_or_else(SystemTime::now) + DEDUP_WINDOW;
        let left = wall
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        (Instant::now() + left, wall)
    });
    let window_open = || {
        dedup_until.is_some_and(|(until, wall)| Instant::now() < until && SystemTime::now() < wall)
    };
    loop {
        ctx.wait_out_pause().await;
        let permit = tokio::select! {
            p = ctx.inflight.acquire() => p,
            _ = ctx.stop.stopped() => return None,
        };
        tokio::select! {
            _ = ctx.limiter.until_ready() => {}
            _ = ctx.stop.stopped() => return None,
        }
        // The run may have been stopped, or paused, while this attempt waited for its turn.
        if ctx.stop.is_stopped() {
            return None;
        }
        if ctx.is_paused() {
            drop(permit);
            continue;
        }
        let token = match ctx.tokens.get().await {
            Ok(t) => t,
            Err(e) => {
                ctx.stop.trigger(StopReason::Token(e));
                return None;
            }
        };
        // A resend relies on WeChat's de-duplication, for its first attempt and its retries.
        if msg.only_in_window && !window_open() {
            let why = "in flight when a previous run stopped, and its client_msg_id window \
                       closed before it was answered: may or may not have been delivered";
            let mut o = Outcome::unsent(msg.row, msg.openid.clone(), Status::Unknown, why.into());
            o.attempts = state.count;
            o.sent_at = msg.first_started;
            return Some((o, false));
        }
        if state.count == 0
            && let Err(e) = ctx.ledger.started(&msg.openid, msg.row)
        {
            ctx.stop.trigger(StopReason::Report(e.to_string()));
            return None;
        }
        state.count += 1;
        let attempts = state.count;
        let sent_at = SystemTime::now();
        let started = Instant::now();
        let result = ctx
            .client
            .send(msg.endpoint, &token, msg.body.clone())
            .await;
        let latency = started.elapsed();

        let mut outcome = Outcome {
            row: msg.row,
            openid: msg.openid.clone(),
            status: Status::Sent,
            errcode: None,
            errmsg: String::new(),
            msgid: None,
            attempts,
            gave_up: false,
            sent_at: Some(sent_at),
            latency: Some(latency),
            payload: None,
        };
        state.ambiguous |= matches!(result, Err(SendError::Ambiguous(_)));
        let action = match result {
            Ok(reply) => {
                outcome.errcode = Some(reply.errcode);
                outcome.msgid = reply.msgid;
                let action = errcode::classify(reply.errcode, &reply.errmsg);
                outcome.errmsg = reply.errmsg;
                action
            }
            Err(SendError::NotSent(m) | SendError::BadAnswer(m)) => {
                outcome.errmsg = m;
                Action::Retry
            }
            Err(e @ SendError::Ambiguous(_)) => {
                outcome.errmsg = e.to_string();
                if window_open() {
                    // WeChat delivers one message per openid + client_msg_id in the window.
                    Action::Retry
                } else {
                    outcome.status = Status::Unknown;
                    return Some((outcome, true));
                }
            }
        };
        tracing::debug!(
            openid = %msg.openid,
            row = msg.row,
            attempt = attempts,
            errcode = ?outcome.errcode,
            latency_ms = latency.as_millis() as u64,
            errmsg = %outcome.errmsg,
            next = ?action,
            "answer"
        );
        let wait = match action {
            Action::Done => return Some((outcome, false)),
            Action::RecipientFailed => {
                // A refusal now does not undo a lost answer before it (a one-time
                // subscription used by that first request answers 43101 to the next one).
                outcome.status = if state.ambiguous {
                    Status::Unknown
                } else {
                    Status::Failed
                };
                let systemic = outcome.errcode.is_none_or(|c| !errcode::is_known(c));
                return Some((outcome, systemic));
            }
            Action::Abort => {
                ctx.stop.trigger(StopReason::Api {
                    errcode: outcome.errcode.unwrap_or_default(),
                    errmsg: outcome.errmsg,
                });
                return None;
            }
            Action::RefreshToken => {
                refreshes += 1;
                let fresh = if refreshes > MAX_REFRESHES {
                    Err(ctx.tokens.still_rejected())
                } else {
                    ctx.tokens.rejected(&token).await
                };
                if let Err(e) = fresh {
                    ctx.stop.trigger(StopReason::Token(e));
                    return None;
                }
                continue;
            }
            Action::Retry => backoff.next_delay(),
            Action::RetryAfter(d) => backoff.next_delay().max(d),
            Action::Pause(d) => {
                ctx.pause(d);
                backoff.next_delay()
            }
        };
        // Held until the answer is acted on, so that after a fatal answer no other request
        // takes this slot before the run is told to stop.
        drop(permit);
        if attempts >= MAX_ATTEMPTS || first.elapsed() + wait > MAX_RETRY_TIME {
            // If any attempt's answer was lost, it may have been delivered.
            outcome.status = if state.ambiguous {
                Status::Unknown
            } else {
                Status::Failed
            };
            outcome.gave_up = true;
            return Some((outcome, true));
        }
        tracing::debug!(openid = %msg.openid, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.stop.stopped() => return None,
        }
    }
}

impl<T> Shared<T> {
    /// Holds every send back for `d` (the account is throttled).
    fn pause(&self, d: Duration) {
        tracing::debug!(
            pause_s = d.as_secs(),
            "the account is throttled: every send waits"
        );
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }

    fn is_paused(&self) -> bool {
        let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|u| u > Instant::now())
    }

    async fn wait_out_pause(&self) {
        let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.stop.stopped() => {}
            }
        }
    }
}

/// Hands an outcome to the report writer, and to the health check. `systemic`: the failure
/// is not about this recipient.
async fn emit<T>(ctx: &Shared<T>, outcome: Outcome, systemic: bool) {
    let verdict = ctx
        .health
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .observe(&outcome, systemic);
    if let Some(why) = verdict {
        ctx.stop.trigger(StopReason::Unhealthy(why));
    }
    // The report writer outlives the dispatcher; if it died, its error ends the run anyway.
    let _ = ctx.outcomes.send(outcome).await;
}

/// Exponential backoff with full jitter: the n-th delay is uniform in
/// [0, min(cap, base × 2ⁿ)], so workers that failed together do not retry together.
#[derive(Debug, Default)]
pub struct Backoff {
    step: u32,
}

impl Backoff {
    /// The upper bound of the next delay (the delay without jitter).
    pub fn ceiling(&self) -> Duration {
        BACKOFF_BASE
            .saturating_mul(1 << self.step.min(16))
            .min(BACKOFF_CAP)
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.step += 1;
        ceiling.mul_f64(rand::random_range(0.0..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::message::Endpoint;

    /// The journal's lines, in memory.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Ledger for Lines {
        fn started(&self, openid: &str, row: u64) -> std::io::Result<()> {
            self.0
                .lock()
                .unwrap()
                .push(format!("{openid}\t{row}\tstarted"));
            Ok(())
        }
        fn released(&self, openid: &str, row: u64) -> std::io::Result<()> {
            self.0
                .lock()
                .unwrap()
                .push(format!("{openid}\t{row}\treleased"));
            Ok(())
        }
    }

    type Answer = Result<Reply, SendError>;
    /// `answer(openid, nth attempt for it)`.
    type Script = Arc<dyn Fn(&str, u32) -> Answer + Send + Sync>;

    /// A transport that answers from a script: `answer(openid, nth attempt for it)`, and
    /// records when each request was made (tokio time, so paused time shows the waits).
    #[derive(Clone)]
    struct Fake {
        answer: Script,
        calls: Arc<Mutex<Vec<(String, Duration)>>>,
        start: Instant,
    }

    impl Transport for Fake {
        async fn send(&self, _: Endpoint, _: &Token, body: Bytes) -> Answer {
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let openid = body["touser"].as_str().unwrap().to_owned();
            let mut calls = self.calls.lock().unwrap();
            calls.push((openid.clone(), self.start.elapsed()));
            let nth = calls.iter().filter(|c| c.0 == openid).count() as u32;
            drop(calls);
            (self.answer)(&openid, nth)
        }
    }

    fn code(errcode: i64) -> Answer {
        Ok(Reply {
            errcode,
            errmsg: errcode::meaning(errcode).into(),
            msgid: (errcode == 0).then_some(1),
        })
    }

    fn message(openid: &str, deduplicated: bool) -> Outgoing {
        let mut m = Outgoing::new(
            1,
            openid.into(),
            Endpoint::TemplateSend,
            &serde_json::json!({ "touser": openid }),
        );
        m.deduplicated = deduplicated;
        m
    }

    struct Ran {
        outcomes: Vec<Outcome>,
        /// (openid, when the request was made)
        calls: Vec<(String, Duration)>,
        stop: Option<StopReason>,
        ledger: Vec<String>,
    }

    /// Runs dispatch over `messages` against the script (tests start in paused time, so
    /// backoffs and pauses take no real time).
    async fn run_script(
        messages: Vec<Outgoing>,
        concurrency: usize,
        answer: impl Fn(&str, u32) -> Answer + Send + Sync + 'static,
    ) -> Ran {
        let ledger = Arc::new(Lines::default());
        let fake = Fake {
            answer: Arc::new(answer),
            calls: Arc::default(),
            start: Instant::now(),
        };
        let (tx, rx) = mpsc::channel(messages.len().max(1));
        for m in messages {
            tx.send(m).await.unwrap();
        }
        drop(tx);
        let (out_tx, mut out_rx) = mpsc::channel(1024);
        let stop = Arc::new(Stop::default());
        let settings = Settings {
            rate: 1000,
            concurrency,
            error_threshold: 0.5,
        };
        let deps = Deps {
            client: fake.clone(),
            tokens: Arc::new(Tokens::preloaded("t")),
            ledger: ledger.clone(),
            outcomes: out_tx,
            stop: stop.clone(),
        };
        run(rx, settings, deps).await;
        let mut outcomes = Vec::new();
        while let Ok(o) = out_rx.try_recv() {
            outcomes.push(o);
        }
        outcomes.sort_by(|a, b| a.openid.cmp(&b.openid));
        let calls = fake.calls.lock().unwrap().clone();
        Ran {
            outcomes,
            calls,
            stop: stop.reason(),
            ledger: ledger.0.lock().unwrap().clone(),
        }
    }

    fn after(calls: &[(String, Duration)], openid: &str, nth: usize) -> Duration {
        calls.iter().filter(|c| c.0 == openid).nth(nth).unwrap().1
    }

    #[tokio::test(start_paused = true)]
    async fn a_minute_quota_pauses_every_send_for_a_minute() {
        let ran = run_script(
            ["o1", "o2", "o3"].map(|o| message(o, false)).to_vec(),
            1,
            |openid, nth| code(if openid == "o1" && nth == 1 { 45011 } else { 0 }),
        )
        .await;
        assert!(ran.outcomes.iter().all(|o| o.status == Status::Sent));
        assert_eq!(ran.outcomes[0].attempts, 2);
        // After the 45011, no request at all for a minute: o1's retry and the others.
        assert!(after(&ran.calls, "o1", 1) >= errcode::MINUTE_QUOTA_PAUSE);
        assert!(after(&ran.calls, "o2", 0) >= errcode::MINUTE_QUOTA_PAUSE);
        assert!(after(&ran.calls, "o3", 0) >= errcode::MINUTE_QUOTA_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_recipient_waits_alone() {
        let ran = run_script(
            ["o1", "o2"].map(|o| message(o, false)).to_vec(),
            2,
            |openid, nth| code(if openid == "o1" && nth == 1 { 43117 } else { 0 }),
        )
        .await;
        assert!(ran.outcomes.iter().all(|o| o.status == Status::Sent));
        assert!(after(&ran.calls, "o1", 1) >= errcode::MINUTE_QUOTA_PAUSE);
        assert!(after(&ran.calls, "o2", 0) < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn busy_retries_are_bounded_in_count_and_time() {
        let ran = run_script(vec![message("o1", false)], 1, |_, _| code(-1)).await;
        let o = &ran.outcomes[0];
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.attempts, MAX_ATTEMPTS);
        assert!(o.gave_up);
        assert_eq!(ran.ledger, ["o1\t1\tstarted"], "one start, no release");
        assert!(ran.calls.last().unwrap().1 < MAX_RETRY_TIME);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_is_retried_only_under_client_msg_id() {
        let lost = |_: &str, nth: u32| {
            if nth == 1 {
                Err(SendError::Ambiguous("connection reset".into()))
            } else {
                code(0)
            }
        };
        let ran = run_script(vec![message("o1", true)], 1, lost).await;
        assert_eq!(
            (ran.outcomes[0].status, ran.outcomes[0].attempts),
            (Status::Sent, 2)
        );
        let ran = run_script(vec![message("o1", false)], 1, lost).await;
        assert_eq!(
            (ran.outcomes[0].status, ran.outcomes[0].attempts),
            (Status::Unknown, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_is_not_forgotten_when_later_retries_are_refused() {
        // Lost, then "busy" until retries run out: the first may have been delivered.
        let ran = run_script(vec![message("o1", true)], 1, |_, nth| {
            if nth == 1 {
                Err(SendError::Ambiguous("connection reset".into()))
            } else {
                code(-1)
            }
        })
        .await;
        let o = &ran.outcomes[0];
        assert_eq!(
            (o.status, o.attempts, o.gave_up),
            (Status::Unknown, 6, true)
        );
    }

    /// Lost, then refused for the recipient (43101: the one-time subscription was used, by
    /// the first request perhaps): still in doubt, never `failed` (which `--retry-failed`
    /// could send again, for 47003).
    #[tokio::test(start_paused = true)]
    async fn a_refusal_after_a_lost_answer_stays_in_doubt() {
        for refusal in [43101, 47003] {
            let ran = run_script(vec![message("o1", true)], 1, move |_, nth| {
                if nth == 1 {
                    Err(SendError::Ambiguous("connection reset".into()))
                } else {
                    code(refusal)
                }
            })
            .await;
            let o = &ran.outcomes[0];
            assert_eq!((o.status, o.attempts), (Status::Unknown, 2), "{refusal}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_after_a_lost_answer_does_not_release_the_message() {
        // o1: lost, then "too often, wait a minute"; o2 waits a minute too, and then its
        // fatal answer stops the run while o1 waits: o1's first request may have been
        // delivered, so it must not be released for the next run to send.
        let o1_tries = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let tries = o1_tries.clone();
        let ran = run_script(
            ["o1", "o2"].map(|o| message(o, true)).to_vec(),
            1,
            move |openid, nth| {
                use std::sync::atomic::Ordering::SeqCst;
                match (openid, nth) {
                    ("o1", 1) => {
                        tries.store(1, SeqCst);
                        Err(SendError::Ambiguous("connection reset".into()))
                    }
                    ("o1", n) => {
                        tries.store(n, SeqCst);
                        code(43117)
                    }
                    _ if tries.load(SeqCst) >= 2 => code(40037),
                    _ => code(43117),
                }
            },
        )
        .await;
        assert!(ran.outcomes.is_empty());
        assert_eq!(o1_tries.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(ran.ledger.contains(&"o1\t1\tstarted".to_owned()));
        assert!(
            !ran.ledger.contains(&"o1\t1\treleased".to_owned()),
            "{:?}",
            ran.ledger
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_resend_whose_window_closed_meanwhile_is_not_sent() {
        let mut late = message("o1", true);
        late.first_started = Some(SystemTime::now() - DEDUP_WINDOW);
        late.only_in_window = true;
        let mut asked = message("o2", true);
        asked.first_started = late.first_started;
        let ran = run_script(vec![late, asked], 1, |_, _| code(0)).await;
        assert_eq!(ran.outcomes[0].status, Status::Unknown);
        assert_eq!(ran.outcomes[0].attempts, 0);
        // o2 was asked for (--resend-unknown): sent whatever the window.
        assert_eq!(ran.outcomes[1].status, Status::Sent);
        assert_eq!(ran.calls.len(), 1);
        assert_eq!(ran.ledger, ["o2\t1\tstarted"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resend_answered_busy_stays_in_doubt_and_stops_when_its_window_closes() {
        // Its first request (an earlier run's) may have been delivered: -1 answers now do
        // not make it "never delivered".
        let mut resend = message("o1", true);
        resend.first_started = Some(SystemTime::now() - Duration::from_secs(60));
        let ran = run_script(vec![resend], 1, |_, _| code(-1)).await;
        let o = &ran.outcomes[0];
        assert_eq!((o.status, o.gave_up), (Status::Unknown, true));
        // Inside the window's last seconds: retries stop when it closes.
        let mut late = message("o1", true);
        late.first_started = Some(SystemTime::now() - DEDUP_WINDOW + Duration::from_secs(1));
        late.only_in_window = true;
        let ran = run_script(vec![late], 1, |_, _| code(-1)).await;
        let o = &ran.outcomes[0];
        assert_eq!(o.status, Status::Unknown);
        // No request after the window closed. (How many before depends on the jitter: the
        // retries may all fit in the last second.)
        assert!(!ran.calls.is_empty());
        assert!(
            ran.calls.iter().all(|(_, at)| *at < Duration::from_secs(1)),
            "{:?}",
            ran.calls
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_concurrency_neither_hangs_nor_panics() {
        let messages = ["o1", "o2"].map(|o| message(o, false)).to_vec();
        let ran = run_script(messages, 1 << 30, |_, _| code(0)).await;
        assert_eq!(ran.outcomes.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_answer_stops_the_run_and_releases_the_message() {
        let ran = run_script(
            ["o1", "o2", "o3"].map(|o| message(o, false)).to_vec(),
            1,
            |_, _| code(40037),
        )
        .await;
        assert!(ran.outcomes.is_empty(), "no row: the next run sends them");
        assert!(matches!(
            ran.stop,
            Some(StopReason::Api { errcode: 40037, .. })
        ));
        assert_eq!(ran.calls.len(), 1, "nothing leaves after the abort");
        assert_eq!(ran.ledger, ["o1\t1\tstarted", "o1\t1\treleased"]);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_stays_within_it() {
        let mut b = Backoff::default();
        let mut ceilings = vec![];
        for _ in 0..10 {
            let c = b.ceiling();
            assert!(b.next_delay() <= c);
            ceilings.push(c.as_millis());
        }
        assert_eq!(&ceilings[..6], &[200, 400, 800, 1600, 3200, 6400]);
        assert!(ceilings[6..].iter().all(|&c| c == 10_000));
    }

    #[test]
    fn burst_is_one_percent_of_the_rate() {
        let s = |rate| Settings {
            rate,
            concurrency: 1,
            error_threshold: 0.5,
        };
        assert_eq!(s(50).burst(), 1);
        assert_eq!(s(1000).burst(), 10);
    }

    fn failed(code: Option<i64>, msg: &str) -> Outcome {
        Outcome {
            errcode: code,
            ..Outcome::unsent(1, "o".into(), Status::Failed, msg.into())
        }
    }

    #[test]
    fn health_fires_when_most_recent_sends_fail_systemically() {
        let mut h = Health::new(0.5);
        let ok = Outcome::unsent(1, "o".into(), Status::Sent, String::new());
        for _ in 0..10 {
            assert_eq!(h.observe(&ok, false), None);
        }
        for i in 0..9 {
            assert_eq!(h.observe(&failed(None, "timeout"), true), None, "{i}");
        }
        // 10 of 20: the threshold is reached.
        assert!(h.observe(&failed(None, "timeout"), true).is_some());
    }

    #[test]
    fn health_fires_on_a_streak_of_the_same_suspicious_failure() {
        let mut h = Health::new(1.0);
        let f = |rid| {
            failed(
                Some(47003),
                &format!("argument invalid! data.thing1.value invalid rid: {rid}"),
            )
        };
        for i in 0..STREAK_LIMIT - 1 {
            assert_eq!(h.observe(&f(i), false), None);
        }
        let why = h.observe(&f(99), false).unwrap();
        assert!(why.contains("47003"), "{why}");
        // Recipient failures like 43004 never form a streak.
        let mut h = Health::new(1.0);
        for _ in 0..100 {
            assert_eq!(
                h.observe(&failed(Some(43004), "require subscribe"), false),
                None
            );
        }
    }
}
