//! The command line: clap definitions, and [`Cli::lower`], which turns them into a
//! [`Plan`] before anything runs. Nothing downstream sees clap's types (but the shell of
//! `completions`, which only clap_complete reads).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::Error;
use crate::account;
use crate::campaign::{self, MAX_CONCURRENCY};
use crate::journal::RunKind;
use crate::plan::{
    API_BASE_ENV, AccountsTest, Api, FollowersPlan, Online, Plan, SendPlan, TemplatesPull,
    default_report,
};
use crate::resume;
use crate::sandbox::{self, Knobs};
use crate::wechat::{self, Secret};

/// The end of every `--help`: the environment and the exit codes, after the command's
/// examples.
macro_rules! footer {
    ($($example:literal),* $(,)?) => {
        concat!(
            "Examples:\n",
            $("  ", $example, "\n",)*
            "\nEnvironment:\n",
            "  WXPUSH_SECRET    the AppSecret (or the variable a campaign's `secret_env` names)\n",
            "  WXPUSH_API_BASE  the API base URL (default https://api.weixin.qq.com; a sandbox's\n",
            "                   http://127.0.0.1:PORT)\n",
            "  WXPUSH_ACCOUNTS  the accounts file (as --accounts; default: accounts.yaml beside\n",
            "                   the campaign or in a folder above)\n",
            "  HTTPS_PROXY, HTTP_PROXY, NO_PROXY  the way out, unless an account sets `proxy:`\n",
            "\nExit codes: 0 completed; 1 aborted (run the command it prints); 2 invalid input or\n",
            "usage (nothing sent, no file changed); 130 Ctrl-C before sending started.",
        )
    };
    // A command that talks to no account (init, completions, the sandbox itself).
    (local: $($example:literal),* $(,)?) => {
        concat!(
            "Examples:\n",
            $("  ", $example, "\n",)*
            "\nExit codes: 0 completed; 1 failed; 2 invalid input or usage (no file changed).",
        )
    };
}

