//! `wxpush init` and `preview`: what a marketer starts from and looks at (issue 13).

use crate::support::*;
use crate::wx_snapshot;

/// `init` writes three files that pass `check`; its printed next steps run as printed (the
/// send on a terminal, answered yes) and deliver each sample recipient once, in the
/// in-process sandbox. A second `init` of the name writes nothing.
#[test]
fn init_writes_a_campaign_whose_printed_steps_work() {
    for target in ["official", "mini"] {
        let w = Workdir::new();
        let run = w
            .cmd(&["init", "notice", "--target", target])
            .run()
            .expect(0);
        let steps: Vec<&str> = run
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("wxpush "))
            .collect();
        assert_eq!(steps.len(), 3, "{}", run.stdout);
        w.run_advice_without_secret(steps[0])
            .expect(0)
            .stdout_has("3 rows: 3 recipients")
            // The ID to replace is in the template file, and the warning says so.
            .stderr_has("`template_id` (in templates/notice.yaml) is still the placeholder");
        w.run_advice_without_secret(steps[1])
            .expect(0)
            .stdout_has("【");
        let send: Vec<String> = shell_words::split(steps[2]).unwrap();
        assert_eq!(send[..2], ["wxpush", "send"]);
        let args: Vec<&str> = send[1..].iter().map(String::as_str).collect();
        let (code, shown) = Prompted::start_with(&w, &[], &args).answer("y\n");
        assert_eq!(code, 0, "{shown}");
        let rows = w.report("reports/notice.sandbox.csv");
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");

        let before = w.read("notice.yaml");
        w.cmd(&["init", "notice"])
            .run()
            .expect(2)
            .stderr_has("notice.yaml exists: nothing was written");
        assert_eq!(w.read("notice.yaml"), before);
    }
}

/// Cards when the template's content is known, for a chosen row or openid; a row that does
/// not render is shown with its error and the preview goes on.
#[test]
fn preview_shows_cards_picks_rows_and_shows_invalid_ones() {
    let w = Workdir::with_examples();
    wx_snapshot!(
        "preview_card",
        w.cmd(&[
            "preview",
            "campaigns/vocab-reminder-mini.yaml",
            "--limit",
            "1"
        ])
        .run()
        .expect(0)
    );
    w.cmd(&[
        "preview",
        "campaigns/class-subscribe.yaml",
        "--openid",
        "ogYQ75G33BMpuKOjKjIIOiFP7cF5",
    ])
    .run()
    .expect(0)
    .stdout_has("row 2 · ogYQ75G33BMpuKOjKjIIOiFP7cF5")
    .stdout_has("课程名称:雅思学习第三课时");
    w.cmd(&["preview", "campaigns/class-subscribe.yaml", "--row", "9"])
        .run()
        .expect(2)
        .stderr_has("no row 9 (the last data row is 3)");
    let csv = w.read("campaigns/class-subscribe.csv");
    w.write(
        "campaigns/class-subscribe.csv",
        csv.replacen("2019年5月18日 13:00", "明天", 1),
    );
    let run = w
        .cmd(&["preview", "campaigns/class-subscribe.yaml"])
        .run()
        .expect(0);
    assert!(run.stdout.contains("✗ not sendable"), "{}", run.stdout);
    assert!(
        run.stdout.contains("温馨提示:小雨同学,别迟到哦"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 message shown cannot be sent"),
        "{}",
        run.stdout
    );
}

/// Issue 13 §4: `--to` sends the campaign's message to chosen openids only (their own row's
/// values, or the first row's), into its own report; the campaign is untouched, and the
/// printed command for the campaign itself then sends everyone once, with no `--restart`.
#[test]
fn a_test_send_goes_to_the_chosen_openids_only_and_leaves_the_campaign_alone() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 3, "rate: 1000\ntarget: mini\n");
    // Without a terminal: refused, and the advice is still a test send.
    w.cmd(&["send", "c.yaml", "--to", "o_me"])
        .against(&sb)
        .run()
        .expect(2)
        .stderr_has("wxpush send c.yaml --to o_me --yes");
    let run = w
        .cmd(&["send", "c.yaml", "--to", "o_me,o_test_00002", "--yes"])
        .against(&sb)
        .run()
        .expect(0)
        .stdout_has("(1 with the values of row 1, the first)");
    let me = sb.accepted_bodies("o_me");
    assert_eq!(me.len(), 1);
    assert_eq!(me[0]["data"]["thing1"]["value"], "用户1你好");
    let two = sb.accepted_bodies("o_test_00002");
    assert_eq!(two[0]["data"]["thing1"]["value"], "用户2你好");
    assert_eq!(sb.stats().accepted, 2);
    let tests = w.report("reports/test/gen.sandbox.csv");
    assert_eq!(tests.len(), 2, "{tests:?}");
    assert!(!w.path("reports/gen.sandbox.csv").exists());
    // The campaign itself, as printed: everyone once (o_test_00002 has had a test too).
    let campaign = run.expect_advice("to send the campaign itself: ");
    assert!(!campaign.contains("--to"), "{campaign}");
    // It asks before sending to everyone (the test's --yes is not carried over): on a
    // terminal, answered yes.
    assert!(!campaign.contains("--yes"), "{campaign}");
    let words = shell_words::split(&campaign).unwrap();
    let at = words.iter().position(|w| w == "wxpush").unwrap();
    let env: Vec<(&str, &str)> = words[..at]
        .iter()
        .map(|a| a.split_once('=').unwrap())
        .collect();
    let args: Vec<&str> = words[at + 1..].iter().map(String::as_str).collect();
    let (code, shown) = Prompted::start_with(&w, &env, &args).answer("y\n");
    assert_eq!(code, 0, "{shown}");
    assert_eq!(w.report("reports/gen.sandbox.csv").len(), 3);
    assert_eq!(sb.accepted_bodies("o_test_00002").len(), 2);
    assert_eq!(sb.stats().accepted, 5);
}

