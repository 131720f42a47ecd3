//! WeChat's rules for typed template keys (`thing1`, `time2`, `character_string8`…), so that a
//! value WeChat would reject with 47003 is caught before the first send (wechat-api.md §2.1,
//! §4.2). Untyped keys of history templates (`first`, `keyword1`, `remark`) have no rule.
//!
//! One table, `RULES`: each type's longest value and what it may hold. The content is
//! checked before the length, so that a value of the wrong kind is told so ("only Chinese
//! characters") rather than that it is too long. The sandbox keeps its own implementation (it
//! is an oracle); a shared table of values (`tests/data/value-rules.tsv`) pins the two to each
//! other and to wechat-api.md.
//!
//! Where wechat-api.md says "unconfirmed", the choice is one line here: `amount` without a
//! currency symbol is accepted ([`AMOUNT_NEEDS_SYMBOL`]), `phone_number` takes no spaces, and
//! `time`/`date` accept `2019年10月1日`, `2019-10-01` and `2019/10/01` for the date.

/// Whether an `amount` must start with a currency symbol (wechat-api.md: unconfirmed).
pub const AMOUNT_NEEDS_SYMBOL: bool = false;
/// The most integer digits of an `amount` (decimals are not counted).
const AMOUNT_DIGITS: usize = 10;

/// The type of a key: its letters before the trailing digits (`character_string8` →
/// `character_string`), or `None` for a key with no digits.
pub fn key_type(key: &str) -> Option<&str> {
    let t = key.trim_end_matches(|c: char| c.is_ascii_digit());
    (t.len() < key.len() && !t.is_empty()).then_some(t)
}

/// A CJK ideograph, what WeChat's tables call a Chinese character: the URO, extension A,
/// the compatibility blocks and the supplementary ideographic planes.
pub fn is_chinese(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FA1F}' | '\u{30000}'..='\u{323AF}')
}

/// What a type's values may hold, beyond their length.
#[derive(Clone, Copy)]
enum Content {
    Anything,
    /// ASCII digits with at most one decimal point inside.
    Number,
    Letters,
    /// Neither letters, digits, Chinese nor spaces.
    Symbols,
    NoChinese,
    /// Digits and ASCII punctuation.
    Phone,
    /// First and last may be Chinese, the rest letters and digits.
    CarNumber,
    /// Chinese only, counted at most [`Rule::max`]; otherwise at most twice that.
    Name,
    ChineseOnly,
    /// A point in time, or two joined by `~`.
    Time,
    /// A date (time optional), or two joined by `~`.
    Date,
    Amount,
}

struct Rule {
    ty: &'static str,
    /// The most characters (each letter, digit, symbol or Chinese character counts one).
    max: usize,
    content: Content,
    /// The content in the user's words: "`phrase` allows only {what}".
    what: &'static str,
}

/// Every typed key WeChat documents (wechat-api.md §4.2), plus the old `const`/`short_thing`.
const RULES: &[Rule] = &[
    rule("thing", 20, Content::Anything, "characters"),
    rule(
        "number",
        32,
        Content::Number,
        "digits, with one decimal point at most, like 12.5",
    ),
    rule("letter", 32, Content::Letters, "letters a-z and A-Z"),
    rule(
        "symbol",
        5,
        Content::Symbols,
        "symbols (no letters, digits, Chinese or spaces)",
    ),
    rule(
        "character_string",
        32,
        Content::NoChinese,
        "digits, letters and symbols (no Chinese)",
    ),
    rule(
        "time",
        64,
        Content::Time,
        "a 24-hour time like 15:01 or 2019年10月1日 15:01, or two joined by ~",
    ),
    rule(
        "date",
        64,
        Content::Date,
        "a date like 2019年10月1日 or 2019-10-01 (a time may follow), or two joined by ~",
    ),
    rule(
        "amount",
        32,
        Content::Amount,
        "an amount like ¥99.00 or 99.00元 (at most 10 digits before the point)",
    ),
    rule(
        "phone_number",
        17,
        Content::Phone,
        "digits and symbols, like +86-0766-66888866 (no spaces)",
    ),
    rule(
        "car_number",
        8,
        Content::CarNumber,
        "a plate like 粤A8Z888挂: letters and digits, Chinese only first or last",
    ),
    rule(
        "name",
        10,
        Content::Name,
        "a name: at most 10 characters with Chinese, 20 without",
    ),
    rule("phrase", 5, Content::ChineseOnly, "Chinese characters"),
    rule("const", 20, Content::Anything, "characters"),
    rule("short_thing", 5, Content::Anything, "characters"),
    rule(
        "enum",
        usize::MAX,
        Content::Anything,
        "the template's values",
    ),
    rule(
        "enum_string",
        usize::MAX,
        Content::Anything,
        "the template's values",
    ),
];