/// Declarative WeChat push campaigns: validate, preview, then send through a rate-limited
/// dispatcher, with a per-recipient CSV report.
#[derive(Debug, Parser)]
#[command(name = "wxpush", version, about, long_about = None, after_help = footer!(
    "wxpush init spring-sale && wxpush send spring-sale.yaml --sandbox",
    "wxpush check campaigns/vocab-reminder.yaml",
))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only warnings, errors, questions and what the command exists to show (no
    /// progress, no summary).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: bool,
    /// Debug logs on stderr: requests and answers, tokens fetched (never the token),
    /// retries, resume decisions; -vv adds the request and answer bodies.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// The accounts file campaigns' `account:` names come from (default: accounts.yaml
    /// beside the campaign or in a folder above; also WXPUSH_ACCOUNTS).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub accounts: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented example campaign, its recipients CSV and its template, to start from.
    #[command(after_help = footer!(local: "wxpush init spring-sale", "wxpush init class-reminder --target mini"))]
    Init {
        /// The campaign's name: writes NAME.yaml, NAME.csv and templates/NAME.yaml here.
        name: String,
        /// Official Account template messages, or mini program subscribe messages.
        #[arg(long, value_enum, default_value = "official")]
        target: InitTarget,
    },
    /// Validate the campaign and every recipient row; send nothing.
    #[command(after_help = footer!("wxpush check campaigns/vocab-reminder.yaml"))]
    Check {
        /// The campaign YAML file.
        campaign: PathBuf,
        /// Also ask the account: its template `template_id` must exist, with exactly the
        /// campaign's data keys (needs the AppSecret or the account's token source).
        #[arg(long)]
        online: bool,
    },
    /// Show the first rendered messages, as they would be sent.
    #[command(after_help = footer!(
        "wxpush preview campaigns/class-subscribe.yaml --limit 5",
        "wxpush preview campaigns/class-subscribe.yaml --openid ogYQ75G33BMpuKOjKjIIOiFP7cF5",
        "wxpush preview campaigns/class-subscribe.yaml --html preview.html",
    ))]
    Preview {
        /// The campaign YAML file.
        campaign: PathBuf,
        /// How many messages to show.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
        /// Show the recipient of this data row (1 = the row after the header).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        row: Option<u64>,
        /// Show the recipient with this openid.
        #[arg(long, value_name = "ID")]
        openid: Option<String>,
        /// Write the messages as cards, styled like WeChat's, to one self-contained HTML page.
        #[arg(long, value_name = "PATH")]
        html: Option<PathBuf>,
    },
    /// Send the campaign (or resume it), writing a per-recipient report.
    #[command(after_help = footer!(
        "wxpush send campaigns/vocab-reminder.yaml --sandbox",
        "wxpush send campaigns/vocab-reminder.yaml --to o_my_own_openid",
        "wxpush send campaigns/vocab-reminder.yaml --limit 1000",
        "WXPUSH_SECRET=... wxpush send campaigns/vocab-reminder.yaml",
    ))]
    Send(SendArgs),
    /// Read a report: the campaign's totals over all its runs, failures by errcode, the
    /// recipients worth retrying.
    #[command(after_help = footer!(
        "wxpush report campaigns/reports/vocab-reminder.sandbox.csv",
        "wxpush report campaigns/reports/vocab-reminder.sandbox.csv --failed --json",
        "wxpush report campaigns/reports/vocab-reminder.sandbox.csv --html report.html",
    ))]
    Report {
        /// The report CSV (e.g. reports/NAME.csv beside the campaign).
        report: PathBuf,
        /// Print the totals as JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// Write the report as one self-contained page with charts (outcomes, sends over
        /// time with failures marked, errcodes).
        #[arg(long, value_name = "PATH")]
        html: Option<PathBuf>,
        /// Write the recipients worth retrying (never delivered: retries ran out, or refused
        /// for the campaign's data; not `unknown`) as a recipients CSV with their original
        /// columns (default: reports/retry/NAME.csv).
        #[arg(long, value_name = "PATH", num_args = 0..=1)]
        failed: Option<Option<PathBuf>>,
        /// The campaign the report belongs to (default: the campaign file of that name, one
        /// folder above the report).
        #[arg(long, value_name = "PATH")]
        campaign: Option<PathBuf>,
    },
    /// The account's templates: `templates pull` writes one template file for each.
    #[command(after_help = footer!(
        "wxpush templates pull",
        "wxpush templates pull --account brand-a --target mini --force",
    ))]
    Templates {
        #[command(subcommand)]
        action: TemplatesAction,
    },
    /// An Official Account's followers (or a tag's) as a recipients CSV.
    #[command(after_help = footer!(
        "wxpush followers --out followers.csv",
        "wxpush followers --account brand-a --tag VIP --exclude-blacklist --details --out vip.csv",
    ))]
    Followers {
        /// The account of accounts.yaml (default: its only one).
        #[arg(long)]
        account: Option<String>,
        /// Only the followers with this tag (its name or id).
        #[arg(long, value_name = "NAME|ID")]
        tag: Option<String>,
        /// The recipients CSV to write (replaced whole).
        #[arg(long, value_name = "PATH", default_value = "followers.csv")]
        out: PathBuf,
        /// Add subscribe_time, tagid_list and remark (one call per 100 followers); those
        /// who no longer follow are left out.
        #[arg(long)]
        details: bool,
        /// Leave out the blacklisted followers (WeChat answers 43019 for them).
        #[arg(long)]
        exclude_blacklist: bool,
        /// `mini`: refused, saying why (a mini program has no follower list).
        #[arg(long, value_enum)]
        target: Option<InitTarget>,
    },
    /// List the accounts of accounts.yaml; `accounts test [NAME]` fetches a token for each.
    #[command(after_help = footer!(
        "wxpush accounts",
        "wxpush accounts test",
        "wxpush accounts test brand-a --accounts ops/accounts.yaml",
    ))]
    Accounts {
        #[command(subcommand)]
        action: Option<AccountsAction>,
    },
    /// Run the WeChat API emulator on 127.0.0.1.
    #[command(after_help = footer!(local:
        "wxpush sandbox",
        "wxpush sandbox --templates templates",
        "wxpush sandbox --busy 0.03 --reset 0.01 --token-ttl 30s --strict",
    ))]
    Sandbox(SandboxArgs),
    /// Print a shell completion script: `wxpush completions bash > /etc/bash_completion.d/wxpush`.
    #[command(after_help = footer!(local:
        "wxpush completions bash >> ~/.bash_completion",
        "wxpush completions zsh > ~/.zfunc/_wxpush",
        "wxpush completions fish > ~/.config/fish/completions/wxpush.fish",
    ))]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplatesAction {
    /// List the account's templates and write templates/<template_id>.yaml for each
    /// (template_id, target, title, content and a `data:` skeleton); an existing file is
    /// left alone and listed as skipped, unless --force.
    #[command(after_help = footer!("wxpush templates pull", "wxpush templates pull --account brand-a --force"))]
    Pull {
        /// The account of accounts.yaml (default: its only one).
        #[arg(long)]
        account: Option<String>,
        /// An Official Account (its template messages and subscribe notifications), or a
        /// mini program (its subscribe messages).
        #[arg(long, value_enum)]
        target: Option<InitTarget>,
        /// Where the files go.
        #[arg(long, default_value = "templates")]
        dir: PathBuf,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsAction {
    /// Fetch a token for each account (or NAME) and print OK or the cause with what to do;
    /// never the token or the secret. Exits 1 when any account fails.
    #[command(after_help = footer!("wxpush accounts test", "wxpush accounts test brand-a"))]
    Test {
        /// Only this account (a `classic` one is tested only when named: fetching a classic
        /// token invalidates the one the account's other services use, 5 minutes later).
        name: Option<String>,
    },
}

/// What `init` writes an example of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitTarget {
    Official,
    Mini,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The campaign YAML file.
    pub campaign: PathBuf,
    /// Render everything and write the report with each payload; send nothing, fetch no token.
    #[arg(long)]
    pub dry_run: bool,
    /// Report path (default: reports/NAME.csv beside the campaign; NAME.sandbox.csv when
    /// sending to a sandbox, NAME.dry-run.csv for a dry run).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Send to at most N recipients in this run (the rest on the next run).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Messages per second (overrides the campaign's `rate`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Requests in flight at most (overrides the campaign's `concurrency`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENCY)))]
    pub concurrency: Option<u32>,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// If another run is sending with the same report, wait for it to end, then resume
    /// after it (not with --restart, --resend-unknown or --retry-failed: they would act on
    /// what the other run did).
    #[arg(long, conflicts_with_all = ["dry_run", "restart", "resend_unknown", "retry_failed"])]
    pub wait: bool,
    /// Send to a built-in WeChat emulator on 127.0.0.1 instead of WeChat; needs no AppSecret.
    #[arg(long)]
    pub sandbox: bool,
    /// Start a fresh report; the existing one (and its journal) is renamed, never overwritten.
    #[arg(long, conflicts_with = "dry_run")]
    pub restart: bool,
    /// Send again to the recipients recorded `unknown` (their message may have been delivered).
    #[arg(long, conflicts_with_all = ["dry_run", "restart"])]
    pub resend_unknown: bool,
    /// Send again to the recipients never delivered that may pass now: retries ran out (system
    /// busy, network errors) or refused for the campaign's data (47003, 50002); refusals for
    /// the recipient (not following, invalid openid…) are not retried.
    #[arg(long, conflicts_with_all = ["dry_run", "restart"])]
    pub retry_failed: bool,
    /// Resume although the recipients file changed (openids with a row are still skipped).
    #[arg(long, conflicts_with_all = ["dry_run", "restart"])]
    pub resume_changed: bool,
    /// A test send: only to these openids (comma-separated), with their own row's values, or
    /// the first row's; written to its own report (reports/test/NAME.csv), the campaign untouched.
    #[arg(
        long,
        value_name = "OPENID,...",
        value_delimiter = ',',
        num_args = 1..,
        conflicts_with_all = ["dry_run", "restart", "resend_unknown", "retry_failed", "resume_changed", "wait", "limit", "report"]
    )]
    pub to: Vec<String>,
    /// Start with a new token from the stable API (`force_refresh`): this invalidates the
    /// token every other service of the account is using. For when WeChat keeps rejecting
    /// the token it hands out.
    #[arg(long, conflicts_with_all = ["dry_run", "sandbox"])]
    pub force_refresh_token: bool,
    /// When the account's daily quota left (quota/get) is less than the recipients left,
    /// send what it allows and stop (exit 0; a later run resumes), instead of refusing.
    #[arg(long, conflicts_with_all = ["dry_run", "to"])]
    pub allow_partial: bool,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8960)]
    pub port: u16,
    /// AppSecret the sandbox accepts.
    #[arg(long, default_value = crate::sandbox::SANDBOX_SECRET)]
    pub secret: String,
    /// Token lifetime, e.g. 7200s, 2s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "7200s")]
    pub token_ttl: Duration,
    /// Fraction of sends answered -1 "system busy" (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub busy: f64,
    /// Fraction of sends processed whose answer is then lost (connection broken), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub reset: f64,
    /// Delay before each send is answered, e.g. 50ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Sends per second above which the sandbox answers 45009 "api freq out of limit".
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Accepted sends per day and send endpoint, then 45009 "reach max api daily quota
    /// limit" (default: 100,000 template messages, 10,000,000 subscribe ones).
    #[arg(long, value_name = "N")]
    pub daily_quota: Option<u64>,
    /// Openids starting with PREFIX fail with CODE, e.g. o_block=43004 (repeatable).
    #[arg(long, value_name = "PREFIX=CODE", value_parser = parse_fail)]
    pub fail: Vec<(String, i64)>,
    /// Answer the legacy mini program API with 45103, as WeChat has since 2020.
    #[arg(long)]
    pub legacy_retired: bool,
    /// Seed of the fault randomness and of the tokens (default: faults as with seed 0, tokens
    /// random, so every start mints its own and refuses an earlier start's with 40001).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Refuse undocumented and empty optional body fields (47001/47003) instead of ignoring
    /// them as WeChat does: for testing a client.
    #[arg(long)]
    pub strict: bool,
    /// GET /cgi-bin/token calls per day, then 45009.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub token_daily_limit: u64,
    /// The account's templates instead of the examples': a folder of template files
    /// (`templates/`, those with `template_id`, `title` and `content`), or a JSON or YAML
    /// file as WeChat lists them, with `template_list` (get_all_private_template) and `data`
    /// (wxaapi/newtmpl/gettemplate).
    #[arg(long, value_name = "DIR|FILE")]
    pub templates: Option<PathBuf>,
    /// The account's API IP whitelist (comma-separated): the token endpoints answer 40164
    /// to a caller not on it (every caller of the sandbox is 127.0.0.1).
    #[arg(long, value_name = "IP,...", value_delimiter = ',')]
    pub whitelist: Option<Vec<String>>,
    /// Followers of the account, for `wxpush followers`: o_follower_000001…; tag 100 `VIP`
    /// every 10th, tag 101 `新客` every 3rd, every 50th blacklisted.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub followers: u64,
}

