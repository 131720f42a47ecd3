//! Exactly once in everyday use: declining, refusing, two terminals, and every piece of
//! advice wxpush prints, run verbatim. Each test counts deliveries per openid at the sandbox.

use crate::support::*;

const REPORT: &str = "reports/gen.sandbox.csv";
/// Labels of the advice lines.
const RESUME: &str = "resume with: ";
const CONTINUE: &str = "to continue: ";
const RETRY: &str = "to try them again: ";
const RESEND: &str = "to send them again anyway, at the risk of a second delivery: ";

/// A campaign of `n` fully sent to `sb`.
fn sent(n: usize, extra_yaml: &str) -> (Workdir, Sandbox) {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, n, &format!("rate: 1000\n{extra_yaml}"));
    w.send(&sb, &[]).expect(0);
    (w, sb)
}

#[test]
fn a_declined_or_refused_restart_changes_nothing() {
    let (w, sb) = sent(30, "");
    let before = w.reports();
    assert_eq!(before.len(), 2, "report and journal: {:?}", before.keys());
    // Declined at the prompt.
    let (code, _) = Prompted::start(&w, &sb.url(), &["send", "c.yaml", "--restart"]).answer("n\n");
    assert_eq!(code, 2);
    assert_eq!(w.reports(), before, "declined");
    // No terminal to ask on: the advice is the same command, one-off flag included.
    let unasked = w
        .cmd(&["send", "c.yaml", "--restart"])
        .against(&sb)
        .run()
        .expect(2);
    assert!(
        unasked
            .expect_advice("without being asked: ")
            .ends_with(" wxpush send c.yaml --restart --yes"),
        "{}",
        unasked.stderr
    );
    assert_eq!(w.reports(), before, "no terminal");
    // No AppSecret.
    w.cmd(&["send", "c.yaml", "--restart", "--yes"])
        .env("WXPUSH_API_BASE", &sb.url())
        .run()
        .expect(2)
        .stderr_has("WXPUSH_SECRET is not set");
    assert_eq!(w.reports(), before, "no secret");
    // A wrong AppSecret: refused at the token, before anything changes; the advice is the
    // same command (its --restart never took effect).
    let wrong = w
        .cmd(&["send", "c.yaml", "--restart", "--yes"])
        .env("WXPUSH_API_BASE", &sb.url())
        .env("WXPUSH_SECRET", "wrong")
        .run()
        .expect(1)
        .stderr_has("40125");
    assert!(
        wrong
            .expect_advice("run again with: ")
            .ends_with(" wxpush send c.yaml --restart --yes")
    );
    assert_eq!(w.reports(), before, "wrong secret");
    // An invalid row.
    let csv = w.read("people.csv");
    w.write("people.csv", format!("{csv}o_long,{}\n", "长".repeat(30)));
    w.send(&sb, &["--restart"])
        .expect(2)
        .stderr_has("allows at most 20");
    assert_eq!(w.reports(), before, "invalid row");
    w.write("people.csv", csv);
    // A dry run onto the real report.
    w.cmd(&["send", "c.yaml", "--dry-run", "--report", REPORT])
        .run()
        .expect(2)
        .stderr_has("a dry run never overwrites one");
    assert_eq!(w.reports(), before, "dry run");
    w.send(&sb, &[])
        .expect(0)
        .stdout_has("nothing left to send");
    assert_all_sent_once(&w, &sb, 30, REPORT);
}

#[test]
fn waiting_behind_a_restart_resumes_the_new_report_instead_of_starting_over() {
    let (w, first) = sent(30, "target: mini\n");
    drop(first);
    let sb = Sandbox::start(Knobs::default());
    // A restarts and waits at its question, holding the old journal.
    let restarting = Prompted::start(&w, &sb.url(), &["send", "c.yaml", "--restart"]);
    let mut waiting = w
        .cmd(&["send", "c.yaml", "--yes", "--wait"])
        .against(&sb)
        .spawn();
    assert!(waiting.wait_for_stderr("waiting for it to end"));
    let (code, shown) = restarting.answer("y\n");
    assert_eq!(code, 0, "{shown}");
    waiting.wait().expect(0).stdout_has("nothing left to send");
    // Only A's (deliberate) restart reached this sandbox: everyone once.
    assert_all_sent_once(&w, &sb, 30, REPORT);
}

