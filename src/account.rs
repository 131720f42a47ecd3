//! Account profiles: `accounts.yaml` names the WeChat accounts a team sends from, so that a
//! campaign says `account: brand-a` instead of repeating an appid, and the way each account
//! gets its access token and reaches WeChat (`proxy:`) is set once, beside the campaigns:
//!
//! ```yaml
//! brand-a:
//!   appid: wx0123456789abcdef
//!   secret_env: BRAND_A_SECRET          # the AppSecret stays in the environment
//!   token: stable                       # stable | classic | {command: …} | {url: …} | {env: VAR}
//!   proxy: http://gateway.internal:3128 # optional
//! ```
//!
//! The file is found beside the campaign, then in its parent folders; `--accounts PATH` or
//! `WXPUSH_ACCOUNTS` name it instead.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::wechat::Proxy;
use crate::wechat::token::TokenSource;

/// The file's name, looked for beside the campaign and in its parent folders.
pub const FILE: &str = "accounts.yaml";
/// Names the accounts file instead (as `--accounts` does).
pub const ENV: &str = "WXPUSH_ACCOUNTS";
/// Environment variable that holds the AppSecret unless `secret_env` names another.
pub const DEFAULT_SECRET_ENV: &str = "WXPUSH_SECRET";

/// One account of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    pub appid: String,
    /// The variable holding the AppSecret: used by the `stable` and `classic` sources only.
    pub secret_env: String,
    pub token: TokenSource,
    pub proxy: Option<Proxy>,
}

/// The accounts of one file, in its order.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub path: PathBuf,
    pub accounts: Vec<Account>,
}

impl Accounts {
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.accounts.iter().map(|a| a.name.as_str()).collect()
    }

    /// The account `name`, or what to say when there is none.
    pub fn named(&self, name: &str) -> Result<&Account, String> {
        self.get(name).ok_or_else(|| {
            format!(
                "no account `{name}` in {} (it has {})",
                self.path.display(),
                self.names().join(", ")
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "no {FILE} found in {} or a folder above it; write one there, or name it with --accounts PATH or {ENV}",
        from.display()
    )]
    NotFound { from: PathBuf },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    appid: String,
    secret_env: Option<String>,
    token: Option<TokenSource>,
    proxy: Option<String>,
}

/// The accounts file for a campaign in `dir`: `explicit` if given, else the first
/// `accounts.yaml` in `dir` or a folder above it.
pub fn find(dir: &Path, explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let start = match dir.as_os_str().is_empty() {
        true => Path::new("."),
        false => dir,
    };
    // Parents of the absolute path, so that `..` and a relative `dir` are followed up too.
    let absolute = std::path::absolute(start).unwrap_or_else(|_| start.to_owned());
    let found = absolute
        .ancestors()
        .map(|d| d.join(FILE))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::NotFound {
            from: start.to_owned(),
        })?;
    // Named as the user would (`accounts.yaml`, `../accounts.yaml` is shown from here).
    let here = std::env::current_dir().ok();
    Ok(here
        .and_then(|h| found.strip_prefix(h).ok().map(Path::to_owned))
        .unwrap_or(found))
}

