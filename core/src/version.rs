//! The served protocol version and the link-time version check.

use std::fmt;
use std::str::FromStr;

/// The protocol version a server serves: a major and a minor number. Clients must send the same
/// major and minor, with any patch (`0.6.0`, `0.6.12`, or just `0.6`).
///
/// ```
/// use krmx_core::ProtocolVersion;
/// let served: ProtocolVersion = "0.6".parse().unwrap();
/// assert!(served.accepts("0.6.3"));
/// assert!(!served.accepts("0.60.1")); // the reference's prefix test wrongly accepts this
/// assert_eq!(served.to_string(), "0.6");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl ProtocolVersion {
    /// The version this crate implements by default: 0.6.
    pub const DEFAULT: Self = Self::new(0, 6);

    /// A version from its numbers.
    #[must_use]
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Whether a client that sent `client_version` may link: its first two dot-separated parts
    /// are exactly this version's numbers; whatever follows a third dot (the patch) is free.
    #[must_use]
    pub fn accepts(&self, client_version: &str) -> bool {
        let mut parts = client_version.splitn(3, '.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        is_number(major, self.major) && is_number(minor, self.minor)
    }

    /// The rejection reason for a client that sent `client_version`.
    #[must_use]
    pub fn mismatch_reason(&self, client_version: &str) -> String {
        format!("krmx server version mismatch (server={self}.*,client={client_version})")
    }
}

impl Default for ProtocolVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `part` is the canonical decimal spelling of `number` (no sign, no leading zeros).
fn is_number(part: &str, number: u32) -> bool {
    part == number.to_string()
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a version string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid protocol version {0:?}: expected MAJOR.MINOR, for example 0.6")]
pub struct InvalidVersion(pub String);

impl FromStr for ProtocolVersion {
    type Err = InvalidVersion;

    /// Parses `X.Y` (a trailing `.*` or patch number is tolerated and ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidVersion(s.to_owned());
        let mut parts = s.splitn(3, '.');
        let major = parts.next().ok_or_else(invalid)?;
        let minor = parts.next().ok_or_else(invalid)?;
        let parse = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            p.parse::<u32>().map_err(|_| invalid())
        };
        Ok(Self::new(parse(major)?, parse(minor)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_same_major_minor_with_any_patch() {
        let v = ProtocolVersion::DEFAULT;
        for client in ["0.6", "0.6.0", "0.6.17", "0.6.1-beta"] {
            assert!(v.accepts(client), "{client}");
        }
    }

    #[test]
    fn rejects_other_numbers_exactly() {
        let v = ProtocolVersion::DEFAULT;
        for client in [
            "0.5.4", "0.60.1", "0.06.1", "1.6.0", "0.6x", "", "0", "0.", "v0.6.0",
        ] {
            assert!(!v.accepts(client), "{client}");
        }
    }

    #[test]
    fn mismatch_reason_names_both_versions() {
        assert_eq!(
            ProtocolVersion::new(0, 5).mismatch_reason("0.6.1"),
            "krmx server version mismatch (server=0.5.*,client=0.6.1)"
        );
    }

    #[test]
    fn parses_cli_forms() {
        assert_eq!("0.5".parse(), Ok(ProtocolVersion::new(0, 5)));
        assert_eq!("1.12.3".parse(), Ok(ProtocolVersion::new(1, 12)));
        assert!("1".parse::<ProtocolVersion>().is_err());
        assert!("a.b".parse::<ProtocolVersion>().is_err());
        assert!("-1.2".parse::<ProtocolVersion>().is_err());
    }
}
