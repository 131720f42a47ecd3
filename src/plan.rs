//! The plan: the command line lowered into what a run will do, before anything runs.
//!
//! [`crate::cli::Cli::lower`] builds a [`Plan`]: the campaign loaded and validated (and never
//! changed afterwards), the report path, the kind of API and its base URL (checked: no plain
//! http beyond this machine), the AppSecret read from the environment, the effective rate
//! and concurrency, and the resume options. Everything a run needs to know about its own
//! command line is here, so the advice it prints ([`SendPlan::command`]) is built from the
//! same facts that drove it.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::account::Accounts;
use crate::campaign::Campaign;
use crate::journal::RunKind;
use crate::resume;
use crate::sandbox::Knobs;
use crate::wechat::Secret;

/// Environment variable that overrides the API base URL.
pub const API_BASE_ENV: &str = "WXPUSH_API_BASE";

/// One run of wxpush.
#[derive(Debug)]
pub enum Plan {
    /// Write an example campaign `name` (a mini program one if `mini`).
    Init {
        name: String,
        mini: bool,
    },
    /// `online`: also compare the template with the account's live one.
    Check {
        campaign: Campaign,
        online: Option<Online>,
    },
    /// `wxpush templates pull`.
    TemplatesPull(TemplatesPull),
    /// `wxpush followers`.
    Followers(FollowersPlan),
    Preview {
        campaign: Campaign,
        pick: Pick,
        /// `--html`: write the cards as one page there instead of printing them.
        html: Option<PathBuf>,
    },
    Send(Box<SendPlan>),
    /// Read a report; `failed`: write the recipients worth retrying (an empty path: the
    /// default one).
    Report {
        report: PathBuf,
        json: bool,
        html: Option<PathBuf>,
        failed: Option<PathBuf>,
        campaign: Option<PathBuf>,
        /// Where the campaign's `account:` comes from (`--accounts`, `WXPUSH_ACCOUNTS`).
        accounts: Option<PathBuf>,
    },
    /// `wxpush accounts [test]`: the accounts file, and what to test (`None`: list).
    Accounts {
        accounts: Accounts,
        test: Option<AccountsTest>,
    },
    Sandbox {
        addr: SocketAddr,
        knobs: Knobs,
    },
    /// Print the completion script for this shell.
    Completions(clap_complete::Shell),
}

/// Which messages `preview` shows.
#[derive(Debug, Clone, Default)]
pub struct Pick {
    /// At most this many.
    pub limit: u64,
    /// Only the recipient of this data row (1 = the row after the header).
    pub row: Option<u64>,
    /// Only this openid.
    pub openid: Option<String>,
}

/// `check --online`: where the account's template lists are.
#[derive(Debug)]
pub struct Online {
    pub base: String,
    /// `None`: the campaign's token source needs none.
    pub secret: Option<Secret>,
}

/// `wxpush templates pull`, resolved.
#[derive(Debug)]
pub struct TemplatesPull {
    pub account: crate::account::Account,
    pub secret: Option<Secret>,
    pub base: String,
    /// `--target mini`: the subscribe list only, as mini program templates.
    pub mini: bool,
    pub dir: PathBuf,
    pub force: bool,
}

/// `wxpush followers`, resolved.
#[derive(Debug)]
pub struct FollowersPlan {
    pub account: crate::account::Account,
    pub secret: Option<Secret>,
    pub base: String,
    /// A tag's name or id.
    pub tag: Option<String>,
    pub out: PathBuf,
    /// Add `subscribe_time`, `tagid_list`, `remark` (user/info/batchget, 100 per call).
    pub details: bool,
    pub exclude_blacklist: bool,
}

/// `wxpush accounts test [NAME]`, resolved.
#[derive(Debug)]
pub struct AccountsTest {
    /// The API base (`WXPUSH_API_BASE`, else WeChat's).
    pub base: String,
    /// Only this account.
    pub only: Option<String>,
    /// `--accounts` as given (advice repeats it).
    pub accounts_arg: Option<PathBuf>,
    /// Per account, in the file's order: its AppSecret (`None`: its source needs none), or
    /// why it cannot be read.
    pub secrets: Vec<Result<Option<Secret>, String>>,
}

