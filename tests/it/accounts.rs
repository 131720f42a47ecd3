//! Issue 14: a real account in a real company. Profiles in `accounts.yaml`, token sources
//! (stable without `force_refresh`, a command, a URL, a variable; a stale one aborts without
//! a loop) and the egress proxy, each counted at the sandbox (and the proxy).

use crate::support::servers::{Proxy, TokenService};
use crate::support::*;

const REPORT: &str = "campaigns/reports/c.sandbox.csv";

/// `campaigns/c.yaml` naming `account: brand-a`, 3 recipients, and `accounts.yaml` (one
/// folder up, where a team keeps it) with `brand_a` as brand-a's settings.
fn with_account(w: &Workdir, brand_a: &str) {
    w.write(
        "accounts.yaml",
        format!("brand-a:\n  appid: wx0123456789abcdef\n{brand_a}brand-b:\n  appid: wx1111111111111111\n"),
    );
    w.write(
        "campaigns/people.csv",
        "openid,name\no_1,石头\no_2,小雨\no_3,阿明\n",
    );
    w.write(
        "campaigns/c.yaml",
        "name: c\naccount: brand-a\ntarget: mini\ntemplate_id: TPL\nrecipients: people.csv\n\
         rate: 1000\ndata:\n  thing1: \"{{ name }}你好\"\n",
    );
}

fn send(w: &Workdir, sb: &Sandbox, extra: &[&str]) -> WxCmd {
    let mut args = vec!["send", "campaigns/c.yaml", "--yes"];
    args.extend_from_slice(extra);
    w.cmd(&args).env("WXPUSH_API_BASE", &sb.url())
}

/// The account's appid and secret_env come from accounts.yaml; the stable token is asked
/// for without `force_refresh` (which would invalidate every other service's token) unless
/// `--force-refresh-token`, and then once.
#[test]
fn an_account_campaign_sends_with_the_account_s_secret_and_never_forces_a_token() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    with_account(&w, "  secret_env: BRAND_A_SECRET\n");
    // The account's variable, not WXPUSH_SECRET.
    send(&w, &sb, &[])
        .env("WXPUSH_SECRET", SANDBOX_SECRET)
        .run()
        .expect(2)
        .stderr_has("BRAND_A_SECRET is not set");
    send(&w, &sb, &[])
        .env("BRAND_A_SECRET", SANDBOX_SECRET)
        .run()
        .expect(0);
    assert_exactly_once(&w, &sb, 3, REPORT);
    let s = sb.stats();
    assert_eq!(
        (s.stable_token_calls, s.force_refresh_calls),
        (1, 0),
        "{s:?}"
    );

    send(&w, &sb, &["--restart", "--force-refresh-token"])
        .env("BRAND_A_SECRET", SANDBOX_SECRET)
        .run()
        .expect(0);
    let s = sb.stats();
    // The normal fetch (for the quota), then the one forced call after the yes.
    assert_eq!(
        (s.stable_token_calls, s.force_refresh_calls),
        (3, 1),
        "{s:?}"
    );

    // Refused for today's quota: the forced call, which breaks every other service's
    // token, is not made for a send that does not happen.
    let small = Sandbox::start(Knobs {
        daily_quota: Some(2),
        ..Knobs::default()
    });
    send(&w, &small, &["--restart", "--force-refresh-token"])
        .env("BRAND_A_SECRET", SANDBOX_SECRET)
        .run()
        .expect(1)
        .stderr_has("today's quota");
    assert_eq!(small.stats().force_refresh_calls, 0);
}

/// Mistakes with accounts are exit 2 before anything is sent, naming the file, line and key.
#[test]
fn account_mistakes_are_named_and_send_nothing() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    with_account(&w, "");
    let c = w.read("campaigns/c.yaml");
    w.write(
        "campaigns/c.yaml",
        c.replace(
            "account: brand-a\n",
            "account: brand-a\nappid: wx0123456789abcdef\n",
        ),
    );
    send(&w, &sb, &[])
        .against(&sb)
        .run()
        .expect(2)
        .stderr_has("campaigns/c.yaml:3: `appid`: `account` and `appid` are both given");
    w.write("campaigns/c.yaml", c.replace("brand-a", "brnad-a"));
    send(&w, &sb, &[])
        .against(&sb)
        .run()
        .expect(2)
        .stderr_has("campaigns/c.yaml:2: `account`: no account `brnad-a` in accounts.yaml (it has brand-a, brand-b)")
        .stderr_has("did you mean `brand-a`?");
    // --accounts names another file; one that says nothing useful is refused with its line.
    w.write("other.yaml", "brand-c:\n  appid: wx12\n");
    send(&w, &sb, &["--accounts", "other.yaml"])
        .against(&sb)
        .run()
        .expect(2)
        .stderr_has("other.yaml:1: account `brand-c`: appid `wx12` does not look like an AppID");
    sb.expect_no_requests();
    assert_eq!(sb.stats().stable_token_calls, 0);
}

