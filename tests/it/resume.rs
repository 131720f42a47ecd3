//! Never a double send, never a lost result: kill -9, Ctrl-C, resets, quotas, resume.
//! Each test counts at the sandbox: deliveries per openid, and rows in the report.

use crate::support::*;

const REPORT: &str = "reports/gen.sandbox.csv";

/// Kills wxpush with SIGKILL while `concurrency` requests are held open at the sandbox
/// (processed, unanswered), then resumes. Also returns how many sends were in flight for
/// the report: the 8 held, plus answered ones whose row the kill came before (a few, when
/// the machine is busy).
fn kill_9_with_requests_in_flight(extra_yaml: &str) -> (Workdir, Sandbox, Run, usize) {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        hold_from: Some(101),
        ..Knobs::default()
    });
    generated(
        &w,
        300,
        &format!("rate: 1000\nconcurrency: 8\n{extra_yaml}"),
    );
    let child = w.cmd(&["send", "c.yaml", "--yes"]).against(&sb).spawn();
    // Requests 101..=108 are delivered but unanswered: all 8 permits are taken.
    sb.wait_for_held(8);
    child.kill_9();
    sb.release();
    assert_eq!(sb.stats().send_requests, 108);
    let rows = w.whole_rows(REPORT);
    assert!(rows <= 100, "{rows}");
    let resumed = w.send(&sb, &[]).expect(0);
    (w, sb, resumed, 108 - rows)
}

#[test]
fn kill_9_then_resume_official_resends_in_flight_with_the_same_client_msg_id() {
    let (w, sb, resumed, in_flight) = kill_9_with_requests_in_flight("");
    let by_status = assert_exactly_once(&w, &sb, 300, REPORT);
    assert_eq!(by_status["sent"], 300, "{by_status:?}");
    resumed
        .stdout_has(&format!(
            "resuming: {} of 300 recipients done",
            108 - in_flight
        ))
        .stdout_has(&format!("{in_flight} sends were in flight"));
    // Every one in flight had been delivered before the kill; the repeats were de-duplicated.
    assert_eq!(sb.stats().client_msg_id_repeats, in_flight as u64);
}

#[test]
fn kill_9_then_resume_subscribe_records_in_flight_as_unknown() {
    let (w, sb, resumed, in_flight) = kill_9_with_requests_in_flight("target: mini\n");
    let by_status = assert_exactly_once(&w, &sb, 300, REPORT);
    assert_eq!(by_status["unknown"], in_flight, "{by_status:?}");
    assert_eq!(by_status["sent"], 300 - in_flight, "{by_status:?}");
    assert!(
        resumed.stdout.contains("recorded `unknown`"),
        "{}",
        resumed.stdout
    );
    // A resume after that finds nothing to do, and sends nothing.
    let before = sb.stats().send_requests;
    w.send(&sb, &[])
        .expect(0)
        .stdout_has("nothing left to send");
    assert_eq!(sb.stats().send_requests, before);
}

#[test]
fn resend_unknown_is_an_explicit_opt_in() {
    let (w, sb, _, in_flight) = kill_9_with_requests_in_flight("target: mini\n");
    w.send(&sb, &["--resend-unknown"])
        .expect(0)
        .stdout_has(&format!(
            "{in_flight} recipients recorded `unknown` will be sent again"
        ));
    let rows = w.report(REPORT);
    assert_eq!(rows.len(), 300);
    assert!(rows.iter().all(|r| r["status"] == "sent"));
    // Subscribe messages have no idempotency key: the user asked for these repeats.
    assert_eq!(sb.stats().duplicate_deliveries, in_flight as u64);
}

