//! [`AllowedOrigins`]: which web pages may open a WebSocket to the server (the `Origin` header
//! a browser sends with the upgrade), against cross-site WebSocket hijacking.

/// The origins allowed to upgrade: exact values (`https://game.example.com`,
/// `http://localhost:8080`) and subdomain patterns (`https://*.example.com`, or `*.example.com`
/// for any scheme). Matching ignores ASCII case; a port must match as written (a pattern
/// without a port matches only origins without one). A request without an `Origin` header is
/// not from a browser page and is allowed: the check protects browsers' users, and any other
/// client could send whatever origin it likes.
///
/// ```
/// use krmx_driver::AllowedOrigins;
///
/// let allowed = AllowedOrigins::new(["https://krmx.example.com", "*.games.example.org"]);
/// assert!(allowed.allows("https://krmx.example.com"));
/// assert!(allowed.allows("HTTPS://KRMX.EXAMPLE.COM"));
/// assert!(allowed.allows("http://eu.games.example.org"));
/// assert!(allowed.allows("https://a.b.games.example.org"));
/// assert!(!allowed.allows("https://games.example.org"));
/// assert!(!allowed.allows("https://evil.example.net"));
/// assert!(!allowed.allows("https://krmx.example.com:8443"));
/// assert!(!allowed.allows("https://evilgames.example.org"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// The whole origin, lowercased.
    Exact(String),
    /// `scheme://*.suffix`: the scheme (`None`: any) and `.suffix`, lowercased, port included.
    Subdomains {
        scheme: Option<String>,
        suffix: String,
    },
}

impl AllowedOrigins {
    /// The origins in `patterns` (see the type's documentation). Surrounding whitespace and
    /// a trailing `/` are ignored.
    #[must_use]
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|pattern| Pattern::parse(pattern.as_ref()))
            .collect();
        Self { patterns }
    }

    /// Whether a page of `origin` (an `Origin` header's value) may upgrade.
    #[must_use]
    pub fn allows(&self, origin: &str) -> bool {
        let origin = normalize(origin);
        self.patterns.iter().any(|pattern| pattern.matches(&origin))
    }

    /// The patterns, as given (normalized).
    #[must_use]
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(Pattern::to_string).collect()
    }
}

impl Pattern {
    fn parse(pattern: &str) -> Self {
        let pattern = normalize(pattern);
        let (scheme, host) = match pattern.split_once("://") {
            Some((scheme, host)) => (Some(scheme.to_owned()), host),
            None => (None, pattern.as_str()),
        };
        match host.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') => Self::Subdomains {
                scheme,
                suffix: suffix.to_owned(),
            },
            _ => Self::Exact(pattern),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Self::Exact(exact) => origin == exact,
            Self::Subdomains { scheme, suffix } => {
                let Some((origin_scheme, host)) = origin.split_once("://") else {
                    return false;
                };
                let scheme_ok = scheme.as_deref().is_none_or(|s| s == origin_scheme);
                let label = host.strip_suffix(suffix.as_str()).unwrap_or_default();
                scheme_ok && !label.is_empty() && !label.contains([':', '/', '@'])
            }
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(exact) => f.write_str(exact),
            Self::Subdomains {
                scheme: Some(scheme),
                suffix,
            } => write!(f, "{scheme}://*{suffix}"),
            Self::Subdomains {
                scheme: None,
                suffix,
            } => write!(f, "*{suffix}"),
        }
    }
}

fn normalize(value: &str) -> String {
    let value = value.trim();
    value
        .strip_suffix('/')
        .unwrap_or(value)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::AllowedOrigins;

    #[test]
    fn exact_origins_match_whole_and_case_insensitively() {
        let allowed = AllowedOrigins::new(["http://localhost:8080", " https://Example.com/ "]);
        assert!(allowed.allows("http://localhost:8080"));
        assert!(allowed.allows("https://example.com"));
        assert!(!allowed.allows("http://localhost"));
        assert!(!allowed.allows("http://localhost:8081"));
        assert!(!allowed.allows("https://example.com.evil.net"));
        assert!(!allowed.allows("null"));
        assert!(!allowed.allows(""));
    }

    #[test]
    fn subdomain_patterns_need_a_label_and_keep_the_scheme_and_port() {
        let allowed = AllowedOrigins::new(["https://*.example.com", "*.local.test:3000"]);
        assert!(allowed.allows("https://a.example.com"));
        assert!(!allowed.allows("http://a.example.com"));
        assert!(!allowed.allows("https://example.com"));
        assert!(!allowed.allows("https://.example.com"));
        assert!(!allowed.allows("https://a.example.com:444"));
        assert!(!allowed.allows("https://aexample.com"));
        assert!(!allowed.allows("https://user@a.example.com"));
        assert!(allowed.allows("http://x.local.test:3000"));
        assert!(allowed.allows("https://x.local.test:3000"));
        assert!(!allowed.allows("http://x.local.test"));
        assert_eq!(
            allowed.patterns(),
            ["https://*.example.com", "*.local.test:3000"]
        );
    }

    #[test]
    fn no_pattern_allows_nothing() {
        assert!(!AllowedOrigins::default().allows("https://example.com"));
    }
}
