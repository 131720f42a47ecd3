//! Progress while a run goes, and the summary at its end.
//!
//! On a terminal: an indicatif bar (count, rate, ETA) on stderr. Otherwise (CI, a log file):
//! a plain line every `PLAIN_EVERY`. Both only consume outcome counts from the report
//! writer; nothing here is on the send path. The summary goes to stdout.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::outcome::Status;
use crate::report::Tally;
use crate::wechat::errcode;

/// Interval of the plain progress lines when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Redraw interval of the progress bar (and of its rate message).
const BAR_TICK: Duration = Duration::from_millis(200);

/// `--quiet`: no progress, and no messages along the way ([`Output::install`]).
static QUIET: AtomicBool = AtomicBool::new(false);
/// `-v`: debug logs on stderr, which a bar would draw over.
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// How much the terminal is told, from the global `--quiet` and `-v` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Output {
    /// Only warnings, errors, questions and what a command exists to print.
    pub quiet: bool,
    /// 1: wxpush's debug logs (requests and answers, tokens fetched, retries, resume
    /// decisions; never a secret or a token); 2: trace, with the request and answer bodies.
    pub verbose: u8,
}

impl Output {
    /// Applies it to this process, once, before the plan runs.
    pub fn install(self) {
        QUIET.store(self.quiet, Ordering::Relaxed);
        VERBOSE.store(self.verbose > 0, Ordering::Relaxed);
        if self.verbose == 0 {
            return;
        }
        let level = match self.verbose {
            1 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        };
        // wxpush's own events only: the HTTP stack's would bury them.
        let filter = tracing_subscriber::filter::Targets::new().with_target("wxpush", level);
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour);
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        // Fails only when a subscriber is already set (a test's): then that one logs.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .try_init();
    }
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The bar on the terminal now, so that a message that must be read (Ctrl-C's) can take it
/// off the screen first: a bar redrawn under it would overwrite it.
static ON_SCREEN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Takes the progress bar off the terminal for good (it is not drawn again in this run).
pub fn off_screen() {
    let bar = ON_SCREEN.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(bar) = bar {
        bar.finish_and_clear();
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// Progress of one run over `total` recipients.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    problems: u64,
    started: Instant,
    /// When the last plain line (or bar message) was made.
    last_line: Instant,
}

impl Progress {
    pub fn new(total: u64) -> Self {
        let bar = (std::io::stderr().is_terminal() && !quiet() && !VERBOSE.load(Ordering::Relaxed))
            .then(|| {
                let bar = ProgressBar::new(total);
                // The template is a constant that parses.
                let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.enable_steady_tick(BAR_TICK);
                *ON_SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
                bar
            });
        Progress {
            bar,
            total,
            done: 0,
            problems: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// One more outcome.
    pub fn record(&mut self, status: Status) {
        self.done += 1;
        if matches!(status, Status::Failed | Status::Unknown) {
            self.problems += 1;
        }
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                // The bar redraws every BAR_TICK: formatting the message more often is waste.
                if self.last_line.elapsed() >= BAR_TICK {
                    self.last_line = Instant::now();
                    let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                    let mut msg = format!("{rate:.0}/s");
                    if self.problems > 0 {
                        msg.push_str(&format!(", {} failed or unknown", self.problems));
                    }
                    bar.set_message(msg);
                }
            }
            None if self.last_line.elapsed() >= PLAIN_EVERY && !quiet() => {
                self.last_line = Instant::now();
                let secs = self.started.elapsed().as_secs_f64();
                let rate = self.done as f64 / secs.max(1e-9);
                let eta = (self.total.saturating_sub(self.done)) as f64 / rate.max(1e-9);
                eprintln!(
                    "progress: {}/{} ({:.0}%), {} failed or unknown, {:.1}/s, ETA {}",
                    self.done,
                    self.total,
                    100.0 * self.done as f64 / self.total.max(1) as f64,
                    self.problems,
                    rate,
                    humantime::format_duration(Duration::from_secs(eta.round() as u64)),
                );
            }
            None => {}
        }
    }

    pub fn finish(self) {
        if self.bar.is_some() {
            off_screen();
        }
    }
}

/// Thousands separators, as a person reads counts.
/// `1 row`, `2,004 rows`: a count and its noun, plural when it is not 1.
pub fn counted(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{} {noun}s", thousands(n)),
    }
}

pub fn thousands(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// What the summary says besides the counts.
pub struct Facts<'a> {
    pub title: String,
    pub started: Instant,
    /// A real run (a dry run sends no request, so it has no rate).
    pub sending: bool,
    pub rate_limit: u32,
    pub report: &'a Path,
}

/// The end-of-run summary: counts by status, problems by errcode with their meaning, time,
/// achieved rate, and where the report is.
pub fn summary(tally: &Tally, facts: &Facts<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", facts.title);
    for status in [
        Status::Sent,
        Status::Failed,
        Status::Unknown,
        Status::Skipped,
        Status::DryRun,
    ] {
        let n = tally.count(status);
        let always = matches!(status, Status::Sent | Status::Failed) && facts.sending;
        if n == 0 && !always {
            continue;
        }
        let note = match status {
            Status::Sent => "accepted (errcode 0)",
            Status::Failed => "see errcode and errmsg in the report",
            Status::Unknown => "no answer: may or may not have been delivered",
            Status::Skipped => "repeated openid, sent once",
            Status::DryRun => "rendered, not sent",
        };
        let _ = writeln!(s, "  {:<8} {:>10}  {note}", status.as_str(), thousands(n));
    }
    for (code, (n, example)) in &tally.problems {
        let (code, meaning) = match code {
            Some(c) => (c.to_string(), errcode::meaning(*c)),
            None => ("-".to_owned(), "no WeChat answer"),
        };
        let _ = writeln!(
            s,
            "    {code:>6} ×{:<8} {meaning} (e.g. {example:?})",
            thousands(*n)
        );
    }
    let secs = facts.started.elapsed().as_secs_f64();
    let _ = write!(s, "  took {:.1} s", secs);
    if facts.sending {
        let _ = write!(s, ", {}", counted(tally.attempts, "request"));
        // Under a second, a rate says more about the burst allowance than about the pace.
        if secs >= 1.0 {
            let rate = tally.count(Status::Sent) as f64 / secs;
            let _ = write!(s, ", {rate:.1} msgs/s");
        }
        let _ = write!(s, " (limit {}/s)", facts.rate_limit);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "  report: {}", facts.report.display());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