/// The sandbox's template lists from a folder of template files (`templates/`): each one
/// with a `template_id`, `title` and `content` is listed, and its messages laid out, as
/// WeChat would.
fn registered(dir: &std::path::Path) -> Result<sandbox::Templates, Error> {
    let found = campaign::registered(dir)?;
    if found.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no template file with `template_id`, `title` and `content`",
            dir.display()
        )));
    }
    let mut templates = sandbox::Templates {
        template_list: Vec::new(),
        data: Vec::new(),
    };
    let mut seen: Vec<(bool, String, std::path::PathBuf)> = Vec::new();
    for t in found {
        if let Some((.., first)) = seen
            .iter()
            .find(|(sub, id, _)| *sub == t.subscribe && *id == t.template_id)
        {
            eprintln!(
                "wxpush: warning: {} has the template_id of {} ({}): their messages are laid \
                 out as {}'s; give each template its own ID",
                t.file.display(),
                first.display(),
                t.template_id,
                first.display()
            );
            continue;
        }
        seen.push((t.subscribe, t.template_id.clone(), t.file.clone()));
        match t.subscribe {
            true => templates.data.push(sandbox::SubscribeTemplate {
                pri_tmpl_id: t.template_id,
                title: t.title,
                content: t.content,
                example: String::new(),
                // A one-time subscription, as most are.
                kind: 2,
                keyword_enum_value_list: Vec::new(),
            }),
            false => templates.template_list.push(sandbox::PrivateTemplate {
                template_id: t.template_id,
                title: t.title,
                primary_industry: String::new(),
                deputy_industry: String::new(),
                content: t.content,
                example: String::new(),
            }),
        }
    }
    Ok(templates)
}

