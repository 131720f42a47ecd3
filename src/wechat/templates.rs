//! The account's templates, as WeChat lists them (wechat-api.md §2.3, §4.4):
//! `GET /cgi-bin/template/get_all_private_template` (Official Account template messages) and
//! `GET /wxaapi/newtmpl/gettemplate` (subscribe messages of a mini program, and subscribe
//! notifications of an Official Account, on that account's token).

use serde::Deserialize;

use super::token::Token;
use super::{CallError, Client};

/// One template of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub template_id: String,
    pub title: String,
    /// WeChat's text with `{{key.DATA}}` placeholders.
    pub content: String,
    /// WeChat's example of a filled message (may be empty).
    pub example: String,
    /// From `gettemplate` (subscribe), else `get_all_private_template`.
    pub subscribe: bool,
    /// Official Account templates: "primary / deputy" industry.
    pub industry: String,
}

#[derive(Deserialize)]
struct Private {
    #[serde(default)]
    template_list: Vec<PrivateItem>,
}

#[derive(Deserialize)]
struct PrivateItem {
    template_id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    primary_industry: String,
    #[serde(default)]
    deputy_industry: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    example: String,
}

#[derive(Deserialize)]
struct Subscribe {
    #[serde(default)]
    data: Vec<SubscribeItem>,
}

#[derive(Deserialize)]
struct SubscribeItem {
    #[serde(rename = "priTmplId")]
    pri_tmpl_id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    example: String,
}

pub const PRIVATE: &str = "/cgi-bin/template/get_all_private_template";
pub const SUBSCRIBE: &str = "/wxaapi/newtmpl/gettemplate";

/// The Official Account's template-message templates.
pub async fn private(client: &Client, token: &Token) -> Result<Vec<Live>, CallError> {
    let list: Private = client.call(token, PRIVATE, &[], None).await?;
    Ok(list
        .template_list
        .into_iter()
        .map(|t| Live {
            template_id: t.template_id,
            title: t.title,
            content: t.content,
            example: t.example,
            subscribe: false,
            industry: [t.primary_industry, t.deputy_industry]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" / "),
        })
        .collect())
}

/// The account's subscribe templates (a mini program's subscribe messages, an Official
/// Account's subscribe notifications).
pub async fn subscribe(client: &Client, token: &Token) -> Result<Vec<Live>, CallError> {
    let list: Subscribe = client.call(token, SUBSCRIBE, &[], None).await?;
    Ok(list
        .data
        .into_iter()
        .map(|t| Live {
            template_id: t.pri_tmpl_id,
            title: t.title,
            content: t.content,
            example: t.example,
            subscribe: true,
            industry: String::new(),
        })
        .collect())
}
