//! `wxpush sandbox`: the emulator alone, until Ctrl-C. Its banner is what it exists to print
//! (where it listens, its secret, how to send to it): `--quiet` keeps it.

use std::net::SocketAddr;

use crate::Error;
use crate::plan::API_BASE_ENV;
use crate::sandbox::{Knobs, Mode, Sandbox};

pub async fn serve(addr: SocketAddr, knobs: Knobs) -> Result<(), Error> {
    // The sandbox's secret is no account's: printing it is what makes it usable.
    let secret = shell_words::quote(&knobs.secret).into_owned();
    let strict = knobs.mode == Mode::Strict;
    let examples = knobs.templates == crate::sandbox::Templates::default();
    let titles: Vec<String> = (knobs.templates.template_list.iter().map(|t| &t.title))
        .chain(knobs.templates.data.iter().map(|t| &t.title))
        .cloned()
        .collect();
    let sb = Sandbox::start(addr, knobs)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    let base = sb.base_url();
    let how = if strict {
        "strict: undocumented body fields are refused"
    } else {
        "as tolerant as WeChat; --strict refuses undocumented body fields"
    };
    show!("wxpush sandbox: a WeChat API emulator on {base} ({how})");
    show!("  send to it with:");
    show!("    {API_BASE_ENV}={base} WXPUSH_SECRET={secret} wxpush send CAMPAIGN.yaml");
    show!("  what arrived, one phone per openid: {base}/ (JSON: {base}/sandbox/messages)");
    match examples {
        true => show!(
            "  templates: the examples' ({}); --templates templates lists your own",
            titles.join(", ")
        ),
        false => show!("  templates: {}", titles.join(", ")),
    }
    show!("  counters: {base}/sandbox/stats   requests: {base}/sandbox/requests   Ctrl-C stops it");
    let _ = tokio::signal::ctrl_c().await;
    sb.shutdown().await;
    Ok(())
}
