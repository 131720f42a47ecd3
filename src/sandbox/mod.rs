//! The sandbox: an emulator of the WeChat server API on a local socket.
//!
//! This file owns the public API ([`Sandbox`], [`Knobs`], [`Stats`],
//! [`Recorded`]) and the HTTP layer (routing, query/body extraction, response
//! encoding, the ` rid: …` suffix). The behaviour lives in the submodules:
//! `state` (tokens, quotas, counters, record), `validate` (send bodies), `account` (the
//! template lists, quota calls and `get_api_domain_ip`) and `inbox` (what arrived, as a page
//! at `/` and as JSON).
//! Facts reproduced here come from `shared/wechat-api.md`.

mod account;
mod followers;
mod inbox;
mod state;
mod validate;

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State as AxState};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use state::{Arrival, Credentials, Fate, Issued, Quota, SendAnswer, State};
use validate::{Endpoint, Reject, check_body};

pub use account::{PrivateTemplate, SubscribeTemplate, Templates};
pub use inbox::Message;
pub use validate::Mode;

/// The AppSecret the sandbox accepts unless configured otherwise.
pub const SANDBOX_SECRET: &str = "sandbox-secret";

/// The `Content-Type` of every sandbox answer, as observed from WeChat.
const JSON_CONTENT_TYPE: &str = "application/json; encoding=utf-8";

/// How long [`Sandbox::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Behaviour switches of a sandbox.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// The accepted AppSecret; another one gets 40125 `invalid appsecret`.
    pub secret: String,
    /// `None`: any appid starting with `wx` is accepted; `Some(a)`: only `a`
    /// (others get 40013 `invalid appid`).
    pub appid: Option<String>,
    /// Lifetime of minted tokens.
    pub token_ttl: Duration,
    /// Fraction (0..=1) of send requests answered `-1 system error` (after the
    /// token check, before anything else; not counted as accepted).
    pub busy_ratio: f64,
    /// Added before answering each send request.
    pub latency: Duration,
    /// Max send requests per sliding second; above it 45009 `api freq out of limit`.
    /// The window counts the requests that passed this check (a client
    /// sending at twice the limit gets half of its requests through).
    pub rate_limit: Option<u32>,
    /// Max accepted sends per "day" and send endpoint (`None`: WeChat's
    /// defaults, 100,000 for template messages); then every send gets 45009
    /// `reach max api daily quota limit` until [`Sandbox::next_day`].
    pub daily_quota: Option<u64>,
    /// A `touser` starting with the prefix is answered that errcode (after the
    /// token and body checks), e.g. `("o_block", 43004)`.
    pub fail_prefixes: Vec<(String, i64)>,
    /// `true`: `/cgi-bin/message/wxopen/template/send` answers 45103, as the
    /// real (retired) API does.
    pub legacy_retired: bool,
    /// Seed of the RNGs behind `busy_ratio` and `reset_ratio` and of token
    /// strings, for reproducible runs. `None`: faults as with seed 0, tokens
    /// from a random seed, so that every start mints tokens of its own.
    pub seed: Option<u64>,
    /// How send bodies are checked: [`Mode::Tolerant`] like WeChat, or
    /// [`Mode::Strict`] (documented fields only) to catch client bugs.
    pub mode: Mode,
    /// `GET /cgi-bin/token` calls per day, then 45009 (WeChat: 2,000 for an
    /// Official Account).
    pub token_daily_limit: u64,
    /// The account's templates, as the two template list APIs return them.
    pub templates: Templates,
    /// Fraction (0..=1) of send requests answered errcode 0 (accepted ones
    /// and `client_msg_id` repeats) whose answer is lost: the request is
    /// processed, counted and recorded normally, then the connection is
    /// closed without an answer (hyper has not flushed the status line yet),
    /// so the client's request fails with "connection closed before message
    /// completed" (reqwest: `.send()` errors). Decided with its own
    /// seeded RNG, independently of `busy_ratio`. Counted in
    /// [`Stats::resets`].
    pub reset_ratio: f64,
    /// `Some(n)`: the n-th send request (1-based, counting every request to
    /// the four send endpoints in arrival order, wrong-method ones included)
    /// and every later one is processed, counted and recorded normally, then
    /// its answer is held until [`Sandbox::release`]. `Some(0)` acts like
    /// `Some(1)`. Counted in [`Stats::held`].
    pub hold_from: Option<u64>,
    /// `Some(ips)`: the account's API IP whitelist. The token endpoints answer 40164 to a
    /// caller not on it; every caller of the sandbox is 127.0.0.1 (it listens there only).
    pub ip_whitelist: Option<Vec<String>>,
    /// `false`: `openapi/quota/get` answers 48001 (not authorized), as for an account
    /// without that API; a client then meets the daily quota as 45009 mid-run.
    pub quota_api: bool,
    /// Followers of the account (`user/get` and the follower endpoints).
    pub followers: u64,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            secret: SANDBOX_SECRET.to_owned(),
            appid: None,
            token_ttl: Duration::from_secs(7200),
            busy_ratio: 0.0,
            latency: Duration::ZERO,
            rate_limit: None,
            daily_quota: None,
            fail_prefixes: Vec::new(),
            legacy_retired: false,
            seed: None,
            mode: Mode::Tolerant,
            token_daily_limit: 2_000,
            templates: Templates::default(),
            reset_ratio: 0.0,
            hold_from: None,
            ip_whitelist: None,
            quota_api: true,
            followers: 0,
        }
    }
}

