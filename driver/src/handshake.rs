//! The HTTP upgrade check both transports run: a page of an origin not allowed is refused
//! with 403, a wrong path with 404, and the request target is recorded for the core's query
//! check.

use crate::{AllowedOrigins, RoomsConfig};
use krmx_core::{KrmxConfig, RequestRejection};
use std::sync::{Arc, Mutex};
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tungstenite::http;

/// The handshake callback (tungstenite's and async-tungstenite's alike).
#[derive(Debug, Clone)]
pub(crate) struct RequestCheck {
    config: Arc<KrmxConfig>,
    origins: Option<Arc<AllowedOrigins>>,
    /// With rooms on, the path must name a room (the room's core checks the query).
    rooms: Option<RoomsConfig>,
    target: Arc<Mutex<Option<String>>>,
}

impl RequestCheck {
    /// A check against `config`'s path rule and, if given, the allowed origins.
    #[must_use]
    pub(crate) fn new(
        config: Arc<KrmxConfig>,
        origins: Option<Arc<AllowedOrigins>>,
        rooms: Option<RoomsConfig>,
    ) -> Self {
        Self {
            config,
            origins,
            rooms,
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
        if let Some(origins) = &self.origins {
            // No `Origin`: not a browser page, which is what the check protects.
            if let Some(origin) = request.headers().get(http::header::ORIGIN) {
                let allowed = origin.to_str().is_ok_and(|origin| origins.allows(origin));
                if !allowed {
                    tracing::info!(?origin, "handshake refused: origin not allowed");
                    return Err(refusal(
                        http::StatusCode::FORBIDDEN,
                        "403 forbidden: this origin may not connect\n",
                    ));
                }
            }
        }
        let path_refused = match &self.rooms {
            Some(rooms) => rooms.room_of(request.uri().path()).is_none(),
            None => self.config.check_request(&target) == Err(RequestRejection::Path),
        };
        if path_refused {
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
    refusal(http::StatusCode::NOT_FOUND, crate::http::NOT_FOUND_BODY)
}

/// A refused upgrade: `status` with a short text `body`, and the connection closed.
fn refusal(status: http::StatusCode, body: &str) -> ErrorResponse {
    let mut refusal = http::Response::new(Some(body.to_owned()));
    *refusal.status_mut() = status;
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