/// Reads and checks the accounts file at `path`.
pub fn load(path: &Path) -> Result<Accounts, Error> {
    let src = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |line: Option<usize>, message: String| Error::Invalid {
        path: path.to_owned(),
        line,
        message,
    };
    let raw: IndexMap<String, RawAccount> = serde_yaml::from_str(&src).map_err(|e| {
        let mut message = e.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        invalid(e.location().map(|l| l.line()), message)
    })?;
    if raw.is_empty() {
        return Err(invalid(None, "names no account".into()));
    }
    let line_of = |name: &str| {
        src.lines()
            .position(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))
            .map(|i| i + 1)
    };
    let mut accounts = Vec::new();
    for (name, a) in raw {
        let at = |message: String| invalid(line_of(&name), format!("account `{name}`: {message}"));
        if !crate::wechat::looks_like_appid(&a.appid) {
            // An AppSecret pasted here by mistake is not echoed.
            let shown = match a.appid.len() == 32 {
                true => "(not shown: it looks like an AppSecret)".to_owned(),
                false => format!("`{}`", a.appid),
            };
            return Err(at(format!(
                "appid {shown} does not look like an AppID (wx followed by 16 letters or digits)"
            )));
        }
        let secret_env = a
            .secret_env
            .unwrap_or_else(|| DEFAULT_SECRET_ENV.to_owned());
        check_secret_env(&secret_env).map_err(|m| at(format!("secret_env {m}")))?;
        let token = a.token.unwrap_or_default();
        match &token {
            TokenSource::Command(c) if shell_words::split(c).map_or(true, |w| w.is_empty()) => {
                return Err(at("token: the command is empty or badly quoted".into()));
            }
            // The token crosses the network: https, or http to this machine only.
            TokenSource::Url(u) if !crate::wechat::is_safe_base(u) => {
                return Err(at(
                    "token: the url must start with https:// (plain http:// only to \
                     127.0.0.1 or localhost: the token would cross the network unencrypted)"
                        .into(),
                ));
            }
            TokenSource::Env(v) if v.len() > 64 => {
                return Err(at(
                    "token: env names a variable; this looks like a token itself (not shown)"
                        .into(),
                ));
            }
            TokenSource::Env(v) if v.is_empty() || v.contains(['=', '\0']) => {
                return Err(at("token: env must name an environment variable".into()));
            }
            _ => {}
        }
        let proxy = match a.proxy {
            Some(p) => Some(Proxy::parse(&p).map_err(|m| at(format!("proxy: {m}")))?),
            None => None,
        };
        accounts.push(Account {
            name,
            appid: a.appid,
            secret_env,
            token,
            proxy,
        });
    }
    Ok(Accounts {
        path: path.to_owned(),
        accounts,
    })
}

/// A `secret_env` names a variable: never the AppSecret itself (which is then not echoed).
pub fn check_secret_env(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err("must name an environment variable".into());
    }
    // An AppSecret is 32 hex digits; a variable name never looks like one.
    if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "this looks like the AppSecret itself; put it in an environment variable (export \
             WXPUSH_SECRET=…) and name the variable here, or leave `secret_env` out"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_load_in_order_with_their_sources() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(
            &path,
            "brand-a:\n  appid: wx0123456789abcdef\n  secret_env: BRAND_A_SECRET\n  proxy: \
             http://u:pw@gw.internal:3128\nbrand-b:\n  appid: wx1111111111111111\n  token: \
             {command: \"get-token b\"}\n",
        )
        .unwrap();
        let a = load(&path).unwrap();
        assert_eq!(a.names(), ["brand-a", "brand-b"]);
        let brand_a = a.get("brand-a").unwrap();
        assert_eq!(brand_a.token, TokenSource::Stable);
        assert_eq!(
            brand_a.proxy.as_ref().unwrap().redacted(),
            "http://u:***@gw.internal:3128/"
        );
        assert!(!format!("{brand_a:?}").contains("pw"));
        assert_eq!(a.get("brand-b").unwrap().secret_env, DEFAULT_SECRET_ENV);
        // Found from a folder below.
        let sub = dir.path().join("campaigns/spring");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(
            find(&sub, None).unwrap().canonicalize().unwrap(),
            path.canonicalize().unwrap()
        );
    }

    #[test]
    fn mistakes_name_the_account_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let cases = [
            (
                "a:\n  appid: wx0123456789abcdef\nb:\n  appid: nope\n",
                ":3: account `b`: appid `nope`",
            ),
            (
                "a:\n  appid: wx0123456789abcdef\n  tokn: stable\n",
                "unknown field `tokn`",
            ),
            (
                "a:\n  appid: wx0123456789abcdef\n  proxy: \"ftp://x:secretpw@h\"\n",
                "account `a`: proxy: not a proxy URL",
            ),
            (
                "a:\n  appid: wx0123456789abcdef\n  token: {url: \"http://u:secretpw@tokens.example.com/t\"}\n",
                "the url must start with https://",
            ),
            (
                "a:\n  appid: wx0123456789abcdef\n  token: {url: \"gw/token\"}\n",
                "the url must start with",
            ),
            (
                "a:\n  appid: wx0123456789abcdef\n  secret_env: 0123456789abcdef0123456789abcdef\n",
                "looks like the AppSecret itself",
            ),
            ("{}\n", "names no account"),
        ];
        for (yaml, needle) in cases {
            std::fs::write(&path, yaml).unwrap();
            let e = load(&path).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle:?} in {e}");
            assert!(
                !e.contains("secretpw") && !e.contains("0123456789abcdef0123456789abcdef"),
                "{e}"
            );
        }
    }
}