/// `token: {command: …}`: the command's stdout is the token (bare, or WeChat's JSON); no
/// AppSecret is needed or read. `{env: VAR}` the same from a variable.
#[test]
fn a_token_from_a_command_or_a_variable_needs_no_secret() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("token.txt", format!("{}\n", sb.mint_token()));
    with_account(&w, "  token: {command: \"cat token.txt\"}\n");
    send(&w, &sb, &[]).run().expect(0);
    assert_exactly_once(&w, &sb, 3, REPORT);
    // Only the test's own fetch reached the token API.
    assert_eq!(sb.stats().stable_token_calls, 1);

    let json = format!(
        r#"{{"access_token":"{}","expires_in":7200}}"#,
        sb.mint_token()
    );
    with_account(&w, "  token: {env: BRAND_A_TOKEN}\n");
    send(&w, &sb, &["--restart"])
        .env("BRAND_A_TOKEN", &json)
        .run()
        .expect(0);
    assert_eq!(sb.stats().stable_token_calls, 2);
    assert_eq!(sb.stats().accepted, 6);
    // The variable not set: exit 1 before anything is sent, saying which.
    send(&w, &sb, &["--restart"])
        .run()
        .expect(1)
        .stderr_has("the token source (env BRAND_A_TOKEN) gave no token: the environment variable BRAND_A_TOKEN is not set");
    assert_eq!(sb.stats().send_requests, 6);
}

