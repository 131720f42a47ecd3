//! `wxpush report REPORT.csv`: a report read back, for the people who look at results after
//! the fact. The campaign's totals over all its runs (the report is appended by every
//! resume), failures by errcode with what they mean and what to do, the achieved rate and
//! the first and last send; `--json` the same for scripts; `--failed` the recipients worth
//! sending again, as a recipients CSV with their original columns.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::Error;
use crate::campaign::{self, Campaign};
use crate::journal;
use crate::outcome::{Status, is_gave_up};
use crate::progress::{counted, thousands};
use crate::recipients::{Recipients, Row};
use crate::report;
use crate::timezone::{self, UtcOffset};
use crate::wechat::errcode;

/// The totals of a report.
#[derive(Debug, Default, Serialize)]
struct Totals {
    report: PathBuf,
    /// The campaign named in the journal, if there is one.
    campaign: Option<String>,
    rows: u64,
    sent: u64,
    failed: u64,
    unknown: u64,
    skipped: u64,
    dry_run: u64,
    requests: u64,
    /// Failed and unknown rows by errcode (`null`: no WeChat answer).
    problems: Vec<Problem>,
    /// Rows `--retry-failed` would send again.
    retryable: u64,
    first_send: Option<String>,
    last_send: Option<String>,
    /// Sent messages per second between the first and the last send.
    achieved_per_second: Option<f64>,
    /// Outcomes over time, for the chart.
    #[serde(skip)]
    timeline: Timeline,
    /// The offset times are shown at: the report's own (its campaign's `utc_offset`), or
    /// China's for a report that wrote UTC.
    #[serde(skip)]
    offset: UtcOffset,
}

/// Outcomes per time bucket, from the first outcome on.
#[derive(Debug, Default)]
struct Timeline {
    /// Seconds per bucket.
    width: u64,
    /// (sent, failed or unknown) per bucket.
    counts: Vec<(u64, u64)>,
}

/// At most this many bars in the chart: a campaign resumed over days gets wider buckets.
const MAX_BUCKETS: u64 = 300;

/// A pause this long between two outcomes is time between runs, not sending.
const IDLE_GAP: u64 = 60;

/// The seconds of `per_second`'s span in pauses of [`IDLE_GAP`] or more.
fn idle_seconds(per_second: &BTreeMap<u64, (u64, u64)>) -> u64 {
    let seconds: Vec<u64> = per_second.keys().copied().collect();
    seconds
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|gap| *gap >= IDLE_GAP)
        .map(|gap| gap - 1)
        .sum()
}

/// `per_second`: (sent, failed or unknown) by second since the Unix epoch, one entry per
/// second that had an outcome (a million rows sent at 50/s are 20,000 entries).
fn buckets(per_second: &BTreeMap<u64, (u64, u64)>) -> Timeline {
    let (Some((&start, _)), Some((&end, _))) =
        (per_second.first_key_value(), per_second.last_key_value())
    else {
        return Timeline::default();
    };
    let span = end - start + 1;
    let width = span.div_ceil(MAX_BUCKETS).max(1);
    let n = span.div_ceil(width) as usize;
    let mut counts = vec![(0, 0); n];
    for (at, (ok, bad)) in per_second {
        let slot = &mut counts[(((at - start) / width) as usize).min(n - 1)];
        slot.0 += ok;
        slot.1 += bad;
    }
    Timeline { width, counts }
}

#[derive(Debug, Serialize)]
struct Problem {
    errcode: Option<i64>,
    count: u64,
    /// The rows are `unknown` (else `failed`).
    unknown: bool,
    meaning: &'static str,
    /// An example errmsg (the first seen).
    errmsg: String,
    what_to_do: String,
}