#[test]
fn recipients_whose_retries_ran_out_can_be_retried_later() {
    let w = Workdir::new();
    generated(&w, 30, "rate: 500\nconcurrency: 8\n");
    // Two recipients always answered "system busy"; one not following the account.
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_test_0000".into(), -1), ("o_test_00010".into(), 43004)],
        ..Knobs::default()
    });
    let csv = w.read("people.csv");
    w.write("people.csv", csv.replace("o_test_00003", "o_other_3"));
    w.send(&sb, &[]).expect(0);
    let failed = |w: &Workdir| {
        w.report(REPORT)
            .into_iter()
            .filter(|r| r["status"] == "failed")
            .count()
    };
    let busy = 8; // o_test_00001..09 but 03
    assert_eq!(
        failed(&w),
        busy + 1,
        "the busy ones, and o_test_00010 refused"
    );
    drop(sb);
    let sb = Sandbox::start(Knobs::default());
    w.send(&sb, &["--retry-failed"])
        .expect(0)
        .stdout_has("8 recipients recorded `failed` after their last retry will be sent again");
    // Only the busy ones were sent again; the refusal stays a refusal.
    assert_eq!(sb.stats().send_requests, 8);
    assert_eq!(failed(&w), 1);
    assert_eq!(w.report(REPORT).len(), 30);
}

/// A report written before the Excel-friendly format (no BOM, bare msgids, UTC times) with
/// a torn last line still resumes: `--retry-failed` drops its rows and sends those again,
/// everyone once, and `wxpush report` reads it.
#[test]
fn a_report_in_the_older_format_resumes_and_retries() {
    let w = Workdir::new();
    generated(&w, 20, "rate: 500\ntarget: mini\n");
    let busy = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_test_0000".into(), -1)],
        ..Knobs::default()
    });
    w.send(&busy, &["--limit", "15"]).expect(0);
    let accepted_before = busy.stats().accepted;
    drop(busy);
    // Rewritten as the older writer wrote it.
    let text = w.read(REPORT);
    let mut old = String::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        if i > 0 {
            cells[4] = cells[4]
                .trim_start_matches("\"=\"\"")
                .trim_end_matches("\"\"\"")
                .to_owned();
            if let Some((at, _)) = wxpush::timezone::parse(&cells[6]) {
                cells[6] = humantime::format_rfc3339_millis(at).to_string();
            }
        }
        old.push_str(&cells.join(","));
        old.push('\n');
    }
    assert!(
        old.contains("Z,") && !old.contains("+08:00") && !old.contains("=\""),
        "{old}"
    );
    // A crash cut the last line short.
    w.write(REPORT, format!("{old}o_test_00016,se"));
    let sb = Sandbox::start(Knobs::default());
    w.send(&sb, &["--retry-failed"])
        .expect(0)
        .stdout_has("9 recipients recorded `failed` after their last retry will be sent again");
    // The 9 busy ones and the 5 never sent (the torn row is no outcome); nobody else.
    assert_eq!(sb.stats().accepted, 14);
    assert_eq!(accepted_before, 6);
    assert_eq!(sb.stats().duplicate_deliveries, 0);
    let rows = w.report(REPORT);
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");
    w.cmd(&["report", REPORT])
        .run()
        .expect(0)
        .stdout_has("sent            20");
}

#[test]
fn connection_resets_never_cause_a_duplicate() {
    for (target, expect_unknown) in [("", false), ("target: mini\n", true)] {
        let w = Workdir::new();
        let sb = Sandbox::start(Knobs {
            reset_ratio: 0.02,
            seed: Some(3),
            ..Knobs::default()
        });
        generated(&w, 500, &format!("rate: 1000\nconcurrency: 16\n{target}"));
        w.send(&sb, &[]).expect(0);
        let s = sb.stats();
        assert!(s.resets > 0, "{s:?}");
        assert_eq!(s.duplicate_deliveries, 0, "{target}: {s:?}");
        let rows = w.report(REPORT);
        assert_eq!(rows.len(), 500);
        let unknown = rows.iter().filter(|r| r["status"] == "unknown").count() as u64;
        if expect_unknown {
            // Subscribe: every reset is an unknown outcome, never re-sent.
            assert_eq!(unknown, s.resets, "{s:?}");
        } else {
            // Official: re-sent with the same client_msg_id, de-duplicated by WeChat.
            assert_eq!(unknown, 0, "{s:?}");
            assert_eq!(s.accepted, 500, "{s:?}");
        }
    }
}