/// A source that hands back the token WeChat rejects: asked once more, then the run aborts
/// saying so (exit 1), a bounded number of requests, never a refresh loop; the resume it
/// prints works once the source is fixed.
#[test]
fn a_stale_token_from_a_command_aborts_without_a_loop() {
    let w = Workdir::new();
    // Shaped like this sandbox's tokens, but never minted by it: WeChat's 40001.
    w.write("token.txt", format!("sbx_{}\n", "0".repeat(48)));
    with_account(&w, "  token: {command: \"cat token.txt\"}\n");
    let stale = "and asked again it handed back the same one";
    // Found at the quota preflight: before any message.
    let sb = Sandbox::start(Knobs::default());
    let run = send(&w, &sb, &[]).run().expect(1).stderr_has(stale);
    assert!(
        run.stderr
            .contains("nothing was sent and no file was changed"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.stats().send_requests, 0);
    // WeChat checks the token before anything else: so does every call, the quota's
    // included. Fixed at its source, the printed command sends everyone once.
    w.write("token.txt", format!("{}\n", sb.mint_token()));
    w.run_advice_without_secret(&run.expect_advice("run again with: "))
        .expect(0);
    assert_exactly_once(&w, &sb, 3, REPORT);
}

/// `token: {url: …}`: a company token service's JSON; its query is not shown anywhere.
#[test]
fn a_token_from_a_company_service() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    let service = TokenService::start(format!(
        r#"{{"access_token":"{}","expires_in":7200}}"#,
        sb.mint_token()
    ));
    with_account(
        &w,
        &format!(
            "  token: {{url: \"{}/token?key=k3y\"}}\n",
            service.served.url
        ),
    );
    let run = send(&w, &sb, &["-v"]).run().expect(0);
    assert_exactly_once(&w, &sb, 3, REPORT);
    assert_eq!(service.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        run.stderr.contains("source=url http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("k3y") && !run.stdout.contains("k3y"));
}

/// `proxy:` with a password: every WeChat request goes through the proxy, and the password
/// is in no output, even at -vv, and not when the proxy refuses it.
#[test]
fn every_wechat_request_goes_through_the_account_s_proxy_and_its_password_stays_secret() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    let proxy = Proxy::start("gw", "pr0xy-pw");
    with_account(
        &w,
        &format!("  proxy: {}\n", proxy.url_with("gw", "pr0xy-pw")),
    );
    let run = send(&w, &sb, &["-vv"])
        .env("WXPUSH_SECRET", SANDBOX_SECRET)
        .run()
        .expect(0);
    assert_exactly_once(&w, &sb, 3, REPORT);
    let s = sb.stats();
    // The token, the quota preflight and the three sends.
    assert_eq!(
        proxy.forwarded(),
        s.stable_token_calls + 1 + s.send_requests,
        "{s:?}"
    );
    assert_eq!(proxy.forwarded(), 5);
    for out in [&run.stdout, &run.stderr, &w.read(REPORT)] {
        assert!(!out.contains("pr0xy-pw"), "{out}");
    }

    // A wrong password: the proxy refuses; nothing reaches WeChat; the message says so
    // without the password.
    with_account(
        &w,
        &format!("  proxy: {}\n", proxy.url_with("gw", "wr0ng-pw")),
    );
    let run = send(&w, &sb, &["--restart", "-vv"])
        .env("WXPUSH_SECRET", SANDBOX_SECRET)
        .run()
        .expect(1);
    assert!(run.stderr.contains("407"), "{}", run.stderr);
    assert!(proxy.refused() >= 1);
    for out in [&run.stdout, &run.stderr] {
        assert!(
            !out.contains("wr0ng-pw") && !out.contains("pr0xy-pw"),
            "{out}"
        );
    }
    assert_eq!(sb.stats().stable_token_calls, 1);
}

/// `wxpush accounts` lists them (a proxy password redacted); `accounts test` fetches a token
/// for each and says OK or why, with what to do in accounts.yaml's terms, never the token
/// or the secret; exit 1 when any fails. A classic account is tested only by name.
#[test]
fn accounts_test_says_ok_or_the_cause_for_each() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    let walled = Sandbox::start(Knobs {
        ip_whitelist: Some(vec!["203.0.113.7".into()]),
        ..Knobs::default()
    });
    w.write(
        "accounts.yaml",
        "good:\n  appid: wx0123456789abcdef\n  secret_env: GOOD_SECRET\n  proxy: http://u:pr0xy-pw@127.0.0.1:9\n\
         wrong-secret:\n  appid: wx0123456789abcdef\n  secret_env: BAD_SECRET\n\
         old:\n  appid: wx0123456789abcdef\n  token: classic\n",
    );
    let list = w.cmd(&["accounts"]).env("GOOD_SECRET", "x").run().expect(0);
    for needle in [
        "good           wx0123456789abcdef  token stable (/cgi-bin/stable_token); secret in $GOOD_SECRET (set); proxy http://u:***@127.0.0.1:9/",
        "wrong-secret   wx0123456789abcdef  token stable (/cgi-bin/stable_token); secret in $BAD_SECRET (NOT SET)",
        "old            wx0123456789abcdef  token classic (/cgi-bin/token)",
    ] {
        assert!(
            list.stdout.contains(needle),
            "{needle:?} in\n{}",
            list.stdout
        );
    }
    assert!(!list.stdout.contains("pr0xy-pw"));
    // Without the proxy line (port 9 answers nothing), against the plain sandbox.
    let yaml = w
        .read("accounts.yaml")
        .replace("  proxy: http://u:pr0xy-pw@127.0.0.1:9\n", "");
    w.write("accounts.yaml", yaml);
    let test = w
        .cmd(&["accounts", "test"])
        .env("WXPUSH_API_BASE", &sb.url())
        .env("GOOD_SECRET", SANDBOX_SECRET)
        .env("BAD_SECRET", "0123456789abcdef0123456789abcdef")
        .run()
        .expect(1);
    for needle in [
        "OK   good: wx0123456789abcdef, token fetched and accepted (it lives 7200 s)",
        "FAIL wrong-secret: wx0123456789abcdef: the token endpoint answered 40125",
        "what to do: the AppSecret in $BAD_SECRET is not wx0123456789abcdef's",
        "SKIP old: a classic token fetch invalidates",
    ] {
        assert!(
            test.stdout.contains(needle),
            "{needle:?} in\n{}",
            test.stdout
        );
    }
    let test = test.stderr_has("1 of 2 accounts cannot get a token WeChat accepts");
    assert_eq!(sb.stats().token_calls, 0, "the classic one was not fetched");
    // Named, the classic one is fetched; behind a whitelist it says what to do.
    let walled_run = w
        .cmd(&["accounts", "test", "good"])
        .env("WXPUSH_API_BASE", &walled.url())
        .env("GOOD_SECRET", SANDBOX_SECRET)
        .run()
        .expect(1);
    assert!(
        walled_run.stdout.contains("40164")
            && walled_run.stdout.contains("egress IP")
            && walled_run.stdout.contains("set `proxy:` for good"),
        "{}",
        walled_run.stdout
    );
    w.cmd(&["accounts", "test", "old"])
        .env("WXPUSH_API_BASE", &sb.url())
        .env("WXPUSH_SECRET", SANDBOX_SECRET)
        .run()
        .expect(0)
        .stdout_has("OK   old");
    assert_eq!(sb.stats().token_calls, 1);
    for out in [&test.stdout, &test.stderr] {
        assert!(
            !out.contains(SANDBOX_SECRET) && !out.contains("sbx_"),
            "{out}"
        );
        assert!(!out.contains("0123456789abcdef0123456789abcdef"), "{out}");
    }
    w.cmd(&["accounts", "test", "nobody"])
        .run()
        .expect(2)
        .stderr_has("no account `nobody` in accounts.yaml");
}

