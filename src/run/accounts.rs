//! `wxpush accounts`: the accounts of `accounts.yaml`, and `accounts test [NAME]`, which
//! fetches a token for each the way a send would (its source, its proxy) and says OK or
//! why not, with what to do. Never the token, the secret or a proxy password.

use crate::Error;
use crate::account::{Account, Accounts};
use crate::plan::AccountsTest;
use crate::wechat::token::{self, TokenSource, Tokens};
use crate::wechat::{CallError, Client, Secret};

pub(super) async fn accounts(all: &Accounts, test: Option<&AccountsTest>) -> Result<(), Error> {
    let Some(test) = test else {
        list(all);
        return Ok(());
    };
    let mut failed = 0;
    let mut tested = 0;
    for (a, secret) in all.accounts.iter().zip(&test.secrets) {
        if test.only.as_ref().is_some_and(|n| *n != a.name) {
            continue;
        }
        if a.token == TokenSource::Classic && test.only.is_none() {
            show!(
                "SKIP {}: a classic token fetch invalidates the token the account's other \
                 services use (5 minutes later); test it by name: wxpush accounts test {}{}",
                a.name,
                shell_words::quote(&a.name),
                test.accounts_arg
                    .as_ref()
                    .map(|p| format!(" --accounts {}", shell_words::quote(&p.to_string_lossy())))
                    .unwrap_or_default()
            );
            continue;
        }
        tested += 1;
        match check(a, secret, &test.base).await {
            Ok(expires_in) => show!("OK   {}: {}, token fetched{expires_in}", a.name, a.appid),
            Err((why, advice)) => {
                failed += 1;
                show!("FAIL {}: {}: {why}", a.name, a.appid);
                if let Some(advice) = advice {
                    show!("     what to do: {advice}");
                }
            }
        }
    }
    if failed > 0 {
        return Err(Error::Aborted(format!(
            "{failed} of {tested} accounts cannot get a token WeChat accepts ({})",
            all.path.display()
        )));
    }
    Ok(())
}

fn list(all: &Accounts) {
    show!("{}:", all.path.display());
    for a in &all.accounts {
        let secret = match a.token.api() {
            Some(_) => match std::env::var_os(&a.secret_env) {
                Some(_) => format!("secret in ${} (set)", a.secret_env),
                None => format!("secret in ${} (NOT SET)", a.secret_env),
            },
            None => "no secret needed".to_owned(),
        };
        let proxy = match &a.proxy {
            Some(p) => format!("proxy {}", p.redacted()),
            None => "no proxy: (HTTPS_PROXY, HTTP_PROXY, NO_PROXY apply)".to_owned(),
        };
        show!(
            "  {:<14} {}  token {}; {secret}; {proxy}",
            a.name,
            a.appid,
            a.token
        );
    }
}

/// The token provider of account `a` (never forcing a refresh).
fn provider(a: &Account, client: &Client, secret: Option<Secret>) -> Tokens {
    Tokens::new(client.clone(), a.token.clone(), a.appid.clone(), secret)
}

/// The client of account `a` (its proxy) and a token from its source: what `templates
/// pull` and `followers` start with.
pub(super) async fn signed_in(
    a: &Account,
    secret: Option<Secret>,
    base: &str,
) -> Result<(Client, Tokens), Error> {
    let client = Client::new(base, a.proxy.as_ref()).map_err(Error::Aborted)?;
    let tokens = provider(a, &client, secret);
    tokens.get().await.map_err(|e| no_token(a, &e))?;
    Ok((client, tokens))
}

/// Calls `call` with the account's token; a token WeChat rejects (40001, 40014, 42001: it
/// expired during a long listing) is replaced once, and the call made again.
pub(super) async fn with_token<T, Fut>(
    a: &Account,
    tokens: &Tokens,
    call: impl Fn(token::Token) -> Fut,
) -> Result<T, Result<CallError, Error>>
where
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let token = tokens.get().await.map_err(|e| Err(no_token(a, &e)))?;
    match call(token.clone()).await {
        Err(e) if matches!(e.errcode(), Some(40001 | 40014 | 42001)) => {
            let fresh = tokens
                .rejected(&token)
                .await
                .map_err(|e| Err(no_token(a, &e)))?;
            call(fresh).await.map_err(Ok)
        }
        r => r.map_err(Ok),
    }
}

pub(super) fn no_token(a: &Account, e: &token::Error) -> Error {
    let advice = advice(a, e)
        .map(|t| format!("\n  what to do: {t}"))
        .unwrap_or_default();
    Error::Aborted(format!(
        "account `{}`: no access token: {e}{advice}",
        a.name
    ))
}

/// A token for `a`: `Ok` with how long it lives, or why not and what to do.
async fn check(
    a: &Account,
    secret: &Result<Option<Secret>, String>,
    base: &str,
) -> Result<String, (String, Option<String>)> {
    let secret = secret.clone().map_err(|e| (e, None))?;
    let client = Client::new(base, a.proxy.as_ref()).map_err(|e| (e, None))?;
    let tokens = provider(a, &client, secret);
    let token = match tokens.get().await {
        Ok(t) => t,
        Err(e) => {
            let advice = advice(a, &e);
            return Err((e.to_string(), advice));
        }
    };
    // A token is only as good as WeChat says: one cheap call that checks it (a command or a
    // service may hand out a token that no longer works).
    let checked: Result<serde_json::Value, CallError> =
        client.call(&token, VERIFY, &[], None).await;
    if let Err(e) = checked {
        let advice = match e.errcode() {
            Some(40001 | 40014 | 42001) => Some(format!(
                "the token from {} is not (or no longer) valid: refresh it there",
                a.token
            )),
            Some(40164) => advice(
                a,
                &token::Error::Rejected {
                    errcode: 40164,
                    errmsg: String::new(),
                    api: token::TokenApi::Stable,
                },
            ),
            _ => None,
        };
        return Err((format!("WeChat refuses the token: {e}"), advice));
    }
    Ok(tokens
        .expires_in()
        .map(|s| format!(" and accepted (it lives {s} s)"))
        .unwrap_or_else(|| " and accepted".to_owned()))
}

/// The call that checks a token: it needs one, and changes nothing.
const VERIFY: &str = "/cgi-bin/get_api_domain_ip";

/// What to do, in the terms of accounts.yaml.
fn advice(a: &Account, e: &token::Error) -> Option<String> {
    Some(match e.errcode() {
        Some(40164) => format!(
            "add this machine's egress IP (in WeChat's message above) to the account's API IP \
             whitelist (公众号后台 → 设置与开发 → 基本配置), or set `proxy:` for {} in \
             accounts.yaml to a gateway whose IP is on it",
            a.name
        ),
        Some(40125 | 40001 | 41004) => format!(
            "the AppSecret in ${} is not {}'s: copy it again from the WeChat backend",
            a.secret_env, a.appid
        ),
        Some(40013 | 41002) => format!(
            "WeChat knows no account `{}`: check `appid` of {} in accounts.yaml",
            a.appid, a.name
        ),
        _ => return e.advice().map(str::to_owned),
    })
}
