//! The sandbox: an emulator of the WeChat server API on a local socket.
//!
//! This file owns the public API ([`Sandbox`], [`Knobs`], [`Stats`],
//! [`Recorded`]) and the HTTP layer (routing, query/body extraction, response
//! encoding, the ` rid: …` suffix). The behaviour lives in the submodules:
//! `state` (tokens, quotas, counters, record) and `validate` (send bodies).
//! Facts reproduced here come from `shared/wechat-api.md`.

mod state;
mod validate;

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use state::{Credentials, Issued, SendAnswer, State};
use validate::{Endpoint, Reject, check_body};

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
    /// Max accepted sends per "day"; then every send gets 45009
    /// `reach max api daily quota limit` until [`Sandbox::next_day`].
    pub daily_quota: Option<u64>,
    /// A `touser` starting with the prefix is answered that errcode (after the
    /// token and body checks), e.g. `("o_block", 43004)`.
    pub fail_prefixes: Vec<(String, i64)>,
    /// `true`: `/cgi-bin/message/wxopen/template/send` answers 45103, as the
    /// real (retired) API does.
    pub legacy_retired: bool,
    /// Seed of the RNG behind `busy_ratio` (and token strings), for reproducible runs.
    pub seed: u64,
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
            seed: 0,
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
    pub tokens_minted: u64,
    /// All requests to the three send endpoints (wrong-method ones included,
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
}

/// One recorded send request.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// e.g. `/cgi-bin/message/template/send`.
    pub path: String,
    /// The parsed JSON body as received (`Null` if unparsable).
    pub body: Value,
    /// The errcode the sandbox answered.
    pub errcode: i64,
    /// Arrival time, in ms since the sandbox started.
    pub at_ms: u64,
}

/// State shared by all request handlers.
struct Shared {
    state: Mutex<State>,
    latency: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters at worst one request
        // off; keep serving rather than propagate the poison.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running sandbox. Dropping it stops the server (like [`Sandbox::shutdown`]
/// without waiting).
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves on the current tokio
    /// runtime (spawned task).
    pub async fn start(addr: SocketAddr, knobs: Knobs) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            latency: knobs.latency,
            state: Mutex::new(State::new(knobs, Instant::now())),
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

    /// Stops accepting connections and waits (up to 5 s) for open ones.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.task)
            .await
            .is_err()
        {
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
        let v: Value =
            serde_json::from_slice(body).map_err(|_| Reject::format("body is not JSON"))?;
        let Value::Object(mut obj) = v else {
            return Err(Reject::format("body must be a JSON object"));
        };
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

/// A POST to one of the three send endpoints: the pipeline of steps 1–11.
async fn send(AxState(sh): Shr, ep: Endpoint, RawQuery(q): RawQuery, body: Bytes) -> Response {
    // (1) arrival
    let arrival = sh.lock().arrive(Instant::now());
    // (2) latency
    if !sh.latency.is_zero() {
        tokio::time::sleep(sh.latency).await;
    }
    // The body verdict is pure, so work it out before taking the lock; it is
    // only answered at step 7.
    let (value, checked) = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let checked = check_body(ep, &v);
            (v, checked)
        }
        Err(_) => (Value::Null, Err(Reject::format("body is not JSON"))),
    };
    let token = q.as_deref().and_then(|q| query_get(q, "access_token"));
    let answer = {
        let mut st = sh.lock();
        let answer = st.decide_send(ep, token.as_deref(), &checked, Instant::now());
        st.finish_send(arrival, ep.path(), value, answer.errcode());
        answer
    };
    match answer {
        SendAnswer::Ok { msgid } => json_response(&OkBody {
            errcode: 0,
            errmsg: "ok",
            msgid,
        }),
        SendAnswer::Err(r) => error_response(&r),
    }
}

/// A send endpoint called with another method than POST: 43002, counted and
/// recorded like any other send answer.
async fn send_wrong_method(AxState(sh): Shr, ep: Endpoint) -> Response {
    let r = Reject::new(43002, "require POST method");
    {
        let mut st = sh.lock();
        let arrival = st.arrive(Instant::now());
        st.finish_send(arrival, ep.path(), Value::Null, r.code);
    }
    error_response(&r)
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