#[test]
fn a_recipients_file_that_breaks_while_sending_aborts_with_exit_1() {
    let w = Workdir::new();
    let (sb, child) = send_until_held(&w, 600, "target: mini\n", 5);
    // Sending has started: an invalid row appended now is met by the reader mid-run.
    let csv = w.read("people.csv");
    w.write("people.csv", format!("{csv}o_long,{}\n", "长".repeat(30)));
    sb.release();
    let run = child.wait().expect(1).stderr_has("allows at most 20");
    w.write("people.csv", csv);
    w.run_advice(&run.expect_advice(RESUME)).expect(0);
    assert_all_sent_once(&w, &sb, 600, REPORT);
}

#[test]
fn a_recipients_file_edited_while_the_question_waits_is_not_sent_unchecked() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 10, "rate: 1000\ntarget: mini\n");
    let asking = Prompted::start(&w, &sb.url(), &["send", "c.yaml"]);
    let csv = w.read("people.csv");
    w.write("people.csv", format!("{csv}o_late,晚到\n"));
    let (code, shown) = asking.answer("y\n");
    assert_eq!(code, 2, "{shown}");
    assert!(
        shown.contains("changed while wxpush was getting ready"),
        "{shown}"
    );
    assert_eq!(sb.stats().send_requests, 0);
    assert!(w.reports().is_empty(), "nothing written");
    w.send(&sb, &[]).expect(0);
    assert_all_sent_once(&w, &sb, 11, REPORT);
}

#[test]
fn a_resend_refused_as_busy_is_never_called_undelivered() {
    let w = Workdir::new();
    // Killed with the last 4 requests delivered but unanswered.
    let (sb, child) = send_until_held(&w, 14, "", 11);
    child.kill_9();
    sb.release();
    // The 4 held, and any answered request whose row the kill came before.
    let in_flight = 14 - w.whole_rows(REPORT);
    // The resume re-sends those 4 (same client_msg_id) to a WeChat that is busy from now on.
    sb.set_busy(1.0);
    let run = w.send(&sb, &[]).expect(0);
    let rows = w.report(REPORT);
    let status = |s: &str| rows.iter().filter(|r| r["status"] == s).count();
    assert_eq!(
        (status("unknown"), status("failed")),
        (in_flight, 0),
        "{}",
        run.stdout
    );
    // So nothing is offered to --retry-failed, and a --retry-failed sends nothing.
    assert!(run.advice(RETRY).is_none(), "{}", run.stdout);
    sb.heal();
    w.send(&sb, &["--retry-failed"])
        .expect(0)
        .stdout_has("nothing left to send");
    let s = sb.stats();
    assert_eq!((s.accepted, s.duplicate_deliveries), (14, 0), "{s:?}");
}

#[test]
fn something_in_the_way_of_the_journal_stops_the_run_instead_of_looping() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 3, "rate: 1000\n");
    std::fs::create_dir_all(w.path("reports")).unwrap();
    std::os::unix::fs::symlink("nowhere", w.path("reports/gen.sandbox.journal")).unwrap();
    w.send(&sb, &["--wait"])
        .expect(1)
        .stderr_has("is in the way");
    assert_eq!(sb.stats().send_requests, 0);
}

#[test]
fn a_journal_cut_short_before_its_header_starts_over() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 3, "rate: 1000\n");
    w.write("reports/gen.sandbox.journal", "");
    w.send(&sb, &[]).expect(0);
    assert_all_sent_once(&w, &sb, 3, REPORT);
}

#[test]
fn a_second_run_of_a_report_refuses_at_once_or_waits_for_the_first() {
    let w = Workdir::new();
    let (sb, first) = send_until_held(&w, 40, "target: mini\n", 11);
    let holder = format!("another wxpush run (process {})", first.id());
    for extra in [
        &[][..],
        &["--restart"],
        &["--retry-failed", "--resend-unknown"],
    ] {
        w.send(&sb, extra)
            .expect(1)
            .stderr_has(&holder)
            .stderr_has("to resume after it as soon as it ends: ");
    }
    let mut waiting = w
        .cmd(&["send", "c.yaml", "--yes", "--wait"])
        .against(&sb)
        .spawn();
    assert!(waiting.wait_for_stderr("waiting for it to end"));
    sb.release();
    first.wait().expect(0);
    waiting.wait().expect(0).stdout_has("nothing left to send");
    assert_all_sent_once(&w, &sb, 40, REPORT);
}