/// Counters of a sandbox (a snapshot).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// `GET /cgi-bin/token` calls.
    pub token_calls: u64,
    /// `POST /cgi-bin/stable_token` calls.
    pub stable_token_calls: u64,
    /// Those of them with `"force_refresh": true` (whether or not they refreshed).
    pub force_refresh_calls: u64,
    pub tokens_minted: u64,
    /// All requests to the four send endpoints (wrong-method ones included,
    /// answered 43002).
    pub send_requests: u64,
    /// Sends answered errcode 0, except `client_msg_id` repeats.
    pub accepted: u64,
    /// Answers of the send endpoints by errcode (0 included).
    pub by_errcode: std::collections::BTreeMap<i64, u64>,
    /// Accepted sends to an (endpoint, touser, template_id) already accepted before.
    pub duplicate_deliveries: u64,
    /// Most send requests that arrived within any sliding 1 s window.
    pub max_sends_in_1s: u64,
    /// Sends answered 0 as a repeat of an earlier accepted (touser,
    /// client_msg_id) within 10 minutes (not counted in `accepted`).
    pub client_msg_id_repeats: u64,
    /// Send answers lost to `reset_ratio` (their requests were processed).
    pub resets: u64,
    /// Send requests whose answer was held by `hold_from`.
    pub held: u64,
}

/// One recorded send request.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// e.g. `/cgi-bin/message/template/send`.
    pub path: String,
    /// The parsed JSON body as received (`Null` if unparsable).
    pub body: Value,
    /// Fields of the body that WeChat ignores (unknown or empty optional ones), which a
    /// tolerant sandbox accepted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// The errcode the sandbox answered.
    pub errcode: i64,
    /// Arrival time, in ms since the sandbox started.
    pub at_ms: u64,
}

/// Counters that can be waited for (see [`Sandbox::wait_for_sends`]).
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Mirrors `Stats::send_requests` (updated after it).
    sends: u64,
    /// Mirrors `Stats::held` (updated after it).
    held: u64,
}

/// State shared by all request handlers.
struct Shared {
    state: Mutex<State>,
    latency: Duration,
    /// How send bodies are checked (fixed for the sandbox's life).
    mode: Mode,
    progress: watch::Sender<Progress>,
    /// `true` once [`Sandbox::release`] was called. Its sender lives in the
    /// [`Sandbox`]: when that is dropped or shut down, held answers give up.
    released: watch::Receiver<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters at worst one request
        // off; keep serving rather than propagate the poison.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Step 1 of both send handlers: counts the arrival and wakes waiters.
    fn arrive(&self) -> Arrival {
        let arrival = self.lock().arrive(Instant::now());
        let n = arrival.ordinal();
        self.progress.send_if_modified(|p| {
            let changed = n > p.sends;
            p.sends = p.sends.max(n);
            changed
        });
        arrival
    }

    /// After the answer is decided and recorded: its hold/reset fate.
    fn fate(&self, st: &mut State, arrival: Arrival, errcode: i64) -> Fate {
        let released = *self.released.borrow();
        st.fate(arrival, errcode, released)
    }

    /// Delivers `answer` according to `fate`: waits while it is held, and
    /// breaks the connection instead when it is lost (or when the sandbox
    /// goes away while it is held).
    async fn deliver(&self, fate: Fate, answer: impl FnOnce() -> Response) -> Response {
        if fate.held {
            self.progress.send_modify(|p| p.held += 1);
            let mut released = self.released.clone();
            let ok = released.wait_for(|r| *r).await.is_ok();
            if !ok {
                return broken_response("sandbox stopped while the answer was held");
            }
        }
        if fate.lost {
            broken_response("answer lost (reset_ratio)")
        } else {
            answer()
        }
    }
}

/// A running sandbox. Dropping it stops the server (like [`Sandbox::shutdown`]
/// without waiting; held answers are then never sent).
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    release: watch::Sender<bool>,
}