fn run_summary_counts(run: &Run, needle: &str) {
    assert!(run.stdout.contains(needle), "{needle:?} in\n{}", run.stdout);
}

/// A test send that aborts says what a test is: nothing to resume, and its command, run
/// verbatim, sends every test message again (counted at the sandbox).
#[test]
fn an_aborted_test_send_offers_the_test_again_not_a_resume() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_me".into(), 40037)],
        ..Knobs::default()
    });
    generated(&w, 3, "rate: 1000\ntarget: mini\nconcurrency: 1\n");
    let run = w
        .cmd(&["send", "c.yaml", "--to", "o_me", "--yes"])
        .against(&sb)
        .run()
        .expect(1)
        .stderr_has("nothing of the test sent; the campaign's own report is not touched");
    assert!(!run.stderr.contains("resume"), "{}", run.stderr);
    let again = run
        .advice("to test again (every test message is sent again): ")
        .expect("the test's command");
    assert_eq!(sb.stats().send_requests, 1);
    // The test's report says what became of it: never a stale row passing for this test.
    let rows = w.report("reports/test/gen.sandbox.csv");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["errcode"].as_str()),
        ("failed", "40037")
    );
    run_summary_counts(&run, "failed            1");
    w.run_advice(&again).expect(1);
    assert_eq!(sb.stats().send_requests, 2);
    assert_eq!(w.report("reports/test/gen.sandbox.csv").len(), 2);
    assert!(!w.path("reports/gen.sandbox.csv").exists());
}

/// Issue 13 §6: `wxpush report` reads a report back: totals over all its runs, failures by
/// errcode with what to do, `--json`, and `--failed` writes the recipients worth retrying
/// (retries ran out, or `unknown`; not "does not follow") with their original columns.
#[test]
fn report_reads_totals_and_writes_the_recipients_worth_retrying() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_test_00001".into(), 43004), ("o_test_00002".into(), -1)],
        ..Knobs::default()
    });
    generated(&w, 6, "rate: 1000\ntarget: mini\n");
    w.send(&sb, &["--limit", "4"]).expect(0);
    w.send(&sb, &[]).expect(0);
    let text = w
        .cmd(&["report", "reports/gen.sandbox.csv"])
        .run()
        .expect(0)
        .stdout;
    for needle in [
        "campaign `gen`",
        "sent             4",
        "failed           2",
        "43004 ×1      recipient does not follow the account",
        "-1 ×1      WeChat system busy: never delivered",
        "+08:00",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    let json = w
        .cmd(&["report", "reports/gen.sandbox.csv", "--json", "--failed"])
        .run()
        .expect(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!((v["rows"].as_u64(), v["sent"].as_u64()), (Some(6), Some(4)));
    assert_eq!(v["retryable"], 1);
    assert!(
        json.stderr.contains("wrote 1 recipient worth retrying"),
        "{}",
        json.stderr
    );
    assert_eq!(
        w.read("reports/retry/gen.csv"),
        "\u{feff}openid,name\no_test_00002,用户2\n"
    );
}

/// Issue 13 §6: the report opens cleanly in Excel (a BOM; the msgid as text) and its times
/// are at the campaign's `utc_offset`, which `wxpush report` shows them at too.
#[test]
fn report_times_are_at_the_campaign_s_offset() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 2, "rate: 1000\ntarget: mini\nutc_offset: \"-05:00\"\n");
    w.send(&sb, &[]).expect(0);
    let raw = w.read("reports/gen.sandbox.csv");
    assert!(raw.starts_with("\u{feff}openid,status,"), "{raw}");
    let rows = w.report("reports/gen.sandbox.csv");
    assert!(
        rows.iter().all(|r| r["sent_at"].ends_with("-05:00")),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r["msgid"].starts_with("=\"")),
        "{rows:?}"
    );
    let text = w
        .cmd(&["report", "reports/gen.sandbox.csv"])
        .run()
        .expect(0)
        .stdout;
    assert!(text.contains(" -05:00, last "), "{text}");
}

