//! Usernames: the default rule, replaceable rules, and the validated [`Username`] type.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A username that passed the server's username rule.
///
/// Only the core constructs these, after checking the configured [`UsernameRule`], so every
/// user the core tracks has a valid name. Compare with plain strings directly.
///
/// ```
/// # use krmx_core::{Krmx, KrmxConfig, Input};
/// # use std::time::Instant;
/// let mut krmx = Krmx::new(KrmxConfig::default());
/// let now = Instant::now();
/// krmx.handle_input(now, Input::Listen { port: 8082 }).unwrap();
/// krmx.handle_input(now, Input::Join { username: "simon".into() }).unwrap();
/// assert!(krmx.users().any(|user| user.username == "simon"));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Username(Arc<str>);

impl Username {
    pub(crate) fn new_unchecked(name: &str) -> Self {
        Self(Arc::from(name))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Username {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Username {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Username {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which usernames the server accepts.
#[derive(Clone, Default)]
pub enum UsernameRule {
    /// The reference rule, see [`is_valid_default_username`].
    #[default]
    Default,
    /// An application-defined predicate.
    Custom(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl UsernameRule {
    /// A rule from a predicate.
    ///
    /// ```
    /// use krmx_core::UsernameRule;
    /// let rule = UsernameRule::custom(|name| name.len() == 3);
    /// assert!(rule.accepts("bob"));
    /// assert!(!rule.accepts("simon"));
    /// ```
    pub fn custom(predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(predicate))
    }

    /// Whether `name` passes this rule.
    #[must_use]
    pub fn accepts(&self, name: &str) -> bool {
        match self {
            Self::Default => is_valid_default_username(name),
            Self::Custom(predicate) => predicate(name),
        }
    }
}

impl fmt::Debug for UsernameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("Default"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

fn is_special(c: u8) -> bool {
    matches!(c, b'.' | b'-' | b'@' | b'_')
}

/// The reference username rule: 2 to 32 characters; first a letter (a-z, A-Z); last a letter or
/// digit; only letters, digits, `.`, `-`, `@`, `_`; no two of those four special characters in a
/// row.
///
/// ```
/// use krmx_core::is_valid_default_username;
/// assert!(is_valid_default_username("simon.karman"));
/// assert!(!is_valid_default_username("s"));
/// assert!(!is_valid_default_username("simon..karman"));
/// assert!(!is_valid_default_username("1simon"));
/// ```
#[must_use]
pub fn is_valid_default_username(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    (2..=32).contains(&bytes.len())
        && first.is_ascii_alphabetic()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || is_special(c))
        && !bytes
            .windows(2)
            .any(|pair| pair.iter().all(|&c| is_special(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reference_examples() {
        for name in [
            "ab",
            "simon",
            "Simon2",
            "a.b",
            "a-b_c@d.e",
            "s1",
            "abcdefghijklmnopqrstuvwxyzabcdef",
        ] {
            assert!(is_valid_default_username(name), "{name}");
        }
    }

    #[test]
    fn rejects_names_breaking_the_rule() {
        for name in [
            "",
            "a",
            "1a",
            ".ab",
            "ab.",
            "ab_",
            "a..b",
            "a.-b",
            "a@_b",
            "a b",
            "ä-ok",
            "abcdefghijklmnopqrstuvwxyzabcdefg",
            "simon!",
            "a\u{0}b",
        ] {
            assert!(!is_valid_default_username(name), "{name:?}");
        }
    }
}
