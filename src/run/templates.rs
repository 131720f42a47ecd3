//! `wxpush templates pull`: the account's templates, as WeChat lists them, written as one
//! template file each (`templates/<template_id>.yaml`) with `title`, `content` and a `data:`
//! skeleton, so that a campaign says `template: <template_id>` and `check` holds it to the
//! template's keys. And `check --online`: the campaign's template, compared with the live one.

use crate::Error;
use crate::campaign::{Campaign, Kind, Shape};
use crate::plan::{Online, TemplatesPull};
use crate::progress::counted;
use crate::wechat::templates::{self, Live};
use crate::wechat::token::Tokens;
use crate::wechat::{Client, fields};

pub(super) async fn pull(p: &TemplatesPull) -> Result<(), Error> {
    let a = &p.account;
    let (client, tokens) = super::accounts::signed_in(a, p.secret.clone(), &p.base).await?;
    let token = tokens
        .get()
        .await
        .map_err(|e| super::accounts::no_token(a, &e))?;
    let mut live = Vec::new();
    if !p.mini {
        live.extend(
            templates::private(&client, &token)
                .await
                .map_err(|e| Error::Aborted(format!("account `{}`: {e}", a.name)))?,
        );
    }
    // An Official Account's subscribe notifications are listed here too, on its own token.
    match templates::subscribe(&client, &token).await {
        Ok(t) => live.extend(t),
        Err(e) if !p.mini => note!(
            "wxpush: account `{}` lists no subscribe notification templates ({e})",
            a.name
        ),
        Err(e) => return Err(Error::Aborted(format!("account `{}`: {e}", a.name))),
    }
    std::fs::create_dir_all(&p.dir)
        .map_err(|e| Error::Usage(format!("{}: cannot create: {e}", p.dir.display())))?;
    let (mut wrote, mut skipped) = (0, 0);
    for t in &live {
        // Becomes a file name, and `template: <id>` in a campaign.
        let plain = !t.template_id.is_empty()
            && t.template_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plain {
            eprintln!(
                "wxpush: warning: template `{}` ({}): its ID cannot be a file name; skipped",
                t.template_id, t.title
            );
            continue;
        }
        let path = p.dir.join(format!("{}.yaml", t.template_id));
        if path.exists() && !p.force {
            skipped += 1;
            show!(
                "skipped {} ({}): it exists; --force replaces it",
                path.display(),
                t.title
            );
            continue;
        }
        std::fs::write(&path, template_file(t, p.mini))
            .map_err(|e| Error::Aborted(format!("{}: cannot write: {e}", path.display())))?;
        wrote += 1;
        show!("wrote {} ({})", path.display(), t.title);
    }
    say!(
        "{} of account `{}`: {} written, {} skipped; a campaign uses one with `template: \
         <template_id>`",
        counted(live.len() as u64, "template"),
        a.name,
        wrote,
        skipped
    );
    Ok(())
}

/// A template file for `t`: its registration, and a `data:` skeleton of its keys whose
/// values are WeChat's example (or a value each key's rule accepts).
fn template_file(t: &Live, mini: bool) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let (target, api) = match (mini, t.subscribe) {
        (true, _) => ("mini", None),
        (false, true) => ("official", Some("official_api: subscribe\n")),
        (false, false) => ("official", None),
    };
    let from = match t.subscribe {
        true => templates::SUBSCRIBE,
        false => templates::PRIVATE,
    };
    let industry = match t.industry.is_empty() {
        true => String::new(),
        false => format!("; {}", t.industry.replace(['\n', '\r'], " ")),
    };
    let one_line = |s: &str| s.replace(['\n', '\r'], " ");
    let mut out = format!(
        "# {}, as WeChat lists it ({from}{industry}), written by `wxpush templates pull`.\n\
         # A campaign uses it with `template: {}`; its `data:` fills each field (a Tera \
         string:\n# the CSV's columns are its variables). The values below are WeChat's \
         examples:\n# `check` and `send` warn while they are; remove `examples: true` once \
         they are yours.\nexamples: true\n\
         target: {target}\n{}template_id: {}\ntitle: {}\ncontent: {}\ndata:\n",
        one_line(&t.title),
        t.template_id,
        api.unwrap_or(""),
        t.template_id,
        q(&t.title),
        q(&t.content),
    );
    let shape = Shape {
        title: Some(t.title.clone()),
        content: Some(t.content.clone()),
    };
    for key in shape.keys() {
        let value = example_value(&t.content, &t.example, key)
            .filter(|v| fields::check(key, v).is_ok() && !v.contains(['{', '}']))
            .unwrap_or_else(|| fields::sample(key).to_owned());
        out.push_str(&format!("  {key}: {}\n", q(&value)));
    }
    out
}

