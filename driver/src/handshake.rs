//! The HTTP upgrade check both transports run: a wrong path is refused with 404, the request
//! target is recorded for the core's query check.

use krmx_core::{KrmxConfig, RequestRejection};
use std::sync::{Arc, Mutex};
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tungstenite::http;

/// The handshake callback (tungstenite's and async-tungstenite's alike).
#[derive(Debug, Clone)]
pub(crate) struct RequestCheck {
    config: Arc<KrmxConfig>,
    target: Arc<Mutex<Option<String>>>,
}

impl RequestCheck {
    /// A check against `config`'s path rule.
    #[must_use]
    pub(crate) fn new(config: Arc<KrmxConfig>) -> Self {
        Self {
            config,
            target: Arc::default(),
        }
    }

    /// Where the accepted request's target (`/path?query`) will be found once the handshake
    /// succeeded.
    #[must_use]
    pub(crate) fn target_slot(&self) -> TargetSlot {
        TargetSlot(Arc::clone(&self.target))
    }
}

/// The request target recorded by a [`RequestCheck`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetSlot(Arc<Mutex<Option<String>>>);

impl TargetSlot {
    /// The recorded target (empty if none was recorded).
    #[must_use]
    pub(crate) fn take(&self) -> String {
        self.0
            .lock()
            .ok()
            .and_then(|mut target| target.take())
            .unwrap_or_default()
    }
}

impl Callback for RequestCheck {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let target = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |pq| pq.as_str().to_owned(),
        );
        if self.config.check_request(&target) == Err(RequestRejection::Path) {
            tracing::debug!(%target, "handshake refused: wrong path");
            return Err(not_found());
        }
        if let Ok(mut slot) = self.target.lock() {
            *slot = Some(target);
        }
        Ok(response)
    }
}

/// `404 Not Found` with a short text body.
#[must_use]
pub(crate) fn not_found() -> ErrorResponse {
    let body = "404 not found: no Krmx endpoint at this path\n";
    let mut refusal = http::Response::new(Some(body.to_owned()));
    *refusal.status_mut() = http::StatusCode::NOT_FOUND;
    let headers = refusal.headers_mut();
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    refusal
}
