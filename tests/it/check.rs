//! `wxpush check` / `preview`, and invalid input: exit 2, the culprit named, nothing sent.

use crate::support::*;

const GOOD: &str = "name: t\ntarget: official\nappid: wx0123456789abcdef\ntemplate_id: TPL\nrecipients: people.csv\ndata:\n  first: \"{{ name }}你好\"\n";
const PEOPLE: &str = "openid,name\no_1,石头\no_2,小雨\no_3,阿明\n";

#[test]
fn check_counts_rows_and_sends_nothing() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("c.yaml", GOOD);
    w.write("people.csv", format!("{PEOPLE}o_2,dup\n"));
    w.cmd(&["check", "c.yaml"])
        .against(&sb)
        .run()
        .expect(0)
        .stdout_has("4 rows: 3 recipients, 1 repeated openid ");
    sb.expect_no_requests();
}

#[test]
fn preview_shows_rendered_fields() {
    let w = Workdir::with_examples();
    w.cmd(&["preview", "campaigns/vocab-reminder.yaml", "--limit", "2"])
        .run()
        .expect(0)
        .stdout_has("课程名称：巅峰单词800个背诵")
        .stdout_has("message 2 · row 2 · o_rbq1TOgERuflYd7PsiE9H565Op");
    // Without the template's content: the request's fields.
    let w = Workdir::new();
    generated(&w, 2, "");
    w.cmd(&["preview", "c.yaml"])
        .run()
        .expect(0)
        .stdout_has("data.thing1  用户1你好");
}

