//! `wxpush send`: bodies, dry runs, tokens, retries, rate, aborts, resume, secrets.

use serde_json::{Value, json};

use crate::support::*;

/// The seed's first JSON example (official account, web jump).
fn seed_official_url() -> Value {
    json!({
        "touser": "o_rbq1TOgERuflYd7PsiE9H565Oo",
        "template_id": "n44_YbDNEqrrSEEvd8The8HpWYo1gWOVAXj7zIz4vHA",
        "url": "http://www.baidu.com",
        "data": {
            "remark": {"value": "不积跬步无以至千里,加油!"},
            "keyword3": {"value": "2019-06-09"},
            "first": {"value": "石头同学,提醒您背单词啦"},
            "keyword1": {"value": "巅峰单词800个背诵"},
            "keyword2": {"value": "今日背诵单词任务未完成"}
        }
    })
}

/// Removes the `client_msg_id` that official messages carry (the seed predates it), after
/// checking its shape: deterministic per run and openid, ≤ 64 ASCII bytes.
fn without_client_msg_id(mut body: Value) -> Value {
    let id = body
        .as_object_mut()
        .and_then(|o| o.remove("client_msg_id"))
        .expect("official messages carry a client_msg_id");
    let id = id.as_str().unwrap();
    assert!(id.starts_with("wxp-") && id.len() == 36, "{id}");
    body
}

#[test]
fn seed_examples_send_the_seed_bodies_exactly() {
    let w = Workdir::with_examples();
    let sb = Sandbox::start(Knobs::default());
    for c in [
        "campaigns/vocab-reminder.yaml",
        "campaigns/vocab-reminder-mini.yaml",
        "campaigns/course-legacy.yaml",
        "campaigns/class-subscribe.yaml",
    ] {
        w.cmd(&["send", c, "--yes"]).against(&sb).run().expect(0);
    }

    let official: Vec<Value> = sb
        .accepted_bodies("o_rbq1TOgERuflYd7PsiE9H565Oo")
        .into_iter()
        .map(without_client_msg_id)
        .collect();
    assert_eq!(official.len(), 2, "{official:?}");
    assert_eq!(official[0], seed_official_url());

    // The seed's second example: the same message opening a mini program page.
    let mut mini_jump = seed_official_url();
    let obj = mini_jump.as_object_mut().unwrap();
    obj.remove("url");
    obj.insert(
        "miniprogram".into(),
        json!({"appid": "wx2210554e092c3f99", "pagepath": "pages/index/index"}),
    );
    assert_eq!(official[1], mini_jump);

    // The seed's third example, minus `access_token`: it is a URL parameter (a body copy
    // would put the token in dry-run reports), see README.
    let legacy = sb.accepted_bodies("ogYQ75G33BMpuKOjKjIIOiFP7cF4");
    assert_eq!(legacy.len(), 2, "{legacy:?}");
    assert_eq!(
        legacy[0],
        json!({
            "touser": "ogYQ75G33BMpuKOjKjIIOiFP7cF4",
            "template_id": "-SvDCjf6VG7lGAITKmdhHp6ZBQx1huJdBMO9hFAgI0w",
            "page": "pages/index/index",
            "form_id": "b7ed924575c449a080bb140e90a6f326",
            "data": {
                "keyword1": {"value": "石头"},
                "keyword2": {"value": "2019年5月18日 13:00 - 15:00"},
                "keyword3": {"value": "雅思学习(第二课时)"},
                "keyword4": {"value": "学习成就未来,每一步都是成长"}
            }
        })
    );
    assert_eq!(
        legacy[1],
        json!({
            "touser": "ogYQ75G33BMpuKOjKjIIOiFP7cF4",
            "template_id": "9Aw5ZV1j9xdWTFEkqCpZ7mIBbSC34khK55OtzUPl0rU",
            "page": "pages/course/detail?room=A-301",
            "data": {
                "thing1": {"value": "雅思学习第二课时"},
                "time2": {"value": "2019年5月18日 13:00"},
                "character_string3": {"value": "A-301"},
                "thing4": {"value": "石头同学,别迟到哦"}
            },
            "miniprogram_state": "formal",
            "lang": "zh_CN"
        })
    );

    // msgids above 2^53 survive as exact integers, written as a spreadsheet's text; times
    // are at the campaign's offset (China's by default).
    let rows = w.report("campaigns/reports/vocab-reminder.sandbox.csv");
    assert_eq!(rows.len(), 3);
    let digits = |m: &str| {
        m.strip_prefix("=\"")
            .and_then(|m| m.strip_suffix('"'))
            .is_some_and(|m| m.len() == 19 && m.bytes().all(|b| b.is_ascii_digit()))
    };
    assert!(rows.iter().all(|r| digits(&r["msgid"])), "{rows:?}");
    assert!(
        rows.iter().all(|r| r["sent_at"].ends_with("+08:00")),
        "{rows:?}"
    );
}

