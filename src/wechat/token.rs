//! Access tokens: fetched once, shared by every send of the run, refreshed once.
//!
//! All workers call [`Tokens::get`]; the cached token is handed out until shortly before it
//! expires. Refreshing is single-flight: the first worker to need a new token fetches it while
//! the others wait on the same gate, then reuse it. When WeChat rejects a token (40001, 40014,
//! 42001), [`Tokens::rejected`] refreshes only if the rejected token is still the cached one
//! (compare-then-refresh, so N workers rejected at once cause one fetch), and only once: a
//! source that hands back the very token just rejected ends the run, never a loop.
//!
//! Where the token comes from is a [`TokenSource`]: WeChat's stable or classic token API
//! (with the AppSecret), or a token the company already has, from a command, a URL or an
//! environment variable (no AppSecret). The stable API is never asked to `force_refresh`
//! (which would invalidate the token every other service of the account is using) unless the
//! run was started with `--force-refresh-token`, and then once, at its start.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::{Client, Secret, describe, errcode};

/// WeChat's token APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenApi {
    /// `POST /cgi-bin/stable_token`: does not invalidate tokens other services of the account hold.
    #[default]
    Stable,
    /// `GET /cgi-bin/token`: every call invalidates the previous token after 5 minutes.
    Classic,
}

/// Where a run's access token comes from: a campaign's `token_api`, an account's `token:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "RawSource")]
pub enum TokenSource {
    /// WeChat's stable token API (the default).
    #[default]
    Stable,
    /// WeChat's classic token API.
    Classic,
    /// A command line, split into words as a shell would and run without one; its stdout
    /// is the token, bare or as JSON `{"access_token": …, "expires_in": …}`.
    Command(String),
    /// A company token service: `GET` answers that JSON (or the bare token).
    Url(String),
    /// An environment variable holding the token (bare or JSON).
    Env(String),
}

/// A `token:` as written: `stable`, `classic`, or a one-key map `{command: …}`, `{url: …}`,
/// `{env: …}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Name(String),
    Map(std::collections::BTreeMap<String, String>),
}

const SOURCES: &str = "stable, classic, {command: \"…\"}, {url: \"…\"} or {env: VAR}";

impl TryFrom<RawSource> for TokenSource {
    type Error = String;

    fn try_from(raw: RawSource) -> Result<Self, String> {
        match raw {
            RawSource::Name(n) => match n.as_str() {
                "stable" => Ok(TokenSource::Stable),
                "classic" => Ok(TokenSource::Classic),
                // Not echoed when it may be a token pasted in.
                _ if n.len() > 16 => Err(format!("unknown token source: {SOURCES}")),
                _ => Err(format!("unknown token source `{n}`: {SOURCES}")),
            },
            RawSource::Map(m) => {
                let mut entries = m.into_iter();
                match (entries.next(), entries.next()) {
                    (Some((k, v)), None) => match k.as_str() {
                        "command" => Ok(TokenSource::Command(v)),
                        "url" => Ok(TokenSource::Url(v)),
                        "env" => Ok(TokenSource::Env(v)),
                        _ => Err(format!("unknown token source `{k}`: {SOURCES}")),
                    },
                    _ => Err(format!("a token source is one of {SOURCES}")),
                }
            }
        }
    }
}

impl TokenSource {
    /// The WeChat API it calls, if it calls one (then it needs the AppSecret).
    pub fn api(&self) -> Option<TokenApi> {
        match self {
            TokenSource::Stable => Some(TokenApi::Stable),
            TokenSource::Classic => Some(TokenApi::Classic),
            _ => None,
        }
    }
}

impl fmt::Display for TokenSource {
    /// For listings and errors: a URL without its query (which may hold a key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Stable => f.write_str("stable (/cgi-bin/stable_token)"),
            TokenSource::Classic => f.write_str("classic (/cgi-bin/token)"),
            // Its program only: its arguments may hold a key.
            TokenSource::Command(c) => {
                let words = shell_words::split(c).unwrap_or_default();
                match words.split_first() {
                    Some((program, rest)) if !rest.is_empty() => {
                        write!(f, "command `{program} …`")
                    }
                    Some((program, _)) => write!(f, "command `{program}`"),
                    None => f.write_str("command"),
                }
            }
            TokenSource::Url(u) => write!(f, "url {}", super::without_query(u)),
            TokenSource::Env(v) => write!(f, "env {v}"),
        }
    }
}