#[test]
fn the_resume_hint_keeps_the_report_and_the_api() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        daily_quota: Some(10),
        // Met mid-run (45009): no preflight to see it coming.
        quota_api: false,
        ..Knobs::default()
    });
    generated(&w, 30, "rate: 1000\ntarget: mini\n");
    let mut run = w
        .cmd(&["send", "c.yaml", "--yes", "--report", "out/custom.csv"])
        .against(&sb)
        .run()
        .expect(1);
    let mut days = 1;
    while run.code == 1 {
        sb.next_day();
        days += 1;
        let advice = run.expect_advice(RESUME);
        assert!(advice.contains("--report out/custom.csv"), "{advice}");
        run = w.run_advice(&advice);
        assert!(days <= 4, "never finished: {}", run.stderr);
    }
    run.expect(0);
    let by_status = assert_exactly_once(&w, &sb, 30, "out/custom.csv");
    assert_eq!(by_status["sent"], 30);
    assert!(w.reports().is_empty(), "nothing in the default report");
}

#[test]
fn the_limit_hint_of_an_in_process_sandbox_run_stays_in_the_sandbox() {
    let w = Workdir::new();
    generated(&w, 30, "rate: 1000\n");
    // No API base and no AppSecret: only --sandbox can send.
    let mut run = w
        .cmd(&["send", "c.yaml", "--sandbox", "--limit", "12", "--yes"])
        .run()
        .expect(0);
    let mut runs = 1;
    while let Some(advice) = run.advice(CONTINUE) {
        assert!(advice.contains("--sandbox --limit 12"), "{advice}");
        run = w.run_advice_without_secret(&advice).expect(0);
        runs += 1;
    }
    assert_eq!(runs, 3);
    let rows = w.report(REPORT);
    assert_eq!(rows.len(), 30);
    let mut openids: Vec<&str> = rows.iter().map(|r| r["openid"].as_str()).collect();
    openids.sort();
    openids.dedup();
    assert_eq!(openids.len(), 30, "one row per recipient");
    assert!(rows.iter().all(|r| r["status"] == "sent"));
}

#[test]
fn after_restart_with_a_limit_the_hint_continues_instead_of_restarting() {
    let (w, first) = sent(20, "");
    drop(first);
    // A second sandbox counts the restarted campaign alone.
    let sb = Sandbox::start(Knobs::default());
    let mut run = w.send(&sb, &["--restart", "--limit", "8"]).expect(0);
    while let Some(advice) = run.advice(CONTINUE) {
        assert!(!advice.contains("--restart"), "{advice}");
        run = w.run_advice(&advice).expect(0);
    }
    assert_all_sent_once(&w, &sb, 20, REPORT);
    let archived: Vec<_> = w
        .reports()
        .into_keys()
        .filter(|n| n.ends_with(".csv") && n != "gen.sandbox.csv")
        .collect();
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert_eq!(w.report(&format!("reports/{}", archived[0])).len(), 20);
}

/// Moves every send the journal records `minutes` into the past.
fn age_journal(w: &Workdir, minutes: u64) {
    let path = "reports/gen.sandbox.journal";
    let aged: String = w
        .read(path)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            match f[..] {
                [openid, row, at] if at.parse::<u64>().is_ok() => {
                    let at = at.parse::<u64>().unwrap() - minutes * 60_000;
                    format!("{openid}\t{row}\t{at}\n")
                }
                _ => format!("{l}\n"),
            }
        })
        .collect();
    w.write(path, aged);
}

#[test]
fn retry_failed_sends_the_given_up_again_for_every_kind_and_age() {
    for (target, minutes) in [("target: mini\n", 0), ("", 11)] {
        let w = Workdir::new();
        let sb = Sandbox::start(Knobs {
            fail_prefixes: vec![("o_test_0000".into(), -1)],
            ..Knobs::default()
        });
        generated(&w, 20, &format!("rate: 1000\nconcurrency: 16\n{target}"));
        let run = w.send(&sb, &[]).expect(0);
        let advice = run.expect_advice(RETRY);
        assert_eq!(
            (
                sb.stats().accepted,
                run.stdout.contains("9 recipients failed without delivery")
            ),
            (11, true),
            "{}",
            run.stdout
        );
        age_journal(&w, minutes);
        sb.heal();
        w.run_advice(&advice)
            .expect(0)
            .stdout_has("9 recipients recorded `failed` after their last retry will be sent again");
        let by_status = assert_exactly_once(&w, &sb, 20, REPORT);
        assert_eq!(
            by_status["sent"], 20,
            "{target} {minutes} min: {by_status:?}"
        );
    }
}