const fn rule(ty: &'static str, max: usize, content: Content, what: &'static str) -> Rule {
    Rule {
        ty,
        max,
        content,
        what,
    }
}

/// Checks `value` for `key` against its type's rule. `Err` says what is wrong, in words.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    let Some(rule) = rule_of(key) else {
        return Ok(());
    };
    let ty = rule.ty;
    if value.is_empty() {
        return Err(format!("`{ty}` values may not be empty"));
    }
    if !holds(rule.content, value) {
        return Err(format!("`{ty}` allows only {}", rule.what));
    }
    let n = value.chars().count();
    let max = match rule.content {
        Content::Name if !value.chars().any(is_chinese) => rule.max * 2,
        _ => rule.max,
    };
    if n > max {
        let mut e = format!("`{ty}` allows at most {max} characters, this value has {n}");
        if n == max + 1 && value.ends_with('…') {
            e.push_str(&format!(
                " (Tera's truncate adds \"…\": truncate(length={}) fits; or `truncate: true` \
                 on the field)",
                max - 1
            ));
        } else if can_shorten(key) {
            e.push_str(" (`truncate: true` on the field shortens it with \"…\")");
        }
        return Err(e);
    }
    Ok(())
}

/// Whether an over-long value of `key` can be shortened to its type's limit with "…" and
/// still hold (a `thing`, `character_string`, `name`…: not a number, a time or a plate).
pub fn can_shorten(key: &str) -> bool {
    rule_of(key).is_some_and(|r| {
        r.max < usize::MAX
            && matches!(
                r.content,
                Content::Anything | Content::NoChinese | Content::Name
            )
    })
}

/// `value` shortened to `key`'s limit, keeping its start and ending in "…", when it is
/// longer and [`can_shorten`] says it may be; otherwise `None`.
pub fn shorten(key: &str, value: &str) -> Option<String> {
    let rule = rule_of(key).filter(|_| can_shorten(key))?;
    let max = match rule.content {
        Content::Name if !value.chars().any(is_chinese) => rule.max * 2,
        _ => rule.max,
    };
    (value.chars().count() > max).then(|| {
        let mut s: String = value.chars().take(max - 1).collect();
        s.push('…');
        s
    })
}

/// A value WeChat accepts for `key`, for a template file's skeleton when WeChat's example
/// has none (`templates pull`).
pub fn sample(key: &str) -> &'static str {
    match key_type(key).unwrap_or("") {
        "number" => "1",
        "letter" => "A",
        "symbol" => "-",
        "character_string" => "A001",
        "time" => "2026年12月2日 10:30",
        "date" => "2026年12月2日",
        "amount" => "¥1.00",
        "phone_number" => "020-12345678",
        "car_number" => "粤A12345",
        "name" => "张三",
        "phrase" => "已完成",
        "short_thing" => "示例",
        _ => "示例内容",
    }
}

/// The typed key WeChat knows that `key` probably misspells (`thign1` → `thing1`), if
/// `key` looks typed (letters, then digits) but its type is none of WeChat's.
pub fn misspelled_type(key: &str) -> Option<String> {
    let ty = key_type(key)?;
    if RULES.iter().any(|r| r.ty == ty) {
        return None;
    }
    let digits = &key[ty.len()..];
    RULES
        .iter()
        .map(|r| (strsim::damerau_levenshtein(ty, r.ty), r.ty))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, t)| format!("{t}{digits}"))
}

fn rule_of(key: &str) -> Option<&'static Rule> {
    key_type(key).and_then(|ty| RULES.iter().find(|r| r.ty == ty))
}

fn holds(content: Content, v: &str) -> bool {
    match content {
        Content::Anything | Content::Name => true,
        Content::Number => is_number(v),
        Content::Letters => v.chars().all(|c| c.is_ascii_alphabetic()),
        Content::Symbols => v
            .chars()
            .all(|c| !c.is_alphanumeric() && !c.is_whitespace()),
        Content::NoChinese => !v.chars().any(is_chinese),
        Content::Phone => v
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_punctuation()),
        Content::CarNumber => is_car_number(v),
        Content::ChineseOnly => v.chars().all(is_chinese),
        Content::Time => range(v, |p| time_point(p, false)),
        Content::Date => range(v, |p| time_point(p, true)),
        Content::Amount => is_amount(v),
    }
}

/// `12`, `12.5`; not `1.2.3`, `.`, `1.` or `.5`.
fn is_number(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('.') {
        None => digits(v),
        Some((int, frac)) => digits(int) && digits(frac),
    }
}

fn is_car_number(v: &str) -> bool {
    let chars: Vec<char> = v.chars().collect();
    let plain = |c: &char| c.is_ascii_alphanumeric();
    match chars.as_slice() {
        [] | [_] => false,
        [first, middle @ .., last] => {
            (plain(first) || is_chinese(*first))
                && (plain(last) || is_chinese(*last))
                && middle.iter().all(plain)
        }
    }
}