/// `templates pull` writes one template file per template of the account, which a campaign
/// then names (`template: <id>`) and `check` passes; a second pull leaves them alone (exit
/// 0) unless `--force`. `check --online` catches a missing key and an unknown template_id.
#[test]
fn templates_pull_writes_files_that_pass_check_and_check_online_compares() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("accounts.yaml", "brand-a:\n  appid: wx0123456789abcdef\n");
    let pull = |extra: &[&str]| {
        let mut args = vec!["templates", "pull"];
        args.extend_from_slice(extra);
        w.cmd(&args)
            .env("WXPUSH_API_BASE", &sb.url())
            .env("WXPUSH_SECRET", SANDBOX_SECRET)
    };
    let first = pull(&[]).run().expect(0);
    let oa = "n44_YbDNEqrrSEEvd8The8HpWYo1gWOVAXj7zIz4vHA";
    for needle in [
        format!("wrote templates/{oa}.yaml (学习提醒)"),
        "wrote templates/9Aw5ZV1j9xdWTFEkqCpZ7mIBbSC34khK55OtzUPl0rU.yaml (上课提醒)".into(),
        "3 templates of account `brand-a`: 3 written, 0 skipped".into(),
    ] {
        assert!(
            first.stdout.contains(&needle),
            "{needle:?} in\n{}",
            first.stdout
        );
    }
    let file = w.read(&format!("templates/{oa}.yaml"));
    assert!(
        file.contains("target: official\ntemplate_id: n44_"),
        "{file}"
    );
    assert!(
        file.contains("  keyword1: \"巅峰单词800个背诵\"\n"),
        "{file}"
    );
    let notice = w.read("templates/bZ3kQ9rWm2LxT7vNc4HsJ8dYp6FgA1eUo5iRtKwXqVs.yaml");
    assert!(notice.contains("official_api: subscribe\n"), "{notice}");
    w.write(&format!("templates/{oa}.yaml"), "# mine\n");
    pull(&[])
        .run()
        .expect(0)
        .stdout_has(&format!(
            "skipped templates/{oa}.yaml (学习提醒): it exists; --force replaces it"
        ))
        .stdout_has("0 written, 3 skipped");
    assert_eq!(w.read(&format!("templates/{oa}.yaml")), "# mine\n");
    pull(&["--force"]).run().expect(0).stdout_has("3 written");

    // Each pulled file makes a campaign that passes check, offline and online.
    w.write("people.csv", "openid\no_1\no_2\n");
    for id in [
        oa,
        "9Aw5ZV1j9xdWTFEkqCpZ7mIBbSC34khK55OtzUPl0rU",
        "bZ3kQ9rWm2LxT7vNc4HsJ8dYp6FgA1eUo5iRtKwXqVs",
    ] {
        w.write(
            "c.yaml",
            format!("account: brand-a\ntemplate: {id}\nrecipients: people.csv\n"),
        );
        w.cmd(&["check", "c.yaml", "--online"])
            .env("WXPUSH_API_BASE", &sb.url())
            .env("WXPUSH_SECRET", SANDBOX_SECRET)
            .run()
            .expect(0)
            .stdout_has("online: `")
            // Passing is not sending WeChat's example text to everyone unawares.
            .stderr_has("are still WeChat's examples (it says `examples: true`)");
    }
    // A key the live template does not have, and one it has that the campaign leaves out.
    w.write(
        "c.yaml",
        format!(
            "account: brand-a\ntarget: official\ntemplate_id: {oa}\nrecipients: people.csv\n\
             data:\n  keyword1: x\n  keyword2: y\n  keyword9: z\n"
        ),
    );
    let online = |w: &Workdir| {
        w.cmd(&["check", "c.yaml", "--online"])
            .env("WXPUSH_API_BASE", &sb.url())
            .env("WXPUSH_SECRET", SANDBOX_SECRET)
            .run()
    };
    online(&w)
        .expect(2)
        .stderr_has("does not match the live template `学习提醒`")
        .stderr_has("the campaign does not fill keyword3; the template has no keyword9");
    w.write(
        "c.yaml",
        "account: brand-a\ntarget: official\ntemplate_id: NO_SUCH\nrecipients: people.csv\n\
         data:\n  keyword1: x\n",
    );
    online(&w).expect(2).stderr_has(
        "`template_id` `NO_SUCH` is not a template of wx0123456789abcdef (it has 1 template)",
    );
    assert_eq!(sb.stats().send_requests, 0);
}