/// Refresh this long before expiry at most. The stable API hands out a new token only in the
/// last 5 minutes of the old one's life, so refreshing earlier would just get the same one.
const MAX_MARGIN: Duration = Duration::from_secs(300);
/// The longest token life believed: WeChat's tokens live 7,200 s; a larger `expires_in`
/// (a broken proxy, a hostile answer) is clamped, so it can neither overflow an `Instant`
/// nor keep a dead token cached for days. A token from a source that says no `expires_in`
/// is used this long, or until WeChat rejects it.
const MAX_LIFE: Duration = Duration::from_secs(86_400);
/// Token calls retried on transport errors before the run gives up.
const FETCH_ATTEMPTS: u32 = 4;
/// A token command or URL that takes longer than this has failed.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than any token: a source that prints more is not printing a token.
const MAX_TOKEN_LEN: usize = 2048;

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

    #[cfg(test)]
    pub(crate) fn for_test(value: &str) -> Token {
        Token {
            value: value.into(),
            generation: 1,
        }
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
        "WeChat rejected the token the stable API had just handed out again; another system may be rotating this account's tokens (force_refresh or the classic API)"
    )]
    StillRejected,
    /// A command, URL or variable gave no token.
    #[error("the token source ({from}) gave no token: {message}")]
    Source { from: String, message: String },
    /// A command, URL or variable handed back the token WeChat had just rejected.
    #[error(
        "WeChat rejected the token from {from}, and asked again it handed back the same one: refresh the token there (wxpush asks once, never in a loop)"
    )]
    StaleSource { from: String },
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
            Error::StillRejected => Some(
                "find what else fetches this account's tokens; `--force-refresh-token` makes \
                 the run start with a new one, but that invalidates the token every other \
                 service of the account is using",
            ),
            e => e.errcode().and_then(errcode::advice),
        }
    }
}

/// A token answer: WeChat's, or a source's JSON of the same shape.
#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    /// `None`: the source did not say (used until rejected).
    expires_in: Option<u64>,
}

struct Cached {
    token: Token,
    refresh_at: Instant,
    /// What the source said of its life.
    expires_in: Option<u64>,
}

struct Gate {
    generation: u64,
}

/// The token provider of one run.
pub struct Tokens {
    client: Client,
    source: TokenSource,
    appid: String,
    /// `None` for a source that needs none.
    secret: Option<Secret>,
    cache: Mutex<Option<Cached>>,
    gate: tokio::sync::Mutex<Gate>,
}

impl Tokens {
    pub fn new(client: Client, source: TokenSource, appid: String, secret: Option<Secret>) -> Self {
        Tokens {
            client,
            source,
            appid,
            secret,
            cache: Mutex::new(None),
            gate: tokio::sync::Mutex::new(Gate { generation: 0 }),
        }
    }