impl Sandbox {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves on the current tokio
    /// runtime (spawned task).
    pub async fn start(addr: SocketAddr, knobs: Knobs) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (release, released) = watch::channel(false);
        let shared = Arc::new(Shared {
            latency: knobs.latency,
            mode: knobs.mode,
            state: Mutex::new(State::new(knobs, Instant::now())),
            progress: watch::Sender::new(Progress::default()),
            released,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let server =
            axum::serve(listener, router(shared.clone())).with_graceful_shutdown(async move {
                // Resolves on an explicit stop and when the Sandbox is dropped.
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            // axum's serve only returns Err for listener failures it cannot
            // recover from; nobody is left to report them to.
            let _ = server.await;
        });
        Ok(Sandbox {
            addr,
            shared,
            stop,
            task,
            release,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (an unspecified bind address is shown as loopback).
    pub fn base_url(&self) -> String {
        let mut a = self.addr;
        if a.ip().is_unspecified() {
            a.set_ip(match a.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        format!("http://{a}")
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Recorded send requests in arrival order (the latest 100 000).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests()
    }

    /// Resets the daily quota counter.
    pub fn next_day(&self) {
        self.shared.lock().next_day();
    }

    /// Sets `busy_ratio` from now on (WeChat got busy).
    pub fn set_busy(&self, ratio: f64) {
        self.shared.lock().set_busy(ratio);
    }

    /// Turns off `busy_ratio` and `fail_prefixes`: later sends are answered as a healthy
    /// WeChat would.
    pub fn heal(&self) {
        self.shared.lock().heal();
    }

    /// Turns `hold_from` off for good: held answers are sent now (or lost,
    /// if `reset_ratio` picked them) and later requests are not held.
    /// Idempotent.
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    /// Completes once `stats().send_requests >= n`. A request counts when it
    /// arrives, before it is processed; use [`Sandbox::wait_for_held`] to
    /// know that held requests were processed.
    pub async fn wait_for_sends(&self, n: u64) {
        let mut rx = self.shared.progress.subscribe();
        // The sender lives in `self.shared`, so it cannot close while we wait.
        let _ = rx.wait_for(|p| p.sends >= n).await;
    }

    /// Completes once `stats().held >= n`, i.e. n requests were processed
    /// (accepted, counted, recorded) and their answers are being held.
    pub async fn wait_for_held(&self, n: u64) {
        let mut rx = self.shared.progress.subscribe();
        let _ = rx.wait_for(|p| p.held >= n).await;
    }

    /// Stops accepting connections and waits (up to 5 s) for open ones.
    /// Held answers are not sent: their connections are broken.
    pub async fn shutdown(self) {
        let Sandbox {
            stop,
            task,
            release,
            ..
        } = self;
        // Wakes held handlers with "sender gone": they break their connections
        // so the graceful shutdown does not wait for them.
        drop(release);
        let _ = stop.send(());
        let abort = task.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            abort.abort();
        }
    }
}

// ------------------------------------------------------------------ routing

type Shr = AxState<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new()
        .route(
            "/cgi-bin/token",
            get(classic_token).fallback(|| async { require(43001) }),
        )
        .route(
            "/cgi-bin/stable_token",
            post(stable_token).fallback(|| async { require(43002) }),
        )
        .route(
            "/sandbox/stats",
            get(|AxState(sh): Shr| async move {
                // Snapshot first so the lock is not held while serializing.
                let stats = sh.lock().stats();
                json_response(&stats)
            })
            .fallback(|| async { require(43001) }),
        )
        .route(
            "/sandbox/requests",
            get(|AxState(sh): Shr| async move {
                let requests = sh.lock().requests();
                json_response(&requests)
            })
            .fallback(|| async { require(43001) }),
        )
        .route(
            "/sandbox/next_day",
            post(|AxState(sh): Shr| async move {
                sh.lock().next_day();
                json_response(&OkBody::OK)
            })
            .fallback(|| async { require(43002) }),
        );
    r = account::routes(r);
    r = followers::routes(r);
    r = inbox::routes(r);
    for ep in Endpoint::ALL {
        r = r.route(
            ep.path(),
            post(move |sh: Shr, q: RawQuery, body: Bytes| send(sh, ep, q, body))
                .fallback(move |sh: Shr| send_wrong_method(sh, ep)),
        );
    }
    r.with_state(shared)
}

// ----------------------------------------------------------------- handlers

async fn classic_token(AxState(sh): Shr, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    let grant_type = query_get(&q, "grant_type");
    let appid = query_get(&q, "appid");
    let secret = query_get(&q, "secret");
    let creds = Credentials {
        grant_type: grant_type.as_deref(),
        appid: appid.as_deref(),
        secret: secret.as_deref(),
    };
    let result = sh.lock().classic_token(creds, Instant::now());
    token_response(result)
}

async fn stable_token(AxState(sh): Shr, body: Bytes) -> Response {
    sh.lock().count_stable_call();
    let result = StableRequest::parse(&body).and_then(|req| {
        let creds = Credentials {
            grant_type: req.grant_type.as_deref(),
            appid: req.appid.as_deref(),
            secret: req.secret.as_deref(),
        };
        sh.lock()
            .stable_token(creds, req.force_refresh, Instant::now())
    });
    token_response(result)
}

/// The body of `POST /cgi-bin/stable_token`.
struct StableRequest {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
    force_refresh: bool,
}

impl StableRequest {
    /// 47001 for a body that is not a JSON object or has a field of the wrong
    /// type; unknown fields are ignored.
    fn parse(body: &[u8]) -> Result<StableRequest, Reject> {
        let mut obj = object(body)?;
        let mut string = |key: &str| match obj.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Reject::format(format_args!(
                "field `{key}` must be a string"
            ))),
        };
        let grant_type = string("grant_type")?;
        let appid = string("appid")?;
        let secret = string("secret")?;
        let force_refresh = match obj.get("force_refresh") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Reject::format("field `force_refresh` must be a boolean"));
            }
        };
        Ok(StableRequest {
            grant_type,
            appid,
            secret,
            force_refresh,
        })
    }
}

/// A POST body that must be a JSON object: 44002 when empty, 47001 when it is not one.
fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Reject> {
    if body.is_empty() {
        return Err(Reject::empty_body());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Reject::format("body must be a JSON object")),
        Err(_) => Err(Reject::format("body is not JSON")),
    }
}

