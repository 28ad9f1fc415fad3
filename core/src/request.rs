//! The handshake-time check of a connection's HTTP request target: path and query parameters.

use std::fmt;
use std::sync::Arc;

/// What a required query parameter must satisfy.
#[derive(Clone)]
pub enum QueryRequirement {
    /// The parameter must be present (with any value, empty included).
    Present,
    /// The parameter must be absent.
    Absent,
    /// The parameter's first value must equal this.
    Equals(String),
    /// The parameter must be present and its first value pass this predicate.
    Matches(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl QueryRequirement {
    /// A predicate requirement.
    pub fn matches(predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self::Matches(Arc::new(predicate))
    }

    fn is_met_by(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Self::Present, found) => found.is_some(),
            (Self::Absent, found) => found.is_none(),
            (Self::Equals(expected), Some(found)) => expected == found,
            (Self::Matches(predicate), Some(found)) => predicate(found),
            (Self::Equals(_) | Self::Matches(_), None) => false,
        }
    }
}

impl fmt::Debug for QueryRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Present => f.write_str("Present"),
            Self::Absent => f.write_str("Absent"),
            Self::Equals(value) => f.debug_tuple("Equals").field(value).finish(),
            Self::Matches(_) => f.write_str("Matches(..)"),
        }
    }
}

/// Why a connection's request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestRejection {
    /// The path is not the endpoint's: refuse the HTTP upgrade (404).
    #[error("invalid path")]
    Path,
    /// A query-parameter requirement failed: close the connection before any Krmx message.
    #[error("invalid query parameters")]
    Query,
}

/// The required path and query parameters, checked at the handshake.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestRules {
    /// `None` accepts any path (the reference's default when no path is configured).
    pub(crate) path: Option<String>,
    pub(crate) query: Vec<(String, QueryRequirement)>,
}

impl RequestRules {
    /// Checks a request target such as `/game?room=1`.
    pub(crate) fn check(&self, target: &str) -> Result<(), RequestRejection> {
        let (path, query) = split_target(target);
        if let Some(expected) = &self.path {
            if path != expected {
                return Err(RequestRejection::Path);
            }
        }
        for (name, requirement) in &self.query {
            let value = query_value(query, name);
            if !requirement.is_met_by(value.as_deref()) {
                return Err(RequestRejection::Query);
            }
        }
        Ok(())
    }
}

/// Adds the leading `/` a configured path may lack.
pub(crate) fn normalise_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// Splits a request target into path and query (without `?`; the fragment dropped). An
/// absolute-form target (`http://host/p?q`) is reduced to its path; an origin-form one (starting
/// with `/`) is a path as it is, `://` included (`:` and `/` are path characters).
fn split_target(target: &str) -> (&str, &str) {
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = match path.split_once("://") {
        Some((_, rest)) if !path.starts_with('/') => {
            rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/")
        }
        _ => path,
    };
    (path, query)
}

/// The first value of `name` in an `application/x-www-form-urlencoded` query, as
/// `URLSearchParams.get` reads it.
fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| form_decode(key) == name)
        .map(|(_, value)| form_decode(value))
}

/// Decodes `+` as a space and `%XX` escapes; a malformed escape stays as written.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                if let Some(decoded) = hex {
                    out.push(decoded);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(path: Option<&str>, query: Vec<(&str, QueryRequirement)>) -> RequestRules {
        RequestRules {
            path: path.map(normalise_path),
            query: query.into_iter().map(|(n, r)| (n.to_owned(), r)).collect(),
        }
    }

    #[test]
    fn path_must_match_exactly_when_set() {
        let r = rules(Some("game"), vec![]);
        assert_eq!(r.check("/game"), Ok(()));
        assert_eq!(r.check("/game?x=1"), Ok(()));
        assert_eq!(r.check("/"), Err(RequestRejection::Path));
        assert_eq!(r.check("/game/"), Err(RequestRejection::Path));
        assert_eq!(r.check("/games"), Err(RequestRejection::Path));
        assert_eq!(r.check("ws://host:1/game?x"), Ok(()));
        assert_eq!(rules(None, vec![]).check("/anything"), Ok(()));
    }

    /// Found by the `handshake` fuzz target: an origin-form path holding `://` was read as an
    /// absolute-form target, so a request for exactly the configured path was refused.
    #[test]
    fn origin_form_paths_may_hold_a_scheme_separator() {
        let r = rules(Some("/proxy/http://x"), vec![]);
        assert_eq!(r.check("/proxy/http://x"), Ok(()));
        assert_eq!(r.check("/proxy/http://x?q=1#f"), Ok(()));
        assert_eq!(r.check("ws://host:1/proxy/http://x?q"), Ok(()));
        assert_eq!(r.check("/proxy/http:/x"), Err(RequestRejection::Path));
        let r = rules(Some("/aic://bd"), vec![]);
        assert_eq!(r.check("/aic://bd?"), Ok(()));
        let game = rules(Some("/game"), vec![]);
        assert_eq!(game.check("/x://host/game"), Err(RequestRejection::Path));
        assert_eq!(game.check("http://host/game"), Ok(()));
    }

    #[test]
    fn query_requirements() {
        let r = rules(
            None,
            vec![
                ("key", QueryRequirement::Present),
                ("debug", QueryRequirement::Absent),
                ("room", QueryRequirement::Equals("a b".into())),
                ("n", QueryRequirement::matches(|v| v.parse::<u8>().is_ok())),
            ],
        );
        assert_eq!(r.check("/?key&room=a+b&n=7"), Ok(()));
        assert_eq!(r.check("/?key=&room=a%20b&n=7&room=zz"), Ok(()));
        assert_eq!(r.check("/?room=a+b&n=7"), Err(RequestRejection::Query));
        assert_eq!(
            r.check("/?key&debug&room=a+b&n=7"),
            Err(RequestRejection::Query)
        );
        assert_eq!(r.check("/?key&room=ab&n=7"), Err(RequestRejection::Query));
        assert_eq!(
            r.check("/?key&room=a+b&n=700"),
            Err(RequestRejection::Query)
        );
        assert_eq!(r.check("/?key&room=a+b"), Err(RequestRejection::Query));
    }

    #[test]
    fn malformed_escapes_do_not_panic() {
        assert_eq!(form_decode("%"), "%");
        assert_eq!(form_decode("%4"), "%4");
        assert_eq!(form_decode("%zz%41"), "%zzA");
        assert_eq!(form_decode("%ff"), "\u{fffd}");
        assert_eq!(form_decode("%e2%82%ac"), "€");
    }
}
