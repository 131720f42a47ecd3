//! WeChat's rules for typed template keys (`thing1`, `time2`, `character_string8`…), so that a
//! value WeChat would reject with 47003 is caught before the first send (wechat-api.md §2.1,
//! §4.2). Untyped keys of history templates (`first`, `keyword1`, `remark`) have no rule.

/// The type of a key: its letters before the trailing digits (`character_string8` →
/// `character_string`), or `None` for a key with no digits.
pub fn key_type(key: &str) -> Option<&str> {
    let t = key.trim_end_matches(|c: char| c.is_ascii_digit());
    (t.len() < key.len() && !t.is_empty()).then_some(t)
}

fn is_chinese(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FA1F}')
}

/// Checks `value` for `key` against its type's rule. `Err` says what is wrong, in words.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    let Some(ty) = key_type(key) else {
        return Ok(());
    };
    let n = value.chars().count();
    let known = matches!(
        ty,
        "thing"
            | "number"
            | "letter"
            | "symbol"
            | "character_string"
            | "time"
            | "date"
            | "amount"
            | "phone_number"
            | "car_number"
            | "name"
            | "phrase"
            | "const"
            | "short_thing"
            | "enum"
            | "enum_string"
    );
    if !known {
        return Ok(());
    }
    if value.is_empty() {
        return Err(format!("`{ty}` values may not be empty"));
    }
    let max = |limit: usize, what: &str| -> Result<(), String> {
        if n > limit {
            Err(format!(
                "`{ty}` allows at most {limit} {what}, this value has {n}"
            ))
        } else {
            Ok(())
        }
    };
    let only = |ok: bool, what: &str| -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!("`{ty}` allows only {what}"))
        }
    };
    match ty {
        "thing" | "const" => max(20, "characters"),
        "short_thing" => max(5, "characters"),
        "number" => {
            max(32, "digits")?;
            only(
                value.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "digits and a decimal point",
            )
        }
        "letter" => {
            max(32, "letters")?;
            only(value.chars().all(|c| c.is_ascii_alphabetic()), "letters")
        }
        "symbol" => {
            max(5, "symbols")?;
            only(
                value
                    .chars()
                    .all(|c| !c.is_alphanumeric() && !c.is_whitespace()),
                "symbols",
            )
        }
        "character_string" => {
            max(32, "characters")?;
            only(
                !value.chars().any(is_chinese),
                "digits, letters and symbols (no Chinese)",
            )
        }
        "phone_number" => {
            max(17, "characters")?;
            only(
                value
                    .chars()
                    .all(|c| c.is_ascii() && !c.is_ascii_alphabetic()),
                "digits and symbols",
            )
        }
        "car_number" => max(8, "characters"),
        "name" => {
            if value.chars().any(is_chinese) {
                max(10, "characters when Chinese")
            } else {
                max(20, "letters")
            }
        }
        "phrase" => {
            max(5, "Chinese characters")?;
            only(value.chars().all(is_chinese), "Chinese characters")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types() {
        assert_eq!(key_type("thing1"), Some("thing"));
        assert_eq!(key_type("character_string08"), Some("character_string"));
        assert_eq!(key_type("first"), None);
        assert_eq!(key_type("keyword1"), Some("keyword"));
        assert_eq!(key_type("12"), None);
    }

    #[test]
    fn rules() {
        assert!(check("thing1", &"字".repeat(20)).is_ok());
        assert!(check("thing1", &"字".repeat(21)).is_err());
        assert!(check("thing1", "").is_err());
        assert!(check("keyword1", "").is_ok());
        assert!(check("character_string2", "AB-12").is_ok());
        assert!(check("character_string2", "订单").is_err());
        assert!(check("phrase3", "配送中").is_ok());
        assert!(check("phrase3", "ok").is_err());
        assert!(check("number4", "12.5").is_ok());
        assert!(check("number4", "12a").is_err());
        assert!(check("name5", "石头").is_ok());
        assert!(check("name5", &"石".repeat(11)).is_err());
        assert!(check("time6", "2019年10月1日 15:01").is_ok());
    }
}
