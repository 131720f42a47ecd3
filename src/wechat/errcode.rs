//! Every WeChat errcode wxpush knows, in one table: what it means and what a bulk sender does
//! about it (wechat-api.md §5). `dispatch` acts on the [`Action`]; the summary and the report
//! show the meaning. Changing how a code is handled is a one-line edit here.

use std::time::Duration;

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Accepted by WeChat.
    Done,
    /// Transient: retry with jittered exponential backoff (bounded).
    Retry,
    /// This recipient is throttled: wait at least this long, then retry it.
    RetryAfter(Duration),
    /// The whole account is throttled: pause every send this long, then retry.
    Pause(Duration),
    /// The access token was rejected: refresh it (once, for all workers) and retry.
    RefreshToken,
    /// This recipient cannot get the message: record it and go on.
    RecipientFailed,
    /// Every further send would fail the same way: stop the run (it stays resumable).
    Abort,
}

/// How long 45011 ("api minute-quota reach limit, must slower, retry next minute") pauses
/// all sends, and 43117 ("sending messages to this openid too frequently") waits.
pub const MINUTE_QUOTA_PAUSE: Duration = Duration::from_secs(60);
/// How long the old-style 45009 "api freq out of limit" pauses all sends.
pub const FREQ_PAUSE: Duration = Duration::from_secs(1);

use Action::*;

/// `(errcode, action, meaning)`. The meaning is what a marketer reads in the summary.
const TABLE: &[(i64, Action, &str)] = &[
    (-1, Retry, "WeChat system busy"),
    (0, Done, "ok"),
    (40001, RefreshToken, "access token invalid or superseded"),
    (40002, Abort, "invalid grant_type"),
    (
        40003,
        RecipientFailed,
        "invalid openid (not a user of this account)",
    ),
    (
        40013,
        Abort,
        "invalid appid (or miniprogram.appid not bound to the account)",
    ),
    (40014, RefreshToken, "invalid access token"),
    (40033, Abort, "invalid charset in request (client bug)"),
    (40037, Abort, "invalid template_id"),
    (40125, Abort, "invalid AppSecret"),
    (
        40164,
        Abort,
        "caller IP not in the account's API IP whitelist",
    ),
    (40243, Abort, "AppSecret frozen in the admin console"),
    (41001, Abort, "access token missing (client bug)"),
    (41002, Abort, "appid missing"),
    (41004, Abort, "AppSecret missing"),
    (41028, RecipientFailed, "form_id invalid or expired"),
    (41029, RecipientFailed, "form_id already used"),
    (
        41030,
        Abort,
        "page does not exist in the released mini program",
    ),
    (42001, RefreshToken, "access token expired"),
    (43001, Abort, "GET required (client bug)"),
    (43002, Abort, "POST required (client bug)"),
    (43003, Abort, "HTTPS required"),
    (
        43004,
        RecipientFailed,
        "recipient does not follow the account",
    ),
    (
        43019,
        RecipientFailed,
        "recipient is blacklisted by the account",
    ),
    (
        43101,
        RecipientFailed,
        "user refused or has no subscription left",
    ),
    (43116, Abort, "template banned"),
    (
        43117,
        RetryAfter(MINUTE_QUOTA_PAUSE),
        "sending to this openid too frequently",
    ),
    (44002, Abort, "empty POST body (client bug)"),
    (45009, Abort, "daily API quota reached"),
    (
        45011,
        Pause(MINUTE_QUOTA_PAUSE),
        "per-minute API quota reached",
    ),
    (45047, RecipientFailed, "message count limit for this user"),
    (45065, Abort, "clientmsgid already used"),
    (45066, Abort, "clientmsgid retried too fast"),
    (45067, Abort, "clientmsgid too long"),
    (45103, Abort, "API retired by WeChat"),
    (45109, Abort, "API withdrawn by WeChat"),
    (47001, Abort, "malformed request body (client bug)"),
    (47003, RecipientFailed, "template data invalid"),
    (48001, Abort, "API not authorized for this account"),
    (48004, Abort, "API banned for this account"),
    (48006, Abort, "quota reset limit reached"),
    (50001, Abort, "API not authorized"),
    (50002, RecipientFailed, "user limited"),
    (
        61007,
        Abort,
        "API not authorized for this third-party platform",
    ),
    (89503, Abort, "IP needs the admin's confirmation"),
    (89506, Abort, "IP rejected by the admin (retry in 24 h)"),
    (89507, Abort, "IP rejected by the admin (retry in 1 h)"),
];