#[test]
fn daily_quota_aborts_then_the_next_day_resumes_exactly_once() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        daily_quota: Some(50),
        // Met mid-run (45009): no preflight to see it coming.
        quota_api: false,
        ..Knobs::default()
    });
    generated(&w, 120, "rate: 500\n");
    let mut run = w.send(&sb, &[]);
    for day in 1..=2 {
        run = run
            .expect(1)
            .stderr_has("45009")
            .stderr_has("resume tomorrow with the command below");
        assert_eq!(w.report(REPORT).len(), 50 * day);
        assert!(sb.stats().send_requests < 50 * day as u64 + 20);
        sb.next_day();
        run = w.run_advice(&run.expect_advice("resume with: "));
    }
    run.expect(0);
    assert_all_sent_once(&w, &sb, 120, REPORT);
}

#[test]
fn ctrl_c_finishes_in_flight_requests_and_resumes() {
    let w = Workdir::new();
    // Busy answers leave messages waiting to retry when Ctrl-C comes: they were never
    // delivered, so the next run must send them (not hold them `unknown`).
    let sb = Sandbox::start(Knobs {
        latency: std::time::Duration::from_millis(50),
        busy_ratio: 0.3,
        seed: Some(5),
        ..Knobs::default()
    });
    generated(&w, 200, "rate: 100\nconcurrency: 8\ntarget: mini\n");
    let child = w.cmd(&["send", "c.yaml", "--yes"]).against(&sb).spawn();
    sb.wait_for_sends(20);
    child.interrupt();
    let run = child.wait().expect(1).stderr_has("interrupted");
    // Every request that left got its answer recorded: nothing unknown, nothing lost.
    let rows = w.report(REPORT);
    assert_eq!(rows.len() as u64, sb.stats().accepted, "{}", run.stdout);
    assert!(rows.iter().all(|r| r["status"] == "sent"));
    assert!(rows.len() < 200);
    // WeChat recovers, so that no retry runs out in the resume (with 30 % busy, six busy
    // answers in a row for one of 200 recipients is likely enough to make the test flaky).
    sb.heal();
    w.run_advice(&run.expect_advice("resume with: ")).expect(0);
    assert_all_sent_once(&w, &sb, 200, REPORT);
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_in_flight_sends_become_unknown() {
    let w = Workdir::new();
    let (sb, mut child) = send_until_held(&w, 100, "target: mini\n", 31);
    child.interrupt();
    // The first Ctrl-C waits for the 4 held requests, which never answer; the second quits.
    let stderr_seen = child.wait_for_stderr("Ctrl-C again");
    assert!(stderr_seen, "no interrupt notice");
    child.interrupt();
    let quit = child.wait().expect(1).stderr_has("quit at once");
    sb.release();
    // The 4 held, and any answered request whose row the quit came before.
    let in_flight = 34 - w.whole_rows(REPORT);
    w.run_advice(&quit.expect_advice("resume with: "))
        .expect(0)
        .stdout_has(&format!("{in_flight} sends were in flight"));
    let by_status = assert_exactly_once(&w, &sb, 100, REPORT);
    assert_eq!(by_status["unknown"], in_flight, "{by_status:?}");
}

#[test]
fn busy_and_expiring_tokens_together_deliver_everyone_once() {
    let knobs = Knobs {
        busy_ratio: 0.03,
        token_ttl: std::time::Duration::from_secs(2),
        seed: Some(11),
        ..Knobs::default()
    };
    let (_w, sb, _) = send_all(knobs, 1200, "rate: 400\nconcurrency: 16\n");
    let s = sb.stats();
    assert!(
        s.tokens_minted >= 2 && s.by_errcode.get(&-1).copied().unwrap_or(0) > 0,
        "{s:?}"
    );
}

#[test]
fn failures_that_are_not_about_recipients_abort_the_run_early() {
    // An errcode wxpush does not know, for everyone: after 20 outcomes, half the threshold.
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_".into(), 12345)],
        ..Knobs::default()
    });
    generated(&w, 1000, "rate: 1000\n");
    w.send(&sb, &[])
        .expect(1)
        .stderr_has("not about the recipients");
    assert!(sb.stats().send_requests < 50, "{:?}", sb.stats());

    // The same field rejected for every row (47003): 10 in a row stop the run.
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_".into(), 47003)],
        ..Knobs::default()
    });
    generated(&w, 1000, "rate: 1000\n");
    w.send(&sb, &[])
        .expect(1)
        .stderr_has("10 recipients in a row failed with 47003");
    assert!(sb.stats().send_requests < 50, "{:?}", sb.stats());
}

