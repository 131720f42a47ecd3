//! The sandbox's mutable state and the logic that uses it: access tokens
//! (classic supersession, stable grace, expiry), the send pipeline's stateful
//! checks (busy, rate limit, daily quota, fail prefixes, form_id single use,
//! client_msg_id dedupe), the fault knobs that act after the answer is decided
//! (`reset_ratio`, `hold_from`), counters and the request record.
//!
//! Every function takes `now: Instant` instead of reading the clock, so the
//! logic can be tested with explicit instants.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::Value;
use tokio::time::Instant;

use super::validate::{Endpoint, Reject, SendFields};
use super::{Knobs, Recorded, Stats, Templates};

/// The longest token life the sandbox hands out (a larger `token_ttl` is clamped).
const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 86_400);

/// Every token this sandbox mints starts so: a token of that shape it did not mint was
/// minted by another sandbox (or an earlier start of this one) and is answered 40001, as
/// WeChat answers a token that is no longer the latest; anything else is 40014.
const TOKEN_PREFIX: &str = "sbx_";
/// Hex digits after [`TOKEN_PREFIX`].
const TOKEN_HEX: usize = 48;
/// Where every request to the sandbox comes from: it listens on 127.0.0.1 only.
const CALLER_IP: &str = "127.0.0.1";
/// `stable_token` with `force_refresh`: at most this many a day…
const FORCE_REFRESH_DAILY: u32 = 20;
/// …and at least this far apart; a closer one refreshes nothing (the current token is
/// returned; wechat-api.md §1.2 leaves open whether WeChat answers an errcode instead).
const FORCE_REFRESH_SPACING: Duration = Duration::from_secs(30);
/// `clear_quota` resets per month.
const CLEAR_QUOTA_MONTHLY: u32 = 10;
/// How long a superseded classic token keeps working (capped by the ttl).
const CLASSIC_GRACE: Duration = Duration::from_secs(300);
/// Upper bound of the stable-token renewal window (`min(300 s, ttl/4)`).
const STABLE_GRACE: Duration = Duration::from_secs(300);
/// How long a `(touser, client_msg_id)` pair is remembered.
const CLIENT_MSG_ID_WINDOW: Duration = Duration::from_secs(600);
/// The sliding window of the rate limit and of `max_sends_in_1s`.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// First msgid handed out: 19 digits, above 2^53 like real WeChat msgids.
pub(crate) const FIRST_MSGID: u64 = 3_717_005_636_572_528_642;
/// How many send requests [`State`] keeps in its record.
pub(crate) const MAX_RECORDED: usize = 100_000;

#[derive(Debug, Clone)]
struct Token {
    expires_at: Instant,
    /// From this instant on the token answers 40001 (classic supersession
    /// after its grace, or a stable `force_refresh`).
    dead_from: Option<Instant>,
}

/// A token handed out by either token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
}

/// The credential parameters of a token request, `None` when absent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Credentials<'a> {
    pub(crate) grant_type: Option<&'a str>,
    pub(crate) appid: Option<&'a str>,
    pub(crate) secret: Option<&'a str>,
}

/// A send request's place in the arrival order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    seq: u64,
    at_ms: u64,
}

impl Arrival {
    /// 1-based position among all send requests (equals `send_requests`
    /// right after this request arrived).
    pub(crate) fn ordinal(self) -> u64 {
        self.seq + 1
    }
}

/// What happens to a decided answer on its way back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Fate {
    /// `hold_from` applies: the answer waits until holding is released.
    pub(crate) held: bool,
    /// `reset_ratio` hit: the connection is broken instead of answering.
    pub(crate) lost: bool,
}

/// The answer to a send request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendAnswer {
    /// errcode 0, with a msgid for template and subscribe sends.
    Ok {
        msgid: Option<u64>,
    },
    Err(Reject),
}

impl SendAnswer {
    pub(crate) fn errcode(&self) -> i64 {
        match self {
            SendAnswer::Ok { .. } => 0,
            SendAnswer::Err(r) => r.code,
        }
    }
}

/// The figures of `openapi/quota/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) daily_limit: u64,
    pub(crate) used: u64,
    pub(crate) remain: u64,
    /// Calls per second, when the sandbox limits them.
    pub(crate) rate_limit: Option<u32>,
}

/// All mutable sandbox state; lives behind one mutex.
pub(crate) struct State {
    knobs: Knobs,
    started: Instant,
    busy_rng: SmallRng,
    /// Separate from `busy_rng` so that `reset_ratio` does not shift which
    /// requests are busy for a given seed.
    reset_rng: SmallRng,
    token_rng: SmallRng,
    tokens: HashMap<String, Token>,
    classic_current: Option<String>,
    stable_current: Option<String>,
    /// Stable tokens that may still be live (pruned when expired).
    stable_live: Vec<String>,
    next_msgid: u64,
    next_seq: u64,
    /// Accepted sends today, per endpoint (each has its own daily quota).
    daily_used: HashMap<Endpoint, u64>,
    /// `GET /cgi-bin/token` calls today.
    classic_today: u64,
    /// `POST /cgi-bin/stable_token` calls today.
    stable_today: u64,
    /// `force_refresh` calls today, and when the last one refreshed.
    forced_today: u32,
    last_forced: Option<Instant>,
    /// `clear_quota` calls "this month" (the sandbox never starts a new month).
    clears: u32,
    /// Arrival instants of send requests in the last second (for stats).
    arrivals: VecDeque<Instant>,
    /// Instants of send requests that passed the rate limit in the last second.
    admitted: VecDeque<Instant>,
    /// Hashes of used form_ids.
    used_form_ids: HashSet<u64>,
    /// Hash of (touser, client_msg_id) -> (accepted at, msgid).
    client_msg_ids: HashMap<u64, (Instant, u64)>,
    client_msg_id_order: VecDeque<(Instant, u64)>,
    /// Hashes of (endpoint, touser, template_id) already accepted.
    delivered: HashSet<u64>,
    records: VecDeque<(u64, Recorded)>,
    stats: Stats,
}