/// What to do about an answer. `errmsg` matters only where WeChat reuses a code.
pub fn classify(errcode: i64, errmsg: &str) -> Action {
    match errcode {
        // 45009 is the daily quota ("reach max api daily quota limit"), except in old docs where
        // it means "api freq out of limit": that one passes, so back off like a minute quota.
        45009 if !errmsg.contains("daily") => Pause(FREQ_PAUSE),
        // Unknown codes: record the recipient as failed; the summary groups them by code, and
        // the run goes on (a wrong guess costs one row, not the campaign).
        _ => entry(errcode).map_or(RecipientFailed, |e| e.1),
    }
}

/// Codes whose failure, repeated for many recipients in a row, is about the campaign rather
/// than the recipients (a template field every row fills wrongly; an account restriction).
/// Nothing was delivered, and a fix on the campaign's side can make them pass: they are
/// also the refusals `--retry-failed` sends again.
pub fn suspicious_when_repeated(errcode: i64) -> bool {
    matches!(errcode, 47003 | 50002)
}

/// Whether the table knows `errcode`.
pub fn is_known(errcode: i64) -> bool {
    entry(errcode).is_some()
}

/// What an errcode means, for summaries and reports.
pub fn meaning(errcode: i64) -> &'static str {
    entry(errcode).map_or("unknown errcode", |e| e.2)
}

fn entry(errcode: i64) -> Option<&'static (i64, Action, &'static str)> {
    TABLE.iter().find(|e| e.0 == errcode)
}

/// What the user can do about an error that aborts the run.
pub fn advice(errcode: i64) -> Option<&'static str> {
    Some(match errcode {
        40013 | 41002 => {
            "check `appid` in the campaign (and `miniprogram.appid`: it must be bound to the account)"
        }
        40125 | 40001 | 41004 => {
            "check the AppSecret in the environment variable named by `secret_env`"
        }
        40164 => {
            "add this machine's IP (shown in the message) to the API IP whitelist: 公众号后台 → 设置与开发 → 基本配置"
        }
        40037 => "check `template_id`: it must be a template of this account",
        45009 => "the daily quota is used up; resume tomorrow with the command below",
        45103 | 45109 => {
            "this API is retired or not open to this account: the legacy mini program API is \
             retired (use `mini_api: subscribe`), and subscribe notifications \
             (`official_api: subscribe`) need an Official Account's appid, not a mini program's"
        }
        61007 => {
            "the account has not authorized this API for the third-party platform whose token \
             this is: send with the account's own AppSecret, or authorize the API"
        }
        41030 => "check `page`: it must exist in the released version of the mini program",
        48001 | 50001 | 48004 => {
            "the account is not authorized for this API (verified service account / mini program needed)"
        }
        89503 | 89506 | 89507 => {
            "the account admin must approve this machine's IP in the WeChat admin console"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once() {
        for (i, e) in TABLE.iter().enumerate() {
            assert!(TABLE[..i].iter().all(|p| p.0 != e.0), "{} twice", e.0);
        }
    }

    #[test]
    fn the_actions_of_the_brief() {
        assert_eq!(classify(0, "ok"), Done);
        assert_eq!(classify(-1, "system error"), Retry);
        for c in [40001, 40014, 42001] {
            assert_eq!(classify(c, ""), RefreshToken, "{c}");
        }
        for c in [40003, 43004, 43101, 41028, 41029, 47003] {
            assert_eq!(classify(c, ""), RecipientFailed, "{c}");
        }
        for c in [40013, 40125, 40164, 40037, 41030, 48001, 45103, 61007] {
            assert_eq!(classify(c, ""), Abort, "{c}");
        }
        assert_eq!(
            classify(45009, "reach max api daily quota limit rid: x"),
            Abort
        );
        assert_eq!(classify(45009, "api freq out of limit"), Pause(FREQ_PAUSE));
        assert_eq!(classify(45011, ""), Pause(MINUTE_QUOTA_PAUSE));
        assert_eq!(classify(43117, ""), RetryAfter(MINUTE_QUOTA_PAUSE));
        assert_eq!(classify(99999, ""), RecipientFailed);
    }
}