/// An output a person asks for never replaces what wxpush reads, and a test send never
/// writes to a report named by hand (review of issue 13).
#[test]
fn outputs_never_replace_inputs() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_test_00001".into(), -1)],
        ..Knobs::default()
    });
    generated(&w, 3, "rate: 1000\ntarget: mini\n");
    w.send(&sb, &[]).expect(0);
    let before = w.reports();
    let csv = w.read("people.csv");
    let yaml = w.read("c.yaml");
    for args in [
        &[
            "report",
            "reports/gen.sandbox.csv",
            "--failed",
            "people.csv",
        ][..],
        &[
            "report",
            "reports/gen.sandbox.csv",
            "--html",
            "reports/gen.sandbox.csv",
        ],
        &[
            "report",
            "reports/gen.sandbox.csv",
            "--html",
            "reports/gen.sandbox.journal",
        ],
        &["preview", "c.yaml", "--html", "c.yaml"],
        &[
            "send",
            "c.yaml",
            "--to",
            "o_me",
            "--report",
            "reports/gen.sandbox.csv",
            "--yes",
        ],
    ] {
        w.cmd(args).against(&sb).run().expect(2);
    }
    assert_eq!(w.read("people.csv"), csv);
    assert_eq!(w.read("c.yaml"), yaml);
    assert_eq!(w.reports(), before);
    assert_eq!(sb.stats().accepted, 2, "no test send left");
}

/// Issue 13 §9: `--quiet` prints nothing along the way (no announcement, progress or
/// summary), only warnings; `-v` logs requests, answers and tokens fetched on stderr, and
/// never a secret or a token, even at `-vv` with the bodies.
#[test]
fn quiet_says_nothing_and_verbose_logs_no_secret() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 3, "rate: 1000\ntarget: mini\n");
    let quiet = w.send(&sb, &["--quiet"]).expect(0);
    assert_eq!(quiet.stdout, "");
    assert_eq!(quiet.stderr, "");
    assert_eq!(w.report("reports/gen.sandbox.csv").len(), 3);
    let check = w.cmd(&["check", "c.yaml", "-q"]).run().expect(0);
    assert_eq!((check.stdout.as_str(), check.stderr.as_str()), ("", ""));
    // What a command exists to print stays.
    let report = w
        .cmd(&["report", "reports/gen.sandbox.csv", "-q"])
        .run()
        .expect(0);
    assert!(
        report.stdout.contains("sent             3"),
        "{}",
        report.stdout
    );

    let verbose = w.send(&sb, &["--restart", "-vv"]).expect(0);
    for needle in [
        "DEBUG wxpush::wechat::token: access token fetched source=stable",
        "DEBUG wxpush::dispatch: answer openid=o_test_00001 row=1 attempt=1 errcode=Some(0)",
        "TRACE wxpush::wechat: POST endpoint=\"/cgi-bin/message/subscribe/send\"",
        "resume decided",
    ] {
        assert!(
            verbose.stderr.contains(needle),
            "{needle:?} in\n{}",
            verbose.stderr
        );
    }
    assert!(sb.stats().tokens_minted >= 1);
    // Every sandbox token starts `sbx_`.
    for secret in [SANDBOX_SECRET, "sbx_", "access_token="] {
        assert!(
            !verbose.stderr.contains(secret) && !verbose.stdout.contains(secret),
            "{secret:?} in\n{}",
            verbose.stderr
        );
    }
    assert!(
        verbose.stdout.contains("sent              3"),
        "{}",
        verbose.stdout
    );
}

/// `preview --row N` of a row that repeats an earlier openid says so (it is sent once, as
/// that row), instead of "no row N"; `report --failed` with nobody to retry writes nothing.
#[test]
fn preview_of_a_repeated_row_and_report_with_nobody_to_retry() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 3, "rate: 1000\ntarget: mini\n");
    let csv = w.read("people.csv");
    w.write("people.csv", format!("{csv}o_test_00001,again\n"));
    w.cmd(&["preview", "c.yaml", "--row", "4"])
        .run()
        .expect(2)
        .stderr_has("row 4 repeats an earlier row's openid");
    w.send(&sb, &[]).expect(0);
    let run = w
        .cmd(&["report", "reports/gen.sandbox.csv", "--failed"])
        .run()
        .expect(0)
        .stderr_has("nobody worth retrying");
    assert!(!run.stdout.contains("--failed"), "{}", run.stdout);
    assert!(!w.path("reports/retry/gen.csv").exists());
}