/// Each case: how to break the campaign, and what the error must say.
#[test]
fn bad_inputs_exit_2_name_the_culprit_and_send_nothing() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "a field given twice",
            &format!("{GOOD}  keyword1: x\n  keyword1: y\n"),
            PEOPLE,
            &[
                "c.yaml:9",
                "`data.keyword1` is given twice, on lines 8 and 9",
            ],
        ),
        (
            "a top-level key given twice",
            &format!("{GOOD}recipients: other.csv\n"),
            PEOPLE,
            &["c.yaml:8", "`recipients` is given twice, on lines 5 and 8"],
        ),
        (
            "a number as a field",
            &format!("{GOOD}  keyword1: 99.00\n"),
            PEOPLE,
            &["c.yaml:8", "`data.keyword1`", "quote it (\"99.00\")"],
        ),
        (
            "a misspelled field key",
            &format!("{GOOD}  keyword1: {{ value: x, colour: \"#173177\" }}\n"),
            PEOPLE,
            &["c.yaml:8", "unknown key `colour` (did you mean `color`?)"],
        ),
        (
            "a list as a field",
            &format!("{GOOD}  keyword1: [x, \"#173177\"]\n"),
            PEOPLE,
            &["c.yaml:8", "`data.keyword1`: is a list"],
        ),
        ("malformed yaml", "name: [t\n", PEOPLE, &["c.yaml:"]),
        (
            "a zone name as the report's offset",
            &format!("utc_offset: Asia/Shanghai\n{GOOD}"),
            PEOPLE,
            &[
                "c.yaml:1",
                "`Asia/Shanghai` is not an offset from UTC",
                "\"+08:00\"",
            ],
        ),
        (
            "unknown key",
            &GOOD.replace("template_id", "tempalte_id"),
            PEOPLE,
            &[
                "c.yaml:4",
                "unknown key `tempalte_id`",
                "did you mean `template_id`",
            ],
        ),
        (
            "unknown target",
            &GOOD.replace("official", "wechat"),
            PEOPLE,
            &["c.yaml:2", "unknown variant `wechat`"],
        ),
        (
            "missing template_id",
            &GOOD.replace("template_id: TPL\n", ""),
            PEOPLE,
            &["c.yaml", "`template_id`: missing"],
        ),
        (
            "url not http",
            &format!("{GOOD}url: ftp://example.com\n"),
            PEOPLE,
            &["c.yaml:8", "`url`", "http:// or https://"],
        ),
        (
            "bad color",
            &GOOD.replace("\"{{ name }}你好\"", "{ value: x, color: blue }"),
            PEOPLE,
            &["c.yaml:7", "data.first.color", "#173177"],
        ),
        (
            "page on official",
            &format!("{GOOD}page: pages/index\n"),
            PEOPLE,
            &["c.yaml:8", "`page`: only for `target: mini`"],
        ),
        (
            "url on mini",
            &format!("{}url: https://x.cn\n", GOOD.replace("official", "mini")),
            PEOPLE,
            &["c.yaml:8", "`url`: only for `target: official`"],
        ),
        (
            "recipients file missing",
            &GOOD.replace("people.csv", "nobody.csv"),
            PEOPLE,
            &["nobody.csv", "cannot read"],
        ),
        (
            "no openid column",
            GOOD,
            "open_id,name\no_1,a\n",
            &["people.csv", "no `openid` column", "open_id"],
        ),
        (
            "empty openid",
            GOOD,
            "openid,name\no_1,a\n,b\n",
            &["people.csv: row 2 (line 3): `openid` is empty"],
        ),
        (
            "legacy mini without form_id",
            &GOOD.replace("official", "mini\nmini_api: template"),
            PEOPLE,
            &["people.csv", "no `form_id` column"],
        ),
        (
            "invalid tera syntax",
            &GOOD.replace("{{ name }}", "{{ name "),
            PEOPLE,
            &["c.yaml:7: `data.first`", "invalid template"],
        ),
        (
            "undefined variable",
            &GOOD.replace("{{ name }}", "{{ nmae }}"),
            PEOPLE,
            &[
                "people.csv: row 1 (line 2), field `data.first`",
                "Variable `nmae` is not defined",
            ],
        ),
        (
            "subscribe value over its limit",
            &GOOD
                .replace("official", "mini")
                .replace("first:", "thing1:"),
            "openid,name\no_1,石头\no_2,一二三四五六七八九十一二三四五六七八九十\n",
            &[
                "row 2 (line 3), field `data.thing1`",
                "at most 20 characters",
            ],
        ),
        (
            "undecodable csv bytes",
            GOOD,
            "",
            &["people.csv", "neither UTF-8 nor GB18030"],
        ),
    ];
    let sb = Sandbox::start(Knobs::default());
    for (what, yaml, csv, needles) in cases {
        let w = Workdir::new();
        w.write("c.yaml", yaml);
        if *what == "undecodable csv bytes" {
            w.write("people.csv", b"openid,name\no_1,\xff\xfe\xfd\xfc\x80\n");
        } else {
            w.write("people.csv", csv);
        }
        let run = w.send(&sb, &[]);
        assert_eq!(run.code, 2, "{what}: exit code\n{}", run.stderr);
        for n in *needles {
            assert!(
                run.stderr.contains(n),
                "{what}: stderr lacks {n:?}:\n{}",
                run.stderr
            );
        }
        assert!(!w.path("reports").exists(), "{what}: a report was written");
    }
    sb.expect_no_requests();
}

#[test]
fn one_bad_row_among_many_is_named_and_nothing_is_sent() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("c.yaml", GOOD.replace("{{ name }}", "{{ nick }}"));
    let mut csv = String::from("openid,nick\n");
    for i in 1..=500 {
        csv.push_str(&format!("o_{i},n{i}\n"));
    }
    w.write("people.csv", csv.replace("o_377,n377\n", "o_377\n"));
    w.send(&sb, &[]).expect(2).stderr_has("row 377 (line 378)");
    sb.expect_no_requests();
}

#[test]
fn missing_secret_exits_2_and_sends_nothing() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("c.yaml", GOOD);
    w.write("people.csv", PEOPLE);
    w.cmd(&["send", "c.yaml", "--yes"])
        .env("WXPUSH_API_BASE", &sb.url())
        .run()
        .expect(2)
        .stderr_has("WXPUSH_SECRET is not set");
    sb.expect_no_requests();
}

