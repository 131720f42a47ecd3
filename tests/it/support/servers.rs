//! Small HTTP servers the account tests stand up on 127.0.0.1: a forward proxy that asks
//! for a password, and a company token service.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// A server on its own runtime, stopped on drop.
pub struct Served {
    rt: tokio::runtime::Runtime,
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Served {
    fn start(app: Router) -> Served {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("test runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("binds 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Served {
            rt,
            url,
            stop: Some(tx),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let rt = std::mem::replace(
            &mut self.rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        rt.shutdown_background();
    }
}

/// A forward proxy for plain-http targets (absolute-form requests), as a company's egress
/// gateway: it wants `Proxy-Authorization: Basic base64(user:password)` and counts what it
/// forwarded.
pub struct Proxy {
    pub served: Served,
    pub forwarded: Arc<AtomicU64>,
    pub refused: Arc<AtomicU64>,
}

#[derive(Clone)]
struct ProxyState {
    expected: String,
    client: reqwest::Client,
    forwarded: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(user: &str, password: &str) -> Proxy {
        let forwarded = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let state = ProxyState {
            expected: format!("Basic {}", base64(&format!("{user}:{password}"))),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            forwarded: forwarded.clone(),
            refused: refused.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        Proxy {
            served: Served::start(app),
            forwarded,
            refused,
        }
    }

    /// `http://user:password@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        self.served
            .url
            .replacen("http://", &format!("http://{user}:{password}@"), 1)
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn forward(
    State(st): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("proxy-authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(st.expected.as_str()) {
        st.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            [("proxy-authenticate", "Basic realm=\"gateway\"")],
            "proxy authentication required",
        )
            .into_response();
    }
    // A forward proxy is asked for the whole URL; a direct request has only a path.
    if uri.authority().is_none() {
        return (StatusCode::BAD_REQUEST, "not a proxy request").into_response();
    }
    st.forwarded.fetch_add(1, Ordering::SeqCst);
    let mut req = st.client.request(method, uri.to_string()).body(body);
    if let Some(ct) = headers.get("content-type") {
        req = req.header("content-type", ct);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let bytes = r.bytes().await.unwrap_or_default();
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// A company token service: `GET /token` answers `body` and counts the calls.
pub struct TokenService {
    pub served: Served,
    pub calls: Arc<AtomicU64>,
}

impl TokenService {
    pub fn start(body: String) -> TokenService {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let app = Router::new().route(
            "/token",
            axum::routing::get(move || {
                let body = body.clone();
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    body
                }
            }),
        );
        TokenService {
            served: Served::start(app),
            calls,
        }
    }
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
