//! wxpush: declarative WeChat push campaigns.
//!
//! A campaign YAML names a template, a CSV of recipients and the data fields as Tera
//! templates; wxpush validates all of it, previews it, then sends it through a rate-limited
//! concurrent dispatcher and writes a per-recipient CSV report that is also its journal.
//!
//! # Layout
//! Modules in pipeline order; every edge points up this list (`cargo modules`-style: no
//! module uses one below it), and the leaves use nothing of the crate:
//! - [`outcome`] (leaf): [`outcome::Status`] and [`outcome::Outcome`], a report row.
//! - [`timezone`] (leaf): the fixed UTC offset reports show times at.
//! - [`appendfile`] (leaf): append-only line files: torn-line cut, group fsync.
//! - [`wechat`] (leaf): the HTTP API: client, tokens, errcode table, message bodies, field rules.
//! - [`sandbox`] (leaf): the WeChat API emulator on 127.0.0.1; it imports nothing of the client.
//! - [`account`]: `accounts.yaml`, the accounts campaigns name (appid, token source, proxy).
//! - [`campaign`]: YAML → validated [`campaign::Campaign`] (templates/ merged here).
//! - [`recipients`]: streamed CSV rows, encodings, de-duplication.
//! - [`render`]: Tera compiled once → [`wechat::message::Outgoing`] bodies.
//! - [`dispatch`]: rate limit → concurrency → send → classify → retry → [`outcome::Outcome`];
//!   it records sends through its [`dispatch::Ledger`] trait.
//! - [`report`]: the CSV report: append + flush, read back to resume.
//! - [`journal`]: beside the report: its campaign, every send started before it leaves
//!   (it implements [`dispatch::Ledger`]), and the lock that allows one run per report.
//! - [`resume`]: report + journal → a decision (pure), then its actions.
//! - [`progress`]: progress bar or lines, and the summary.
//! - [`card`]: a message as the follower sees it (terminal card, HTML page).
//! - [`plan`]: a run, resolved: paths, API, secret, rate, resume options, advice commands.
//! - [`cli`]: clap definitions, lowered into a [`plan::Plan`].
//! - [`run`]: one driver per mode, wiring the stages together.

pub mod account;
pub mod appendfile;
pub mod campaign;
pub mod card;
pub mod cli;
pub mod dispatch;
pub mod journal;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod recipients;
pub mod render;
pub mod report;
pub mod resume;
pub mod run;
pub mod sandbox;
pub mod timezone;
pub mod wechat;

use std::process::ExitCode;

/// Everything that can end a command early. [`Error::exit_code`] is the one place that maps
/// errors to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Campaign(#[from] campaign::Error),
    #[error(transparent)]
    Accounts(#[from] account::Error),
    #[error(transparent)]
    Recipients(#[from] recipients::Error),
    #[error(transparent)]
    Render(#[from] render::Error),
    /// Several invalid rows: the first few, and how many more.
    #[error("{}{}", .0.join("\n"), more_rows(*.1))]
    Rows(Vec<String>, u64),
    /// Bad usage or environment (missing secret, no confirmation possible).
    #[error("{0}")]
    Usage(String),
    /// The report cannot be used to resume (another campaign's, a dry run's, corrupt).
    #[error(transparent)]
    Report(#[from] report::Error),
    #[error(transparent)]
    Resume(#[from] resume::Error),
    /// The report cannot be resumed as it is; `advice` holds the commands past it.
    #[error("{}{}", .0.0, .0.1)]
    Refused(Box<(resume::Refusal, String)>),
    #[error(transparent)]
    Journal(#[from] journal::Error),
    /// The run stopped before the end; the message says why and how to resume.
    #[error("{0}")]
    Aborted(String),
}

fn more_rows(more: u64) -> String {
    if more == 0 {
        String::new()
    } else {
        format!("\n… and {more} more invalid rows")
    }
}

impl Error {
    /// 1: the run aborted (resumable; another run holding the report is one). 2: invalid
    /// input or usage; nothing on disk changed. (A second Ctrl-C exits 1 too, from
    /// `run::interact`.)
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Campaign(_)
            | Error::Accounts(_)
            | Error::Recipients(_)
            | Error::Render(_)
            | Error::Rows(..)
            | Error::Usage(_) => 2,
            Error::Report(report::Error::Invalid { .. }) => 2,
            Error::Resume(
                resume::Error::Refused(_)
                | resume::Error::Recipients(_)
                | resume::Error::Report(report::Error::Invalid { .. })
                | resume::Error::Journal(journal::Error::Invalid { .. }),
            ) => 2,
            Error::Refused(_) => 2,
            Error::Resume(_)
            | Error::Journal(_)
            | Error::Report(report::Error::Io { .. })
            | Error::Aborted(_) => 1,
        }
    }
}

/// Lowers and runs a parsed command line; prints errors; returns the exit code.
pub fn main(cli: cli::Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wxpush: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    cli.output().install();
    let result = cli.lower().map(|plan| runtime.block_on(run::run(plan)));
    match result.and_then(|r| r) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxpush: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