fn parse_fail(s: &str) -> Result<(String, i64), String> {
    let (prefix, code) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not PREFIX=CODE"))?;
    let code = code
        .parse()
        .map_err(|_| format!("`{code}` is not an errcode"))?;
    Ok((prefix.to_owned(), code))
}

impl Cli {
    /// How much the terminal is told (`--quiet`, `-v`), for every command alike.
    pub fn output(&self) -> crate::progress::Output {
        crate::progress::Output {
            quiet: self.quiet,
            verbose: self.verbose,
        }
    }

    /// Resolves the command line into a plan: loads the campaign (and its account), reads
    /// the environment, checks the API base. Changes nothing on disk.
    pub fn lower(self) -> Result<Plan, Error> {
        let accounts_arg = self.accounts;
        let accounts = accounts_arg
            .clone()
            .or_else(|| std::env::var_os(account::ENV).map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty());
        let accounts = accounts.as_deref();
        Ok(match self.command {
            Command::Init { name, target } => {
                // Written into YAML and file names unquoted: letters, digits, `-` and `_`.
                let plain = !name.is_empty()
                    && !name.starts_with('-')
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
                if !plain {
                    return Err(Error::Usage(format!(
                        "`{name}` is not a plain name (letters, digits, `-` and `_`)"
                    )));
                }
                Plan::Init {
                    name,
                    mini: target == InitTarget::Mini,
                }
            }
            Command::Check { campaign, online } => {
                let campaign = campaign::load(&campaign, accounts)?;
                let online = match online {
                    false => None,
                    true => {
                        let (base, _) = api_base()?;
                        let secret =
                            secret_for(&campaign.token, &campaign.secret_env, &campaign.appid)?;
                        Some(Online { base, secret })
                    }
                };
                Plan::Check { campaign, online }
            }
            Command::Templates {
                action:
                    TemplatesAction::Pull {
                        account,
                        target,
                        dir,
                        force,
                    },
            } => {
                let (a, secret, base) = one_account(accounts, account)?;
                Plan::TemplatesPull(TemplatesPull {
                    account: a,
                    secret,
                    base,
                    mini: target == Some(InitTarget::Mini),
                    dir,
                    force,
                })
            }
            Command::Preview {
                campaign,
                limit,
                row,
                openid,
                html,
            } => Plan::Preview {
                campaign: campaign::load(&campaign, accounts)?,
                pick: crate::plan::Pick { limit, row, openid },
                html,
            },
            Command::Send(args) => Plan::Send(Box::new(args.lower(accounts, accounts_arg)?)),
            Command::Report {
                report,
                json,
                html,
                failed,
                campaign,
            } => Plan::Report {
                report,
                json,
                html,
                failed: failed.map(Option::unwrap_or_default),
                campaign,
                accounts: accounts.map(Path::to_owned),
            },
            Command::Accounts { action } => {
                let file = account::find(Path::new("."), accounts)?;
                let all = account::load(&file)?;
                let test = match action {
                    None => None,
                    Some(AccountsAction::Test { name }) => {
                        if let Some(n) = &name {
                            all.named(n).map_err(Error::Usage)?;
                        }
                        let (base, _) = api_base()?;
                        let secrets = all
                            .accounts
                            .iter()
                            .map(|a| {
                                secret_for(&a.token, &a.secret_env, &a.appid)
                                    .map_err(|e| e.to_string())
                            })
                            .collect();
                        Some(AccountsTest {
                            base,
                            only: name,
                            secrets,
                            accounts_arg: accounts_arg.clone(),
                        })
                    }
                };
                Plan::Accounts {
                    accounts: all,
                    test,
                }
            }
            Command::Followers {
                account,
                tag,
                out,
                details,
                exclude_blacklist,
                target,
            } => {
                if target == Some(InitTarget::Mini) {
                    return Err(Error::Usage(
                        "a mini program has no follower list: its recipients come from its own \
                         data (its users' openids, with their subscriptions)"
                            .into(),
                    ));
                }
                let (a, secret, base) = one_account(accounts, account)?;
                Plan::Followers(FollowersPlan {
                    account: a,
                    secret,
                    base,
                    tag,
                    out,
                    details,
                    exclude_blacklist,
                })
            }
            Command::Sandbox(args) => args.lower()?,
            Command::Completions { shell } => Plan::Completions(shell),
        })
    }
}