#[test]
fn a_report_of_another_campaign_or_list_is_refused() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 10, "rate: 500\n");
    w.send(&sb, &["--limit", "3"]).expect(0);
    // Another template id: another campaign.
    let yaml = w.read("c.yaml");
    w.write(
        "other.yaml",
        yaml.replace("template_id: TPL", "template_id: OTHER"),
    );
    w.cmd(&["send", "other.yaml", "--yes", "--report", REPORT])
        .against(&sb)
        .run()
        .expect(2)
        .stderr_has("belongs to campaign `gen` (template TPL)");
    // WeChat's report is never a sandbox's (nothing is sent: refused before any request).
    w.cmd(&["send", "c.yaml", "--yes", "--report", REPORT])
        .env("WXPUSH_API_BASE", "https://wechat.invalid")
        .env("WXPUSH_SECRET", "x")
        .run()
        .expect(2)
        .stderr_has("records sends to sandbox, and this run sends to wechat");
    // A changed list.
    let mut csv = w.read("people.csv");
    csv.push_str("o_new_1,新人\n");
    w.write("people.csv", csv);
    w.send(&sb, &[])
        .expect(2)
        .stderr_has("people.csv changed")
        .stderr_has("--resume-changed");
    assert_eq!(sb.stats().send_requests, 3);
    w.send(&sb, &["--resume-changed"]).expect(0);
    assert_eq!(sb.stats().accepted, 11);
    // The journal now knows the new list: resuming again needs no flag.
    w.send(&sb, &[])
        .expect(0)
        .stdout_has("nothing left to send");
    assert_eq!(sb.stats().duplicate_deliveries, 0);
}

#[test]
fn restart_keeps_the_old_report_aside() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 5, "rate: 500\n");
    w.send(&sb, &[]).expect(0);
    let run = w
        .send(&sb, &["--restart"])
        .expect(0)
        .stdout_has("the previous report is now");
    let aside: Vec<_> = std::fs::read_dir(w.path("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("gen.sandbox.") && n.ends_with(".csv") && n != "gen.sandbox.csv")
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}\n{}", run.stdout);
    assert_eq!(w.report(&format!("reports/{}", aside[0])).len(), 5);
    assert_eq!(w.report(REPORT).len(), 5);
    assert_eq!(sb.stats().accepted, 10, "a restart sends to everyone again");

    // A report deleted by hand: the journal still knows about the sends.
    std::fs::remove_file(w.path(REPORT)).unwrap();
    w.send(&sb, &[])
        .expect(2)
        .stderr_has("its report reports/gen.sandbox.csv is missing");
    assert_eq!(sb.stats().send_requests, 10);
}

#[test]
fn repeats_left_unreported_by_a_stopped_run_are_reported_on_resume() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 5, "rate: 500\n");
    let mut csv = w.read("people.csv");
    csv.push_str("o_test_00001,again\no_test_00002,again\n");
    w.write("people.csv", csv);
    w.send(&sb, &[]).expect(0);
    // As if the run had stopped after the last send, before writing the repeats' rows.
    let report = w.read(REPORT);
    let kept: Vec<&str> = report
        .lines()
        .filter(|l| !l.contains(",skipped,"))
        .collect();
    w.write(REPORT, kept.join("\n") + "\n");
    w.send(&sb, &[])
        .expect(0)
        .stdout_has("nothing left to send");
    let rows = w.report(REPORT);
    assert_eq!(rows.len(), 7);
    assert_eq!(rows.iter().filter(|r| r["status"] == "skipped").count(), 2);
    assert_eq!(sb.stats().send_requests, 5);
}