fn hash_of(v: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// Whole seconds in `d`, rounded up, at least 1.
fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// The errmsg of an errcode injected through `fail_prefixes`.
fn fail_prefix_msg(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        40003 => "invalid openid",
        40013 => "invalid appid",
        40037 => "invalid template_id",
        43004 => "require subscribe",
        43019 => "require remove blacklist",
        43101 => "user refuse to accept the msg",
        43117 => "Sending messages to this openid too frequently, please try later",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit, must slower, retry next minute",
        47003 => "argument invalid!",
        50002 => "user limited",
        _ => "sandbox injected failure",
    }
}

impl State {
    pub(crate) fn new(knobs: Knobs, started: Instant) -> State {
        // Faults are reproducible without a seed too (seed 0); tokens are not, so that each
        // start's tokens are its own.
        let seed = knobs.seed.unwrap_or(0);
        let token_seed = knobs.seed.unwrap_or_else(rand::random) ^ 0x9E37_79B9_7F4A_7C15;
        State {
            knobs,
            started,
            busy_rng: SmallRng::seed_from_u64(seed),
            reset_rng: SmallRng::seed_from_u64(seed ^ 0xD1B5_4A32_D192_ED03),
            token_rng: SmallRng::seed_from_u64(token_seed),
            tokens: HashMap::new(),
            classic_current: None,
            stable_current: None,
            stable_live: Vec::new(),
            next_msgid: FIRST_MSGID,
            next_seq: 0,
            daily_used: HashMap::new(),
            classic_today: 0,
            stable_today: 0,
            forced_today: 0,
            last_forced: None,
            clears: 0,
            arrivals: VecDeque::new(),
            admitted: VecDeque::new(),
            used_form_ids: HashSet::new(),
            client_msg_ids: HashMap::new(),
            client_msg_id_order: VecDeque::new(),
            delivered: HashSet::new(),
            records: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// The recorded send requests in arrival order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        let mut v: Vec<&(u64, Recorded)> = self.records.iter().collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// How many followers the account has.
    pub(crate) fn followers(&self) -> u64 {
        self.knobs.followers
    }

    /// The templates the two list endpoints serve.
    pub(crate) fn templates(&self) -> &Templates {
        &self.knobs.templates
    }

    /// A new day: every daily counter starts again.
    pub(crate) fn next_day(&mut self) {
        self.daily_used.clear();
        self.classic_today = 0;
        self.stable_today = 0;
        self.forced_today = 0;
    }

    /// The daily quota of a send endpoint: the `daily_quota` knob, or WeChat's default.
    fn daily_limit(&self, endpoint: Endpoint) -> u64 {
        self.knobs.daily_quota.unwrap_or(match endpoint {
            Endpoint::Template => 100_000,
            Endpoint::Wxopen => 1_000_000,
            Endpoint::Subscribe | Endpoint::Bizsend => 10_000_000,
        })
    }

    /// Ends the faults that answer for the account or the recipient (busy, per-openid
    /// failures): WeChat recovered.
    pub(crate) fn heal(&mut self) {
        self.knobs.busy_ratio = 0.0;
        self.knobs.fail_prefixes.clear();
    }

    pub(crate) fn set_busy(&mut self, ratio: f64) {
        self.knobs.busy_ratio = ratio;
    }

    /// The token lifetime, at most a year, so that `now + ttl` cannot overflow.
    fn token_ttl(&self) -> Duration {
        self.knobs.token_ttl.min(MAX_TOKEN_TTL)
    }

    // ---------------------------------------------------------------- tokens

    /// The `appid` knob, or any appid starting with `wx` when it is not set.
    fn is_our_appid(&self, appid: &str) -> bool {
        match &self.knobs.appid {
            Some(a) => a == appid,
            None => appid.starts_with("wx"),
        }
    }

    /// Checks the credentials shared by both token endpoints.
    fn check_credentials(&self, c: Credentials<'_>) -> Result<(), Reject> {
        let appid = c.appid.filter(|s| !s.is_empty());
        let secret = c.secret.filter(|s| !s.is_empty());
        let Some(appid) = appid else {
            return Err(Reject::new(41002, "appid missing"));
        };
        let Some(secret) = secret else {
            return Err(Reject::new(41004, "appsecret missing"));
        };
        if c.grant_type != Some("client_credential") {
            return Err(Reject::new(40002, "invalid grant_type"));
        }
        if !self.is_our_appid(appid) {
            return Err(Reject::new(40013, "invalid appid"));
        }
        // WeChat checks the caller's IP before the secret.
        if let Some(list) = &self.knobs.ip_whitelist
            && !list.iter().any(|ip| ip == CALLER_IP)
        {
            return Err(Reject::new(
                40164,
                format!("invalid ip {CALLER_IP} ipv6 ::ffff:{CALLER_IP}, not in whitelist"),
            ));
        }
        if secret != self.knobs.secret {
            return Err(Reject::new(40125, "invalid appsecret"));
        }
        Ok(())
    }

    fn mint(&mut self, now: Instant) -> String {
        let token = loop {
            let mut s = String::with_capacity(TOKEN_PREFIX.len() + TOKEN_HEX);
            s.push_str(TOKEN_PREFIX);
            for _ in 0..TOKEN_HEX / 16 {
                s.push_str(&format!("{:016x}", self.token_rng.next_u64()));
            }
            if !self.tokens.contains_key(&s) {
                break s;
            }
        };
        self.tokens.insert(
            token.clone(),
            Token {
                expires_at: now + self.token_ttl(),
                dead_from: None,
            },
        );
        self.stats.tokens_minted += 1;
        token
    }

    /// `GET /cgi-bin/token`: always mints; the previous classic token dies
    /// `min(300 s, ttl)` later.
    pub(crate) fn classic_token(
        &mut self,
        c: Credentials<'_>,
        now: Instant,
    ) -> Result<Issued, Reject> {
        self.stats.token_calls += 1;
        self.check_credentials(c)?;
        if self.classic_today >= self.knobs.token_daily_limit {
            return Err(Reject::new(
                45009,
                "reach max api daily quota limit, could get access_token by getStableAccessToken",
            ));
        }
        self.classic_today += 1;
        let grace = CLASSIC_GRACE.min(self.token_ttl());
        if let Some(prev) = self.classic_current.take()
            && let Some(t) = self.tokens.get_mut(&prev)
        {
            t.dead_from = Some(now + grace);
        }
        let token = self.mint(now);
        self.classic_current = Some(token.clone());
        Ok(Issued {
            access_token: token,
            expires_in: ceil_secs(self.token_ttl()),
        })
    }

    /// `POST /cgi-bin/stable_token`.
    pub(crate) fn stable_token(
        &mut self,
        c: Credentials<'_>,
        force_refresh: bool,
        now: Instant,
    ) -> Result<Issued, Reject> {
        self.stats.force_refresh_calls += u64::from(force_refresh);
        self.check_credentials(c)?;
        // Like `classic_today`: calls that got past the credentials.
        self.stable_today += 1;
        let tokens = &self.tokens;
        self.stable_live
            .retain(|t| tokens.get(t).is_some_and(|t| now < t.expires_at));
        let spaced = self
            .last_forced
            .is_none_or(|at| now.duration_since(at) >= FORCE_REFRESH_SPACING);
        if force_refresh && self.forced_today >= FORCE_REFRESH_DAILY {
            return Err(Reject::daily_quota());
        }
        if force_refresh && spaced {
            self.forced_today += 1;
            self.last_forced = Some(now);
            for t in self.stable_live.drain(..) {
                if let Some(tok) = self.tokens.get_mut(&t) {
                    tok.dead_from = Some(now);
                }
            }
            self.stable_current = None;
        }
        let grace = STABLE_GRACE.min(self.token_ttl() / 4);
        if let Some(cur) = &self.stable_current
            && let Some(t) = self.tokens.get(cur)
            && t.dead_from.is_none()
            && now < t.expires_at
        {
            let remaining = t.expires_at - now;
            if remaining > grace {
                return Ok(Issued {
                    access_token: cur.clone(),
                    expires_in: ceil_secs(remaining),
                });
            }
        }
        let token = self.mint(now);
        self.stable_current = Some(token.clone());
        self.stable_live.push(token.clone());
        Ok(Issued {
            access_token: token,
            expires_in: ceil_secs(self.token_ttl()),
        })
    }

    /// Counts a `POST /cgi-bin/stable_token` call (also those with a bad body).
    pub(crate) fn count_stable_call(&mut self) {
        self.stats.stable_token_calls += 1;
    }

    /// Step 3 of the send pipeline: is `token` usable at `now`?
    pub(crate) fn check_token(&self, token: Option<&str>, now: Instant) -> Result<(), Reject> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(Reject::new(41001, "access_token missing"));
        };
        let Some(t) = self.tokens.get(token) else {
            let minted_elsewhere = token.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
                hex.len() == TOKEN_HEX && hex.bytes().all(|b| b.is_ascii_hexdigit())
            });
            return Err(if minted_elsewhere {
                Reject::not_latest()
            } else {
                Reject::new(40014, "invalid access_token")
            });
        };
        if t.dead_from.is_some_and(|d| now >= d) {
            return Err(Reject::not_latest());
        }
        if now >= t.expires_at {
            return Err(Reject::new(42001, "access_token expired"));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ sends

    /// Step 1: notes a send request's arrival (stats and arrival order).
    pub(crate) fn arrive(&mut self, now: Instant) -> Arrival {
        self.stats.send_requests += 1;
        while self
            .arrivals
            .front()
            .is_some_and(|&t| now.duration_since(t) >= RATE_WINDOW)
        {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        self.stats.max_sends_in_1s = self.stats.max_sends_in_1s.max(self.arrivals.len() as u64);
        let seq = self.next_seq;
        self.next_seq += 1;
        let at_ms = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        Arrival { seq, at_ms }
    }

    /// Step 5: sliding-window rate limit over requests that passed it.
    fn rate_ok(&mut self, now: Instant) -> bool {
        let Some(limit) = self.knobs.rate_limit else {
            return true;
        };
        while self
            .admitted
            .front()
            .is_some_and(|&t| now.duration_since(t) >= RATE_WINDOW)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() >= limit as usize {
            return false;
        }
        self.admitted.push_back(now);
        true
    }

    /// Steps 3–11 of the send pipeline. `checked` is the pure verdict on the
    /// body from [`super::validate::check_body`].
    pub(crate) fn decide_send(
        &mut self,
        endpoint: Endpoint,
        token: Option<&str>,
        checked: &Result<SendFields, Reject>,
        now: Instant,
    ) -> SendAnswer {
        match self.decide_inner(endpoint, token, checked, now) {
            Ok(a) => a,
            Err(r) => SendAnswer::Err(r),
        }
    }

    fn decide_inner(
        &mut self,
        endpoint: Endpoint,
        token: Option<&str>,
        checked: &Result<SendFields, Reject>,
        now: Instant,
    ) -> Result<SendAnswer, Reject> {
        // (3) token
        self.check_token(token, now)?;
        // (4) busy
        if self.knobs.busy_ratio > 0.0 {
            let p = self.knobs.busy_ratio.clamp(0.0, 1.0);
            if self.busy_rng.random_bool(p) {
                return Err(Reject::new(-1, "system error"));
            }
        }
        // (5) rate limit
        if !self.rate_ok(now) {
            return Err(Reject::new(45009, "api freq out of limit"));
        }
        // (6) retired API
        if endpoint == Endpoint::Wxopen && self.knobs.legacy_retired {
            return Err(Reject::new(45103, "This API has been unsupported"));
        }
        // (7) body format
        let fields = checked.as_ref().map_err(Clone::clone)?;
        // (8) daily quota
        if self.used_today(endpoint) >= self.daily_limit(endpoint) {
            return Err(Reject::daily_quota());
        }
        // (9) recipient and template
        let Some(touser) = fields.touser.as_deref() else {
            return Err(Reject::new(40003, "invalid openid"));
        };
        let template_id = match fields.template_id.as_deref() {
            Some(t) if !t.starts_with("invalid") => t,
            _ => return Err(Reject::new(40037, "invalid template_id")),
        };
        // (10) injected recipient failures
        if let Some((_, code)) = self
            .knobs
            .fail_prefixes
            .iter()
            .find(|(p, _)| touser.starts_with(p.as_str()))
        {
            return Err(Reject::new(*code, fail_prefix_msg(*code)));
        }
        // (11) endpoint rules
        if let Some(e) = &fields.endpoint_error {
            return Err(e.clone());
        }
        let mut cmid_key = None;
        match endpoint {
            Endpoint::Template => {
                if let Some(cmid) = fields.client_msg_id.as_deref() {
                    let key = hash_of((touser, cmid));
                    self.prune_client_msg_ids(now);
                    if let Some(&(at, msgid)) = self.client_msg_ids.get(&key)
                        && now.duration_since(at) < CLIENT_MSG_ID_WINDOW
                    {
                        self.stats.client_msg_id_repeats += 1;
                        return Ok(SendAnswer::Ok { msgid: Some(msgid) });
                    }
                    cmid_key = Some(key);
                }
            }
            Endpoint::Wxopen => {
                // check_body sets endpoint_error when form_id is missing.
                let form_id = fields.form_id.as_deref().unwrap_or("");
                if !self.used_form_ids.insert(hash_of(form_id)) {
                    return Err(Reject::new(41029, "form id used count reach limit"));
                }
            }
            Endpoint::Subscribe | Endpoint::Bizsend => {}
        }
        // success
        self.stats.accepted += 1;
        *self.daily_used.entry(endpoint).or_insert(0) += 1;
        if !self
            .delivered
            .insert(hash_of((endpoint, touser, template_id)))
        {
            self.stats.duplicate_deliveries += 1;
        }
        let msgid = match endpoint {
            Endpoint::Wxopen => None,
            Endpoint::Template | Endpoint::Subscribe | Endpoint::Bizsend => {
                let id = self.next_msgid;
                self.next_msgid += 1;
                Some(id)
            }
        };
        if let (Some(key), Some(id)) = (cmid_key, msgid) {
            self.client_msg_ids.insert(key, (now, id));
            self.client_msg_id_order.push_back((now, key));
        }
        Ok(SendAnswer::Ok { msgid })
    }

    /// Accepted sends of `endpoint` today.
    fn used_today(&self, endpoint: Endpoint) -> u64 {
        self.daily_used.get(&endpoint).copied().unwrap_or(0)
    }

    /// `POST /cgi-bin/openapi/quota/get` for `cgi_path` (wechat-api.md §6): the same
    /// counters that answer 45009, so a client's preflight and its run agree.
    pub(crate) fn quota(&self, cgi_path: &str) -> Result<Quota, Reject> {
        if !self.knobs.quota_api {
            return Err(Reject::new(48001, "api unauthorized"));
        }
        let (daily_limit, used) = if cgi_path == "/cgi-bin/token" {
            (self.knobs.token_daily_limit, self.classic_today)
        } else if let Some(ep) = Endpoint::ALL.into_iter().find(|e| e.path() == cgi_path) {
            (self.daily_limit(ep), self.used_today(ep))
        } else if cgi_path == "/cgi-bin/stable_token" {
            (500_000, self.stable_today)
        } else {
            return Err(Reject::new(76021, "cgi_path not found, please check"));
        };
        Ok(Quota {
            daily_limit,
            used,
            remain: daily_limit.saturating_sub(used),
            rate_limit: self.knobs.rate_limit,
        })
    }

    /// `POST /cgi-bin/clear_quota`: every daily counter starts again, 10 times a month.
    pub(crate) fn clear_quota(&mut self, appid: Option<&str>) -> Result<(), Reject> {
        let Some(appid) = appid.filter(|a| !a.is_empty()) else {
            return Err(Reject::new(41002, "appid missing"));
        };
        if !self.is_our_appid(appid) {
            return Err(Reject::new(40013, "invalid appid"));
        }
        if self.clears >= CLEAR_QUOTA_MONTHLY {
            return Err(Reject::new(
                48006,
                "forbid to clear quota because of reaching the limit",
            ));
        }
        self.clears += 1;
        self.next_day();
        Ok(())
    }

    fn prune_client_msg_ids(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.client_msg_id_order.front() {
            if now.duration_since(at) < CLIENT_MSG_ID_WINDOW {
                break;
            }
            self.client_msg_id_order.pop_front();
            if self.client_msg_ids.get(&key).is_some_and(|&(t, _)| t == at) {
                self.client_msg_ids.remove(&key);
            }
        }
    }

    /// After [`State::finish_send`]: decides whether the answer is held
    /// (`hold_from`, unless `released`) and whether it is lost (`reset_ratio`,
    /// rolled only for errcode 0 answers), and counts both.
    pub(crate) fn fate(&mut self, arrival: Arrival, errcode: i64, released: bool) -> Fate {
        let held = !released && self.knobs.hold_from.is_some_and(|n| arrival.ordinal() >= n);
        let ratio = self.knobs.reset_ratio;
        // `ratio > 0.0` is false for NaN too.
        let lost = errcode == 0 && ratio > 0.0 && self.reset_rng.random_bool(ratio.min(1.0));
        self.stats.held += u64::from(held);
        self.stats.resets += u64::from(lost);
        Fate { held, lost }
    }

    /// Counts the answer of a send request and records it.
    pub(crate) fn finish_send(
        &mut self,
        arrival: Arrival,
        path: &str,
        body: Value,
        ignored: Vec<String>,
        errcode: i64,
    ) {
        *self.stats.by_errcode.entry(errcode).or_insert(0) += 1;
        if self.records.len() >= MAX_RECORDED {
            self.records.pop_front();
        }
        self.records.push_back((
            arrival.seq,
            Recorded {
                path: path.to_owned(),
                body,
                ignored,
                errcode,
                at_ms: arrival.at_ms,
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::validate::{Mode, check_body};
    use serde_json::json;

    const CREDS: Credentials<'static> = Credentials {
        grant_type: Some("client_credential"),
        appid: Some("wx123"),
        secret: Some(crate::sandbox::SANDBOX_SECRET),
    };

    fn state(knobs: Knobs) -> (State, Instant) {
        let t0 = Instant::now();
        (State::new(knobs, t0), t0)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn code(r: Result<impl std::fmt::Debug, Reject>) -> i64 {
        r.map(|_| 0).unwrap_or_else(|e| e.code)
    }

    /// Runs the whole send pipeline for `body` and returns the answer.
    fn send(st: &mut State, ep: Endpoint, token: &str, body: Value, now: Instant) -> SendAnswer {
        let arrival = st.arrive(now);
        let checked = check_body(ep, &body, Mode::Strict);
        let a = st.decide_send(ep, Some(token), &checked, now);
        st.finish_send(arrival, ep.path(), body, Vec::new(), a.errcode());
        a
    }

    fn tpl(touser: &str) -> Value {
        json!({"touser": touser, "template_id": "tpl", "data": {"k1": {"value": "v"}}})
    }

    #[test]
    fn credential_errors() {
        let (mut st, t0) = state(Knobs::default());
        let with = |f: &dyn Fn(&mut Credentials<'static>)| {
            let mut c = CREDS;
            f(&mut c);
            c
        };
        assert_eq!(code(st.classic_token(with(&|c| c.appid = None), t0)), 41002);
        assert_eq!(
            code(st.classic_token(with(&|c| c.secret = Some("")), t0)),
            41004
        );
        assert_eq!(
            code(st.classic_token(with(&|c| c.grant_type = Some("x")), t0)),
            40002
        );
        assert_eq!(
            code(st.classic_token(with(&|c| c.appid = Some("ab")), t0)),
            40013
        );
        assert_eq!(
            code(st.classic_token(with(&|c| c.secret = Some("no")), t0)),
            40125
        );
        assert_eq!(code(st.classic_token(CREDS, t0)), 0);
        assert_eq!(st.stats().token_calls, 6);
        assert_eq!(st.stats().tokens_minted, 1);

        let (mut st, t0) = state(Knobs {
            appid: Some("wxfixed".into()),
            ..Knobs::default()
        });
        assert_eq!(code(st.stable_token(CREDS, false, t0)), 40013);
        let c = Credentials {
            appid: Some("wxfixed"),
            ..CREDS
        };
        assert_eq!(code(st.stable_token(c, false, t0)), 0);
    }

    #[test]
    fn classic_supersession_grace_and_expiry() {
        let (mut st, t0) = state(Knobs::default());
        let a = st.classic_token(CREDS, t0).expect("token");
        assert_eq!(a.expires_in, 7200);
        assert!(a.access_token.len() >= 40);
        assert_eq!(st.check_token(Some(&a.access_token), t0), Ok(()));
        let b = st.classic_token(CREDS, t0 + secs(10)).expect("token");
        assert_ne!(a.access_token, b.access_token);
        // the old one works for 300 s after the new one was minted
        assert_eq!(
            st.check_token(Some(&a.access_token), t0 + secs(309)),
            Ok(())
        );
        assert_eq!(
            code(st.check_token(Some(&a.access_token), t0 + secs(310))),
            40001
        );
        assert_eq!(
            st.check_token(Some(&b.access_token), t0 + secs(310)),
            Ok(())
        );
        // expiry
        assert_eq!(
            st.check_token(Some(&b.access_token), t0 + secs(7209)),
            Ok(())
        );
        assert_eq!(
            code(st.check_token(Some(&b.access_token), t0 + secs(7210))),
            42001
        );
        assert_eq!(code(st.check_token(Some("sbx_nope"), t0)), 40014);
        assert_eq!(code(st.check_token(None, t0)), 41001);
        assert_eq!(code(st.check_token(Some(""), t0)), 41001);
    }

    #[test]
    fn classic_grace_capped_by_short_ttl() {
        let (mut st, t0) = state(Knobs {
            token_ttl: secs(60),
            ..Knobs::default()
        });
        let a = st.classic_token(CREDS, t0).expect("token");
        assert_eq!(a.expires_in, 60);
        st.classic_token(CREDS, t0 + secs(1)).expect("token");
        assert_eq!(st.check_token(Some(&a.access_token), t0 + secs(59)), Ok(()));
        // grace would end at 61 s, but the token itself expired at 60 s;
        // supersession is reported first once both apply.
        assert_eq!(
            code(st.check_token(Some(&a.access_token), t0 + secs(60))),
            42001
        );
        assert_eq!(
            code(st.check_token(Some(&a.access_token), t0 + secs(61))),
            40001
        );
    }

    #[test]
    fn stable_token_reuse_grace_and_force() {
        let (mut st, t0) = state(Knobs::default());
        let a = st.stable_token(CREDS, false, t0).expect("token");
        assert_eq!(a.expires_in, 7200);
        let a2 = st
            .stable_token(CREDS, false, t0 + Duration::from_millis(1500))
            .expect("token");
        assert_eq!(a2.access_token, a.access_token);
        assert_eq!(a2.expires_in, 7199, "remaining 7198.5 s rounds up");
        // classic calls do not touch the stable token
        st.classic_token(CREDS, t0 + secs(2)).expect("token");
        st.classic_token(CREDS, t0 + secs(3)).expect("token");
        // 300 s + 1 left: same token
        let a3 = st
            .stable_token(CREDS, false, t0 + secs(6899))
            .expect("token");
        assert_eq!(a3.access_token, a.access_token);
        assert_eq!(a3.expires_in, 301);
        // exactly 300 s left: a new one, the old one still works until expiry
        let b = st
            .stable_token(CREDS, false, t0 + secs(6900))
            .expect("token");
        assert_ne!(b.access_token, a.access_token);
        assert_eq!(b.expires_in, 7200);
        assert_eq!(
            st.check_token(Some(&a.access_token), t0 + secs(7199)),
            Ok(())
        );
        assert_eq!(
            code(st.check_token(Some(&a.access_token), t0 + secs(7200))),
            42001
        );
        let b2 = st
            .stable_token(CREDS, false, t0 + secs(6901))
            .expect("token");
        assert_eq!(b2.access_token, b.access_token);
        // force refresh kills the previous one at once
        let c = st
            .stable_token(CREDS, true, t0 + secs(7000))
            .expect("token");
        assert_ne!(c.access_token, b.access_token);
        assert_eq!(
            code(st.check_token(Some(&b.access_token), t0 + secs(7000))),
            40001
        );
        assert_eq!(
            st.check_token(Some(&c.access_token), t0 + secs(7000)),
            Ok(())
        );
        // after expiry, normal mode mints a new one
        let d = st
            .stable_token(CREDS, false, t0 + secs(7000 + 7200))
            .expect("token");
        assert_ne!(d.access_token, c.access_token);
        assert_eq!(st.stats().tokens_minted, 6);
    }

    /// Issue 12 §3: a token another sandbox minted (or this one before a restart) is 40001,
    /// like WeChat's "not latest"; unseeded starts mint different tokens.
    #[test]
    fn tokens_are_this_instance_s() {
        let (mut a, t0) = state(Knobs::default());
        let (mut b, _) = state(Knobs::default());
        let ta = a.stable_token(CREDS, false, t0).unwrap().access_token;
        let tb = b.stable_token(CREDS, false, t0).unwrap().access_token;
        assert_ne!(ta, tb, "unseeded starts mint their own tokens");
        assert_eq!(code(a.check_token(Some(&tb), t0)), 40001);
        assert_eq!(code(a.check_token(Some("not-a-token"), t0)), 40014);
        let (mut c, _) = state(Knobs {
            seed: Some(9),
            ..Knobs::default()
        });
        let (mut d, _) = state(Knobs {
            seed: Some(9),
            ..Knobs::default()
        });
        let tc = c.stable_token(CREDS, false, t0).unwrap().access_token;
        assert_eq!(tc, d.stable_token(CREDS, false, t0).unwrap().access_token);
    }

    /// `/cgi-bin/token` has a daily limit (45009), `force_refresh` 20 a day, 30 s apart.
    #[test]
    fn token_endpoint_limits() {
        let (mut st, t0) = state(Knobs {
            token_daily_limit: 3,
            ..Knobs::default()
        });
        for i in 0..3 {
            st.classic_token(CREDS, t0 + secs(i))
                .expect("within the limit");
        }
        let over = st.classic_token(CREDS, t0 + secs(4)).unwrap_err();
        assert_eq!(over.code, 45009);
        assert!(over.msg.starts_with("reach max api daily quota limit"));
        assert_eq!(st.quota("/cgi-bin/token").unwrap().remain, 0);
        st.next_day();
        st.classic_token(CREDS, t0 + secs(5)).expect("a new day");

        let first = st.stable_token(CREDS, true, t0).unwrap().access_token;
        // 10 s later: too soon, nothing is refreshed and the token stays valid.
        let soon = st.stable_token(CREDS, true, t0 + secs(10)).unwrap();
        assert_eq!(soon.access_token, first);
        assert_eq!(st.check_token(Some(&first), t0 + secs(10)), Ok(()));
        let mut at = t0;
        let mut last = first;
        for _ in 1..20 {
            at += secs(30);
            let t = st.stable_token(CREDS, true, at).unwrap().access_token;
            assert_ne!(t, last);
            last = t;
        }
        let capped = st.stable_token(CREDS, true, at + secs(30)).unwrap_err();
        assert_eq!(capped.code, 45009);
        assert_eq!(st.check_token(Some(&last), at + secs(30)), Ok(()));
        // Normal mode still works past the force cap.
        let normal = st.stable_token(CREDS, false, at + secs(31)).unwrap();
        assert_eq!(normal.access_token, last);
    }

    /// `quota/get` reads the counters that answer 45009; `clear_quota` resets them, 10 a month.
    #[test]
    fn quota_get_and_clear_quota() {
        let (mut st, t0) = state(Knobs {
            daily_quota: Some(2),
            ..Knobs::default()
        });
        let tok = st.classic_token(CREDS, t0).unwrap().access_token;
        let path = Endpoint::Template.path();
        assert_eq!(st.quota(path).unwrap().remain, 2);
        send(&mut st, Endpoint::Template, &tok, tpl("o_1"), t0);
        let q = st.quota(path).unwrap();
        assert_eq!((q.daily_limit, q.used, q.remain), (2, 1, 1));
        // Each endpoint has its own quota.
        assert_eq!(st.quota(Endpoint::Bizsend.path()).unwrap().used, 0);
        assert_eq!(st.quota("/cgi-bin/nope").unwrap_err().code, 76021);
        assert_eq!(st.quota("cgi-bin/token").unwrap_err().code, 76021);
        send(&mut st, Endpoint::Template, &tok, tpl("o_2"), t0);
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, tpl("o_3"), t0).errcode(),
            45009
        );
        assert_eq!(st.clear_quota(Some("xx")).unwrap_err().code, 40013);
        assert_eq!(st.clear_quota(None).unwrap_err().code, 41002);
        st.clear_quota(Some("wx0123456789abcdef")).unwrap();
        assert_eq!(st.quota(path).unwrap().remain, 2);
        for _ in 1..10 {
            st.clear_quota(Some("wx0123456789abcdef")).unwrap();
        }
        assert_eq!(
            st.clear_quota(Some("wx0123456789abcdef")).unwrap_err().code,
            48006
        );
    }

    #[test]
    fn stable_grace_is_quarter_of_short_ttl() {
        let (mut st, t0) = state(Knobs {
            token_ttl: secs(8),
            ..Knobs::default()
        });
        let a = st.stable_token(CREDS, false, t0).expect("token");
        let a2 = st
            .stable_token(CREDS, false, t0 + Duration::from_millis(5999))
            .expect("token");
        assert_eq!(a2.access_token, a.access_token);
        assert_eq!(a2.expires_in, 3);
        let b = st.stable_token(CREDS, false, t0 + secs(6)).expect("token");
        assert_ne!(b.access_token, a.access_token);
    }

    #[test]
    fn template_send_msgid_and_client_msg_id_dedupe() {
        let (mut st, t0) = state(Knobs::default());
        let tok = st
            .stable_token(CREDS, false, t0)
            .expect("token")
            .access_token;
        let mut body = tpl("o_a");
        body["client_msg_id"] = json!("row-1");
        let first = send(&mut st, Endpoint::Template, &tok, body.clone(), t0);
        assert_eq!(
            first,
            SendAnswer::Ok {
                msgid: Some(FIRST_MSGID)
            }
        );
        let again = send(
            &mut st,
            Endpoint::Template,
            &tok,
            body.clone(),
            t0 + secs(599),
        );
        assert_eq!(again, first);
        let s = st.stats();
        assert_eq!((s.accepted, s.duplicate_deliveries), (1, 0));
        assert_eq!(s.client_msg_id_repeats, 1);
        assert_eq!(s.by_errcode.get(&0), Some(&2));
        // after 10 minutes it is a new message, and a duplicate delivery
        let later = send(
            &mut st,
            Endpoint::Template,
            &tok,
            body.clone(),
            t0 + secs(600),
        );
        assert_eq!(
            later,
            SendAnswer::Ok {
                msgid: Some(FIRST_MSGID + 1)
            }
        );
        // same client_msg_id for another user is independent
        let mut other = body.clone();
        other["touser"] = json!("o_b");
        let o = send(&mut st, Endpoint::Template, &tok, other, t0 + secs(601));
        assert_eq!(
            o,
            SendAnswer::Ok {
                msgid: Some(FIRST_MSGID + 2)
            }
        );
        let s = st.stats();
        assert_eq!((s.accepted, s.duplicate_deliveries), (3, 1));
        assert_eq!(
            s.client_msg_id_repeats, 1,
            "the 10-minute-later resend is new"
        );
        // without client_msg_id, a resend is a duplicate delivery
        let x = send(
            &mut st,
            Endpoint::Template,
            &tok,
            tpl("o_b"),
            t0 + secs(602),
        );
        assert_eq!(
            x,
            SendAnswer::Ok {
                msgid: Some(FIRST_MSGID + 3)
            }
        );
        assert_eq!(st.stats().duplicate_deliveries, 2);
        assert_eq!(st.requests().len(), 5);
    }

    #[test]
    fn form_id_single_use() {
        let (mut st, t0) = state(Knobs::default());
        let tok = st.classic_token(CREDS, t0).expect("token").access_token;
        let body = |f: &str| json!({"touser": "o1", "template_id": "t", "form_id": f});
        let ok = send(&mut st, Endpoint::Wxopen, &tok, body("f1"), t0);
        assert_eq!(ok, SendAnswer::Ok { msgid: None });
        let used = send(&mut st, Endpoint::Wxopen, &tok, body("f1"), t0);
        assert_eq!(used.errcode(), 41029);
        assert_eq!(
            send(&mut st, Endpoint::Wxopen, &tok, body("expired1"), t0).errcode(),
            41028
        );
        assert_eq!(
            send(&mut st, Endpoint::Wxopen, &tok, body("f2"), t0).errcode(),
            0
        );
        let s = st.stats();
        assert_eq!(s.accepted, 2);
        assert_eq!(s.duplicate_deliveries, 1);
        assert_eq!(s.by_errcode.get(&41029), Some(&1));
    }

    #[test]
    fn legacy_retired() {
        let (mut st, t0) = state(Knobs {
            legacy_retired: true,
            ..Knobs::default()
        });
        let tok = st.classic_token(CREDS, t0).expect("token").access_token;
        let body = json!({"bogus": 1});
        assert_eq!(
            send(&mut st, Endpoint::Wxopen, &tok, body, t0).errcode(),
            45103
        );
    }

    #[test]
    fn daily_quota_and_next_day() {
        let (mut st, t0) = state(Knobs {
            daily_quota: Some(2),
            fail_prefixes: vec![("o_block".into(), 43004)],
            ..Knobs::default()
        });
        let tok = st.classic_token(CREDS, t0).expect("token").access_token;
        // failures do not consume quota
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, tpl("o_block1"), t0).errcode(),
            43004
        );
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, tpl("o_1"), t0).errcode(),
            0
        );
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, tpl("o_2"), t0).errcode(),
            0
        );
        let over = send(&mut st, Endpoint::Template, &tok, tpl("o_3"), t0);
        assert_eq!(
            over,
            SendAnswer::Err(Reject::new(45009, "reach max api daily quota limit"))
        );
        // quota is checked before recipient checks
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, tpl("o_block1"), t0).errcode(),
            45009
        );
        st.next_day();
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, tpl("o_3"), t0).errcode(),
            0
        );
        let s = st.stats();
        assert_eq!(s.accepted, 3);
        assert_eq!(s.send_requests, 6);
        assert_eq!(s.by_errcode.get(&45009), Some(&2));
    }

    #[test]
    fn check_order() {
        let (mut st, t0) = state(Knobs {
            fail_prefixes: vec![("o_block".into(), 43004)],
            ..Knobs::default()
        });
        let tok = st.classic_token(CREDS, t0).expect("token").access_token;
        // token before body
        assert_eq!(
            send(&mut st, Endpoint::Template, "bad", json!(1), t0).errcode(),
            40014
        );
        // body format before touser
        let b = json!({"touser": "", "template_id": "t", "data": {}, "x": 1});
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, b, t0).errcode(),
            47001
        );
        let b = json!({"touser": "", "template_id": "invalid", "data": {}});
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, b, t0).errcode(),
            40003
        );
        let b = json!({"touser": "o_block", "template_id": "invalid_x", "data": {}});
        assert_eq!(
            send(&mut st, Endpoint::Template, &tok, b, t0).errcode(),
            40037
        );
        // fail prefix before subscribe data rules
        let b = json!({"touser": "o_block", "template_id": "t", "data": {"thing1": {"value": ""}}});
        assert_eq!(
            send(&mut st, Endpoint::Subscribe, &tok, b, t0).errcode(),
            43004
        );
        let b = json!({"touser": "o_ok", "template_id": "t", "data": {"thing1": {"value": ""}}});
        assert_eq!(
            send(&mut st, Endpoint::Subscribe, &tok, b, t0).errcode(),
            47003
        );
        let b = json!({"touser": "o_ok", "template_id": "t", "data": {"thing1": {"value": "x"}}});
        assert_eq!(
            send(&mut st, Endpoint::Subscribe, &tok, b, t0),
            SendAnswer::Ok {
                msgid: Some(FIRST_MSGID)
            }
        );
        let recs = st.requests();
        assert_eq!(recs.len(), 7);
        assert_eq!(recs[0].body, json!(1));
        assert_eq!(recs[0].errcode, 40014);
    }

    #[test]
    fn busy_ratio_is_seeded() {
        let run = |seed| {
            let (mut st, t0) = state(Knobs {
                busy_ratio: 0.5,
                seed: Some(seed),
                ..Knobs::default()
            });
            let tok = st.classic_token(CREDS, t0).expect("token").access_token;
            (0..64)
                .map(|i| {
                    send(&mut st, Endpoint::Template, &tok, tpl(&format!("o{i}")), t0).errcode()
                })
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let busy = a.iter().filter(|&&c| c == -1).count();
        assert!(busy > 10 && busy < 54, "{busy}");
        assert!(a.iter().all(|&c| c == 0 || c == -1));
    }

    /// Runs the send pipeline like the HTTP handler, fate included.
    fn send_with_fate(
        st: &mut State,
        token: &str,
        body: Value,
        released: bool,
        now: Instant,
    ) -> (SendAnswer, Fate) {
        let arrival = st.arrive(now);
        let checked = check_body(Endpoint::Template, &body, Mode::Strict);
        let a = st.decide_send(Endpoint::Template, Some(token), &checked, now);
        st.finish_send(
            arrival,
            Endpoint::Template.path(),
            body,
            Vec::new(),
            a.errcode(),
        );
        let fate = st.fate(arrival, a.errcode(), released);
        (a, fate)
    }

    #[test]
    fn reset_and_hold_fates() {
        let (mut st, t0) = state(Knobs {
            reset_ratio: 1.0,
            hold_from: Some(3),
            ..Knobs::default()
        });
        let tok = st.classic_token(CREDS, t0).expect("token").access_token;
        let lost = Fate {
            held: false,
            lost: true,
        };
        // 1: accepted, then lost
        let (a, f) = send_with_fate(&mut st, &tok, tpl("o1"), false, t0);
        assert_eq!(a.errcode(), 0);
        assert_eq!(f, lost);
        // 2: rejected answers are never lost
        let (a, f) = send_with_fate(&mut st, "sbx_bogus", tpl("o2"), false, t0);
        assert_eq!(a.errcode(), 40014);
        assert_eq!(f, Fate::default());
        // 3 and later: held (rejected ones too), unless released
        let (a, f) = send_with_fate(&mut st, "sbx_bogus", tpl("o3"), false, t0);
        assert_eq!((a.errcode(), f.held, f.lost), (40014, true, false));
        let (a, f) = send_with_fate(&mut st, &tok, tpl("o4"), false, t0);
        assert_eq!((a.errcode(), f.held, f.lost), (0, true, true));
        let (_, f) = send_with_fate(&mut st, &tok, tpl("o5"), true, t0);
        assert_eq!(f, lost);
        let s = st.stats();
        assert_eq!((s.send_requests, s.accepted), (5, 3));
        assert_eq!((s.resets, s.held), (3, 2));
        assert_eq!(s.by_errcode.get(&0), Some(&3), "lost answers are still 0");
        assert_eq!(st.requests().len(), 5);

        // hold_from Some(0) holds from the first request; defaults hold nothing
        let (mut st, t0) = state(Knobs {
            hold_from: Some(0),
            ..Knobs::default()
        });
        let (_, f) = send_with_fate(&mut st, "x", tpl("o1"), false, t0);
        assert!(f.held);
        let (mut st, t0) = state(Knobs::default());
        let tok = st.classic_token(CREDS, t0).expect("token").access_token;
        let (_, f) = send_with_fate(&mut st, &tok, tpl("o1"), false, t0);
        assert_eq!(f, Fate::default());
    }

    #[test]
    fn reset_ratio_is_seeded_and_independent_of_busy() {
        let run = |seed, reset_ratio| {
            let (mut st, t0) = state(Knobs {
                busy_ratio: 0.5,
                reset_ratio,
                seed: Some(seed),
                ..Knobs::default()
            });
            let tok = st.classic_token(CREDS, t0).expect("token").access_token;
            (0..64)
                .map(|i| {
                    let (a, f) = send_with_fate(&mut st, &tok, tpl(&format!("o{i}")), false, t0);
                    (a.errcode(), f.lost)
                })
                .collect::<Vec<_>>()
        };
        let with = run(7, 0.5);
        assert_eq!(with, run(7, 0.5));
        let codes = |v: &[(i64, bool)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            codes(&with),
            codes(&run(7, 0.0)),
            "reset_ratio does not change which requests are busy"
        );
        assert!(with.iter().all(|&(c, lost)| c == 0 || !lost));
        let lost = with.iter().filter(|p| p.1).count();
        let ok = with.iter().filter(|p| p.0 == 0).count();
        assert!(lost > 0 && lost < ok, "{lost} of {ok}");
        // NaN and out-of-range ratios do not panic
        for r in [f64::NAN, -1.0, 2.0] {
            let v = run(1, r);
            assert!(v.iter().all(|&(c, lost)| lost == (c == 0 && r > 1.0)));
        }
    }

    #[test]
    fn rate_limit_and_max_in_1s() {
        let (mut st, t0) = state(Knobs {
            rate_limit: Some(3),
            ..Knobs::default()
        });
        let tok = st.classic_token(CREDS, t0).expect("token").access_token;
        let ms = Duration::from_millis;
        let codes: Vec<i64> = [0, 100, 200, 300, 999, 1000, 1100, 1150, 1200, 2500]
            .iter()
            .map(|&t| send(&mut st, Endpoint::Template, &tok, tpl("o"), t0 + ms(t)).errcode())
            .collect();
        assert_eq!(
            codes,
            vec![0, 0, 0, 45009, 45009, 0, 0, 45009, 0, 0],
            "window counts only admitted requests"
        );
        let s = st.stats();
        assert_eq!(s.max_sends_in_1s, 6, "arrivals at 200..1150 ms");
        assert_eq!(s.by_errcode.get(&45009), Some(&3));
    }

    #[test]
    fn record_is_bounded() {
        let (mut st, t0) = state(Knobs::default());
        for _ in 0..MAX_RECORDED + 5 {
            let a = st.arrive(t0);
            st.finish_send(a, "/x", Value::Null, Vec::new(), 41001);
        }
        let recs = st.requests();
        assert_eq!(recs.len(), MAX_RECORDED);
        let s = st.stats();
        assert_eq!(s.send_requests, MAX_RECORDED as u64 + 5);
        assert_eq!(s.by_errcode.get(&41001), Some(&(MAX_RECORDED as u64 + 5)));
        assert_eq!(s.max_sends_in_1s, MAX_RECORDED as u64 + 5);
    }
}