impl SendArgs {
    fn lower(
        self,
        accounts: Option<&Path>,
        accounts_arg: Option<PathBuf>,
    ) -> Result<SendPlan, Error> {
        let c = campaign::load(&self.campaign, accounts)?;
        if self.force_refresh_token && c.token != campaign::TokenSource::Stable {
            return Err(Error::Usage(format!(
                "--force-refresh-token asks the stable token API for a new token; {} gets its \
                 token from {}",
                c.path.display(),
                c.token
            )));
        }
        let api = if self.dry_run {
            Api::None
        } else if self.sandbox {
            Api::InProcess
        } else {
            remote_api(&c)?
        };
        let run_kind = match &api {
            Api::None => RunKind::DryRun,
            Api::Remote { base, .. } if !wechat::is_loopback(base) => RunKind::WeChat,
            Api::InProcess | Api::Remote { .. } => RunKind::Sandbox,
        };
        let mut to: Vec<String> = Vec::new();
        for o in self.to.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            if !to.iter().any(|t| t == o) {
                to.push(o.to_owned());
            }
        }
        if !self.to.is_empty() && to.is_empty() {
            return Err(Error::Usage("--to names no openid".into()));
        }
        let report = self
            .report
            .clone()
            .unwrap_or_else(|| default_report(&c, run_kind, !to.is_empty()));
        Ok(SendPlan {
            rate: self.rate.unwrap_or(c.rate),
            concurrency: self.concurrency.map_or(c.concurrency, |n| n as usize),
            campaign: c,
            campaign_arg: self.campaign,
            accounts_arg,
            force_refresh_token: self.force_refresh_token,
            allow_partial: self.allow_partial,
            report,
            report_arg: self.report,
            run_kind,
            api,
            rate_arg: self.rate,
            concurrency_arg: self.concurrency,
            limit: self.limit,
            yes: self.yes,
            wait: self.wait,
            to,
            resume: resume::Options {
                restart: self.restart,
                resend_unknown: self.resend_unknown,
                retry_failed: self.retry_failed,
                resume_changed: self.resume_changed,
            },
        })
    }
}