#[test]
fn sandbox_flag_needs_no_credentials_or_server() {
    let w = Workdir::with_examples();
    w.cmd(&[
        "send",
        "campaigns/vocab-reminder.yaml",
        "--sandbox",
        "--yes",
    ])
    .run()
    .expect(0)
    .stdout_has("sent              3");
    assert_eq!(
        w.report("campaigns/reports/vocab-reminder.sandbox.csv")
            .len(),
        3
    );
}

#[test]
fn dry_run_sends_nothing_and_reports_each_payload() {
    let w = Workdir::with_examples();
    let sb = Sandbox::start(Knobs::default());
    w.cmd(&["send", "campaigns/vocab-reminder.yaml", "--dry-run"])
        .against(&sb)
        .run()
        .expect(0)
        .stdout_has("dry_run");
    sb.expect_no_requests();
    let rows = w.report("campaigns/reports/vocab-reminder.dry-run.csv");
    assert_eq!(rows.len(), 3);
    let first = rows.iter().find(|r| r["row"] == "1").unwrap();
    assert_eq!(first["status"], "dry_run");
    let payload: Value = serde_json::from_str(&first["payload"]).unwrap();
    assert_eq!(without_client_msg_id(payload), seed_official_url());
    // A dry run is not progress: the real send afterwards sends everyone.
    w.cmd(&["send", "campaigns/vocab-reminder.yaml", "--yes"])
        .against(&sb)
        .run()
        .expect(0);
    assert_eq!(sb.stats().accepted, 3);
}

#[test]
fn repeated_openids_are_sent_once_and_reported_skipped() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 3, "");
    let mut csv = w.read("people.csv");
    csv.push_str("o_test_00002,again\n");
    w.write("people.csv", csv);
    w.send(&sb, &[]).expect(0);
    let rows = w.report("reports/gen.sandbox.csv");
    assert_eq!(rows.len(), 4);
    let skipped: Vec<_> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["row"], "4");
    assert_eq!(sb.stats().accepted, 3);
    assert_eq!(sb.stats().duplicate_deliveries, 0);
}

#[test]
fn token_expiring_mid_run_is_refreshed_once_for_all_workers() {
    let knobs = Knobs {
        token_ttl: std::time::Duration::from_secs(1),
        ..Knobs::default()
    };
    let (_w, sb, _) = send_all(knobs, 500, "rate: 250\nconcurrency: 16\n");
    let s = sb.stats();
    // Two seconds of sending with 1 s tokens: at least one refresh happened…
    assert!(s.tokens_minted >= 2, "{s:?}");
    // …and each new token was fetched by one worker, not by all 16 (single flight).
    assert!(s.stable_token_calls <= s.tokens_minted + 1, "{s:?}");
    assert_eq!(s.token_calls, 0, "the classic API is not used by default");
}

#[test]
fn busy_answers_are_retried_until_sent() {
    let knobs = Knobs {
        busy_ratio: 0.1,
        seed: Some(7),
        ..Knobs::default()
    };
    let n = 300;
    let (w, sb, _) = send_all(knobs, n, "rate: 1000\nconcurrency: 16\n");
    let s = sb.stats();
    let busy = s.by_errcode.get(&-1).copied().unwrap_or(0);
    assert!(busy > 0, "{s:?}");
    let attempts: u64 = w
        .report("reports/gen.sandbox.csv")
        .iter()
        .map(|r| r["attempts"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        attempts,
        n as u64 + busy,
        "attempts column counts every request"
    );
}

#[test]
fn a_small_rate_is_respected_at_the_server() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 24, "rate: 8\nconcurrency: 8\n");
    w.send(&sb, &[]).expect(0);
    let s = sb.stats();
    assert_eq!(s.accepted, 24);
    // rate 8/s with a burst of 1: no 1 s window may hold more than 8 + 1.
    assert!(s.max_sends_in_1s <= 9, "{s:?}");
    assert!(
        s.max_sends_in_1s >= 6,
        "the limiter should not starve: {s:?}"
    );
}

#[test]
fn retired_legacy_api_aborts_fast_with_advice() {
    let w = Workdir::with_examples();
    let sb = Sandbox::start(Knobs {
        legacy_retired: true,
        ..Knobs::default()
    });
    w.cmd(&["send", "campaigns/course-legacy.yaml", "--yes"])
        .against(&sb)
        .run()
        .expect(1)
        .stderr_has("45103")
        .stderr_has("mini_api: subscribe")
        .stderr_has(" wxpush send campaigns/course-legacy.yaml --yes");
    assert!(sb.stats().send_requests <= 2);
    // Nothing was sent, so no row: a resumed run would send everyone.
    assert_eq!(
        w.report("campaigns/reports/course-legacy.sandbox.csv")
            .len(),
        0
    );
}

