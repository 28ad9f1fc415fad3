//! The health and metrics endpoints answered outside a driver: a front that routes connections
//! over several workers answers them itself with every worker's [`Metrics`] merged.

use crate::http::{self, Request, Response};
use crate::{Metrics, TransportConfig};

/// Whether the request `head` asks for `transport`'s health or metrics endpoint.
///
/// ```
/// use krmx_driver::{TransportConfig, asks_for_figures};
/// let transport = TransportConfig::default().health_path("/health");
/// assert!(asks_for_figures(&transport, b"GET /health HTTP/1.1\r\n\r\n"));
/// assert!(!asks_for_figures(&transport, b"GET /rooms/a HTTP/1.1\r\n\r\n"));
/// ```
#[must_use]
pub fn asks_for_figures(transport: &TransportConfig, head: &[u8]) -> bool {
    let Some(end) = http::head_end(head) else {
        return false;
    };
    match http::parse(head.get(..end).unwrap_or_default()) {
        Request::Plain(plain) => {
            let path = Some(plain.path.as_str());
            transport.health_path_value() == path || transport.metrics_path_value() == path
        }
        _ => false,
    }
}

/// The whole HTTP response to a request for the health or metrics endpoint (see
/// [`asks_for_figures`]), from `metrics`; a `404` for any other request.
#[must_use]
pub fn figures_response(transport: &TransportConfig, head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let request = http::head_end(head).map(|end| http::parse(head.get(..end).unwrap_or_default()));
    let Some(Request::Plain(plain)) = request else {
        return Response::text(404, http::NOT_FOUND_BODY).to_bytes(false);
    };
    let path = Some(plain.path.as_str());
    let response = if plain.method != "GET" && plain.method != "HEAD" {
        Response::get_only()
    } else if transport.health_path_value() == path {
        Response::json(
            http::Health::of(metrics)
                .with_rooms(transport.rooms_value().is_some(), metrics.rooms)
                .to_json(),
        )
    } else if transport.metrics_path_value() == path {
        match metrics.to_openmetrics() {
            Ok(text) => Response::openmetrics(text),
            Err(_) => Response::text(500, "500 the metrics could not be encoded\n"),
        }
    } else {
        Response::text(404, http::NOT_FOUND_BODY)
    };
    response.to_bytes(plain.head_only)
}
