//! `wxpush sandbox` as a process: its banner's command, its tolerance (and `--strict`), and
//! the account endpoints it serves, over real HTTP.

use serde_json::{Value, json};

use crate::support::{Child, Workdir, generated};

/// A `wxpush sandbox --port 0 ARGS` process and the base URL its banner gives.
struct Served {
    child: Option<Child>,
    banner: String,
    base: String,
    rt: tokio::runtime::Runtime,
}

impl Served {
    fn start(w: &Workdir, args: &[&str]) -> Served {
        let mut all = vec!["sandbox", "--port", "0"];
        all.extend_from_slice(args);
        let mut child = w.cmd(&all).spawn();
        let banner = child.read_stdout_until("Ctrl-C stops it");
        let base = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .expect("the banner names its URL")
            .to_owned();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Served {
            child: Some(child),
            banner,
            base,
            rt,
        }
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.base);
        let body = serde_json::to_vec(body).unwrap();
        self.rt.block_on(async {
            let c = reqwest::Client::new();
            let r = c.post(url).body(body).send().await.unwrap();
            r.json().await.unwrap()
        })
    }

    fn token(&self) -> String {
        let t = self.post(
            "/cgi-bin/stable_token",
            &json!({"grant_type": "client_credential", "appid": "wx0123456789abcdef",
                "secret": "sandbox-secret"}),
        );
        t["access_token"].as_str().expect("a token").to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            c.kill_9();
        }
    }
}

/// The banner's command carries the secret that was set (quoted for the shell), and sends.
#[test]
fn the_banner_s_command_sends_with_the_secret_it_set() {
    let w = Workdir::new();
    let sb = Served::start(&w, &["--secret", "open sesame", "--strict"]);
    let line = sb
        .banner
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("WXPUSH_API_BASE="))
        .expect("a command in the banner")
        .to_owned();
    assert!(
        line.contains("WXPUSH_SECRET='open sesame' wxpush send CAMPAIGN.yaml"),
        "{line}"
    );
    let campaign = generated(&w, 3, "rate: 1000\n");
    std::fs::rename(campaign, w.path("CAMPAIGN.yaml")).unwrap();
    // Verbatim, plus --yes: the test has no terminal to answer the question on.
    w.run_advice_without_secret(&format!("{line} --yes"))
        .expect(0)
        .stdout_has("sent              3");
    assert_eq!(sb.get("/sandbox/stats")["accepted"], 3);
    // What arrived, newest first, as JSON (the page at `/` has a browser test).
    let arrived = sb.get("/sandbox/messages");
    assert_eq!(arrived.as_array().map(Vec::len), Some(3), "{arrived}");
    let mut lines: Vec<String> = (0..3).map(|i| arrived[i]["lines"][0].to_string()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "\"thing1: 用户1你好\"",
            "\"thing1: 用户2你好\"",
            "\"thing1: 用户3你好\""
        ]
    );
}

/// Bodies real SDKs send (issue 12 §3) are accepted by default and refused with `--strict`.
#[test]
fn sdk_bodies_pass_by_default_and_fail_when_strict() {
    let w = Workdir::new();
    // co-wechat-api's topColor; silenceper's empty strings; WxJava's miniprogram.path.
    let template = json!({"touser": "o1", "template_id": "t", "topColor": "#FF0000",
        "miniprogram": {"appid": "wx2210554e092c3f99", "path": "pages/index"},
        "data": {"keyword1": {"value": "v", "color": ""}}});
    let subscribe = json!({"touser": "o2", "template_id": "t", "page": "",
        "miniprogram_state": "", "lang": "", "data": {"thing1": {"value": "好", "color": ""}}});
    let sends = [
        ("/cgi-bin/message/template/send", template),
        ("/cgi-bin/message/subscribe/send", subscribe),
    ];
    for (args, expect_ok) in [(&[][..], true), (&["--strict"][..], false)] {
        let sb = Served::start(&w, args);
        let q = format!("?access_token={}", sb.token());
        for (path, body) in &sends {
            let answer = sb.post(&format!("{path}{q}"), body);
            assert_eq!(
                answer["errcode"] == 0,
                expect_ok,
                "{args:?} {path}: {answer}"
            );
        }
        if expect_ok {
            let log = sb.get("/sandbox/requests");
            assert_eq!(
                log[0]["ignored"],
                json!(["topColor", "miniprogram.path", "data.keyword1.color"])
            );
        }
    }
}

/// Each start mints its own tokens: one from an earlier start is refused with 40001, as
/// WeChat refuses a token that is not the latest.
#[test]
fn a_token_from_another_start_is_not_accepted() {
    let w = Workdir::new();
    let old = Served::start(&w, &[]).token();
    let sb = Served::start(&w, &[]);
    let body = json!({"touser": "o1", "template_id": "t", "data": {"k": {"value": "v"}}});
    let answer = sb.post(
        &format!("/cgi-bin/message/template/send?access_token={old}"),
        &body,
    );
    assert_eq!(answer["errcode"], 40001, "{answer}");
}