#[test]
fn invalid_template_id_aborts_within_a_few_requests() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 2000, "rate: 1000\nconcurrency: 8\n");
    let yaml = w
        .read("c.yaml")
        .replace("template_id: TPL", "template_id: invalid-tpl");
    w.write("c.yaml", yaml);
    w.send(&sb, &[])
        .expect(1)
        .stderr_has("40037")
        .stderr_has("check `template_id`");
    let s = sb.stats();
    assert!(s.send_requests < 50, "{s:?}");
    assert_eq!(s.accepted, 0);
}

#[test]
fn per_recipient_failures_are_reported_and_the_run_completes() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_test_0000".into(), 43004)],
        ..Knobs::default()
    });
    generated(&w, 20, "rate: 500\n");
    w.send(&sb, &[])
        .expect(0)
        .stdout_has("43004")
        .stdout_has("recipient does not follow the account");
    let rows = w.report("reports/gen.sandbox.csv");
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 9, "o_test_00001..00009");
    assert!(failed.iter().all(|r| r["errcode"] == "43004"));
    assert_eq!(rows.len(), 20);
}

#[test]
fn wrong_secret_exits_1_before_any_send() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 5, "");
    w.cmd(&["send", "c.yaml", "--yes"])
        .against(&sb)
        .env("WXPUSH_SECRET", "not-the-secret")
        .run()
        .expect(1)
        .stderr_has("40125")
        .stderr_has("AppSecret");
    assert_eq!(sb.stats().send_requests, 0);
}

#[test]
fn refuses_without_yes_when_stdin_is_not_a_terminal() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 5, "");
    w.cmd(&["send", "c.yaml"])
        .against(&sb)
        .run()
        .expect(2)
        .stderr_has("--yes");
    sb.expect_no_requests();
}

#[test]
fn limit_then_rerun_resumes_without_resending() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(&w, 10, "rate: 500\n");
    w.send(&sb, &["--limit", "4"])
        .expect(0)
        .stdout_has("6 recipients left");
    assert_eq!(sb.stats().accepted, 4);
    w.send(&sb, &[])
        .expect(0)
        .stdout_has("resuming: 4 of 10 recipients done");
    assert_all_sent_once(&w, &sb, 10, "reports/gen.sandbox.csv");
    w.send(&sb, &[])
        .expect(0)
        .stdout_has("nothing left to send");
    assert_eq!(sb.stats().send_requests, 10);
}

#[test]
fn secrets_never_appear_in_output_or_report() {
    let secret = "Zq9-very-secret-appsecret";
    // Both token APIs (the classic one puts the AppSecret in its URL), token refreshes,
    // busy answers, lost answers (transport errors in the report), recipient failures, and
    // a run that ends in an abort (the token-free error path) then a resume.
    for token_api in ["stable", "classic"] {
        let w = Workdir::new();
        let sb = Sandbox::start(Knobs {
            secret: secret.into(),
            token_ttl: std::time::Duration::from_secs(1),
            busy_ratio: 0.1,
            reset_ratio: 0.05,
            daily_quota: Some(250),
            // Met mid-run (45009): no preflight to see it coming.
            quota_api: false,
            fail_prefixes: vec![("o_test_0001".into(), 40003)],
            ..Knobs::default()
        });
        generated(
            &w,
            300,
            &format!("rate: 300\nconcurrency: 8\ntarget: mini\ntoken_api: {token_api}\n"),
        );
        let send = || {
            w.cmd(&["send", "c.yaml", "--yes"])
                .against(&sb)
                .env("WXPUSH_SECRET", secret)
                .run()
        };
        let aborted = send().expect(1);
        sb.next_day();
        let resumed = send().expect(0);
        let s = sb.stats();
        assert!(s.tokens_minted >= 2 && s.resets > 0, "{s:?}");
        let files = ["reports/gen.sandbox.csv", "reports/gen.sandbox.journal"].map(|f| w.read(f));
        for (name, text) in [
            ("stdout", &aborted.stdout),
            ("stderr", &aborted.stderr),
            ("stdout", &resumed.stdout),
            ("stderr", &resumed.stderr),
            ("report", &files[0]),
            ("journal", &files[1]),
        ] {
            assert!(
                !text.contains(secret),
                "{token_api}: {name} holds the AppSecret"
            );
            // Every sandbox token starts with `sbx_`.
            assert!(
                !text.contains("sbx_"),
                "{token_api}: {name} holds a token:\n{text}"
            );
            assert!(!text.contains("access_token="), "{name} holds a token URL");
        }
        assert!(
            files[0].contains("error sending request"),
            "transport errors are reported"
        );
    }
}