/// A currency symbol, then digits with an optional decimal part, then an optional `元`.
fn is_amount(v: &str) -> bool {
    let v = v.trim_end_matches('元');
    let (symbol, rest) = match v.chars().next() {
        Some(c) if !c.is_ascii_digit() => (true, &v[c.len_utf8()..]),
        _ => (false, v),
    };
    if symbol && !v.starts_with(['¥', '￥', '$', '€', '£', '₩', '₹', '₽']) {
        return false;
    }
    let int = rest.split('.').next().unwrap_or("");
    (symbol || !AMOUNT_NEEDS_SYMBOL) && is_number(rest) && int.len() <= AMOUNT_DIGITS
}

/// One value, or two joined by `~` (spaces around it allowed).
fn range(v: &str, point: impl Fn(&str) -> bool) -> bool {
    match v.split_once('~') {
        Some((a, b)) => point(a.trim()) && point(b.trim()),
        None => point(v),
    }
}

/// `[date] [time]`: a date (required when `need_date`) and a 24-hour time (required when
/// not), separated by a space.
fn time_point(p: &str, need_date: bool) -> bool {
    let (date, time) = match p.split_once(' ') {
        Some((d, t)) => (Some(d), Some(t.trim())),
        None if p.contains(':') => (None, Some(p)),
        None => (Some(p), None),
    };
    let date_ok = date.is_none_or(is_date);
    let time_ok = time.is_none_or(is_time);
    date_ok && time_ok && (date.is_some() || !need_date) && (time.is_some() || need_date)
}

/// `2019年10月1日`, `2019-10-01`, `2019/10/1`.
fn is_date(d: &str) -> bool {
    let parts: Vec<&str> = match d.strip_suffix('日') {
        Some(cn) => cn.split(['年', '月']).collect(),
        None => d.split(['-', '/']).collect(),
    };
    let [y, m, day] = parts[..] else {
        return false;
    };
    let num = |s: &str, lo: u32, hi: u32| {
        !s.is_empty()
            && s.len() <= 4
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n))
    };
    y.len() == 4 && num(y, 1000, 9999) && num(m, 1, 12) && num(day, 1, 31)
}

/// `15:01`, `9:05`, `15:01:30`.
fn is_time(t: &str) -> bool {
    let parts: Vec<&str> = t.split(':').collect();
    let two = |s: &str, hi: u32| {
        (1..=2).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| n <= hi)
    };
    match parts[..] {
        [h, m] => two(h, 23) && m.len() == 2 && two(m, 59),
        [h, m, s] => two(h, 23) && m.len() == 2 && two(m, 59) && s.len() == 2 && two(s, 59),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_s_sample_passes_its_rule() {
        for r in RULES {
            let key = format!("{}1", r.ty);
            assert_eq!(check(&key, sample(&key)), Ok(()), "{key}");
        }
        assert_eq!(sample("keyword1"), "示例内容");
    }

    #[test]
    fn key_types() {
        assert_eq!(key_type("thing1"), Some("thing"));
        assert_eq!(key_type("character_string08"), Some("character_string"));
        assert_eq!(key_type("first"), None);
        assert_eq!(key_type("keyword1"), Some("keyword"));
        assert_eq!(key_type("12"), None);
    }

    #[test]
    fn truncate_keeps_the_start_and_ends_in_an_ellipsis() {
        let long = "一二三四五六七八九十一二三四五六七八九十一二";
        let short = shorten("thing1", long).unwrap();
        assert_eq!(short.chars().count(), 20);
        assert!(short.starts_with("一二三") && short.ends_with('…'));
        assert_eq!(check("thing1", &short), Ok(()));
        assert_eq!(shorten("thing1", "短"), None);
        let latin = "a".repeat(25);
        assert_eq!(
            shorten("name2", &latin).map(|s| s.chars().count()),
            Some(20)
        );
        assert!(!can_shorten("number3") && !can_shorten("time4") && !can_shorten("keyword1"));
        assert!(can_shorten("character_string5"));
    }

    #[test]
    fn messages_say_what_is_wrong_in_the_user_s_terms() {
        assert_eq!(
            check("phrase3", "shipped").unwrap_err(),
            "`phrase` allows only Chinese characters"
        );
        assert_eq!(
            check("thing1", "Apple iPhone 15 Pro …").unwrap_err(),
            "`thing` allows at most 20 characters, this value has 21 (Tera's truncate adds \
             \"…\": truncate(length=19) fits; or `truncate: true` on the field)"
        );
        assert!(
            check("time2", "明天下午")
                .unwrap_err()
                .contains("24-hour time")
        );
        assert_eq!(
            check("thing1", "").unwrap_err(),
            "`thing` values may not be empty"
        );
        assert!(check("keyword1", "").is_ok());
    }
}