/// The API base from the environment (default: WeChat's), checked, with its AppSecret.
fn remote_api(c: &campaign::Campaign) -> Result<Api, Error> {
    let (base, from_env) = api_base()?;
    let secret = secret_for(&c.token, &c.secret_env, &c.appid).map_err(|e| {
        Error::Usage(format!(
            "{e} (or rehearse with the built-in emulator: --sandbox)"
        ))
    })?;
    Ok(Api::Remote {
        base,
        from_env,
        secret,
    })
}

/// The account `name` of the accounts file (or its only one), its AppSecret if its token
/// source needs it, and the API base.
fn one_account(
    accounts: Option<&Path>,
    name: Option<String>,
) -> Result<(account::Account, Option<Secret>, String), Error> {
    let file = account::find(Path::new("."), accounts)?;
    let all = account::load(&file)?;
    let a = match name {
        Some(n) => all.named(&n).cloned().map_err(Error::Usage)?,
        None if all.accounts.len() == 1 => all.accounts[0].clone(),
        None => {
            return Err(Error::Usage(format!(
                "{} has {} accounts ({}): name one with --account",
                file.display(),
                all.accounts.len(),
                all.names().join(", ")
            )));
        }
    };
    let (base, _) = api_base()?;
    let secret = secret_for(&a.token, &a.secret_env, &a.appid)?;
    Ok((a, secret, base))
}

/// The AppSecret of `appid` from the variable `name`, when `token` calls WeChat's token API
/// (`None`: a command, URL or variable gives the token, with no AppSecret).
fn secret_for(
    token: &wechat::token::TokenSource,
    name: &str,
    appid: &str,
) -> Result<Option<Secret>, Error> {
    if token.api().is_none() {
        return Ok(None);
    }
    match std::env::var(name) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(Secret::new(s.trim().to_owned()))),
        Ok(_) => Err(Error::Usage(format!(
            "the environment variable {name} is empty: it must hold the AppSecret of {appid}"
        ))),
        Err(_) => Err(Error::Usage(format!(
            "the environment variable {name} is not set: it must hold the AppSecret of {appid}"
        ))),
    }
}