pub fn report(
    path: &Path,
    json: bool,
    html: Option<&Path>,
    failed: Option<&Path>,
    campaign: Option<&Path>,
    accounts: Option<&Path>,
) -> Result<(), Error> {
    let (totals, worth_retrying) = read(path)?;
    let journal = journal::path_for(path);
    // The campaign first: an error then changes no file.
    let retry = match failed {
        Some(out) => {
            let c = match campaign {
                Some(p) => campaign::load(p, accounts)?,
                None => find_campaign(path, totals.campaign.as_deref(), accounts)?,
            };
            if let Some(name) = totals.campaign.as_deref().filter(|n| *n != c.name) {
                return Err(Error::Usage(format!(
                    "{} is a report of campaign `{name}`, not of `{}` ({}): name its own \
                     campaign file with --campaign",
                    path.display(),
                    c.name,
                    c.path.display()
                )));
            }
            let out = match out.as_os_str().is_empty() {
                true => c
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("reports")
                    .join("retry")
                    .join(format!("{}.csv", c.name)),
                false => out.to_owned(),
            };
            Some((c, out))
        }
        None => None,
    };
    if let Some(out) = html {
        super::write_output(out, page(&totals).as_bytes(), &[path, &journal])?;
        note!("wxpush: wrote the report as a page to {}", out.display());
    }
    if json {
        let text = serde_json::to_string_pretty(&totals).unwrap_or_default();
        show!("{text}");
    } else {
        show_raw!("{}", readable(&totals, failed.is_none()));
    }
    if let Some((_, out)) = retry.as_ref().filter(|_| worth_retrying.is_empty()) {
        note!(
            "wxpush: nobody worth retrying: {} not written",
            out.display()
        );
        if out.exists() {
            eprintln!(
                "wxpush: warning: an earlier {} is still there: it lists recipients who need \
                 no retry now (a campaign sending to it would reach them again); delete it",
                out.display()
            );
        }
    }
    if let Some((c, out)) = retry.filter(|_| !worth_retrying.is_empty()) {
        let (csv, n, missing) = recipients_csv(&c, &worth_retrying)?;
        super::write_output(&out, &csv, &[path, &journal, &c.path, &c.recipients])?;
        // On stderr, so that `--json --failed` keeps stdout JSON.
        note!(
            "wxpush: wrote {} worth retrying to {} (the columns of {}); a campaign of its own \
             with `recipients:` naming it (and its own `name:`) sends to them",
            counted(n, "recipient"),
            out.display(),
            c.recipients.display()
        );
        if totals.unknown > 0 {
            note!(
                "wxpush: the {} `unknown` are not in it: they may have been delivered (the \
                 campaign's `--resend-unknown` sends them again, knowingly)",
                thousands(totals.unknown)
            );
        }
        if missing > 0 {
            eprintln!(
                "wxpush: warning: {} of the report are no longer at their row of {} (the \
                 file changed since): left out",
                counted(missing, "recipient"),
                c.recipients.display()
            );
        }
    }
    Ok(())
}

/// The totals, and the data rows of the recipients worth sending again.
fn read(path: &Path) -> Result<(Totals, HashSet<(u64, String)>), Error> {
    let mut t = Totals {
        report: path.to_owned(),
        campaign: journal::head(&journal::path_for(path))
            .ok()
            .and_then(|h| h.header)
            .map(|h| h.campaign),
        ..Totals::default()
    };
    let mut problems: BTreeMap<(bool, Option<i64>), (u64, String)> = BTreeMap::new();
    let mut retry: HashSet<(u64, String)> = HashSet::new();
    let mut first: Option<SystemTime> = None;
    let mut last: Option<SystemTime> = None;
    let mut gave_up: BTreeMap<Option<i64>, u64> = BTreeMap::new();
    let mut offset = None;
    let mut per_second: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    report::rows(path, true, |r| {
        t.rows += 1;
        t.requests += r.attempts;
        match r.status {
            Status::Sent => t.sent += 1,
            Status::Failed => t.failed += 1,
            Status::Unknown => t.unknown += 1,
            Status::Skipped => t.skipped += 1,
            Status::DryRun => t.dry_run += 1,
        }
        let code = r.errcode.parse::<i64>().ok();
        if matches!(r.status, Status::Failed | Status::Unknown) {
            let e = problems
                .entry((r.status == Status::Unknown, code))
                .or_insert_with(|| (0, r.errmsg.to_owned()));
            e.0 += 1;
            if r.status == Status::Failed && is_gave_up(r.errmsg) {
                *gave_up.entry(code).or_default() += 1;
            }
        }
        let retryable = r.status == Status::Failed && report::retryable(r.errcode, r.errmsg);
        t.retryable += u64::from(retryable);
        if retryable {
            retry.insert((r.row, r.openid.to_owned()));
        }
        let at = timezone::parse(r.sent_at).map(|(at, o)| {
            offset = o.or(offset);
            at
        });
        if let Some(at) = at
            && matches!(r.status, Status::Sent | Status::Failed | Status::Unknown)
        {
            let second = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let slot = per_second.entry(second.as_secs()).or_default();
            match r.status == Status::Sent {
                true => slot.0 += 1,
                false => slot.1 += 1,
            }
        }
        if let Some(at) = at {
            first = Some(first.map_or(at, |f| f.min(at)));
            last = Some(last.map_or(at, |l| l.max(at)));
        }
    })?;
    t.timeline = buckets(&per_second);
    t.problems = problems
        .into_iter()
        .map(|((unknown, code), (count, errmsg))| Problem {
            errcode: code,
            count,
            unknown,
            meaning: code.map_or("no answer from WeChat", errcode::meaning),
            what_to_do: match unknown {
                true => "may have been delivered (an answer was lost): resending risks a second \
                         delivery (the campaign's --resend-unknown)"
                    .into(),
                false => what_to_do(code, gave_up.get(&code).copied().unwrap_or(0), count),
            },
            errmsg: errmsg.split(" rid:").next().unwrap_or_default().to_owned(),
        })
        .collect();
    t.offset = offset.unwrap_or_default();
    t.first_send = first.map(|at| t.offset.readable(at));
    t.last_send = last.map(|at| t.offset.readable(at));
    if let (Some(f), Some(l)) = (first, last) {
        // The time between runs (a Ctrl-C, then a resume the next morning) is no sending.
        let secs = l.duration_since(f).unwrap_or_default().as_secs_f64()
            - idle_seconds(&per_second) as f64;
        t.achieved_per_second = (secs > 0.0 && t.sent > 1).then(|| (t.sent - 1) as f64 / secs);
    }
    Ok((t, retry))
}

