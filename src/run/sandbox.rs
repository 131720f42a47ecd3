//! `wxpush sandbox`: the emulator alone, until Ctrl-C.

use std::net::SocketAddr;

use crate::Error;
use crate::plan::API_BASE_ENV;
use crate::sandbox::{Knobs, SANDBOX_SECRET, Sandbox};

pub async fn serve(addr: SocketAddr, knobs: Knobs) -> Result<(), Error> {
    let sb = Sandbox::start(addr, knobs)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    say!("wxpush sandbox: a WeChat API emulator on {}", sb.base_url());
    say!("  send to it with:");
    say!(
        "    {API_BASE_ENV}={} WXPUSH_SECRET={SANDBOX_SECRET} wxpush send CAMPAIGN.yaml",
        sb.base_url(),
    );
    say!(
        "  counters: {}/sandbox/stats   Ctrl-C stops it",
        sb.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    sb.shutdown().await;
    Ok(())
}