/// Issue 12 trial (D1): ten recipients in a row refused with the same 47003 stop the run as a
/// campaign problem. Once the campaign is fixed, the printed commands reach everyone: the
/// resume sends the rest, its summary's `--retry-failed` the ten (refused, so never
/// delivered): everyone once.
#[test]
fn after_a_47003_streak_the_printed_commands_reach_everyone_once() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: ["o_test_0002", "o_test_0003", "o_test_0004", "o_test_0005"]
            .map(|p| (p.to_owned(), 47003))
            .to_vec(),
        ..Knobs::default()
    });
    // Rows 20–59 are refused. Eight in flight (the default): answers arrive out of order, so
    // the first refusals may be interleaved with the last successes; ten in a row follow.
    generated(&w, 60, "rate: 1000\ntarget: mini\n");
    let run = w
        .send(&sb, &[])
        .expect(1)
        .stderr_has("10 recipients in a row failed with 47003")
        .stderr_has("--retry-failed these");
    // The campaign is fixed (here: WeChat stops refusing), then the advice is run as printed.
    sb.heal();
    let resumed = w.run_advice(&run.expect_advice("resume with: ")).expect(0);
    let retry = resumed.expect_advice("to try them again: ");
    assert!(
        resumed
            .stdout
            .contains("recipients failed without delivery"),
        "{}",
        resumed.stdout
    );
    w.run_advice(&retry).expect(0);
    assert_all_sent_once(&w, &sb, 60, REPORT);
}

/// Issue 14 §5: before a real send, today's quota of the send API (quota/get). Larger than
/// what is left: refused, exit 1, nothing sent, with both commands; `--allow-partial`, as
/// printed, sends exactly what is left and stops (exit 0), and the next day's resume, as
/// printed, sends the rest: everyone once.
#[test]
fn a_campaign_larger_than_today_s_quota_is_refused_or_sent_in_part() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        daily_quota: Some(7),
        ..Knobs::default()
    });
    generated(&w, 20, "rate: 1000\ntarget: mini\n");
    let refused = w
        .send(&sb, &[])
        .expect(1)
        .stderr_has("20 recipients left to send, but today's quota of /cgi-bin/message/subscribe/send has 7 left (of 7; 0 used)");
    assert_eq!(sb.stats().send_requests, 0);
    assert!(w.reports().is_empty(), "nothing written");
    // 20 never fit in a day of 7: no "all at once tomorrow".
    assert!(
        !refused.stderr.contains("all at once"),
        "{}",
        refused.stderr
    );
    let partial = refused.expect_advice("to send 7 today and the rest on the next days: ");
    assert!(partial.contains("--allow-partial"), "{partial}");
    let run = w
        .run_advice(&partial)
        .expect(0)
        .stdout_has("quota       7 of 7 left today; --allow-partial: 7 today, the rest tomorrow")
        .stdout_has("13 recipients left for tomorrow");
    assert_eq!(sb.stats().send_requests, 7);
    assert_eq!(w.report(REPORT).len(), 7);
    // The same day: nothing left to send today.
    let tomorrow = run.expect_advice("left for tomorrow; then: ");
    w.run_advice(&tomorrow).expect(0).stdout_has(
        "today's quota of /cgi-bin/message/subscribe/send is used up: 13 recipients left",
    );
    assert_eq!(sb.stats().send_requests, 7);
    // Each day what that day's quota allows, never more; then everyone once.
    sb.next_day();
    w.run_advice(&tomorrow).expect(0);
    assert_eq!(sb.stats().send_requests, 14);
    sb.next_day();
    w.run_advice(&tomorrow).expect(0);
    assert_exactly_once(&w, &sb, 20, REPORT);
}