/// Where a send goes.
#[derive(Debug)]
pub enum Api {
    /// Nowhere: a dry run.
    None,
    /// A sandbox started inside this process (`--sandbox`).
    InProcess,
    /// An API base URL (WeChat, or a sandbox on 127.0.0.1), with the AppSecret.
    Remote {
        base: String,
        /// The base came from [`API_BASE_ENV`] (advice repeats it).
        from_env: bool,
        /// `None`: the token comes from a command, URL or variable.
        secret: Option<Secret>,
    },
}

/// A `send`, resolved.
#[derive(Debug)]
pub struct SendPlan {
    pub campaign: Campaign,
    /// The campaign path as given on the command line.
    pub campaign_arg: PathBuf,
    /// `--accounts` as given (advice repeats it; `WXPUSH_ACCOUNTS` stays in the environment).
    pub accounts_arg: Option<PathBuf>,
    /// `--force-refresh-token`: the run's first token call forces a new token (never
    /// repeated in advice).
    pub force_refresh_token: bool,
    /// `--allow-partial`: when today's quota is less than the recipients left, send what it
    /// allows and stop, instead of refusing.
    pub allow_partial: bool,
    pub report: PathBuf,
    /// `--report` as given.
    pub report_arg: Option<PathBuf>,
    pub run_kind: RunKind,
    pub api: Api,
    /// Messages per second: `--rate`, else the campaign's.
    pub rate: u32,
    /// Requests in flight: `--concurrency`, else the campaign's.
    pub concurrency: usize,
    pub rate_arg: Option<u32>,
    pub concurrency_arg: Option<u32>,
    /// `--limit`: recipients to send in this run at most.
    pub limit: Option<u64>,
    /// `--yes`.
    pub yes: bool,
    /// `--wait`: wait for another run of the report to end instead of refusing.
    pub wait: bool,
    /// `--to`: a test send to these openids only (empty: the campaign).
    pub to: Vec<String>,
    pub resume: resume::Options,
}

/// The default report path: `reports/<name>.csv` beside the campaign file for a send to
/// WeChat, `<name>.sandbox.csv` for a send to a sandbox and `<name>.dry-run.csv` for a dry
/// run, so neither ever looks like progress a real send would resume; a test send (`--to`)
/// writes into `reports/test/` (no campaign name can make it another campaign's report).
pub fn default_report(c: &Campaign, kind: RunKind, test: bool) -> PathBuf {
    let mut dir = c.path.parent().unwrap_or(Path::new(".")).join("reports");
    if test {
        dir.push("test");
    }
    let suffix = match kind {
        RunKind::WeChat => "",
        RunKind::Sandbox => ".sandbox",
        RunKind::DryRun => ".dry-run",
    };
    dir.join(format!("{}{suffix}.csv", c.name))
}

/// A flag that advice adds to the run's own command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Continue as it was: resume the same report.
    Resume,
    /// The very command of this run, its one-off flags included: for a run that did
    /// nothing (it could not ask for confirmation).
    Again,
    /// `--restart`.
    Restart,
    /// `--resume-changed`.
    ResumeChanged,
    /// `--resend-unknown`.
    ResendUnknown,
    /// `--retry-failed`.
    RetryFailed,
    /// This run's own default report: `--report` left out.
    OwnReport,
    /// After a test send (`--to`): the campaign itself, to everyone.
    WholeCampaign,
    /// This run's command with `--allow-partial`: send what today's quota allows.
    AllowPartial,
}