/// A POST to one of the four send endpoints: the pipeline of steps 1–12.
async fn send(AxState(sh): Shr, ep: Endpoint, RawQuery(q): RawQuery, body: Bytes) -> Response {
    // (1) arrival
    let arrival = sh.arrive();
    // (2) latency
    if !sh.latency.is_zero() {
        tokio::time::sleep(sh.latency).await;
    }
    // The body verdict is pure, so work it out before taking the lock; it is
    // only answered at step 7.
    let (value, checked) = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let checked = check_body(ep, &v, sh.mode);
            (v, checked)
        }
        Err(_) if body.is_empty() => (Value::Null, Err(Reject::empty_body())),
        Err(_) => (Value::Null, Err(Reject::format("body is not JSON"))),
    };
    let ignored = checked
        .as_ref()
        .map(|f| f.ignored.clone())
        .unwrap_or_default();
    let token = q.as_deref().and_then(|q| query_get(q, "access_token"));
    let (answer, fate) = {
        let mut st = sh.lock();
        let answer = st.decide_send(ep, token.as_deref(), &checked, Instant::now());
        st.finish_send(arrival, ep.path(), value, ignored, answer.errcode());
        let fate = sh.fate(&mut st, arrival, answer.errcode());
        (answer, fate)
    };
    // (12) hold_from / reset_ratio
    sh.deliver(fate, || match answer {
        SendAnswer::Ok { msgid } => json_response(&OkBody {
            errcode: 0,
            errmsg: "ok",
            msgid,
        }),
        SendAnswer::Err(r) => error_response(&r),
    })
    .await
}

/// A send endpoint called with another method than POST: 43002, counted and
/// recorded like any other send answer.
async fn send_wrong_method(AxState(sh): Shr, ep: Endpoint) -> Response {
    let r = Reject::new(43002, "require POST method");
    let arrival = sh.arrive();
    let fate = {
        let mut st = sh.lock();
        st.finish_send(arrival, ep.path(), Value::Null, Vec::new(), r.code);
        sh.fate(&mut st, arrival, r.code)
    };
    sh.deliver(fate, || error_response(&r)).await
}

/// 43001 `require GET method` / 43002 `require POST method`.
fn require(code: i64) -> Response {
    let msg = if code == 43001 {
        "require GET method"
    } else {
        "require POST method"
    };
    error_response(&Reject::new(code, msg))
}

// ---------------------------------------------------------------- responses

#[derive(Serialize)]
struct OkBody {
    errcode: i64,
    errmsg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msgid: Option<u64>,
}

impl OkBody {
    const OK: OkBody = OkBody {
        errcode: 0,
        errmsg: "ok",
        msgid: None,
    };
}

#[derive(Serialize)]
struct ErrBody {
    errcode: i64,
    errmsg: String,
}

#[derive(Serialize)]
struct TokenBody {
    access_token: String,
    expires_in: u64,
}

fn json_response<T: Serialize>(v: &T) -> Response {
    // Invariant: every type serialized here is a plain struct/vec of strings,
    // integers and serde_json::Values with string keys, which cannot fail.
    let body = serde_json::to_vec(v).expect("serializing sandbox answers cannot fail");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

fn error_response(r: &Reject) -> Response {
    json_response(&ErrBody {
        errcode: r.code,
        errmsg: format!("{} rid: {}", r.msg, rid()),
    })
}

/// A 200 whose body fails before its first byte: hyper then closes the
/// connection before flushing even the status line, and the client sees an
/// incomplete response, as with a TCP reset after WeChat processed the
/// request.
fn broken_response(why: &'static str) -> Response {
    let body = Body::from_stream(futures::stream::once(async move {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            why,
        ))
    }));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

fn token_response(result: Result<Issued, Reject>) -> Response {
    match result {
        Ok(t) => json_response(&TokenBody {
            access_token: t.access_token,
            expires_in: t.expires_in,
        }),
        Err(r) => error_response(&r),
    }
}

/// A request id in WeChat's shape `xxxxxxxx-xxxxxxxx-xxxxxxxx`: the unix time
/// in hex, then 64 scrambled bits of a process-wide counter.
fn rid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0x5EED_0000_0000_0000);
    let n = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    // splitmix64 finaliser
    let mut z = n;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:08x}-{:08x}-{:08x}",
        secs as u32,
        (z >> 32) as u32,
        z as u32
    )
}

// ------------------------------------------------------------------- query