/// The API base: `WXPUSH_API_BASE` (checked), else WeChat's; whether it came from there.
fn api_base() -> Result<(String, bool), Error> {
    let from_env = std::env::var(API_BASE_ENV).ok().filter(|b| !b.is_empty());
    let base = from_env
        .clone()
        .unwrap_or_else(|| wechat::DEFAULT_API_BASE.to_owned());
    let is_url = ["http://", "https://"]
        .iter()
        .any(|s| base.to_ascii_lowercase().starts_with(s) && base.len() > s.len());
    if !is_url {
        return Err(Error::Usage(format!(
            "{API_BASE_ENV}={base}: not a URL; it is the API base, like {} (or leave it unset)",
            wechat::DEFAULT_API_BASE
        )));
    }
    if !wechat::is_safe_base(&base) {
        return Err(Error::Usage(format!(
            "{API_BASE_ENV}={base}: the AppSecret and tokens would cross the network unencrypted; \
             use https:// (plain http:// is allowed only for 127.0.0.1 and localhost)"
        )));
    }
    Ok((base, from_env.is_some()))
}

impl SandboxArgs {
    fn lower(self) -> Result<Plan, Error> {
        if ![self.busy, self.reset]
            .iter()
            .all(|r| (0.0..=1.0).contains(r))
        {
            return Err(Error::Usage(
                "--busy and --reset must be between 0 and 1".into(),
            ));
        }
        if self.secret.is_empty() {
            return Err(Error::Usage(
                "--secret is empty: a client cannot send an empty AppSecret".into(),
            ));
        }
        let templates = match &self.templates {
            None => sandbox::Templates::default(),
            Some(dir) if dir.is_dir() => registered(dir)?,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Usage(format!("{}: cannot read: {e}", path.display())))?;
                serde_yaml::from_str(&text)
                    .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
            }
        };
        Ok(Plan::Sandbox {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            knobs: Knobs {
                secret: self.secret,
                token_ttl: self.token_ttl,
                busy_ratio: self.busy,
                reset_ratio: self.reset,
                latency: self.latency,
                rate_limit: self.rate_limit,
                daily_quota: self.daily_quota,
                fail_prefixes: self.fail,
                legacy_retired: self.legacy_retired,
                seed: self.seed,
                mode: if self.strict {
                    sandbox::Mode::Strict
                } else {
                    sandbox::Mode::Tolerant
                },
                token_daily_limit: self.token_daily_limit,
                templates,
                ip_whitelist: self.whitelist,
                followers: self.followers,
                ..sandbox::Knobs::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Then;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("wxpush").chain(args.iter().copied()))
    }

    #[test]
    fn test_concurrency_range_is_the_campaign_s() {
        assert!(parse(&["send", "c.yaml", "--concurrency", "1024"]).is_ok());
        assert!(parse(&["send", "c.yaml", "--concurrency", "1025"]).is_err());
        assert!(parse(&["send", "c.yaml", "--concurrency", "0"]).is_err());
    }

    #[test]
    fn test_resume_flags_conflict_with_restart_and_dry_run() {
        for flag in ["--resend-unknown", "--retry-failed", "--resume-changed"] {
            assert!(
                parse(&["send", "c.yaml", "--restart", flag]).is_err(),
                "{flag}"
            );
            assert!(
                parse(&["send", "c.yaml", "--dry-run", flag]).is_err(),
                "{flag}"
            );
        }
        assert!(parse(&["send", "c.yaml", "--dry-run", "--restart"]).is_err());
        for flag in [
            "--dry-run",
            "--restart",
            "--resend-unknown",
            "--retry-failed",
        ] {
            assert!(
                parse(&["send", "c.yaml", flag, "--wait"]).is_err(),
                "{flag}"
            );
        }
        assert!(parse(&["send", "c.yaml", "--limit", "0"]).is_err());
    }

    fn plan(dir: &std::path::Path, args: &[&str]) -> SendPlan {
        std::fs::write(dir.join("people.csv"), "openid\no_1\n").unwrap();
        std::fs::write(
            dir.join("my c.yaml"),
            "name: n\ntarget: mini\nappid: wx0123456789abcdef\ntemplate_id: T\n\
             recipients: people.csv\ndata: { thing1: x }\n",
        )
        .unwrap();
        let campaign = dir.join("my c.yaml");
        let mut all = vec!["send", campaign.to_str().unwrap()];
        all.extend_from_slice(args);
        match parse(&all).unwrap().lower().unwrap() {
            Plan::Send(p) => *p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn advice_keeps_what_the_run_used_and_repeats_no_one_off_flag() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(
            dir.path(),
            &[
                "--sandbox",
                "--report",
                "out/my report.csv",
                "--rate",
                "20",
                "--concurrency",
                "4",
                "--limit",
                "50",
                "--restart",
                "--yes",
            ],
        );
        let c = shell_words::quote(dir.path().join("my c.yaml").to_str().unwrap()).into_owned();
        assert_eq!(
            p.command(Then::Resume, p.next_limit(20)),
            format!(
                "wxpush send {c} --report 'out/my report.csv' --sandbox --rate 20 \
                 --concurrency 4 --limit 30 --yes"
            )
        );
        assert_eq!(p.next_limit(50), Some(50), "a used-up limit: a new batch");
        assert!(
            p.command(Then::RetryFailed, None)
                .ends_with("--retry-failed --yes")
        );
        assert_eq!(p.report, std::path::Path::new("out/my report.csv"));
        assert_eq!(p.run_kind, RunKind::Sandbox);
    }

    /// Advice repeats the sandbox's built-in secret (nobody's AppSecret) only where it helps
    /// and a shell reads it: a sandbox run whose base came from the environment, under a
    /// variable name that is an assignment. Never any other secret.
    #[test]
    fn advice_repeats_only_the_sandbox_s_own_secret() {
        use crate::wechat::Secret;
        let dir = tempfile::tempdir().unwrap();
        let mut p = plan(dir.path(), &["--sandbox", "--yes"]);
        let remote = |secret: &str, from_env| Api::Remote {
            base: "http://127.0.0.1:9".into(),
            from_env,
            secret: Some(Secret::new(secret.into())),
        };
        p.api = remote(crate::sandbox::SANDBOX_SECRET, true);
        p.run_kind = RunKind::Sandbox;
        let line = p.command(Then::Resume, None);
        assert!(
            line.starts_with(
                "WXPUSH_API_BASE=http://127.0.0.1:9 WXPUSH_SECRET=sandbox-secret wxpush send"
            ),
            "{line}"
        );
        p.api = remote("0123456789abcdef0123456789abcdef", true);
        assert!(!p.command(Then::Resume, None).contains("SECRET="));
        p.api = remote(crate::sandbox::SANDBOX_SECRET, false);
        assert!(!p.command(Then::Resume, None).contains("SECRET="));
        p.api = remote(crate::sandbox::SANDBOX_SECRET, true);
        p.campaign.secret_env = "MY-SECRET".into();
        assert!(!p.command(Then::Resume, None).contains("SECRET="));
        p.campaign.secret_env = "WXPUSH_SECRET".into();
        p.run_kind = RunKind::WeChat;
        assert!(!p.command(Then::Resume, None).contains("SECRET="));
    }

    #[test]
    fn advice_never_pairs_flags_that_clap_refuses_together() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(
            dir.path(),
            &["--sandbox", "--resume-changed", "--retry-failed"],
        );
        for then in [
            Then::Resume,
            Then::Again,
            Then::Restart,
            Then::ResendUnknown,
        ] {
            let line = p.command(then, None);
            let words = shell_words::split(&line).unwrap();
            assert!(
                parse(&words[1..].iter().map(String::as_str).collect::<Vec<_>>()).is_ok(),
                "{line}"
            );
        }
        assert!(!p.command(Then::Restart, None).contains("--resume-changed"));
        assert!(p.command(Then::Again, None).contains("--retry-failed"));
        assert!(!p.command(Then::Resume, None).contains("--retry-failed"));
    }

    #[test]
    fn the_default_report_depends_on_where_the_run_sends() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), &["--sandbox"]);
        assert_eq!(p.report, dir.path().join("reports/n.sandbox.csv"));
        let p = plan(dir.path(), &["--dry-run"]);
        assert_eq!(p.report, dir.path().join("reports/n.dry-run.csv"));
        assert!(matches!(p.api, Api::None));
    }
}
