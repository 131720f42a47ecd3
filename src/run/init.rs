//! `wxpush init NAME`: a commented campaign, its recipients CSV and its template (with the
//! title and content WeChat shows), which pass `check` and send to the sandbox as written.
//! Nothing is overwritten: if any of the three files exists, nothing is written.

use std::path::{Path, PathBuf};

use crate::Error;

/// The three files of an example campaign `name`, with their contents.
fn files(name: &str, mini: bool) -> [(PathBuf, String); 3] {
    let (template, campaign, csv) = if mini {
        (MINI_TEMPLATE, MINI_CAMPAIGN, MINI_CSV)
    } else {
        (OFFICIAL_TEMPLATE, OFFICIAL_CAMPAIGN, OFFICIAL_CSV)
    };
    let fill = |s: &str| s.replace("NAME", name);
    [
        (PathBuf::from(format!("{name}.yaml")), fill(campaign)),
        (PathBuf::from(format!("{name}.csv")), csv.to_owned()),
        (
            Path::new("templates").join(format!("{name}.yaml")),
            fill(template),
        ),
    ]
}

pub fn init(name: &str, mini: bool) -> Result<(), Error> {
    let files = files(name, mini);
    if let Some((taken, _)) = files.iter().find(|(p, _)| p.exists()) {
        return Err(Error::Usage(format!(
            "{} exists: nothing was written (choose another name, or move it away)",
            taken.display()
        )));
    }
    let mut written = Vec::new();
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all("templates")?;
        for (path, text) in &files {
            // `create_new`: a file that appeared meanwhile is not overwritten either.
            use std::io::Write as _;
            std::fs::File::create_new(path)?.write_all(text.as_bytes())?;
            written.push(path);
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Ours alone (`create_new`): nothing of a failed `init` is left behind.
        for path in written {
            let _ = std::fs::remove_file(path);
        }
        return Err(Error::Usage(format!(
            "cannot write the example campaign: {e}"
        )));
    }
    let [(campaign, _), (csv, _), (template, _)] = &files;
    let campaign = shell_words::quote(&campaign.to_string_lossy()).into_owned();
    say!(
        "wrote {campaign} (the campaign), {} (its recipients) and {} (its template)",
        csv.display(),
        template.display()
    );
    say!("next, all on this machine (the sandbox is WeChat's emulator):");
    say!("  wxpush check {campaign}");
    say!("  wxpush preview {campaign}");
    say!("  wxpush send {campaign} --sandbox");
    say!(
        "then put your AppID, template and followers in; `Sending for real` in the README \
         says the rest"
    );
    Ok(())
}

const OFFICIAL_TEMPLATE: &str = r#"# The message template of campaign NAME, as registered in the WeChat backend
# (公众号后台 → 广告与服务 → 模板消息 → 我的模板). Copy its template ID, title and content here:
# `check` then holds the campaign to exactly these fields, and `preview` shows the card.
target: official
template_id: TEMPLATE_ID_FROM_THE_WECHAT_BACKEND
title: 订单发货通知
content: |-
  商品名称：{{thing1.DATA}}
  快递单号：{{character_string2.DATA}}
  发货时间：{{time3.DATA}}
  温馨提示：{{thing4.DATA}}
"#;

const OFFICIAL_CAMPAIGN: &str = r#"# A wxpush campaign: who gets which message. Rehearse it before a real send:
#   wxpush check NAME.yaml               every row checked against WeChat's rules
#   wxpush preview NAME.yaml             the first messages, as followers will see them
#   wxpush send NAME.yaml --sandbox      a full send to the built-in WeChat emulator
name: NAME
template: NAME                  # templates/NAME.yaml: template_id, title, content
appid: wx0123456789abcdef       # your Official Account's AppID (设置与开发 → 基本配置)
secret_env: WXPUSH_SECRET       # the environment variable that holds the AppSecret
url: "https://example.com/orders/{{ order_no }}"   # where a tap opens (optional)
recipients: NAME.csv            # a header row, then one row per follower
vars:                           # values shared by every message
  shop: 示例旗舰店
data:                           # each field of the template, filled per recipient
  thing1: "{{ product }}"                          # thing: at most 20 characters
  character_string2: "{{ tracking_no }}"           # letters, digits, symbols: no Chinese
  time3: "{{ shipped_at }}"                        # a 24-hour time, date optional
  thing4: "{{ name }},您在{{ shop }}的订单已发货"
rate: 50                        # messages per second
"#;

const OFFICIAL_CSV: &str = "openid,name,product,tracking_no,shipped_at,order_no
o_sample_000000000000000001,石头,无线降噪耳机,SF1234567890,2026年12月2日 10:30,A1001
o_sample_000000000000000002,小雨,机械键盘,YT9876543210,2026年12月2日 11:05,A1002
o_sample_000000000000000003,阿明,智能手表,JD0011223344,2026年12月2日 14:20,A1003
";

const MINI_TEMPLATE: &str = r#"# The subscribe message template of campaign NAME, as registered in the mini program
# backend (小程序后台 → 功能 → 订阅消息 → 我的模板). Copy its template ID, title and content
# here: `check` then holds the campaign to exactly these fields, and `preview` shows the card.
target: mini
template_id: TEMPLATE_ID_FROM_THE_WECHAT_BACKEND
title: 上课提醒
content: |-
  课程名称:{{thing1.DATA}}
  上课时间:{{time2.DATA}}
  教室:{{character_string3.DATA}}
  温馨提示:{{thing4.DATA}}
"#;

const MINI_CAMPAIGN: &str = r#"# A wxpush campaign: who gets which message. Rehearse it before a real send:
#   wxpush check NAME.yaml               every row checked against WeChat's rules
#   wxpush preview NAME.yaml             the first messages, as users will see them
#   wxpush send NAME.yaml --sandbox      a full send to the built-in WeChat emulator
# Each user must have accepted this template (wx.requestSubscribeMessage) for one message.
name: NAME
template: NAME                  # templates/NAME.yaml: template_id, title, content
appid: wx0123456789abcdef       # your mini program's AppID
secret_env: WXPUSH_SECRET       # the environment variable that holds the AppSecret
page: "pages/course/detail?room={{ room }}"   # the page a tap opens (optional)
recipients: NAME.csv            # a header row, then one row per user
data:                           # each field of the template, filled per recipient
  thing1: "{{ course }}"                           # thing: at most 20 characters
  time2: "{{ start }}"                             # a 24-hour time, date optional
  character_string3: "{{ room }}"                  # letters, digits, symbols: no Chinese
  thing4: "{{ name }}同学,别迟到哦"
rate: 50                        # messages per second
"#;

const MINI_CSV: &str = "openid,name,course,start,room
o_sample_000000000000000001,石头,雅思学习第二课时,2026年12月18日 13:00,A-301
o_sample_000000000000000002,小雨,雅思学习第三课时,2026年12月18日 15:00,B-102
o_sample_000000000000000003,阿明,托福写作入门,2026年12月19日 09:30,C-201
";