/// The decoded value of the first `key=` parameter of a raw query string.
fn query_get<'q>(query: &'q str, key: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space; a malformed
/// `%` escape is kept literally; invalid UTF-8 is replaced).
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|&c| (c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits make at most 0xFF.
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn start(knobs: Knobs) -> Sandbox {
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        Sandbox::start(addr, knobs).await.expect("bind 127.0.0.1:0")
    }

    async fn post_json(c: &reqwest::Client, url: &str, body: Vec<u8>) -> (Value, String) {
        let resp = c.post(url).body(body).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(ct.as_deref(), Some(JSON_CONTENT_TYPE));
        let text = resp.text().await.expect("body");
        let v = serde_json::from_str(&text).expect("JSON answer");
        (v, text)
    }

    async fn get_json(c: &reqwest::Client, url: &str) -> Value {
        let resp = c.get(url).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("JSON answer")
    }

    fn stable_body(force: bool) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "grant_type": "client_credential",
            "appid": "wx0123456789",
            "secret": SANDBOX_SECRET,
            "force_refresh": force,
        }))
        .expect("serialize")
    }

    #[test]
    fn query_decoding() {
        let q = "grant_type=client_credential&appid=wx1&secret=a%2Bb+c%zz&x";
        assert_eq!(query_get(q, "appid").as_deref(), Some("wx1"));
        assert_eq!(query_get(q, "secret").as_deref(), Some("a+b c%zz"));
        assert_eq!(query_get(q, "x").as_deref(), Some(""));
        assert_eq!(query_get(q, "missing"), None);
        assert_eq!(percent_decode("%E4%BD%A0"), "你");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn rid_shape() {
        let (a, b) = (rid(), rid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 26);
        assert_eq!(a.matches('-').count(), 2);
    }

    #[tokio::test]
    async fn stable_token_and_template_send() {
        let sb = start(Knobs::default()).await;
        let base = sb.base_url();
        assert_eq!(base, format!("http://127.0.0.1:{}", sb.addr().port()));
        let c = reqwest::Client::new();

        let (tok, _) = post_json(
            &c,
            &format!("{base}/cgi-bin/stable_token"),
            stable_body(false),
        )
        .await;
        assert!(tok.get("errcode").is_none(), "{tok}");
        assert_eq!(tok["expires_in"], 7200);
        let token = tok["access_token"]
            .as_str()
            .expect("token string")
            .to_owned();
        assert!(token.len() >= 40);
        let (again, _) = post_json(
            &c,
            &format!("{base}/cgi-bin/stable_token"),
            stable_body(false),
        )
        .await;
        assert_eq!(again["access_token"], token.as_str());

        let send_url = format!("{base}/cgi-bin/message/template/send?access_token={token}");
        let body = json!({
            "touser": "o_user1",
            "template_id": "tpl_1",
            "url": "https://example.com",
            "data": {"keyword1": {"value": "巧克力"}}
        });
        let bytes = serde_json::to_vec(&body).expect("serialize");
        let (ok, text) = post_json(&c, &send_url, bytes.clone()).await;
        assert_eq!(ok["errcode"], 0);
        assert_eq!(ok["errmsg"], "ok");
        assert_eq!(ok["msgid"].as_u64(), Some(3_717_005_636_572_528_642));
        assert!(text.contains("\"msgid\":3717005636572528642"), "{text}");
        let (ok2, _) = post_json(&c, &send_url, bytes).await;
        assert_eq!(ok2["msgid"].as_u64(), Some(3_717_005_636_572_528_643));

        // subscribe send with a data rule violation
        let sub_url = format!("{base}/cgi-bin/message/subscribe/send?access_token={token}");
        let sub = json!({"touser": "o1", "template_id": "t", "data": {"thing1": {"value": ""}}});
        let (e, _) = post_json(&c, &sub_url, serde_json::to_vec(&sub).expect("ser")).await;
        assert_eq!(e["errcode"], 47003);
        let msg = e["errmsg"].as_str().expect("errmsg");
        assert!(
            msg.starts_with("argument invalid! data.thing1.value is empty rid: "),
            "{msg}"
        );

        // unparsable body is recorded as Null and answered 47001
        let (e, _) = post_json(&c, &send_url, b"not json".to_vec()).await;
        assert_eq!(e["errcode"], 47001);

        let stats: Value = get_json(&c, &format!("{base}/sandbox/stats")).await;
        assert_eq!(stats["stable_token_calls"], 2);
        assert_eq!(stats["tokens_minted"], 1);
        assert_eq!(stats["send_requests"], 4);
        assert_eq!(stats["accepted"], 2);
        assert_eq!(stats["duplicate_deliveries"], 1);
        assert_eq!(stats["by_errcode"]["0"], 2);
        let s = sb.stats();
        assert_eq!(s.by_errcode.get(&47003), Some(&1));
        assert_eq!(s.by_errcode.get(&47001), Some(&1));

        let recs = sb.requests();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0].path, "/cgi-bin/message/template/send");
        assert_eq!(recs[0].body, body);
        assert_eq!(recs[2].path, "/cgi-bin/message/subscribe/send");
        assert_eq!(recs[3].body, Value::Null);
        let http_recs = get_json(&c, &format!("{base}/sandbox/requests")).await;
        assert_eq!(http_recs.as_array().map(Vec::len), Some(4));
        assert_eq!(http_recs[3]["errcode"], 47001);

        sb.shutdown().await;
        assert!(c.get(format!("{base}/sandbox/stats")).send().await.is_err());
    }

    #[tokio::test]
    async fn token_errors_methods_and_paths() {
        let sb = start(Knobs {
            daily_quota: Some(1),
            ..Knobs::default()
        })
        .await;
        let base = sb.base_url();
        let c = reqwest::Client::new();

        let token_url = |q: &str| format!("{base}/cgi-bin/token?{q}");
        let e = get_json(
            &c,
            &token_url("grant_type=client_credential&appid=wx1&secret=nope"),
        )
        .await;
        assert_eq!(e["errcode"], 40125);
        assert!(
            e["errmsg"]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid appsecret rid: "))
        );
        let e = get_json(&c, &token_url("grant_type=client_credential&secret=x")).await;
        assert_eq!(e["errcode"], 41002);
        let ok = get_json(
            &c,
            &token_url(&format!(
                "grant_type=client_credential&appid=wx1&secret={SANDBOX_SECRET}"
            )),
        )
        .await;
        assert!(ok.get("errcode").is_none());
        let token = ok["access_token"].as_str().expect("token").to_owned();

        let send = |q: &str| format!("{base}/cgi-bin/message/subscribe/send{q}");
        let body =
            br#"{"touser":"o1","template_id":"t","data":{"thing1":{"value":"hi"}}}"#.to_vec();
        let (e, _) = post_json(&c, &send(""), body.clone()).await;
        assert_eq!(e["errcode"], 41001);
        let (e, _) = post_json(&c, &send("?access_token=sbx_bogus"), body.clone()).await;
        assert_eq!(e["errcode"], 40014);
        let (ok, _) = post_json(&c, &send(&format!("?access_token={token}")), body.clone()).await;
        assert_eq!(ok["errcode"], 0);
        assert!(ok["msgid"].as_u64().is_some());
        let (e, _) = post_json(&c, &send(&format!("?access_token={token}")), body.clone()).await;
        assert_eq!(e["errcode"], 45009);
        assert!(
            e["errmsg"]
                .as_str()
                .is_some_and(|m| m.contains("daily quota"))
        );
        let (n, _) = post_json(&c, &format!("{base}/sandbox/next_day"), Vec::new()).await;
        assert_eq!(n["errcode"], 0);
        let (ok, _) = post_json(&c, &send(&format!("?access_token={token}")), body).await;
        assert_eq!(ok["errcode"], 0);

        // stable_token with a non-JSON body
        let (e, _) = post_json(
            &c,
            &format!("{base}/cgi-bin/stable_token"),
            b"appid=wx1".to_vec(),
        )
        .await;
        assert_eq!(e["errcode"], 47001);

        // wrong methods and unknown paths
        let (e, _) = post_json(&c, &token_url(""), Vec::new()).await;
        assert_eq!(e["errcode"], 43001);
        let e = get_json(&c, &format!("{base}/cgi-bin/stable_token")).await;
        assert_eq!(e["errcode"], 43002);
        let e = get_json(&c, &send(&format!("?access_token={token}"))).await;
        assert_eq!(e["errcode"], 43002);
        let resp = c
            .get(format!("{base}/cgi-bin/nope"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 404);

        let s = sb.stats();
        assert_eq!(s.token_calls, 3);
        assert_eq!(s.stable_token_calls, 1);
        assert_eq!(s.send_requests, 6);
        assert_eq!(s.accepted, 2);
        assert_eq!(s.by_errcode.get(&43002), Some(&1));
        assert!(s.max_sends_in_1s >= 1);
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn classic_token_supersession_over_http() {
        let sb = start(Knobs::default()).await;
        let base = sb.base_url();
        let c = reqwest::Client::new();
        let url = format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid=wx1&secret={SANDBOX_SECRET}"
        );
        let a = get_json(&c, &url).await;
        let b = get_json(&c, &url).await;
        assert_ne!(a["access_token"], b["access_token"]);
        // both work: the old one is inside its 5 minute grace
        for t in [&a, &b] {
            let token = t["access_token"].as_str().expect("token");
            let u = format!("{base}/cgi-bin/message/wxopen/template/send?access_token={token}");
            let body = json!({"touser": "o1", "template_id": "t", "form_id": token});
            let (r, text) = post_json(&c, &u, serde_json::to_vec(&body).expect("ser")).await;
            assert_eq!(r["errcode"], 0);
            assert!(!text.contains("msgid"));
        }
        sb.shutdown().await;
    }

    /// A stable token from the sandbox at `base`.
    async fn token(c: &reqwest::Client, base: &str) -> String {
        let (tok, _) = post_json(
            c,
            &format!("{base}/cgi-bin/stable_token"),
            stable_body(false),
        )
        .await;
        tok["access_token"].as_str().expect("token").to_owned()
    }

    /// The calls around sending (issue 12 §3), over HTTP, with WeChat's shapes.
    #[tokio::test]
    async fn account_endpoints_and_empty_bodies() {
        let sb = start(Knobs {
            daily_quota: Some(5),
            rate_limit: Some(20),
            ..Knobs::default()
        })
        .await;
        let base = sb.base_url();
        let c = reqwest::Client::new();
        let tok = token(&c, &base).await;
        let q = format!("?access_token={tok}");

        let ips = get_json(&c, &format!("{base}/cgi-bin/get_api_domain_ip{q}")).await;
        assert_eq!(ips, json!({"ip_list": ["127.0.0.1"]}));
        let oa = get_json(
            &c,
            &format!("{base}/cgi-bin/template/get_all_private_template{q}"),
        )
        .await;
        let first = &oa["template_list"][0];
        for key in [
            "template_id",
            "title",
            "primary_industry",
            "deputy_industry",
            "content",
            "example",
        ] {
            assert!(first[key].is_string(), "{key} in {first}");
        }
        let mini = get_json(&c, &format!("{base}/wxaapi/newtmpl/gettemplate{q}")).await;
        assert_eq!(mini["errcode"], 0);
        assert!(mini["data"][0]["priTmplId"].is_string());
        assert_eq!(mini["data"][0]["type"], 2);
        // Without a token: refused like a send.
        let no = get_json(&c, &format!("{base}/wxaapi/newtmpl/gettemplate")).await;
        assert_eq!(no["errcode"], 41001);

        let send = format!("{base}/cgi-bin/message/template/send{q}");
        let body = serde_json::to_vec(&json!({"touser": "o1", "template_id": "t",
            "data": {"k": {"value": "v"}}}))
        .unwrap();
        assert_eq!(post_json(&c, &send, body).await.0["errcode"], 0);
        let quota_url = format!("{base}/cgi-bin/openapi/quota/get{q}");
        let path = br#"{"cgi_path":"/cgi-bin/message/template/send"}"#.to_vec();
        let (quota, _) = post_json(&c, &quota_url, path).await;
        assert_eq!(
            quota,
            json!({"errcode": 0, "errmsg": "ok",
                "quota": {"daily_limit": 5, "used": 1, "remain": 4},
                "rate_limit": {"call_count": 20, "refresh_second": 1}})
        );
        let (unknown, _) = post_json(&c, &quota_url, br#"{"cgi_path":"/x"}"#.to_vec()).await;
        assert_eq!(unknown["errcode"], 76021);
        let clear = format!("{base}/cgi-bin/clear_quota{q}");
        let (cleared, _) = post_json(&c, &clear, br#"{"appid":"wx0123456789"}"#.to_vec()).await;
        assert_eq!(cleared["errcode"], 0);
        let path = br#"{"cgi_path":"/cgi-bin/message/template/send"}"#.to_vec();
        assert_eq!(post_json(&c, &quota_url, path).await.0["quota"]["used"], 0);

        // An empty POST body is 44002 everywhere.
        for url in [
            &send,
            &quota_url,
            &clear,
            &format!("{base}/cgi-bin/stable_token"),
        ] {
            let (r, text) = post_json(&c, url, Vec::new()).await;
            assert_eq!(r["errcode"], 44002, "{url}: {text}");
        }
        sb.shutdown().await;
    }

    /// A tolerant sandbox accepts what WeChat accepts and says in `/sandbox/requests` what
    /// it ignored; bizsend is served with the subscribe value rules.
    #[tokio::test]
    async fn tolerant_bodies_and_bizsend_over_http() {
        let sb = start(Knobs::default()).await;
        let base = sb.base_url();
        let c = reqwest::Client::new();
        let tok = token(&c, &base).await;
        let sub = format!("{base}/cgi-bin/message/subscribe/send?access_token={tok}");
        let body = json!({"touser": "o1", "template_id": "t", "page": "", "lang": "",
            "miniprogram_state": "", "data": {"thing1": {"value": "好"}}});
        let (r, _) = post_json(&c, &sub, serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(r["errcode"], 0);
        let biz = format!("{base}/cgi-bin/message/subscribe/bizsend?access_token={tok}");
        let body = json!({"touser": "o2", "template_id": "t", "page": "https://example.com",
            "data": {"thing1": {"value": "好"}, "time2": {"value": "明天"}}});
        let (r, _) = post_json(&c, &biz, serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(r["errcode"], 47003);
        assert!(
            r["errmsg"]
                .as_str()
                .unwrap()
                .contains("data.time2.value invalid")
        );
        let log = get_json(&c, &format!("{base}/sandbox/requests")).await;
        assert_eq!(
            log[0]["ignored"],
            json!(["page", "miniprogram_state", "lang"])
        );
        assert_eq!(log[1]["path"], "/cgi-bin/message/subscribe/bizsend");
        assert!(log[1].get("ignored").is_none());
        sb.shutdown().await;
    }

    /// Bound for waits that must finish; generous so slow CI does not flake.
    const MUST_FINISH: Duration = Duration::from_secs(10);

    /// POSTs `body` and reads the whole answer as JSON; `Err` for any
    /// transport error (send, body read) or a non-JSON body.
    async fn try_send(c: reqwest::Client, url: String, body: Value) -> Result<Value, String> {
        let resp = c
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("json: {e}"))
    }

    fn tpl_body(touser: &str) -> Value {
        json!({"touser": touser, "template_id": "tpl", "data": {"k1": {"value": "v"}}})
    }

    #[tokio::test]
    async fn reset_ratio_loses_processed_answers() {
        let sb = start(Knobs {
            reset_ratio: 1.0,
            ..Knobs::default()
        })
        .await;
        let base = sb.base_url();
        let c = reqwest::Client::new();
        let token = token(&c, &base).await;
        let url = format!("{base}/cgi-bin/message/template/send?access_token={token}");

        // No clean answer: hyper closes the connection before the status
        // line is flushed, so `.send()` fails (IncompleteMessage); a failing
        // `.bytes()` would be as good.
        let r = try_send(c.clone(), url.clone(), tpl_body("o_1")).await;
        assert!(r.is_err(), "got a clean answer: {r:?}");

        let s = sb.stats();
        assert_eq!((s.send_requests, s.accepted, s.resets), (1, 1, 1));
        assert_eq!(s.by_errcode.get(&0), Some(&1));
        let recs = sb.requests();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            (recs[0].errcode, &recs[0].body["touser"]),
            (0, &json!("o_1"))
        );

        // Rejected answers are delivered; the client recovers from the broken
        // connection (a new one is opened).
        let bad = format!("{base}/cgi-bin/message/template/send?access_token=sbx_bogus");
        let e = try_send(c.clone(), bad, tpl_body("o_2")).await;
        assert_eq!(e.expect("clean answer")["errcode"], 40014);
        // A second accepted send is lost too, and consumed a msgid.
        assert!(try_send(c.clone(), url, tpl_body("o_3")).await.is_err());
        let s = sb.stats();
        assert_eq!((s.send_requests, s.accepted, s.resets), (3, 2, 2));
        let stats = get_json(&c, &format!("{base}/sandbox/stats")).await;
        assert_eq!(stats["resets"], 2);
        assert_eq!(stats["held"], 0);
        assert_eq!(stats["client_msg_id_repeats"], 0);
        sb.shutdown().await;
    }

    /// A sandbox holding answers from the `hold_from`-th send, a client with a token, and
    /// the URL of `path` with that token.
    async fn holding(hold_from: u64, path: &str) -> (Sandbox, reqwest::Client, String) {
        let sb = start(Knobs {
            hold_from: Some(hold_from),
            ..Knobs::default()
        })
        .await;
        let base = sb.base_url();
        let c = reqwest::Client::new();
        let token = token(&c, &base).await;
        let url = format!("{base}{path}?access_token={token}");
        (sb, c, url)
    }

    #[tokio::test]
    async fn hold_from_holds_until_release() {
        let (sb, c, url) = holding(2, "/cgi-bin/message/template/send").await;
        let base = sb.base_url();

        let first = try_send(c.clone(), url.clone(), tpl_body("o_1")).await;
        assert_eq!(first.expect("first is answered")["errcode"], 0);
        let mut second = tokio::spawn(try_send(c.clone(), url.clone(), tpl_body("o_2")));
        tokio::time::timeout(MUST_FINISH, sb.wait_for_sends(2))
            .await
            .expect("second request arrives");
        tokio::time::timeout(MUST_FINISH, sb.wait_for_held(1))
            .await
            .expect("second request is processed and held");
        // The only time-based check: the answer does not come while held.
        let pending = tokio::time::timeout(Duration::from_millis(200), &mut second).await;
        assert!(pending.is_err(), "held answer was delivered: {pending:?}");
        let s = sb.stats();
        assert_eq!((s.send_requests, s.accepted, s.held), (2, 2, 1));
        assert_eq!(sb.requests().len(), 2);
        // Non-send endpoints are not held.
        let stats = get_json(&c, &format!("{base}/sandbox/stats")).await;
        assert_eq!(stats["held"], 1);

        sb.release();
        let answer = tokio::time::timeout(MUST_FINISH, second)
            .await
            .expect("released answer arrives")
            .expect("task")
            .expect("clean answer");
        assert_eq!(answer["errcode"], 0);
        assert_eq!(answer["msgid"].as_u64(), Some(state::FIRST_MSGID + 1));
        // Later requests are not held.
        let third = try_send(c.clone(), url, tpl_body("o_3")).await;
        assert_eq!(third.expect("third is answered")["errcode"], 0);
        sb.release();
        let s = sb.stats();
        assert_eq!((s.send_requests, s.accepted, s.held), (3, 3, 1));
        // Already satisfied waits complete at once.
        sb.wait_for_sends(3).await;
        sb.wait_for_held(1).await;
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_breaks_held_answers() {
        let (sb, c, url) = holding(1, "/cgi-bin/message/subscribe/send").await;
        let base = sb.base_url();
        let body = json!({"touser": "o1", "template_id": "t", "data": {"thing1": {"value": "hi"}}});
        let held = tokio::spawn(try_send(c.clone(), url, body));
        // Wrong-method requests to send endpoints are held as well.
        let wrong = tokio::spawn({
            let c = c.clone();
            let u = format!("{base}/cgi-bin/message/template/send");
            async move { c.get(u).send().await?.bytes().await }
        });
        tokio::time::timeout(MUST_FINISH, sb.wait_for_held(2))
            .await
            .expect("both requests are held");
        assert_eq!(sb.stats().accepted, 1);
        // Well below the 5 s grace: held handlers give up at once.
        tokio::time::timeout(Duration::from_secs(4), sb.shutdown())
            .await
            .expect("shutdown does not wait for held answers");
        let r = tokio::time::timeout(MUST_FINISH, held).await.expect("done");
        assert!(r.expect("task").is_err(), "a held answer is never sent");
        let r = tokio::time::timeout(MUST_FINISH, wrong)
            .await
            .expect("done");
        assert!(r.expect("task").is_err());
    }

    #[tokio::test]
    async fn client_msg_id_repeats_are_counted() {
        let sb = start(Knobs::default()).await;
        let base = sb.base_url();
        let c = reqwest::Client::new();
        let token = token(&c, &base).await;
        let url = format!("{base}/cgi-bin/message/template/send?access_token={token}");
        let mut body = tpl_body("o_1");
        body["client_msg_id"] = json!("run1-row1");
        let a = try_send(c.clone(), url.clone(), body.clone())
            .await
            .expect("a");
        let b = try_send(c.clone(), url.clone(), body.clone())
            .await
            .expect("b");
        assert_eq!(a["errcode"], 0);
        assert_eq!(b, a, "a repeat gets the first answer's msgid");
        body["touser"] = json!("o_2");
        let other = try_send(c.clone(), url, body).await.expect("other");
        assert_ne!(other["msgid"], a["msgid"]);
        let s = sb.stats();
        assert_eq!((s.accepted, s.client_msg_id_repeats), (2, 1));
        assert_eq!(s.by_errcode.get(&0), Some(&3));
        let stats = get_json(&c, &format!("{base}/sandbox/stats")).await;
        assert_eq!(stats["client_msg_id_repeats"], 1);
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn dropping_the_sandbox_stops_it() {
        let sb = start(Knobs {
            latency: Duration::from_millis(1),
            legacy_retired: true,
            ..Knobs::default()
        })
        .await;
        let base = sb.base_url();
        let c = reqwest::Client::new();
        let u = format!("{base}/cgi-bin/message/wxopen/template/send?access_token=x");
        let (e, _) = post_json(&c, &u, b"{}".to_vec()).await;
        assert_eq!(e["errcode"], 40014, "token is checked before retirement");
        let t = get_json(
            &c,
            &format!("{base}/cgi-bin/token?grant_type=client_credential&appid=wx1&secret={SANDBOX_SECRET}"),
        )
        .await;
        let token = t["access_token"].as_str().expect("token");
        let u = format!("{base}/cgi-bin/message/wxopen/template/send?access_token={token}");
        let (e, _) = post_json(&c, &u, b"{}".to_vec()).await;
        assert_eq!(e["errcode"], 45103);
        assert_eq!(sb.requests().len(), 2);
        drop(sb);
        // The server task winds down after the stop signal; poll with a bound.
        let mut stopped = false;
        for _ in 0..200 {
            if c.get(format!("{base}/sandbox/stats")).send().await.is_err() {
                stopped = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(stopped);
    }
}