/// The value WeChat's `example` shows for `key`: the example line that has the same text
/// around it as the content line with `{{key.DATA}}`.
fn example_value(content: &str, example: &str, key: &str) -> Option<String> {
    let placeholder = format!("{{{{{key}.DATA}}}}");
    let line = content.lines().find(|l| l.contains(&placeholder))?;
    let (before, after) = line.split_once(&placeholder)?;
    let (before, after) = (before.trim(), after.trim());
    example.lines().map(str::trim).find_map(|l| {
        let v = l.strip_prefix(before)?.strip_suffix(after)?.trim();
        (!v.is_empty() && (!before.is_empty() || !after.is_empty() || content.lines().count() == 1))
            .then(|| v.to_owned())
    })
}

/// `check --online`: the campaign's `template_id` is one of the account's, and its `data`
/// keys are exactly the live template's.
pub(super) async fn online(c: &Campaign, o: &Online) -> Result<(), Error> {
    let proxy = c.proxy.as_ref();
    let client = Client::new(&o.base, proxy).map_err(Error::Aborted)?;
    let source = c.token.clone();
    let tokens = Tokens::new(client.clone(), source, c.appid.clone(), o.secret.clone());
    let token = tokens
        .get()
        .await
        .map_err(|e| Error::Aborted(format!("--online: no access token: {e}")))?;
    let list = match c.kind {
        Kind::Official => templates::private(&client, &token).await,
        Kind::Subscribe | Kind::OfficialSubscribe => templates::subscribe(&client, &token).await,
        Kind::MiniTemplate => {
            say!("--online: the legacy mini program API has no template list to compare with");
            return Ok(());
        }
    }
    .map_err(|e| Error::Aborted(format!("--online: {e}")))?;
    let Some(t) = list.iter().find(|t| t.template_id == c.template_id) else {
        return Err(Error::Usage(format!(
            "--online: {} `{}` is not a template of {} (it has {}); `{}` \
             writes them",
            c.template_id_key(),
            c.template_id,
            c.appid,
            counted(list.len() as u64, "template"),
            pull_command(c),
        )));
    };
    let shape = Shape {
        title: Some(t.title.clone()),
        content: Some(t.content.clone()),
    };
    let live_keys = shape.keys();
    let extra: Vec<&str> = c
        .data
        .keys()
        .map(String::as_str)
        .filter(|k| !live_keys.contains(k))
        .collect();
    let official_optional = |k: &str| c.kind == Kind::Official && matches!(k, "first" | "remark");
    let missing: Vec<&str> = live_keys
        .iter()
        .copied()
        .filter(|k| !c.data.contains_key(*k) && !official_optional(k))
        .collect();
    if !extra.is_empty() || !missing.is_empty() {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("the campaign does not fill {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            why.push(format!("the template has no {}", extra.join(", ")));
        }
        return Err(Error::Usage(format!(
            "--online: {} does not match the live template `{}` ({}): {}; its fields: {}",
            c.path.display(),
            t.title,
            c.template_id,
            why.join("; "),
            live_keys.join(", ")
        )));
    }
    if c.shape
        .as_ref()
        .and_then(|s| s.content.as_deref())
        .is_some_and(|own| own.trim() != t.content.trim())
    {
        eprintln!(
            "wxpush: warning: the `content` written for {} differs from the live template's \
             (the keys match): `{} --force` rewrites its template files (all of them)",
            c.template_id,
            pull_command(c)
        );
    }
    say!(
        "  online: `{}` ({}) is a template of {}, and the campaign fills exactly its fields",
        t.title,
        c.template_id,
        c.appid
    );
    Ok(())
}

/// The `templates pull` of the campaign's account.
fn pull_command(c: &Campaign) -> String {
    match &c.account {
        Some(a) => format!("wxpush templates pull --account {}", shell_words::quote(a)),
        None => "wxpush templates pull".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_give_each_key_its_value() {
        let content =
            "{{first.DATA}}\n课程名称：{{keyword1.DATA}}\n日期：{{keyword3.DATA}}\n{{remark.DATA}}";
        let example =
            "石头同学,提醒您背单词啦\n课程名称：巅峰单词800个背诵\n日期：2019-06-09\n加油!";
        assert_eq!(
            example_value(content, example, "keyword1").as_deref(),
            Some("巅峰单词800个背诵")
        );
        assert_eq!(
            example_value(content, example, "keyword3").as_deref(),
            Some("2019-06-09")
        );
        // A bare placeholder line cannot be told from the others: no guess.
        assert_eq!(example_value(content, example, "first"), None);
        let t = Live {
            template_id: "T1".into(),
            title: "学习提醒".into(),
            content: content.into(),
            example: example.into(),
            subscribe: false,
            industry: "教育 / 培训".into(),
        };
        let f = template_file(&t, false);
        assert!(
            f.contains("target: official\ntemplate_id: T1\ntitle: \"学习提醒\"\n"),
            "{f}"
        );
        assert!(
            f.contains("  keyword1: \"巅峰单词800个背诵\"\n  keyword3: \"2019-06-09\"\n"),
            "{f}"
        );
        assert!(f.contains("  first: \"示例内容\"\n"), "{f}");
    }
}