    /// A provider holding `token` for a day, which never calls WeChat (dispatch tests).
    #[cfg(test)]
    pub(crate) fn preloaded(token: &str) -> Self {
        // The address is never dialled: the cached token stays fresh for the whole test.
        let client = Client::new("http://127.0.0.1:9", None).expect("a plain client builds");
        let t = Tokens::new(client, TokenSource::Stable, "wx".into(), None);
        *t.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            token: Token {
                value: token.into(),
                generation: 1,
            },
            refresh_at: Instant::now() + Duration::from_secs(86_400),
            expires_in: None,
        });
        t
    }

    /// The `expires_in` of the token fetched last, if its source said.
    pub fn expires_in(&self) -> Option<u64> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.as_ref().and_then(|c| c.expires_in)
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
        self.fetch(&mut gate).await
    }

    /// WeChat rejected `bad`: a token that works, refreshed at most once for all the workers
    /// that saw the same rejection. A source that hands back `bad` itself ends the run.
    pub async fn rejected(&self, bad: &Token) -> Result<Token, Error> {
        let mut gate = self.gate.lock().await;
        if let Some(t) = self.fresh()
            && t.generation != bad.generation
        {
            return Ok(t);
        }
        let t = self.fetch(&mut gate).await?;
        if *t.value != *bad.value {
            return Ok(t);
        }
        Err(self.still_rejected())
    }

    /// The error of a source whose fresh tokens WeChat keeps rejecting.
    pub fn still_rejected(&self) -> Error {
        match self.source {
            // The stable API thinks the rejected token is still valid.
            TokenSource::Stable => Error::StillRejected,
            _ => Error::StaleSource {
                from: self.source.to_string(),
            },
        }
    }

    fn fresh(&self) -> Option<Token> {
        // A poisoned lock means a panic elsewhere; the cached value itself is still whole.
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// `--force-refresh-token`: one `force_refresh` call of the stable API, which invalidates
    /// the token every other service of the account holds. Made once, after the run is
    /// confirmed and its quota known; for any other source, the current token.
    pub async fn force_refresh(&self) -> Result<Token, Error> {
        let mut gate = self.gate.lock().await;
        self.fetch_with(&mut gate, self.source == TokenSource::Stable)
            .await
    }

    async fn fetch(&self, gate: &mut Gate) -> Result<Token, Error> {
        self.fetch_with(gate, false).await
    }

    async fn fetch_with(&self, gate: &mut Gate, force: bool) -> Result<Token, Error> {
        let reply = match self.source.api() {
            Some(api) => {
                self.ask_wechat(api, force && api == TokenApi::Stable)
                    .await?
            }
            None => self.ask_source().await?,
        };
        let value = match reply.access_token {
            Some(v) if reply.errcode == 0 && !v.is_empty() => v,
            _ => {
                return Err(match self.source.api() {
                    Some(api) => Error::Rejected {
                        errcode: reply.errcode,
                        errmsg: reply.errmsg,
                        api,
                    },
                    None => self.source_error(format!(
                        "it answered errcode {} ({})",
                        reply.errcode, reply.errmsg
                    )),
                });
            }
        };
        gate.generation += 1;
        // Never the token itself.
        tracing::debug!(
            source = %self.source,
            expires_in = ?reply.expires_in,
            generation = gate.generation,
            "access token fetched"
        );
        let token = Token {
            value: value.into(),
            generation: gate.generation,
        };
        let life = reply
            .expires_in
            .map_or(MAX_LIFE, |s| Duration::from_secs(s.max(1)));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: refresh_at(Instant::now(), life),
            expires_in: reply.expires_in,
        });
        Ok(token)
    }

    async fn ask_wechat(&self, api: TokenApi, force: bool) -> Result<TokenReply, Error> {
        tracing::debug!(?api, force_refresh = force, "fetching an access token");
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A forced call that got no answer may have refreshed: the retries ask in
            // normal mode, which hands out the current token either way (and never forces
            // a second time).
            match self.request(api, force && attempt == 1).await {
                Ok(r) => return Ok(r),
                Err(e) if attempt >= FETCH_ATTEMPTS => return Err(Error::Transport(e)),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "token request failed; trying again");
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await
                }
            }
        }
    }

    async fn request(&self, api: TokenApi, force: bool) -> Result<TokenReply, String> {
        let http = self.client.http();
        let secret = self.secret.as_ref().map(Secret::expose).unwrap_or_default();
        let req = match api {
            TokenApi::Stable => {
                http.post(self.client.url("/cgi-bin/stable_token"))
                    .json(&serde_json::json!({
                        "grant_type": "client_credential",
                        "appid": self.appid,
                        "secret": secret,
                        "force_refresh": force,
                    }))
            }
            TokenApi::Classic => http.get(self.client.url("/cgi-bin/token")).query(&[
                ("grant_type", "client_credential"),
                ("appid", &self.appid),
                ("secret", secret),
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

    /// The token from a command, URL or variable.
    async fn ask_source(&self) -> Result<TokenReply, Error> {
        tracing::debug!(source = %self.source, "fetching an access token");
        let text = match &self.source {
            TokenSource::Command(line) => self.run_command(line).await?,
            TokenSource::Url(url) => self.get_url(url).await?,
            TokenSource::Env(var) => std::env::var(var).map_err(|_| {
                self.source_error(format!("the environment variable {var} is not set"))
            })?,
            TokenSource::Stable | TokenSource::Classic => unreachable!("from_wechat's"),
        };
        parse_token(&text).map_err(|m| self.source_error(m))
    }

    async fn run_command(&self, line: &str) -> Result<String, Error> {
        let words = shell_words::split(line)
            .map_err(|e| self.source_error(format!("cannot split it into words: {e}")))?;
        let Some((program, args)) = words.split_first() else {
            return Err(self.source_error("the command is empty".into()));
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.source_error(format!("cannot run `{program}`: {e}")))?;
        let out = tokio::time::timeout(SOURCE_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| self.source_error(format!("no answer in {}s", SOURCE_TIMEOUT.as_secs())))?
            .map_err(|e| self.source_error(e.to_string()))?;
        if !out.status.success() {
            // Its output is not shown: it may hold the token.
            return Err(self.source_error(format!(
                "it exited with {} (its output is not shown, as it may hold a token: run it \
                 yourself to see)",
                out.status
            )));
        }
        String::from_utf8(out.stdout)
            .map_err(|_| self.source_error("its output is not UTF-8".into()))
    }

    async fn get_url(&self, url: &str) -> Result<String, Error> {
        // Not through the account's `proxy:` (that is the way out to WeChat): a company's
        // token service is inside; the proxy variables and NO_PROXY still apply.
        let http = reqwest::Client::builder()
            .timeout(SOURCE_TIMEOUT)
            .build()
            .map_err(|e| self.source_error(describe(e.without_url())))?;
        let res = http
            .get(url)
            .send()
            .await
            .map_err(|e| self.source_error(describe(e.without_url())))?;
        let status = res.status();
        if !status.is_success() {
            return Err(self.source_error(format!("HTTP {status}")));
        }
        res.text()
            .await
            .map_err(|e| self.source_error(describe(e.without_url())))
    }

    fn source_error(&self, message: String) -> Error {
        Error::Source {
            from: self.source.to_string(),
            message,
        }
    }
}

/// A source's answer: JSON of WeChat's shape, or the bare token on one line.
fn parse_token(text: &str) -> Result<TokenReply, String> {
    let text = text.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| {
            format!("its JSON is not {{\"access_token\": …, \"expires_in\": …}}: {e}")
        });
    }
    let plain = !text.is_empty()
        && text.len() <= MAX_TOKEN_LEN
        && text.bytes().all(|b| b.is_ascii_graphic());
    if !plain {
        return Err(match text.is_empty() {
            true => "it printed nothing".into(),
            // Not echoed: it may be a token with something around it.
            false => {
                "it printed something that is not a token (one line, no spaces) nor JSON".into()
            }
        });
    }
    Ok(TokenReply {
        errcode: 0,
        errmsg: String::new(),
        access_token: Some(text.to_owned()),
        expires_in: None,
    })
}

/// When a token fetched at `now` that lives `life` is refreshed: a quarter of its life early
/// (at most [`MAX_MARGIN`]), its life clamped to [`MAX_LIFE`].
fn refresh_at(now: Instant, life: Duration) -> Instant {
    let life = life.min(MAX_LIFE);
    let margin = (life / 4).min(MAX_MARGIN);
    now + (life - margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_before_it_expires_and_an_absurd_life_is_clamped() {
        let now = Instant::now();
        let at = |secs| {
            refresh_at(now, Duration::from_secs(secs))
                .duration_since(now)
                .as_secs()
        };
        assert_eq!(at(7200), 6900, "5 minutes early");
        assert_eq!(at(400), 300, "a quarter early");
        assert_eq!(at(0), 0);
        assert_eq!(at(u64::MAX), 86_400 - 300, "no overflow: a day at most");
    }

    #[test]
    fn a_source_gives_a_bare_token_or_wechat_s_json() {
        let t = parse_token("  abc_DEF-123\n").unwrap();
        assert_eq!(
            (t.access_token.as_deref(), t.expires_in),
            (Some("abc_DEF-123"), None)
        );
        let t = parse_token(r#"{"access_token":"x","expires_in":7200}"#).unwrap();
        assert_eq!(
            (t.access_token.as_deref(), t.expires_in),
            (Some("x"), Some(7200))
        );
        let t = parse_token(r#"{"errcode":40001,"errmsg":"no"}"#).unwrap();
        assert_eq!((t.errcode, t.access_token), (40001, None));
        for bad in ["", "two words", "a\nb", "{not json"] {
            assert!(parse_token(bad).is_err(), "{bad:?}");
        }
        // What is not a token is not echoed (it may be a token with something around it).
        let e = parse_token("token: sekrit").err().expect("not a token");
        assert!(!e.contains("sekrit"), "{e}");
    }

    #[test]
    fn sources_deserialize_from_an_account_s_yaml() {
        let s: Vec<TokenSource> = serde_yaml::from_str(
            "[stable, classic, {command: \"get-token a\"}, {url: \"https://t/x?k=1\"}, {env: TOK}]",
        )
        .unwrap();
        assert_eq!(
            s,
            [
                TokenSource::Stable,
                TokenSource::Classic,
                TokenSource::Command("get-token a".into()),
                TokenSource::Url("https://t/x?k=1".into()),
                TokenSource::Env("TOK".into()),
            ]
        );
        assert_eq!(s[3].to_string(), "url https://t/x");
    }
}