/// What to do about the failed or unknown rows of one errcode, `gave_up` of them because
/// their retries ran out.
fn what_to_do(code: Option<i64>, gave_up: u64, count: u64) -> String {
    if gave_up == count {
        return "never delivered (the retries ran out): `send --retry-failed` sends them again"
            .into();
    }
    match code {
        None => "may have been delivered (no answer came back): `send --resend-unknown` sends \
                 them again, at the risk of a second delivery"
            .into(),
        Some(c) if errcode::suspicious_when_repeated(c) => {
            "refused for the campaign's data or account: fix it, then `send --retry-failed`".into()
        }
        Some(c) => match errcode::advice(c) {
            Some(a) => a.to_owned(),
            None => "about the recipient: not sent again".into(),
        },
    }
}

/// `advise_failed`: end with the `--failed` command (not when it is the one running).
fn readable(t: &Totals, advise_failed: bool) -> String {
    let mut out = match &t.campaign {
        Some(c) => format!("{}: campaign `{c}`\n", t.report.display()),
        None => format!("{}\n", t.report.display()),
    };
    let rows = [
        ("sent", t.sent, "accepted by WeChat (errcode 0)"),
        ("failed", t.failed, "refused, or the retries ran out"),
        (
            "unknown",
            t.unknown,
            "no answer came back: may have been delivered",
        ),
        ("skipped", t.skipped, "repeated openids, each sent once"),
        ("dry_run", t.dry_run, "rendered, not sent"),
    ];
    for (what, n, why) in rows {
        if n > 0 || matches!(what, "sent" | "failed") {
            out.push_str(&format!("  {what:<8} {:>9}  {why}\n", thousands(n)));
        }
    }
    out.push_str(&format!(
        "  {} in the report, {} recorded in them (a row dropped by --retry-failed or \
         --resend-unknown takes its requests with it)\n",
        counted(t.rows, "row"),
        counted(t.requests, "request")
    ));
    if !t.problems.is_empty() {
        out.push_str("  failed or unknown, by errcode:\n");
        for p in &t.problems {
            let code = p.errcode.map_or("—".to_owned(), |c| c.to_string());
            out.push_str(&format!(
                "    {code:>6} ×{:<6} {}: {}\n",
                thousands(p.count),
                p.meaning,
                p.what_to_do
            ));
        }
    }
    if let (Some(f), Some(l)) = (&t.first_send, &t.last_send) {
        out.push_str(&format!("  first send {f}, last {l}"));
        if let Some(rate) = t.achieved_per_second {
            out.push_str(&format!(": {rate:.1} msgs/s"));
        }
        out.push('\n');
    }
    if t.retryable > 0 && advise_failed {
        out.push_str(&format!(
            "  {} worth retrying; as a recipients CSV: wxpush report {} --failed\n",
            counted(t.retryable, "recipient"),
            shell_words::quote(&t.report.to_string_lossy()),
        ));
    }
    out
}

