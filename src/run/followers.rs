//! `wxpush followers`: an Official Account's followers (or a tag's) as a recipients CSV, the
//! blacklist left out on request, details added on request. Cheap to run again: the file is
//! written whole (through a temporary file) at the end, never half.

use std::collections::HashSet;

use super::accounts::with_token;
use crate::Error;
use crate::account::Account;
use crate::plan::FollowersPlan;
use crate::progress::{counted, thousands};
use crate::report;
use crate::timezone::UtcOffset;
use crate::wechat::followers::{self, List};
use crate::wechat::token::Tokens;
use crate::wechat::{CallError, Client};

/// The headers a followers file starts with.
const HEADERS: [&str; 2] = ["openid", "openid,subscribe_time,tagid_list,remark"];

pub(super) async fn followers(p: &FollowersPlan) -> Result<(), Error> {
    let a = &p.account;
    // Only a followers file is replaced: never a report, journal, campaign or accounts file.
    if p.out.is_dir() {
        return Err(Error::Usage(format!(
            "{} is a folder: name a file with --out",
            p.out.display()
        )));
    }
    if let Ok(text) = std::fs::read(&p.out) {
        let text = String::from_utf8_lossy(&text);
        let first = text
            .trim_start_matches('\u{feff}')
            .lines()
            .next()
            .unwrap_or("");
        if !HEADERS.contains(&first.trim_end()) {
            return Err(Error::Usage(format!(
                "{} exists and is not a followers file (one `wxpush followers` wrote): \
                 nothing was written; name a new file with --out",
                p.out.display()
            )));
        }
    }
    let (client, tokens) = super::accounts::signed_in(a, p.secret.clone(), &p.base).await?;
    let failed = |e: Result<CallError, Error>| {
        let e = match e {
            Ok(e) => e,
            Err(no_token) => return no_token,
        };
        let mini = match e.errcode() {
            Some(48001 | 40013 | 41001) => {
                " (a mini program has no follower list: its recipients come from its own data)"
            }
            _ => "",
        };
        Error::Aborted(format!("account `{}`: {e}{mini}", a.name))
    };
    let (list, what) = match &p.tag {
        None => (List::All, "followers".to_owned()),
        Some(t) => {
            let tags = with_token(a, &tokens, |t| {
                let client = &client;
                async move { followers::tags(client, &t).await }
            })
            .await
            .map_err(failed)?;
            let found = tags
                .iter()
                .find(|x| x.name == *t || x.id.to_string() == *t)
                .ok_or_else(|| {
                    let names: Vec<String> = tags
                        .iter()
                        .map(|x| format!("{} ({})", x.name, x.id))
                        .collect();
                    Error::Usage(format!(
                        "account `{}` has no tag `{t}`; its tags: {}",
                        a.name,
                        names.join(", ")
                    ))
                })?;
            (
                List::Tag(found.id),
                format!("followers tagged {} ({})", found.name, found.id),
            )
        }
    };
    let blacklisted: HashSet<String> = match p.exclude_blacklist {
        true => all_of(a, &client, &tokens, List::Blacklist, "blacklisted")
            .await
            .map_err(failed)?
            .into_iter()
            .collect(),
        false => HashSet::new(),
    };
    let openids = all_of(a, &client, &tokens, list, &what)
        .await
        .map_err(failed)?;
    let listed = openids.len();
    let kept: Vec<String> = openids
        .into_iter()
        .filter(|o| !blacklisted.contains(o))
        .collect();
    let left_out = listed - kept.len();
    let mut w = csv::Writer::from_writer(report::BOM.to_vec());
    let io = |e: csv::Error| Error::Aborted(format!("writing a CSV in memory: {e}"));
    let mut not_following = 0;
    let mut rows = 0u64;
    if p.details {
        w.write_record(HEADERS[1].split(',')).map_err(io)?;
        for (i, batch) in kept.chunks(followers::DETAILS_BATCH).enumerate() {
            let infos = with_token(a, &tokens, |t| {
                let client = &client;
                async move { followers::details(client, &t, batch).await }
            })
            .await
            .map_err(failed)?;
            for f in infos {
                // Not following any more: a send would be answered 43004.
                if f.subscribe == 0 {
                    not_following += 1;
                    continue;
                }
                let at = f
                    .subscribe_time
                    .map(|s| {
                        UtcOffset::CHINA
                            .readable(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
                    })
                    .unwrap_or_default();
                let tags: Vec<String> = f.tagid_list.iter().map(u64::to_string).collect();
                w.write_record([f.openid.as_str(), &at, &tags.join(";"), &f.remark])
                    .map_err(io)?;
                rows += 1;
            }
            if (i + 1) % 100 == 0 {
                note!(
                    "  details: {} of {}",
                    thousands(((i + 1) * followers::DETAILS_BATCH) as u64),
                    thousands(kept.len() as u64)
                );
            }
        }
    } else {
        w.write_record([HEADERS[0]]).map_err(io)?;
        for o in &kept {
            w.write_record([o]).map_err(io)?;
            rows += 1;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Aborted(format!("writing a CSV in memory: {e}")))?;
    super::write_output(&p.out, &bytes, &[])?;
    let mut also = Vec::new();
    if p.exclude_blacklist {
        also.push(format!(
            "{} blacklisted left out",
            thousands(left_out as u64)
        ));
    }
    if not_following > 0 {
        also.push(format!(
            "{} no longer following left out",
            thousands(not_following)
        ));
    }
    let also = match also.is_empty() {
        true => String::new(),
        false => format!(" ({})", also.join(", ")),
    };
    show!(
        "wrote {}: {} of account `{}`{also}; a campaign's `recipients:` can name it",
        p.out.display(),
        counted(rows, "recipient"),
        a.name
    );
    Ok(())
}

/// Every openid of `list`, page by page, with progress. A page without openids ends it,
/// whatever its `next_openid` says; so does a `next_openid` that does not move.
async fn all_of(
    a: &Account,
    client: &Client,
    tokens: &Tokens,
    list: List,
    what: &str,
) -> Result<Vec<String>, Result<CallError, Error>> {
    let mut all = Vec::new();
    let mut next = String::new();
    loop {
        let after_this = next.clone();
        let page = with_token(a, tokens, |t| {
            let after_this = after_this.clone();
            async move { followers::page(client, &t, list, &after_this).await }
        })
        .await?;
        let total = page.total;
        let after = page.next_openid.clone();
        let ids = page.openids();
        if ids.is_empty() {
            break;
        }
        all.extend(ids);
        match total {
            Some(t) => note!(
                "  {what}: {} of {}",
                thousands(all.len() as u64),
                thousands(t)
            ),
            None => note!("  {what}: {}", thousands(all.len() as u64)),
        }
        if after.is_empty() || after == next {
            break;
        }
        next = after;
    }
    Ok(all)
}
