//! The command line: clap definitions only. `commands` turns them into runs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Declarative WeChat push campaigns: validate, preview, then send through a rate-limited
/// dispatcher, with a per-recipient CSV report.
#[derive(Debug, Parser)]
#[command(name = "wxpush", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the campaign and every recipient row; send nothing.
    Check {
        /// The campaign YAML file.
        campaign: PathBuf,
    },
    /// Show the first rendered messages, as they would be sent.
    Preview {
        /// The campaign YAML file.
        campaign: PathBuf,
        /// How many messages to show.
        #[arg(long, default_value_t = 3)]
        limit: u64,
    },
    /// Send the campaign (or resume it), writing a per-recipient report.
    Send(SendArgs),
    /// Run the WeChat API emulator on 127.0.0.1.
    Sandbox(SandboxArgs),
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
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: Option<u32>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Send to a built-in WeChat emulator on 127.0.0.1 instead of WeChat; needs no AppSecret.
    #[arg(long)]
    pub sandbox: bool,
    /// Start a fresh report; the existing one (and its journal) is renamed, never overwritten.
    #[arg(long, conflicts_with = "dry_run")]
    pub restart: bool,
    /// Send again to the recipients recorded `unknown` (their message may have been delivered).
    #[arg(long, conflicts_with_all = ["dry_run", "restart"])]
    pub resend_unknown: bool,
    /// Send again to the recipients whose retries ran out (system busy, network errors);
    /// refusals for the recipient (not following, invalid openid…) are not retried.
    #[arg(long, conflicts_with_all = ["dry_run", "restart"])]
    pub retry_failed: bool,
    /// Resume although the recipients file changed (openids with a row are still skipped).
    #[arg(long, conflicts_with_all = ["dry_run", "restart"])]
    pub resume_changed: bool,
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
    /// Accepted sends per day, then 45009 "reach max api daily quota limit".
    #[arg(long, value_name = "N")]
    pub daily_quota: Option<u64>,
    /// Openids starting with PREFIX fail with CODE, e.g. o_block=43004 (repeatable).
    #[arg(long, value_name = "PREFIX=CODE", value_parser = parse_fail)]
    pub fail: Vec<(String, i64)>,
    /// Answer the legacy mini program API with 45103, as WeChat has since 2020.
    #[arg(long)]
    pub legacy_retired: bool,
    /// Seed of the fault randomness.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
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