/// The report as one self-contained page a manager would rather look at than read: the
/// outcomes, sends over time with failures marked, the errcodes (inline SVG, no script).
fn page(t: &Totals) -> String {
    use std::fmt::Write as _;
    let esc = |s: &str| html_escape::encode_text(s).into_owned();
    let name = t
        .campaign
        .clone()
        .unwrap_or_else(|| t.report.display().to_string());
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{} · \
         wxpush report</title><style>{PAGE_STYLE}</style></head><body><h1>{}</h1>\
         <p class=\"sub\">{}</p>",
        esc(&name),
        esc(&name),
        esc(&format!(
            "{} · {} · {}",
            t.report.display(),
            counted(t.rows, "row"),
            counted(t.requests, "request")
        )),
    );
    // Outcomes: tiles, and one stacked bar.
    let kinds = [
        ("sent", t.sent, "#07c160"),
        ("failed", t.failed, "#fa5151"),
        ("unknown", t.unknown, "#ffc300"),
        ("skipped", t.skipped, "#b2b2b2"),
    ];
    h.push_str("<section><h2>Outcomes</h2><div class=\"tiles\">");
    for (what, n, colour) in kinds {
        let _ = write!(
            h,
            "<div class=\"tile\" style=\"border-color:{colour}\"><b>{}</b><span>{what}</span></div>",
            thousands(n)
        );
    }
    h.push_str("</div><svg class=\"bar\" viewBox=\"0 0 1000 24\" preserveAspectRatio=\"none\">");
    let total = kinds.iter().map(|k| k.1).sum::<u64>().max(1) as f64;
    let mut x = 0.0;
    for (what, n, colour) in kinds {
        let w = n as f64 / total * 1000.0;
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" width=\"{w:.1}\" height=\"24\" fill=\"{colour}\"><title>{what}: {n}</title></rect>"
        );
        x += w;
    }
    h.push_str("</svg></section>");
    // Over time.
    let tl = &t.timeline;
    if !tl.counts.is_empty() {
        let peak = tl
            .counts
            .iter()
            .map(|c| c.0 + c.1)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let n = tl.counts.len() as f64;
        let bw = 1000.0 / n;
        let _ = write!(
            h,
            "<section><h2>Sends over time</h2><p class=\"sub\">{} per bar, from {} to {}; \
             red: failed or unknown{}</p><svg class=\"chart\" viewBox=\"0 0 1000 200\" \
             preserveAspectRatio=\"none\">",
            esc(&humantime::format_duration(Duration::from_secs(tl.width)).to_string()),
            esc(t.first_send.as_deref().unwrap_or("?")),
            esc(t.last_send.as_deref().unwrap_or("?")),
            t.achieved_per_second
                .map(|r| format!("; {r:.1} msgs/s achieved"))
                .unwrap_or_default()
        );
        for (i, (ok, bad)) in tl.counts.iter().enumerate() {
            let x = i as f64 * bw;
            let ok_h = *ok as f64 / peak * 190.0;
            let bad_h = *bad as f64 / peak * 190.0;
            let _ = write!(
                h,
                "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{ok_h:.2}\" fill=\"#07c160\"/>",
                200.0 - ok_h,
                (bw - 0.5).max(0.5)
            );
            if *bad > 0 {
                let _ = write!(
                    h,
                    "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"#fa5151\"/>",
                    200.0 - ok_h - bad_h.max(2.0),
                    (bw - 0.5).max(0.5),
                    bad_h.max(2.0)
                );
            }
        }
        h.push_str("</svg></section>");
    }
    // Errcodes.
    if !t.problems.is_empty() {
        h.push_str("<section><h2>Failed or unknown, by errcode</h2><table>");
        let most = t.problems.iter().map(|p| p.count).max().unwrap_or(1).max(1) as f64;
        let mut by_count: Vec<&Problem> = t.problems.iter().collect();
        by_count.sort_by_key(|p| std::cmp::Reverse(p.count));
        for p in by_count {
            let code = p.errcode.map_or("—".to_owned(), |c| c.to_string());
            let _ = write!(
                h,
                "<tr><td class=\"code\">{}</td><td class=\"n\">{}</td><td><svg \
                 viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\"><rect width=\"{:.1}\" \
                 height=\"10\" fill=\"#fa5151\"/></svg></td><td>{}<br><small>{}</small></td></tr>",
                esc(&code),
                thousands(p.count),
                p.count as f64 / most * 100.0,
                esc(p.meaning),
                esc(&p.what_to_do)
            );
        }
        h.push_str("</table></section>");
    }
    let _ = writeln!(
        h,
        "<footer>wxpush report · times are at UTC{}</footer></body></html>",
        t.offset
    );
    h
}