/// Issue 14 §6: `followers` pages through 25,000 followers (3 pages of `user/get`, the last
/// one followed by the empty page WeChat answers), a tag (pages of its own), the blacklist
/// left out; the CSV is a recipients file a campaign sends to. A mini program is told it
/// has no follower list.
#[test]
fn followers_page_through_every_follower_and_a_tag_without_the_blacklist() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        followers: 25_000,
        ..Knobs::default()
    });
    w.write("accounts.yaml", "brand-a:\n  appid: wx0123456789abcdef\n");
    let followers = |args: &[&str]| {
        let mut all = vec!["followers"];
        all.extend_from_slice(args);
        w.cmd(&all)
            .env("WXPUSH_API_BASE", &sb.url())
            .env("WXPUSH_SECRET", SANDBOX_SECRET)
            .run()
    };
    let run = followers(&["--exclude-blacklist", "--out", "all.csv"]).expect(0);
    run.stdout_has(
        "wrote all.csv: 24,500 recipients of account `brand-a` (500 blacklisted left out)",
    )
    .stderr_has("followers: 25,000 of 25,000");
    let all = w.read("all.csv");
    let lines: Vec<&str> = all.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 24_501);
    assert_eq!(lines[0], "openid");
    assert!(!lines.contains(&"o_follower_000050"), "blacklisted");
    assert!(lines.contains(&"o_follower_025000") || lines.contains(&"o_follower_024999"));
    let unique: std::collections::HashSet<&&str> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "nobody twice");

    // A tag by name, 2,500 members in pages of 1,000, with details.
    followers(&["--tag", "VIP", "--details", "--out", "vip.csv"])
        .expect(0)
        .stdout_has("wrote vip.csv: 2,500 recipients");
    let vip = w.read("vip.csv");
    assert!(
        vip.starts_with("\u{feff}openid,subscribe_time,tagid_list,remark\n"),
        "{vip}"
    );
    assert!(vip.contains("\no_follower_000010,"), "{}", &vip[..200]);
    assert_eq!(vip.lines().count(), 2_501);
    // Only a followers file is replaced: never a report, a campaign or the accounts file.
    for precious in ["accounts.yaml", "all.csv.journal"] {
        if precious.ends_with("journal") {
            w.write(precious, "{\"journal\":1}\n");
        }
        let before = w.read(precious);
        followers(&["--out", precious])
            .expect(2)
            .stderr_has("is not a followers file");
        assert_eq!(w.read(precious), before);
    }
    followers(&["--tag", "VVIP"])
        .expect(2)
        .stderr_has("has no tag `VVIP`; its tags: VIP (100), 新客 (101)");
    followers(&["--target", "mini"])
        .expect(2)
        .stderr_has("a mini program has no follower list");

    // The file is a recipients CSV: a campaign sends to it.
    w.write(
        "c.yaml",
        "account: brand-a\ntarget: mini\ntemplate_id: TPL\nrecipients: vip.csv\nrate: 5000\n\
         concurrency: 16\ndata:\n  thing1: \"{{ openid }}\"\n",
    );
    w.cmd(&["send", "c.yaml", "--yes", "-q"])
        .env("WXPUSH_API_BASE", &sb.url())
        .env("WXPUSH_SECRET", SANDBOX_SECRET)
        .run()
        .expect(0);
    assert_eq!(sb.stats().accepted, 2_500);
    assert_eq!(sb.stats().duplicate_deliveries, 0);
}

