//! Reading one gauge of a server's metrics endpoint (`krmx serve --metrics-path`) over plain
//! HTTP: a blocking request on its own connection, enough for polling a few times a second.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The value of the sample `name` (a line `name VALUE`, no labels) at `http://addr{path}`.
pub(crate) fn gauge(addr: SocketAddr, path: &str, name: &str) -> io::Result<f64> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    sample(&text, name).ok_or_else(|| {
        let status = text.lines().next().unwrap_or_default();
        io::Error::other(format!(
            "no sample {name} in the answer of {path} ({status})"
        ))
    })
}

/// The value of the unlabelled sample `name` in an OpenMetrics text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_their_exact_name() {
        let text = "HTTP/1.1 200 OK\r\n\r\n# HELP krmx_rooms Rooms open\n# TYPE krmx_rooms gauge\n\
                    krmx_rooms_total 9\nkrmx_rooms 3\n# EOF\n";
        assert_eq!(sample(text, "krmx_rooms"), Some(3.0));
        assert_eq!(sample(text, "krmx_users"), None);
    }
}