const PAGE_STYLE: &str = "\
body{margin:0 auto;max-width:1000px;padding:16px;font-family:-apple-system,'PingFang SC',\
'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;color:#191919;background:#fafafa}\
h1{font-size:22px;margin:8px 0 0}h2{font-size:16px;margin:0 0 10px}.sub{color:#7f7f7f;font-size:13px;margin:4px 0 12px}\
section{background:#fff;border-radius:8px;padding:16px;margin:14px 0;box-shadow:0 1px 2px #0001}\
.tiles{display:flex;gap:12px;margin-bottom:12px}.tile{flex:1;border-left:6px solid;padding:6px 10px}\
.tile b{display:block;font-size:26px}.tile span{color:#7f7f7f;font-size:13px}\
svg.bar{width:100%;height:24px}svg.chart{width:100%;height:200px;background:#f6f6f6}\
table{width:100%;border-collapse:collapse}td{padding:6px;border-top:1px solid #eee;font-size:14px;vertical-align:top}\
td.code{font-weight:600;width:70px}td.n{width:70px;text-align:right}td svg{width:160px;height:10px}\
small{color:#7f7f7f}footer{color:#b2b2b2;font-size:12px;text-align:center}\
@media (max-width:560px){body{padding:10px}section{padding:12px}.tiles{gap:8px}\
.tile{padding:4px 6px}.tile b{font-size:22px}td{padding:5px 3px}td.code,td.n{width:auto}\
td svg{width:56px}}";

/// The campaign named `name` whose reports folder holds `report`: a campaign file in the
/// folder above it.
fn find_campaign(
    report: &Path,
    name: Option<&str>,
    accounts: Option<&Path>,
) -> Result<Campaign, Error> {
    let dir = report
        .parent()
        .and_then(Path::parent)
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .unwrap_or(Path::new("."));
    let found = name.and_then(|name| {
        let entries = std::fs::read_dir(dir).ok()?;
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .map(|p| p.strip_prefix(".").map(Path::to_owned).unwrap_or(p))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .filter_map(|p| campaign::load(&p, accounts).ok())
            .find(|c| c.name == name)
    });
    found.ok_or_else(|| {
        Error::Usage(format!(
            "cannot tell which campaign {} belongs to (no campaign file{} in {}): name it \
             with --campaign PATH",
            report.display(),
            name.map(|n| format!(" named `{n}`")).unwrap_or_default(),
            dir.display()
        ))
    })
}

/// The rows of `c`'s recipients file that are in `rows` (data row and openid both), with the
/// file's header, as UTF-8 CSV with a BOM (like the report, so that Excel shows it right
/// whatever the original's encoding); how many, and how many of `rows` were not found.
fn recipients_csv(
    c: &Campaign,
    rows: &HashSet<(u64, String)>,
) -> Result<(Vec<u8>, u64, u64), Error> {
    let mut from = Recipients::open(&c.recipients, crate::render::required_columns(c))?;
    let io = |e: csv::Error| Error::Aborted(format!("writing a CSV in memory: {e}"));
    let mut w = csv::Writer::from_writer(report::BOM.to_vec());
    w.write_record(from.headers().iter()).map_err(io)?;
    let mut n = 0;
    while let Some(row) = from.next_row() {
        let (Row::New(r) | Row::Duplicate(r)) = row?;
        if rows.contains(&(r.row, r.openid.clone())) {
            w.write_record(&r.record).map_err(io)?;
            n += 1;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Aborted(format!("writing a CSV in memory: {e}")))?;
    Ok((bytes, n, rows.len() as u64 - n.min(rows.len() as u64)))
}
