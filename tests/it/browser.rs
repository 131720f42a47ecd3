//! Pages in a real headless browser (Debian's `chromium`, with a CJK font; `.ci/run`
//! installs both): the picture is not blank, and the page holds each recipient's text.
//! Without chromium the tests say so and pass, except in CI (`CI` set), where they fail.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// `chromium --headless ARGS file://PAGE`, bounded in time; `None` without chromium.
fn chromium(args: &[&str], page: &Path) -> Option<std::process::Output> {
    chromium_at(args, &format!("file://{}", page.display()))
}

/// `chromium --headless ARGS URL`, bounded in time; `None` if there is no chromium here.
fn chromium_at(args: &[&str], url: &str) -> Option<std::process::Output> {
    let found = Command::new("chromium").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (see .ci/run)"
        );
        eprintln!("chromium is not installed: browser test skipped");
        return None;
    }
    let out = Command::new("timeout")
        .args(["120", "chromium", "--headless", "--no-sandbox"])
        .args([
            "--disable-background-networking",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("timeout runs");
    assert!(out.status.success(), "chromium: {out:?}");
    Some(out)
}

/// The screenshot's pixels that are not the page background, and those dark enough to be
/// text, as fractions.
fn inked(png: &Path) -> (f64, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let background = pixels[0];
    let differ = pixels.iter().filter(|p| p[..3] != background[..3]).count();
    let dark = pixels
        .iter()
        .filter(|p| p[..3].iter().map(|&c| u32::from(c)).sum::<u32>() < 3 * 110)
        .count();
    let n = pixels.len() as f64;
    (differ as f64 / n, dark as f64 / n)
}

/// Issue 13 §3: `preview --html` in a browser: cards drawn (dark text on white cards over a
/// grey page), each recipient's Chinese text in the page.
#[test]
fn the_html_preview_renders_every_recipient_s_card() {
    let w = Workdir::with_examples();
    let page = w.path("preview.html");
    w.cmd(&[
        "preview",
        "campaigns/class-subscribe.yaml",
        "--html",
        page.to_str().unwrap(),
    ])
    .run()
    .expect(0)
    .stdout_has("wrote 3 messages as cards");
    let shot = w.path("preview.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let Some(_) = chromium(&[&screenshot, "--window-size=420,1400"], &page) else {
        return;
    };
    let (cards, text) = inked(&shot);
    assert!(
        cards > 0.2,
        "the screenshot is mostly blank: {cards:.3} not background"
    );
    assert!(text > 0.005, "no text drawn: {text:.4} dark");
    let dom = chromium(&["--dump-dom"], &page).unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for text in [
        "上课提醒",
        "雅思学习第二课时",
        "石头同学,别迟到哦",
        "雅思学习第三课时",
        "小雨同学,别迟到哦",
        "进入小程序查看",
    ] {
        assert!(dom.contains(text), "{text:?} not in the page");
    }
}

/// Issue 13 §7: the sandbox's page at `/` shows what arrived, one phone per openid, with the
/// cards' Chinese text, in a browser; `/sandbox/messages` is the same as JSON.
#[test]
fn the_sandbox_page_shows_what_arrived() {
    let w = Workdir::with_examples();
    let sb = Sandbox::start(Knobs::default());
    w.cmd(&["send", "campaigns/class-subscribe.yaml", "--yes"])
        .against(&sb)
        .run()
        .expect(0);
    let shot = w.path("inbox.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let page = format!("{}/", sb.url());
    let Some(_) = chromium_at(&[&screenshot, "--window-size=1000,900"], &page) else {
        return;
    };
    let (phones, text) = inked(&shot);
    assert!(phones > 0.2, "the screenshot is mostly blank: {phones:.3}");
    assert!(text > 0.005, "no text drawn: {text:.4} dark");
    let dom = chromium_at(&["--dump-dom"], &page).unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for text in [
        "3 messages arrived for 3 openids",
        "ogYQ75G33BMpuKOjKjIIOiFP7cF4",
        "课程名称:雅思学习第二课时",
        "温馨提示:小雨同学,别迟到哦",
    ] {
        assert!(dom.contains(text), "{text:?} not in the page");
    }
}

/// Issue 13 §6: `report --html` in a browser: the charts are drawn, and the page says the
/// totals and the errcodes.
#[test]
fn the_html_report_draws_its_charts() {
    let w = Workdir::new();
    let sb = Sandbox::start(Knobs {
        fail_prefixes: vec![("o_test_0001".into(), 43004)],
        ..Knobs::default()
    });
    generated(&w, 30, "rate: 1000\ntarget: mini\n");
    w.send(&sb, &[]).expect(0);
    let page = w.path("report.html");
    w.cmd(&[
        "report",
        "reports/gen.sandbox.csv",
        "--html",
        page.to_str().unwrap(),
    ])
    .run()
    .expect(0);
    let html = std::fs::read_to_string(&page).unwrap();
    for outside in ["<script", "src=", "href=", "url("] {
        assert!(
            !html.contains(outside),
            "{outside} in a self-contained page"
        );
    }
    let shot = w.path("report.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let Some(_) = chromium(&[&screenshot, "--window-size=1000,900"], &page) else {
        return;
    };
    let (drawn, text) = inked(&shot);
    assert!(drawn > 0.2, "the screenshot is mostly blank: {drawn:.3}");
    assert!(text > 0.005, "no text drawn: {text:.4} dark");
    let dom = chromium(&["--dump-dom"], &page).unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for text in [
        "Outcomes",
        "Sends over time",
        "43004",
        "recipient does not follow the account",
    ] {
        assert!(dom.contains(text), "{text:?} not in the page");
    }
    assert!(dom.contains("<b>20</b><span>sent</span>"), "20 sent");
    assert!(dom.contains("<b>10</b><span>failed</span>"), "10 failed");
}