/// Without `proxy:`, the standard variables: `HTTP_PROXY` carries the requests (the sandbox
/// is http://), and `NO_PROXY` exempts a host.
#[test]
fn without_proxy_the_proxy_variables_apply() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    let proxy = Proxy::start("gw", "env-pw");
    with_account(&w, "");
    send(&w, &sb, &[])
        .env("WXPUSH_SECRET", SANDBOX_SECRET)
        .env("HTTP_PROXY", &proxy.url_with("gw", "env-pw"))
        .run()
        .expect(0);
    assert_eq!(proxy.forwarded(), 5, "token, quota and three sends");
    send(&w, &sb, &["--restart"])
        .env("WXPUSH_SECRET", SANDBOX_SECRET)
        .env("HTTP_PROXY", &proxy.url_with("gw", "env-pw"))
        .env("NO_PROXY", "127.0.0.1")
        .run()
        .expect(0);
    assert_eq!(proxy.forwarded(), 5, "NO_PROXY: nothing more through it");
    assert_eq!(sb.stats().accepted, 6);
}

/// A "no" undoes nothing only if nothing was done: a forced stable token and a token
/// command run only after the yes.
#[test]
fn a_declined_question_forces_no_token_and_runs_no_command() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    with_account(&w, "");
    let base = sb.url();
    let env = [
        ("WXPUSH_API_BASE", base.as_str()),
        ("WXPUSH_SECRET", SANDBOX_SECRET),
    ];
    let args = ["send", "campaigns/c.yaml", "--force-refresh-token"];
    let (code, shown) = Prompted::start_with(&w, &env, &args).answer("n\n");
    assert_eq!(code, 2, "{shown}");
    // Only the harmless normal-mode fetch (for the quota line) came before the question.
    let s = sb.stats();
    assert_eq!(
        (s.stable_token_calls, s.force_refresh_calls),
        (1, 0),
        "{s:?}"
    );

    w.write("token.txt", format!("{}\n", sb.mint_token()));
    with_account(
        &w,
        "  token: {command: \"sh -c 'touch ran; cat token.txt'\"}\n",
    );
    let (code, shown) = Prompted::start_with(&w, &env, &["send", "campaigns/c.yaml"]).answer("n\n");
    assert_eq!(code, 2, "{shown}");
    assert!(!w.path("ran").exists(), "the command ran before the yes");
    let (code, shown) = Prompted::start_with(&w, &env, &["send", "campaigns/c.yaml"]).answer("y\n");
    assert_eq!(code, 0, "{shown}");
    assert!(w.path("ran").exists());
    assert_exactly_once(&w, &sb, 3, REPORT);
}

/// `accounts test` asks WeChat whether the token works: a command's stale token is a FAIL,
/// not an OK.
#[test]
fn accounts_test_fails_a_token_wechat_refuses() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs::default());
    w.write("stale.txt", format!("sbx_{}\n", "0".repeat(48)));
    w.write(
        "accounts.yaml",
        "stale:\n  appid: wx0123456789abcdef\n  token: {command: \"cat stale.txt\"}\n",
    );
    let run = w
        .cmd(&["accounts", "test"])
        .env("WXPUSH_API_BASE", &sb.url())
        .run()
        .expect(1);
    assert!(
        run.stdout
            .contains("FAIL stale: wx0123456789abcdef: WeChat refuses the token")
            && run
                .stdout
                .contains("the token from command `cat …` is not (or no longer) valid"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("sbx_0000") && !run.stderr.contains("sbx_0000"));
}