/// `/cgi-bin/token` stops at `--token-daily-limit`, and `quota/get` says so.
#[test]
fn the_classic_token_has_a_daily_limit() {
    let w = Workdir::new();
    let sb = Served::start(&w, &["--token-daily-limit", "2"]);
    let q = "/cgi-bin/token?grant_type=client_credential&appid=wx0123456789abcdef&secret=sandbox-secret";
    let first = sb.get(q);
    assert!(first["access_token"].is_string(), "{first}");
    assert!(sb.get(q)["access_token"].is_string());
    let over = sb.get(q);
    assert_eq!(over["errcode"], 45009, "{over}");
    let token = first["access_token"].as_str().unwrap();
    let quota = sb.post(
        &format!("/cgi-bin/openapi/quota/get?access_token={token}"),
        &json!({"cgi_path": "/cgi-bin/token"}),
    );
    assert_eq!(
        quota["quota"],
        json!({"daily_limit": 2, "used": 2, "remain": 0})
    );
}

/// `--templates FILE` replaces the templates both list endpoints serve.
#[test]
fn templates_come_from_the_file() {
    let w = Workdir::new();
    w.write(
        "tpl.yaml",
        "template_list:\n  - template_id: T1\n    title: 订单提醒\n    content: \"{{thing1.DATA}}\"\n\
         data:\n  - priTmplId: S1\n    title: 上课提醒\n    content: \"{{time2.DATA}}\"\n    type: 3\n",
    );
    let sb = Served::start(&w, &["--templates", w.path("tpl.yaml").to_str().unwrap()]);
    let q = format!("?access_token={}", sb.token());
    let oa = sb.get(&format!("/cgi-bin/template/get_all_private_template{q}"));
    assert_eq!(oa["template_list"][0]["template_id"], "T1");
    assert_eq!(oa["template_list"][0]["title"], "订单提醒");
    let mini = sb.get(&format!("/wxaapi/newtmpl/gettemplate{q}"));
    assert_eq!(
        mini["data"],
        json!([{"priTmplId": "S1", "title": "上课提醒",
        "content": "{{time2.DATA}}", "example": "", "type": 3}])
    );
    // A file that is not in that shape is a usage error naming it.
    w.write("bad.yaml", "templates: []\n");
    w.cmd(&["sandbox", "--port", "0", "--templates", "bad.yaml"])
        .run()
        .expect(2)
        .stderr_has("bad.yaml");
}

/// `--templates DIR` reads the template files themselves (`templates/` as `wxpush init`
/// writes it): the page lays a marketer's own campaign out as WeChat would, title and
/// filled content lines, not raw keys; both lists serve them.
#[test]
fn templates_come_from_a_folder_of_template_files() {
    let w = Workdir::new();
    w.cmd(&["init", "spring-sale"]).run().expect(0);
    w.cmd(&["init", "class", "--target", "mini"])
        .run()
        .expect(0);
    let sb = Served::start(&w, &["--templates", "templates"]);
    for c in ["spring-sale.yaml", "class.yaml"] {
        w.cmd(&["send", c, "--yes"])
            .env("WXPUSH_API_BASE", &sb.base)
            .env("WXPUSH_SECRET", "sandbox-secret")
            .run()
            .expect(0);
    }
    let arrived = sb.get("/sandbox/messages");
    let arrived = arrived.as_array().unwrap();
    assert_eq!(arrived.len(), 6, "{arrived:?}");
    // Both templates carry init's placeholder id: each kind is laid out by its own.
    let titles = |path: &str| -> Vec<&str> {
        arrived
            .iter()
            .filter(|m| m["path"] == path)
            .map(|m| m["title"].as_str().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        titles("/cgi-bin/message/template/send"),
        ["订单发货通知"; 3]
    );
    let mini = titles("/cgi-bin/message/subscribe/send");
    assert_eq!(mini.len(), 3);
    assert!(
        mini.iter().all(|t| !t.is_empty() && *t != "订单发货通知"),
        "{mini:?}"
    );
    for m in arrived {
        let lines: Vec<&str> = m["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        // Content lines (`商品名称：…`), never a raw `thing1: …` key.
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("thing1") && !l.contains(".DATA")),
            "{m}"
        );
    }
    let q = format!("?access_token={}", sb.token());
    let oa = sb.get(&format!("/cgi-bin/template/get_all_private_template{q}"));
    assert_eq!(oa["template_list"].as_array().unwrap().len(), 1, "{oa}");
    let mini = sb.get(&format!("/wxaapi/newtmpl/gettemplate{q}"));
    assert_eq!(mini["data"].as_array().unwrap().len(), 1, "{mini}");
    // A folder without a template file that says its shape is a usage error naming it.
    w.write("empty/x.yaml", "target: mini\n");
    w.cmd(&["sandbox", "--port", "0", "--templates", "empty"])
        .run()
        .expect(2)
        .stderr_has("empty: no template file");
}