impl SendPlan {
    /// The exact command line that does `then` to this run's report: the campaign, the
    /// report, where it sends (`--sandbox`, or the API base from the environment), rate and
    /// concurrency overrides, `--yes` and `--resume-changed` as given, and `limit` as the
    /// `--limit` to use. Never `--restart`, `--resend-unknown` or `--retry-failed` unless
    /// `then` asks for one: advice repeats nothing that would redo what was done.
    pub fn command(&self, then: Then, limit: Option<u64>) -> String {
        let mut words: Vec<OsString> = vec!["wxpush".into(), "send".into()];
        words.push(self.campaign_arg.clone().into());
        // A test send's advice stays a test send: only `WholeCampaign` drops `--to`.
        if !self.to.is_empty() && then != Then::WholeCampaign {
            words.extend(["--to".into(), self.to.join(",").into()]);
        }
        let report_arg = self
            .report_arg
            .as_ref()
            .filter(|_| then != Then::WholeCampaign);
        if let Some(r) = report_arg.filter(|_| then != Then::OwnReport) {
            words.extend(["--report".into(), r.clone().into()]);
        }
        if matches!(self.api, Api::InProcess) {
            words.push("--sandbox".into());
        }
        if let Some(a) = &self.accounts_arg {
            words.extend(["--accounts".into(), a.clone().into()]);
        }
        if let Some(r) = self.rate_arg {
            words.extend(["--rate".into(), r.to_string().into()]);
        }
        if let Some(c) = self.concurrency_arg {
            words.extend(["--concurrency".into(), c.to_string().into()]);
        }
        if let Some(n) = limit {
            words.extend(["--limit".into(), n.to_string().into()]);
        }
        // --restart starts over: a changed list is nothing to resume (and clap refuses both).
        if (self.resume.resume_changed && then != Then::Restart) || then == Then::ResumeChanged {
            words.push("--resume-changed".into());
        }
        let again = matches!(then, Then::Again | Then::AllowPartial);
        // Kept by every command that goes on with this campaign's report.
        if (self.allow_partial || then == Then::AllowPartial) && then != Then::WholeCampaign {
            words.push("--allow-partial".into());
        }
        if again && self.resume.restart {
            words.push("--restart".into());
        }
        if again && self.resume.resend_unknown {
            words.push("--resend-unknown".into());
        }
        if again && self.resume.retry_failed {
            words.push("--retry-failed".into());
        }
        match then {
            Then::Resume
            | Then::Again
            | Then::ResumeChanged
            | Then::OwnReport
            | Then::WholeCampaign
            | Then::AllowPartial => {}
            Then::Restart => words.push("--restart".into()),
            Then::ResendUnknown => words.push("--resend-unknown".into()),
            Then::RetryFailed => words.push("--retry-failed".into()),
        }
        // The campaign itself after a test: asked for, never sent unasked.
        if self.yes && then != Then::WholeCampaign {
            words.push("--yes".into());
        }
        let words: Vec<String> = words
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        let mut line = shell_words::join(words);
        let name = &self.campaign.secret_env;
        let assignable = name != API_BASE_ENV
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if let Api::Remote {
            secret,
            from_env: true,
            ..
        } = &self.api
            && self.run_kind == RunKind::Sandbox
            && assignable
            && secret
                .as_ref()
                .is_some_and(|s| s.expose() == crate::sandbox::SANDBOX_SECRET)
        {
            // The sandbox's built-in secret is nobody's AppSecret (those are 32 hex digits):
            // repeating it lets the advice work where it was given inline, as the sandbox's
            // banner shows. A real AppSecret is never printed.
            line = format!("{name}={} {line}", crate::sandbox::SANDBOX_SECRET);
        }
        match &self.api {
            // An assignment before the command: the name itself must not be quoted.
            Api::Remote {
                base,
                from_env: true,
                ..
            } => format!("{API_BASE_ENV}={} {line}", shell_words::quote(base)),
            _ => line,
        }
    }

    /// The `--limit` for the next run after this one recorded `used` recipients: what is
    /// left of this run's limit, or a new batch of the same size once it is used up.
    pub fn next_limit(&self, used: u64) -> Option<u64> {
        next_limit(self.limit, used)
    }
}

/// What is left of `limit` after `used` recipients, or a new batch of the same size once it
/// is used up.
pub fn next_limit(limit: Option<u64>, used: u64) -> Option<u64> {
    limit.map(|n| if used < n { n - used } else { n })
}
