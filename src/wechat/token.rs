//! Access tokens: fetched once, shared by every send of the run, refreshed once.
//!
//! All workers call [`Tokens::get`]; the cached token is handed out until shortly before it
//! expires. Refreshing is single-flight: the first worker to need a new token fetches it while
//! the others wait on the same gate, then reuse it. When WeChat rejects a token (40001, 40014,
//! 42001), [`Tokens::rejected`] refreshes only if the rejected token is still the cached one
//! (compare-then-refresh, so N workers rejected at once cause one fetch). With the stable-token
//! API, a normal call that hands back the very token just rejected is followed by one
//! `force_refresh` (at most one per [`FORCE_SPACING`], as WeChat requires).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::{Client, Secret, describe, errcode};

/// How the access token is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenApi {
    /// `POST /cgi-bin/stable_token`: does not invalidate tokens other services of the account hold.
    #[default]
    Stable,
    /// `GET /cgi-bin/token`: every call invalidates the previous token after 5 minutes.
    Classic,
}

/// WeChat ignores a second `force_refresh` within 30 s (wechat-api.md §1.2).
pub const FORCE_SPACING: Duration = Duration::from_secs(30);
/// Refresh this long before expiry at most. The stable API hands out a new token only in the
/// last 5 minutes of the old one's life, so refreshing earlier would just get the same one.
const MAX_MARGIN: Duration = Duration::from_secs(300);
/// The longest token life believed: WeChat's tokens live 7,200 s; a larger `expires_in`
/// (a broken proxy, a hostile answer) is clamped, so it can neither overflow an `Instant`
/// nor keep a dead token cached for days.
const MAX_LIFE: Duration = Duration::from_secs(86_400);
/// Token calls retried on transport errors before the run gives up.
const FETCH_ATTEMPTS: u32 = 4;

/// An access token. `Debug` prints `[redacted]`; there is no `Display`.
#[derive(Clone)]
pub struct Token {
    value: Arc<str>,
    /// Which fetch produced it, to tell a stale rejection from a current one.
    generation: u64,
}

impl Token {
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(gen {}, [redacted])", self.generation)
    }
}

/// Why no token could be had. Each of these aborts the run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("the token endpoint answered {errcode} ({}): {errmsg}", errcode::meaning(*errcode))]
    Rejected {
        errcode: i64,
        errmsg: String,
        /// The endpoint that answered.
        api: TokenApi,
    },
    #[error("cannot reach the token endpoint: {0}")]
    Transport(String),
    #[error(
        "WeChat rejected a token it had just issued; another system may be rotating this account's tokens with force_refresh or the classic API"
    )]
    StillRejected,
}

impl Error {
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Error::Rejected { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// What the user can do: the errcode's advice, except where the endpoint changes it.
    pub fn advice(&self) -> Option<&'static str> {
        match self {
            // `/cgi-bin/token` has a daily limit of its own; the stable token has another.
            Error::Rejected {
                errcode: 45009,
                api: TokenApi::Classic,
                ..
            } => Some(
                "the daily limit of /cgi-bin/token is used up; set `token_api: stable` (the \
                 default) in the campaign: /cgi-bin/stable_token has a limit of its own",
            ),
            e => e.errcode().and_then(errcode::advice),
        }
    }
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    #[serde(default)]
    expires_in: u64,
}

struct Cached {
    token: Token,
    refresh_at: Instant,
}

struct Gate {
    generation: u64,
    last_force: Option<Instant>,
}

/// The token provider of one run.
pub struct Tokens {
    client: Client,
    api: TokenApi,
    appid: String,
    secret: Secret,
    cache: Mutex<Option<Cached>>,
    gate: tokio::sync::Mutex<Gate>,
}

impl Tokens {
    pub fn new(client: Client, api: TokenApi, appid: String, secret: Secret) -> Self {
        Tokens {
            client,
            api,
            appid,
            secret,
            cache: Mutex::new(None),
            gate: tokio::sync::Mutex::new(Gate {
                generation: 0,
                last_force: None,
            }),
        }
    }