#[test]
fn the_unknown_hint_resends_exactly_the_unknown_ones() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        reset_ratio: 0.2,
        seed: Some(5),
        ..Knobs::default()
    });
    generated(&w, 40, "rate: 1000\ntarget: mini\n");
    let run = w.send(&sb, &[]).expect(0);
    let unknown = w
        .report(REPORT)
        .into_iter()
        .filter(|r| r["status"] == "unknown")
        .count();
    assert!(unknown > 0, "the seed loses some answers");
    let advice = run.expect_advice(RESEND);
    // Re-running the plain command says so again, and sends nothing.
    let again = w.send(&sb, &[]).expect(0);
    assert_eq!(again.expect_advice(RESEND), advice);
    sb.heal();
    let before = sb.stats().send_requests;
    w.run_advice(&advice).expect(0);
    let s = sb.stats();
    // The user asked for these repeats: the sandbox had delivered every lost answer.
    assert_eq!(s.send_requests - before, unknown as u64, "{s:?}");
    assert_eq!(s.duplicate_deliveries, unknown as u64, "{s:?}");
}

#[test]
fn a_lost_answer_stays_in_doubt_when_later_retries_are_refused() {
    let w = Workdir::new();
    // The first request is delivered but its answer is lost; WeChat is busy after that.
    let sb = Sandbox::start(Knobs {
        reset_ratio: 1.0,
        hold_from: Some(1),
        ..Knobs::default()
    });
    generated(&w, 1, "rate: 1000\n");
    let child = w.cmd(&["send", "c.yaml", "--yes"]).against(&sb).spawn();
    sb.wait_for_held(1);
    sb.set_busy(1.0);
    sb.release();
    let run = child.wait().expect(0);
    let rows = w.report(REPORT);
    assert_eq!(rows[0]["status"], "unknown", "{}", run.stdout);
    assert_eq!(sb.stats().accepted, 1);
    // So --retry-failed has nothing to resend; only an explicit --resend-unknown would.
    sb.heal();
    assert!(run.advice(RETRY).is_none(), "{}", run.stdout);
    w.send(&sb, &["--retry-failed"])
        .expect(0)
        .stdout_has("nothing left to send");
    assert_eq!(sb.stats().duplicate_deliveries, 0);
    assert!(run.advice(RESEND).is_some(), "{}", run.stdout);
}

#[test]
fn restarts_in_the_same_second_keep_every_archive() {
    let (w, sb) = sent(5, "");
    for _ in 0..3 {
        w.send(&sb, &["--restart", "--limit", "1"]).expect(0);
    }
    let mut rows: Vec<usize> = w
        .reports()
        .into_keys()
        .filter(|n| n.ends_with(".csv") && n != "gen.sandbox.csv")
        .map(|n| w.report(&format!("reports/{n}")).len())
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [1, 1, 5],
        "every archive kept, whatever the clock did"
    );
}

#[test]
fn an_absurd_concurrency_is_refused_and_a_huge_token_life_is_clamped() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        token_ttl: std::time::Duration::from_secs(u64::MAX / 2),
        ..Knobs::default()
    });
    generated(&w, 3, "concurrency: 1073741824\n");
    w.send(&sb, &[])
        .expect(2)
        .stderr_has("c.yaml:")
        .stderr_has("`concurrency`: must be between 1 and 1024");
    sb.expect_no_requests();
    generated(&w, 3, "concurrency: 1024\n");
    w.send(&sb, &[]).expect(0);
    assert_all_sent_once(&w, &sb, 3, REPORT);
}

/// Issue 12 trial (D5): with the secret given inline, as the sandbox's banner shows it, the
/// printed advice still works as printed: it repeats the sandbox's built-in secret (never a
/// real AppSecret, which `secrets_never_appear_in_output_or_report` covers).
#[test]
fn advice_after_an_inline_sandbox_secret_works_as_printed() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        daily_quota: Some(2),
        // Met mid-run (45009): no preflight to see it coming.
        quota_api: false,
        ..Knobs::default()
    });
    generated(&w, 4, "rate: 1000\nconcurrency: 1\ntarget: mini\n");
    let run = w.send(&sb, &[]).expect(1);
    let advice = run.expect_advice(RESUME);
    assert!(
        advice.contains("WXPUSH_SECRET=sandbox-secret wxpush send"),
        "{advice}"
    );
    sb.next_day();
    w.run_advice_without_secret(&advice).expect(0);
    assert_all_sent_once(&w, &sb, 4, REPORT);
}
