//! What happened to one recipient: the [`Outcome`] that dispatch produces and the report
//! records, and its [`Status`]. A leaf: it depends on no other module of the crate.
//!
//! A reason dispatch decides (its retries ran out) is a typed field, [`Outcome::gave_up`];
//! its text is formatted here when the row is written and recognised here when the report
//! is read back, so one module owns both sides of it.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// A recipient's status in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// WeChat accepted the message (errcode 0). Accepted, not necessarily delivered.
    Sent,
    /// WeChat refused it for this recipient, or retries ran out.
    Failed,
    /// A dry run: nothing was sent.
    DryRun,
    /// Not sent: a repeated openid.
    Skipped,
    /// The request may have reached WeChat but no answer came back.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::DryRun => "dry_run",
            Status::Skipped => "skipped",
            Status::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "dry_run" => Status::DryRun,
            "skipped" => Status::Skipped,
            "unknown" => Status::Unknown,
            _ => return None,
        })
    }
}

/// What happened to one recipient: a report row.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub row: u64,
    pub openid: String,
    pub status: Status,
    pub errcode: Option<i64>,
    /// WeChat's errmsg (or the transport error) of the last attempt.
    pub errmsg: String,
    pub msgid: Option<u64>,
    pub attempts: u32,
    /// Retries ran out (system busy, network errors): worth sending again later.
    pub gave_up: bool,
    pub sent_at: Option<SystemTime>,
    pub latency: Option<Duration>,
    /// The exact body (dry runs only).
    pub payload: Option<Bytes>,
}

/// How the errmsg of a row whose retries ran out starts.
const GAVE_UP: &str = "gave up after ";

impl Outcome {
    /// An outcome for a recipient that was not sent.
    pub fn unsent(row: u64, openid: String, status: Status, errmsg: String) -> Self {
        Outcome {
            row,
            openid,
            status,
            errcode: None,
            errmsg,
            msgid: None,
            attempts: 0,
            gave_up: false,
            sent_at: None,
            latency: None,
            payload: None,
        }
    }

    /// The errmsg as the report shows it: `gave up after N attempts: …` when retries ran out
    /// (never delivered), `an answer was lost, then gave up after N attempts: …` when one of
    /// them may have been.
    pub fn report_errmsg(&self) -> Cow<'_, str> {
        match (self.gave_up, self.status) {
            (false, _) => Cow::Borrowed(&self.errmsg),
            (true, Status::Unknown) => Cow::Owned(format!(
                "an answer was lost, then {GAVE_UP}{} attempts: {}",
                self.attempts, self.errmsg
            )),
            (true, _) => Cow::Owned(format!(
                "{GAVE_UP}{} attempts: {}",
                self.attempts, self.errmsg
            )),
        }
    }
}

/// Whether a report row's errmsg says its retries ran out ([`Outcome::report_errmsg`]).
pub fn is_gave_up(report_errmsg: &str) -> bool {
    report_errmsg.starts_with(GAVE_UP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [
            Status::Sent,
            Status::Failed,
            Status::DryRun,
            Status::Skipped,
            Status::Unknown,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_gave_up_errmsg_is_recognised_and_no_other() {
        let mut o = Outcome::unsent(1, "o".into(), Status::Failed, "system error".into());
        assert!(!is_gave_up(&o.report_errmsg()));
        o.attempts = 6;
        o.gave_up = true;
        assert_eq!(o.report_errmsg(), "gave up after 6 attempts: system error");
        assert!(is_gave_up(&o.report_errmsg()));
        assert!(!is_gave_up("system error: gave up after 6 attempts"));
        // One answer lost: not a never-delivered failure.
        o.status = Status::Unknown;
        assert!(!is_gave_up(&o.report_errmsg()));
    }
}
