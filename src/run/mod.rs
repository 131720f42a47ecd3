//! The mode drivers: one function per [`Plan`], each wiring the pipeline stages in order.
//!
//! - `check`: the read-only modes, `check` and `preview`, and the validation pass that
//!   `send` shares with them.
//! - `send`: `send` and `send --dry-run`: decide, validate, confirm, authenticate, act,
//!   send, summarise.
//! - `test_send`: `send --to`, the campaign's message to a few chosen openids.
//! - `pipeline`: where the producer, the dispatcher and the report writer meet.
//! - `interact`: what the user reads and answers: the confirmation, Ctrl-C, announcements,
//!   refusals, aborts and the advice (each an exact command from the plan).
//! - `init`: `wxpush init`, an example campaign to start from.
//! - `accounts`: `wxpush accounts [test]`, the accounts file and a token for each.
//! - `followers`: `wxpush followers`, an Official Account's followers as a recipients CSV.
//! - `templates`: `wxpush templates pull` and `check --online`, the account's live templates.
//! - `results`: `wxpush report`, a report read back: totals, failures, who to retry.
//! - `sandbox`: `wxpush sandbox`.

/// `println!` for what a command exists to print (preview's cards, report's totals, a
/// completion script), which `--quiet` keeps. A closed pipe (`wxpush preview … | head`)
/// cannot turn it into a panic: the line is dropped, and the run goes on to its normal end
/// and exit code.
macro_rules! show {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`show!`] for what the user is told along the way (announcements, summaries, advice):
/// `--quiet` drops it.
macro_rules! say {
    ($($arg:tt)*) => {{
        if !$crate::progress::quiet() {
            show!($($arg)*);
        }
    }};
}

/// `eprintln!` for a note along the way that stays off stdout (which may hold JSON):
/// `--quiet` drops it. Warnings and errors are never notes.
macro_rules! note {
    ($($arg:tt)*) => {{
        if !$crate::progress::quiet() {
            eprintln!($($arg)*);
        }
    }};
}

/// Writes `bytes` to `out` (a page or CSV a person asked for) through a temporary file renamed
/// into place, refusing a path that names one of `inputs` (the campaign, its recipients, a
/// report or journal): an output never replaces what wxpush reads.
fn write_output(
    out: &std::path::Path,
    bytes: &[u8],
    inputs: &[&std::path::Path],
) -> Result<(), crate::Error> {
    let same = |a: &std::path::Path, b: &std::path::Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().is_ok_and(|b| a == b))
    };
    if let Some(input) = inputs.iter().find(|i| same(out, i)) {
        return Err(crate::Error::Usage(format!(
            "{} is {}, which wxpush reads: write to another path",
            out.display(),
            input.display()
        )));
    }
    let fail =
        |e: std::io::Error| crate::Error::Usage(format!("{}: cannot write: {e}", out.display()));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
}

/// `print!` with [`show!`]'s closed-pipe behaviour.
macro_rules! show_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// [`show_raw!`] that `--quiet` drops, like [`say!`].
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        if !$crate::progress::quiet() {
            show_raw!($($arg)*);
        }
    }};
}

mod accounts;
mod check;
mod followers;
mod init;
mod interact;
mod pipeline;
mod results;
mod sandbox;
mod send;
mod templates;
mod test_send;

use crate::Error;
use crate::plan::Plan;

pub async fn run(plan: Plan) -> Result<(), Error> {
    match plan {
        Plan::Check { campaign, online } => {
            check::check(&campaign)?;
            match online {
                Some(o) => templates::online(&campaign, &o).await,
                None => Ok(()),
            }
        }
        Plan::TemplatesPull(p) => templates::pull(&p).await,
        Plan::Followers(p) => followers::followers(&p).await,
        Plan::Init { name, mini } => init::init(&name, mini),
        Plan::Preview {
            campaign,
            pick,
            html,
        } => check::preview(&campaign, &pick, html.as_deref()),
        Plan::Send(p) => send::send(&p).await,
        Plan::Report {
            report,
            json,
            html,
            failed,
            campaign,
            accounts,
        } => results::report(
            &report,
            json,
            html.as_deref(),
            failed.as_deref(),
            campaign.as_deref(),
            accounts.as_deref(),
        ),
        Plan::Accounts { accounts, test } => accounts::accounts(&accounts, test.as_ref()).await,
        Plan::Sandbox { addr, knobs } => sandbox::serve(addr, knobs).await,
        Plan::Completions(shell) => {
            use clap::CommandFactory as _;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut crate::cli::Cli::command(), "wxpush", &mut out);
            show_raw!("{}", String::from_utf8_lossy(&out));
            Ok(())
        }
    }
}
