//! Plain HTTP on the WebSocket port: the request head is read first, an upgrade goes on to
//! the WebSocket handshake, and any other request is answered here (the health endpoint, or
//! a clean 404) and the connection closed.

use krmx_core::Status;

/// The body of every `404`: a plain request or an upgrade for a path with no endpoint.
pub(crate) const NOT_FOUND_BODY: &str = "404 not found: no Krmx endpoint at this path\n";

/// Longest request head taken; a longer one is answered `431` and closed.
pub(crate) const MAX_HEAD_BYTES: usize = 16 << 10;

/// Headers parsed at most; a request with more is answered `431`.
const MAX_HEADERS: usize = 64;

/// What a complete request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A WebSocket upgrade: the handshake takes it from here.
    Upgrade,
    /// A plain request.
    Plain(PlainRequest),
    /// Not a request this server can read (the response says why).
    Bad(Response),
}

/// Longest request body taken (a monitor command); a longer one is answered `413`.
pub(crate) const MAX_BODY_BYTES: usize = 64 << 10;

/// A plain (not upgrade) request's head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PlainRequest {
    pub(crate) method: String,
    /// The path, query dropped.
    pub(crate) path: String,
    /// A `HEAD` request: the response goes without its body.
    pub(crate) head_only: bool,
    /// The body's length (at most [`MAX_BODY_BYTES`]), read before the request is answered.
    pub(crate) content_length: usize,
    /// The `Authorization` header.
    pub(crate) authorization: Option<String>,
}

/// Where the end of the head is in `bytes` read so far, if it is complete.
pub(crate) fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Whether the bytes read so far can no longer become a request head (garbage, a TLS hello):
/// answered at once, without waiting for more.
pub(crate) fn is_invalid(partial: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    matches!(request.parse(partial), Err(error) if error != httparse::Error::TooManyHeaders)
}

/// Whether the bytes read so far start a TLS handshake record (a `ClientHello`): a `wss://`
/// or `https://` client talking to a port without TLS.
pub(crate) fn is_tls_hello(partial: &[u8]) -> bool {
    matches!(partial, [0x16, 0x03, ..])
}

/// Parses a complete request head.
pub(crate) fn parse(head: &[u8]) -> Request {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Request::Bad(Response::text(431, "431 request header fields too large\n"));
        }
        Err(_) => return Request::Bad(Response::text(400, "400 bad request\n")),
    }
    let upgrade = request.headers.iter().any(|header| {
        header.name.eq_ignore_ascii_case("upgrade")
            && String::from_utf8_lossy(header.value)
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
    });
    if upgrade {
        return Request::Upgrade;
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| String::from_utf8_lossy(header.value).trim().to_owned())
    };
    if header("transfer-encoding").is_some() {
        return Request::Bad(Response::text(
            411,
            "411 length required: send Content-Length\n",
        ));
    }
    let content_length = match header("content-length").map(|value| value.parse::<usize>()) {
        None => 0,
        Some(Ok(length)) if length <= MAX_BODY_BYTES => length,
        Some(Ok(_)) => {
            return Request::Bad(Response::text(413, "413 request body too large\n"));
        }
        Some(Err(_)) => return Request::Bad(Response::text(400, "400 bad request\n")),
    };
    let authorization = header("authorization");
    let method = request.method.unwrap_or_default().to_owned();
    let target = request.path.unwrap_or_default();
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    Request::Plain(PlainRequest {
        head_only: method == "HEAD",
        method,
        path,
        content_length,
        authorization,
    })
}

/// A complete HTTP/1.1 response, closing the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<&'static str>,
}

impl Response {
    /// A short plain-text response.
    pub(crate) fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            allow: None,
        }
    }

    /// `200 OK` with a JSON body.
    pub(crate) fn json(body: String) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: body.into_bytes(),
            allow: None,
        }
    }

    /// `status` with a JSON body.
    pub(crate) fn json_status(status: u16, body: String) -> Self {
        Self {
            status,
            ..Self::json(body)
        }
    }

    /// `200 OK` with an HTML page.
    pub(crate) fn html(page: &str) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: page.as_bytes().to_vec(),
            allow: None,
        }
    }

    /// `405 Method Not Allowed` for an endpoint that takes only `method`.
    pub(crate) fn only(method: &'static str) -> Self {
        Self {
            allow: Some(method),
            ..Self::text(405, "405 method not allowed\n")
        }
    }

    /// `200 OK` with the metrics in the OpenMetrics text format.
    pub(crate) fn openmetrics(body: String) -> Self {
        Self {
            status: 200,
            content_type: crate::OPENMETRICS_CONTENT_TYPE,
            body: body.into_bytes(),
            allow: None,
        }
    }

    /// `200 OK` with a static file.
    pub(crate) fn file(file: &crate::static_files::StaticFile) -> Self {
        Self {
            status: 200,
            content_type: file.content_type,
            body: file.bytes.to_vec(),
            allow: None,
        }
    }

    /// The status code.
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// `405 Method Not Allowed` for an endpoint that is read with GET or HEAD.
    pub(crate) fn get_only() -> Self {
        Self {
            allow: Some("GET, HEAD"),
            ..Self::text(405, "405 method not allowed: use GET\n")
        }
    }

    /// The response's bytes; without the body for a `HEAD` request.
    pub(crate) fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            401 => "Unauthorized",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            _ => "",
        };
        let allow = self
            .allow
            .map_or_else(String::new, |allow| format!("Allow: {allow}\r\n"));
        let mut bytes = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
             Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// The figures the health endpoint reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    pub(crate) status: Status,
    pub(crate) users: u64,
    pub(crate) linked_users: u64,
    pub(crate) connections: u64,
    pub(crate) version: String,
    pub(crate) uptime_ms: u128,
    /// Rooms open, reported when rooms are on.
    pub(crate) rooms: Option<u64>,
}