/// Issue 12 §4: `target: official` + `official_api: subscribe` sends Official Account
/// subscribe notifications to `subscribe/bizsend`, in the SDKs' shape: the web page as
/// `page`, no `client_msg_id`, the typed-key rules of subscribe messages.
#[test]
fn official_subscribe_notifications_go_to_bizsend() {
    let w = Workdir::with_examples();
    let sb = Sandbox::start(Knobs::default());
    w.cmd(&["check", "campaigns/course-notice.yaml"])
        .run()
        .expect(0)
        .stdout_has("official account subscribe notifications");
    w.cmd(&["send", "campaigns/course-notice.yaml", "--yes"])
        .against(&sb)
        .run()
        .expect(0)
        .stdout_has("sent              2");
    let bodies = sb.accepted_bodies("o_rbq1TOgERuflYd7PsiE9H565Oo");
    assert_eq!(
        bodies,
        [json!({
            "touser": "o_rbq1TOgERuflYd7PsiE9H565Oo",
            "template_id": "bZ3kQ9rWm2LxT7vNc4HsJ8dYp6FgA1eUo5iRtKwXqVs",
            "page": "https://example.com/courses/ielts-w1",
            "data": {
                "thing1": {"value": "雅思写作精讲"},
                "time2": {"value": "2026年12月20日 19:30"},
                "thing3": {"value": "石头同学,点击查看课程详情"}
            }
        })]
    );
    assert!(
        sb.requests()
            .iter()
            .all(|r| r.path == "/cgi-bin/message/subscribe/bizsend")
    );
    // The dry run's payload is the body sent.
    w.cmd(&["send", "campaigns/course-notice.yaml", "--dry-run"])
        .run()
        .expect(0);
    let rows = w.report("campaigns/reports/course-notice.dry-run.csv");
    let payload: Value = serde_json::from_str(&rows[0]["payload"]).unwrap();
    assert_eq!([payload], bodies.as_slice());

    // A mini program jump wins over the web page, as in template messages.
    let yaml = w.read("campaigns/course-notice.yaml").replace(
        "recipients:",
        "miniprogram:\n  appid: wx2210554e092c3f99\n  pagepath: \"pages/course?id={{ course_id }}\"\nrecipients:",
    );
    w.write(
        "campaigns/jump.yaml",
        yaml.replace("name: course-notice", "name: jump"),
    );
    w.cmd(&["send", "campaigns/jump.yaml", "--yes"])
        .against(&sb)
        .run()
        .expect(0);
    let last = sb
        .accepted_bodies("o_rbq1TOgERuflYd7PsiE9H565Op")
        .pop()
        .unwrap();
    assert_eq!(
        last["miniprogram"],
        json!({"appid": "wx2210554e092c3f99", "pagepath": "pages/course?id=ielts-s2"})
    );

    // A value the rules refuse stops the campaign before anything is sent.
    let before = sb.stats().send_requests;
    w.write(
        "campaigns/course-notice.csv",
        "openid,name,course,course_id,start\no_1,石头,雅思,x,明天晚上\n",
    );
    w.cmd(&["send", "campaigns/course-notice.yaml", "--yes", "--restart"])
        .against(&sb)
        .run()
        .expect(2)
        .stderr_has("row 1 (line 2), field `data.time2`");
    assert_eq!(sb.stats().send_requests, before);
}

/// No `client_msg_id` on bizsend: a lost answer is `unknown`, and is not sent again.
#[test]
fn a_lost_bizsend_answer_is_unknown_and_not_repeated() {
    let w = Workdir::with_examples();
    let sb = Sandbox::start(Knobs {
        reset_ratio: 1.0,
        ..Knobs::default()
    });
    let run = w
        .cmd(&["send", "campaigns/course-notice.yaml", "--yes"])
        .against(&sb)
        .run()
        .expect(0);
    run.expect_advice("--resend-unknown");
    let s = sb.stats();
    assert_eq!((s.send_requests, s.accepted), (2, 2), "{s:?}");
    let rows = w.report("campaigns/reports/course-notice.sandbox.csv");
    assert!(rows.iter().all(|r| r["status"] == "unknown"), "{rows:?}");
}

/// `/cgi-bin/token` past its daily limit: the advice names the stable token, which has its
/// own limit (issue 12 trial, D9).
#[test]
fn the_classic_token_s_daily_limit_points_to_the_stable_token() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        token_daily_limit: 0,
        ..Knobs::default()
    });
    generated(&w, 2, "rate: 1000\ntarget: mini\ntoken_api: classic\n");
    w.send(&sb, &[])
        .expect(1)
        .stderr_has("45009")
        .stderr_has("`token_api: stable`");
    assert_eq!(sb.stats().send_requests, 0);
}