    /// A provider holding `token` for a day, which never calls WeChat (dispatch tests).
    #[cfg(test)]
    pub(crate) fn preloaded(token: &str) -> Self {
        // The address is never dialled: the cached token stays fresh for the whole test.
        let client = Client::new("http://127.0.0.1:9").expect("a plain client builds");
        let t = Tokens::new(
            client,
            TokenApi::Stable,
            "wx".into(),
            Secret::new(String::new()),
        );
        *t.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            token: Token {
                value: token.into(),
                generation: 1,
            },
            refresh_at: Instant::now() + Duration::from_secs(86_400),
        });
        t
    }

    /// A token that is not about to expire.
    pub async fn get(&self) -> Result<Token, Error> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let mut gate = self.gate.lock().await;
        // Another worker may have refreshed while this one waited at the gate.
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        self.fetch(&mut gate, false).await
    }

    /// WeChat rejected `bad`: a token that works, refreshed at most once for all the workers
    /// that saw the same rejection.
    pub async fn rejected(&self, bad: &Token) -> Result<Token, Error> {
        let mut gate = self.gate.lock().await;
        if let Some(t) = self.fresh()
            && t.generation != bad.generation
        {
            return Ok(t);
        }
        let t = self.fetch(&mut gate, false).await?;
        if *t.value != *bad.value {
            return Ok(t);
        }
        // The stable API handed back the token just rejected: it thinks it is still valid.
        let may_force = self.api == TokenApi::Stable
            && gate
                .last_force
                .is_none_or(|at| at.elapsed() >= FORCE_SPACING);
        if !may_force {
            return Err(Error::StillRejected);
        }
        gate.last_force = Some(Instant::now());
        let t = self.fetch(&mut gate, true).await?;
        if *t.value == *bad.value {
            return Err(Error::StillRejected);
        }
        Ok(t)
    }

    fn fresh(&self) -> Option<Token> {
        // A poisoned lock means a panic elsewhere; the cached value itself is still whole.
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    async fn fetch(&self, gate: &mut Gate, force: bool) -> Result<Token, Error> {
        let mut attempt = 0;
        tracing::debug!(api = ?self.api, force_refresh = force, "fetching an access token");
        let reply = loop {
            attempt += 1;
            match self.request(force).await {
                Ok(r) => break r,
                Err(e) if attempt >= FETCH_ATTEMPTS => return Err(Error::Transport(e)),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "token request failed; trying again");
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await
                }
            }
        };
        let value = match reply.access_token {
            Some(v) if reply.errcode == 0 && !v.is_empty() => v,
            _ => {
                return Err(Error::Rejected {
                    errcode: reply.errcode,
                    errmsg: reply.errmsg,
                    api: self.api,
                });
            }
        };
        gate.generation += 1;
        // Never the token itself.
        tracing::debug!(
            expires_in = reply.expires_in,
            generation = gate.generation,
            "access token fetched"
        );
        let token = Token {
            value: value.into(),
            generation: gate.generation,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: refresh_at(Instant::now(), reply.expires_in),
        });
        Ok(token)
    }

    async fn request(&self, force: bool) -> Result<TokenReply, String> {
        let http = self.client.http();
        let req = match self.api {
            TokenApi::Stable => {
                http.post(self.client.url("/cgi-bin/stable_token"))
                    .json(&serde_json::json!({
                        "grant_type": "client_credential",
                        "appid": self.appid,
                        "secret": self.secret.expose(),
                        "force_refresh": force,
                    }))
            }
            TokenApi::Classic => http.get(self.client.url("/cgi-bin/token")).query(&[
                ("grant_type", "client_credential"),
                ("appid", &self.appid),
                ("secret", self.secret.expose()),
            ]),
        };
        let res = req.send().await.map_err(|e| describe(e.without_url()))?;
        let status = res.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        res.json()
            .await
            .map_err(|e| format!("answer is not WeChat JSON: {}", describe(e.without_url())))
    }
}

/// When a token fetched at `now` that WeChat says lives `expires_in` seconds is refreshed:
/// a quarter of its life early (at most [`MAX_MARGIN`]), its life clamped to [`MAX_LIFE`].
fn refresh_at(now: Instant, expires_in: u64) -> Instant {
    let life = Duration::from_secs(expires_in.max(1)).min(MAX_LIFE);
    let margin = (life / 4).min(MAX_MARGIN);
    now + (life - margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_before_it_expires_and_an_absurd_life_is_clamped() {
        let now = Instant::now();
        let at = |secs| refresh_at(now, secs).duration_since(now).as_secs();
        assert_eq!(at(7200), 6900, "5 minutes early");
        assert_eq!(at(400), 300, "a quarter early");
        assert_eq!(at(0), 0);
        assert_eq!(at(u64::MAX), 86_400 - 300, "no overflow: a day at most");
    }
}