impl Health {
    /// The health figures of a metrics snapshot.
    pub(crate) fn of(metrics: &crate::Metrics) -> Self {
        Self {
            status: metrics.status,
            users: metrics.users,
            linked_users: metrics.linked_users,
            connections: metrics.connections_open,
            version: metrics.protocol_version.clone(),
            uptime_ms: metrics.uptime.as_millis(),
            rooms: None,
        }
    }

    /// With the rooms open, for a server with rooms on.
    pub(crate) fn with_rooms(mut self, rooms_on: bool, rooms: u64) -> Self {
        self.rooms = rooms_on.then_some(rooms);
        self
    }

    /// The health document: `{"status":"listening","users":2,"linkedUsers":1,
    /// "connections":3,"protocolVersion":"0.6","uptimeSeconds":12.5}`.
    pub(crate) fn to_json(&self) -> String {
        let status = match self.status {
            Status::Initializing => "initializing",
            Status::Starting => "starting",
            Status::Listening => "listening",
            Status::Closing => "closing",
            Status::Closed => "closed",
        };
        let seconds = self.uptime_ms / 1000;
        let millis = self.uptime_ms % 1000;
        let rooms = self
            .rooms
            .map_or_else(String::new, |rooms| format!(",\"rooms\":{rooms}"));
        format!(
            "{{\"status\":\"{status}\",\"users\":{},\"linkedUsers\":{},\"connections\":{},\
             \"protocolVersion\":\"{}\",\"uptimeSeconds\":{seconds}.{millis:03}{rooms}}}\n",
            self.users, self.linked_users, self.connections, self.version
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn an_upgrade_is_told_from_a_plain_request() {
        let upgrade =
            b"GET /game HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n";
        assert_eq!(parse(upgrade), Request::Upgrade);
        let plain = b"HEAD /health?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse(plain),
            Request::Plain(PlainRequest {
                method: "HEAD".to_owned(),
                path: "/health".to_owned(),
                head_only: true,
                content_length: 0,
                authorization: None,
            })
        );
        assert!(matches!(
            parse(b"\x16\x03\x01garbage\r\n\r\n"),
            Request::Bad(_)
        ));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn a_body_is_announced_by_its_length_and_bounded() {
        let post = b"POST /m/kick HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 9\r\n\r\n";
        let Request::Plain(plain) = parse(post) else {
            panic!("a plain request");
        };
        assert_eq!(plain.content_length, 9);
        assert_eq!(plain.authorization.as_deref(), Some("Bearer t"));
        for (head, status) in [
            (
                &b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n"[..],
                413,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
        ] {
            match parse(head) {
                Request::Bad(response) => assert_eq!(response.status(), status),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn responses_close_and_a_head_response_has_no_body() {
        let response = Response::text(404, "404 not found\n");
        let full = String::from_utf8(response.to_bytes(false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(full.contains("Content-Length: 14\r\n"));
        assert!(full.contains("Connection: close\r\n"));
        assert!(full.ends_with("\r\n\r\n404 not found\n"));
        let head = String::from_utf8(response.to_bytes(true)).unwrap();
        assert!(head.ends_with("\r\n\r\n"));
        let allow = String::from_utf8(Response::get_only().to_bytes(false)).unwrap();
        assert!(allow.contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn health_is_json() {
        let health = Health {
            status: Status::Listening,
            users: 3,
            linked_users: 2,
            connections: 4,
            version: "0.6.0".to_owned(),
            uptime_ms: 12_005,
            rooms: None,
        };
        let with_rooms = health.clone().with_rooms(true, 7).to_json();
        let with_rooms: serde_json::Value = serde_json::from_str(&with_rooms).unwrap();
        assert_eq!(with_rooms["rooms"], 7);
        let value: serde_json::Value = serde_json::from_str(&health.to_json()).unwrap();
        assert!(value.get("rooms").is_none());
        assert_eq!(value["status"], "listening");
        assert_eq!(value["users"], 3);
        assert_eq!(value["linkedUsers"], 2);
        assert_eq!(value["connections"], 4);
        assert_eq!(value["protocolVersion"], "0.6.0");
        assert_eq!(value["uptimeSeconds"], 12.005);
    }
}