/// Every typed key, a valid and an invalid row each: `check` lists every invalid row with
/// its field, sends nothing; the valid rows alone are sent and the sandbox accepts them all.
#[test]
fn every_typed_key_is_checked_before_anything_is_sent() {
    let keys = [
        (
            "thing1",
            "商品已发货",
            "一二三四五六七八九十一二三四五六七八九十一",
        ),
        ("number2", "12.5", "1.2.3"),
        ("letter3", "abc", "abc1"),
        ("symbol4", "#@!", "# @"),
        ("character_string5", "SO-1", "订单1"),
        ("time6", "2019年10月1日 15:01", "明天下午"),
        ("date7", "2019-10-01", "明天"),
        ("amount8", "¥99.00", "十二元"),
        ("phone_number9", "+86-0766-66888866", "138 0013 8000"),
        ("car_number10", "粤A8Z888挂", "粤中12345"),
        ("name11", "张三", "一二三四五六七八九十一"),
        ("phrase12", "配送中", "shipped"),
    ];
    // Mini program subscribe messages and Official Account subscribe notifications.
    for target in ["target: mini", "target: official\nofficial_api: subscribe"] {
        every_typed_key_for(target, &keys);
    }
}

fn every_typed_key_for(target: &str, keys: &[(&str, &str, &str)]) {
    let mut yaml = format!(
        "name: t\n{target}\nappid: wx0123456789abcdef\ntemplate_id: TPL\n\
         recipients: people.csv\ndata:\n",
    );
    let mut header = String::from("openid");
    for (key, _, _) in keys {
        yaml.push_str(&format!("  {key}: \"{{{{ {key} }}}}\"\n"));
        header.push_str(&format!(",{key}"));
    }
    let good: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let mut csv = format!("{header}\no_good,{}\n", good.join(","));
    // Row i+2 breaks key i only.
    for (i, (_, _, bad)) in keys.iter().enumerate() {
        let mut row = good.clone();
        row[i] = bad;
        csv.push_str(&format!("o_bad_{i},{}\n", row.join(",")));
    }
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("c.yaml", &yaml);
    w.write("people.csv", &csv);
    let run = w.cmd(&["check", "c.yaml"]).against(&sb).run().expect(2);
    for (i, (key, _, _)) in keys.iter().enumerate().take(10) {
        let row = i + 2;
        assert!(
            run.stderr
                .contains(&format!("row {row} (line {}), field `data.{key}`", row + 1)),
            "{target}: row {row} {key}:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("… and 2 more invalid rows"),
        "{}",
        run.stderr
    );
    sb.expect_no_requests();
    // The valid row alone: sent, and WeChat's emulator agrees it is valid.
    w.write(
        "people.csv",
        format!("{header}\no_good,{}\n", good.join(",")),
    );
    w.send(&sb, &[]).expect(0);
    assert_all_sent_once(&w, &sb, 1, "reports/t.sandbox.csv");
}

/// Mistakes about the secret and the API base: each named plainly, exit 2, nothing sent, and
/// an AppSecret pasted where a variable name belongs is never echoed.
#[test]
fn secret_and_api_base_mistakes_are_named_plainly() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("people.csv", PEOPLE);
    let pasted = "0123456789abcdef0123456789abcdef";
    w.write("c.yaml", format!("{GOOD}secret_env: {pasted}\n"));
    let run = w.cmd(&["check", "c.yaml"]).run().expect(2);
    assert!(
        run.stderr.contains("looks like the AppSecret itself"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(pasted), "echoed: {}", run.stderr);
    w.write("c.yaml", GOOD);
    w.cmd(&["send", "c.yaml", "--yes"])
        .env("WXPUSH_API_BASE", &sb.url())
        .env("WXPUSH_SECRET", "")
        .run()
        .expect(2)
        .stderr_has("WXPUSH_SECRET is empty");
    for bad in ["not a url", "ftp://x"] {
        w.cmd(&["send", "c.yaml", "--yes"])
            .env("WXPUSH_API_BASE", bad)
            .env("WXPUSH_SECRET", "x")
            .run()
            .expect(2)
            .stderr_has("not a URL");
    }
    sb.expect_no_requests();
}

/// `wxpush preview … | head`: a reader that goes away ends the output, not in a panic.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::Read;
    let w = Workdir::new();
    // Far more output than a pipe buffers (64 KiB), so writes meet the closed pipe.
    generated(&w, 3000, "");
    let mut child = w.cmd(&["preview", "c.yaml", "--limit", "3000"]).spawn();
    let mut first = [0u8; 16];
    child.stdout().read_exact(&mut first).unwrap();
    child.close_stdout();
    let run = child.wait().expect(0);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Issue 12 §2: `check`, `preview` and the dry run print the same warnings, and a warning
/// or an error about a field of a template file names that file (and the error its line).
#[test]
fn warnings_and_errors_name_the_template_file() {
    let w = Workdir::with_examples();
    let tpl = w.read("templates/vocab-reminder.yaml");
    // The line of `key:` under `data:` (the content's placeholders come before it).
    let line = |key: &str| {
        let needle = format!("  {key}: ");
        tpl.lines().position(|l| l.starts_with(&needle)).unwrap() + 1
    };
    let warning = format!(
        "WeChat no longer displays `first` (from templates/vocab-reminder.yaml:{}) and \
         `remark` (from templates/vocab-reminder.yaml:{})",
        line("first"),
        line("remark")
    );
    for args in [
        &["check", "campaigns/vocab-reminder-mini.yaml"][..],
        &["preview", "campaigns/vocab-reminder-mini.yaml"],
        &["send", "campaigns/vocab-reminder-mini.yaml", "--dry-run"],
    ] {
        w.cmd(args).run().expect(0).stderr_has(&warning);
    }
    // A row that does not render a template file's field: the row, and where the field is.
    w.write(
        "templates/vocab-reminder.yaml",
        tpl.replace("{{ task }}", "{{ chore }}"),
    );
    w.cmd(&["check", "campaigns/vocab-reminder-mini.yaml"])
        .run()
        .expect(2)
        .stderr_has("vocab.csv: row 1 (line 2), field `data.keyword2`")
        .stderr_has(&format!(
            "(the field is from templates/vocab-reminder.yaml:{})",
            line("keyword2")
        ));
    w.write(
        "templates/vocab-reminder.yaml",
        tpl.replace("keyword2: \"{{ task }}\"", "keyword2: 12.50"),
    );
    w.cmd(&["check", "campaigns/vocab-reminder-mini.yaml"])
        .run()
        .expect(2)
        .stderr_has(&format!(
            "templates/vocab-reminder.yaml:{}: `data.keyword2`",
            line("keyword2")
        ))
        .stderr_has("quote it");
}

/// Issue 13 §2: `{value, truncate: true}` shortens an over-long value to its type's limit
/// with "…", keeping the start; it is refused where "…" cannot fit the type.
#[test]
fn truncate_shortens_over_long_values_with_an_ellipsis() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    generated(
        &w,
        1,
        "  thing2: { value: \"{{ name }}的一段很长很长很长很长很长很长的课程名称\", truncate: true }\n\
         rate: 1000\ntarget: mini\n",
    );
    w.send(&sb, &[]).expect(0);
    let body = &sb.accepted_bodies("o_test_00001")[0];
    let v = body["data"]["thing2"]["value"].as_str().unwrap();
    assert_eq!(v.chars().count(), 20, "{v}");
    assert!(v.starts_with("用户1的一段") && v.ends_with('…'), "{v}");
    let yaml = w.read("c.yaml").replace("thing2:", "number2:");
    w.write("c.yaml", yaml);
    w.cmd(&["check", "c.yaml"])
        .run()
        .expect(2)
        .stderr_has("`data.number2.truncate`: `number2` has no length limit");
}
