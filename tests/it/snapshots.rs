//! What a person reads, pinned whole: `--help`, `check`, `preview`, the summary, each
//! class of abort and refusal, and each hint. Ports, temp paths, times, rids, pids and
//! archive stamps are masked (`SNAPSHOT_FILTERS`). Review changes with `cargo insta review`.

use crate::support::*;
use crate::wx_snapshot;

#[test]
fn help_texts() {
    let w = Workdir::new();
    for (name, args) in [
        ("help", &["--help"][..]),
        ("help_check", &["check", "--help"]),
        ("help_preview", &["preview", "--help"]),
        ("help_send", &["send", "--help"]),
        ("help_sandbox", &["sandbox", "--help"]),
        ("help_init", &["init", "--help"]),
        ("help_report", &["report", "--help"]),
        ("help_accounts", &["accounts", "--help"]),
        ("help_accounts_test", &["accounts", "test", "--help"]),
    ] {
        wx_snapshot!(name, w.cmd(args).run().expect(0));
    }
    // Every command's help ends with its examples, the environment it reads (none for
    // those that talk to no account) and the exit codes.
    for (cmd, reads_env) in [
        ("init", false),
        ("check", true),
        ("preview", true),
        ("send", true),
        ("report", true),
        ("accounts", true),
        ("sandbox", false),
        ("completions", false),
    ] {
        let help = w
            .cmd(&[cmd, "--help"])
            .run()
            .expect(0)
            .stdout_has("Examples:\n  wxpush")
            .stdout_has("Exit codes: 0 completed");
        assert_eq!(help.stdout.contains("WXPUSH_API_BASE"), reads_env, "{cmd}");
    }
    for (shell, mark) in [
        ("bash", "_wxpush()"),
        ("zsh", "#compdef wxpush"),
        ("fish", "complete -c wxpush"),
    ] {
        w.cmd(&["completions", shell])
            .run()
            .expect(0)
            .stdout_has(mark);
    }
}

#[test]
fn check_preview_and_dry_run_of_the_example() {
    let w = Workdir::with_examples();
    let c = "campaigns/vocab-reminder.yaml";
    wx_snapshot!("check", w.cmd(&["check", c]).run().expect(0));
    wx_snapshot!("preview", w.cmd(&["preview", c]).run().expect(0));
    wx_snapshot!("dry_run", w.cmd(&["send", c, "--dry-run"]).run().expect(0));
}

#[test]
fn summaries_of_a_send_a_resume_and_nothing_left() {
    let w = Workdir::with_examples();
    let c = "campaigns/vocab-reminder.yaml";
    wx_snapshot!(
        "send_sandbox",
        w.cmd(&["send", c, "--sandbox", "--yes"]).run().expect(0)
    );
    wx_snapshot!(
        "send_nothing_left",
        w.cmd(&["send", c, "--sandbox", "--yes"]).run().expect(0)
    );
    wx_snapshot!(
        "send_restart",
        w.cmd(&["send", c, "--sandbox", "--yes", "--restart", "--limit", "2"])
            .run()
            .expect(0)
    );
}

#[test]
fn hints_after_a_limit_failures_and_unknown_rows() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_test_00001".into(), -1), ("o_test_00002".into(), 43004)],
        ..Knobs::default()
    });
    generated(&w, 6, "rate: 1000\ntarget: mini\n");
    // Busy answers are retried after a random backoff.
    wx_snapshot!(
        "hint_limit",
        w.send(&sb, &["--limit", "3"]).expect(0),
        also: RANDOM_DURATION
    );
    wx_snapshot!(
        "hint_retry_failed",
        w.send(&sb, &[]).expect(0),
        also: RANDOM_DURATION
    );
    // A report whose last row is `unknown` (a kill -9 before its answer).
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        reset_ratio: 1.0,
        ..Knobs::default()
    });
    generated(&w, 2, "rate: 1000\ntarget: mini\n");
    wx_snapshot!("hint_resend_unknown", w.send(&sb, &[]).expect(0));
}

#[test]
fn aborts() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        daily_quota: Some(2),
        // Met mid-run (45009): no preflight to see it coming.
        quota_api: false,
        ..Knobs::default()
    });
    generated(&w, 4, "rate: 1000\nconcurrency: 1\ntarget: mini\n");
    wx_snapshot!(
        "abort_quota",
        w.send(&sb, &["--report", "out/my report.csv"]).expect(1)
    );
    wx_snapshot!(
        "abort_token",
        w.cmd(&["send", "c.yaml", "--yes"])
            .env("WXPUSH_API_BASE", &sb.url())
            .env("WXPUSH_SECRET", "wrong")
            .run()
            .expect(1)
    );
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        busy_ratio: 1.0,
        ..Knobs::default()
    });
    generated(&w, 30, "rate: 1000\nconcurrency: 30\ntarget: mini\n");
    let unhealthy = w.send(&sb, &[]).expect(1);
    // How many gave up before the threshold fired depends on timing; the text does not.
    let tail = unhealthy.stderr.rsplit("wxpush: error: ").next().unwrap();
    wx_snapshot!(text: "abort_unhealthy", tail);
}

#[test]
fn an_interrupted_run() {
    let w = Workdir::new();
    let (sb, mut child) = send_until_held(&w, 40, "target: mini\n", 11);
    child.interrupt();
    assert!(child.wait_for_stderr("Ctrl-C again"));
    sb.release();
    // 10 answered, then the 4 held ones: nothing else leaves after Ctrl-C.
    wx_snapshot!("abort_interrupted", child.wait().expect(1));
}

#[test]
fn refusals() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 3, "rate: 1000\n");
    w.send(&sb, &[]).expect(0);
    let csv = w.read("people.csv");
    w.write("people.csv", format!("{csv}o_new,新人\n"));
    wx_snapshot!(
        "refuse_changed_list",
        w.send(&sb, &["--rate", "20"]).expect(2)
    );
    w.write("people.csv", csv);
    let yaml = w.read("c.yaml");
    w.write("c.yaml", yaml.replace("TPL", "OTHER"));
    wx_snapshot!("refuse_other_campaign", w.send(&sb, &[]).expect(2));
    // WeChat's report is never a sandbox's: refused before anything leaves this machine.
    w.write("c.yaml", yaml);
    wx_snapshot!(
        "refuse_other_api",
        w.cmd(&[
            "send",
            "c.yaml",
            "--yes",
            "--report",
            "reports/gen.sandbox.csv"
        ])
        .env("WXPUSH_API_BASE", "https://wechat.invalid")
        .env("WXPUSH_SECRET", "x")
        .run()
        .expect(2)
    );
    let w = Workdir::new();
    generated(&w, 3, "rate: 1000\n");
    wx_snapshot!(
        "refuse_no_confirmation",
        w.cmd(&["send", "c.yaml"]).against(&sb).run().expect(2)
    );
}
