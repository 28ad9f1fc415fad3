//! [`Script`] and [`Op`]: what happens in a simulation, step by step, as data that prints as
//! text and parses back, so a failure replays exactly.

use krmx_core::Message;
use std::fmt;
use std::str::FromStr;

/// How the application's authentication decisions reach the server from now on: the
/// application decides when it sees the request, and the simulation lets the decision arrive
/// at once, later, after the authentication timeout (a late decision the core ignores), or
/// never (the timeout rejects the link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthTiming {
    /// At once, within the event that asked for it.
    Now,
    /// This many milliseconds later.
    Later {
        /// The delay in milliseconds.
        ms: u64,
    },
    /// One millisecond after the authentication timeout.
    AfterTimeout,
    /// Never: the decision is lost.
    Never,
}

/// One step of a [`Script`]: a client's action, a fault of the network, or time passing.
///
/// Clients are numbered from 0 (`c0`, `c1`, ...); a client's action that its state does not
/// allow (sending before it is linked, connecting twice) is refused by the client, recorded in
/// the trace, and changes nothing, as in a real client.
#[derive(Debug, Clone)]
pub enum Op {
    /// The client opens a connection (the server sees it when the network delivers it).
    Connect {
        /// The client.
        client: usize,
    },
    /// The client links a user.
    Link {
        /// The client.
        client: usize,
        /// The user to link.
        username: String,
        /// The authentication the link carries.
        auth: Option<String>,
    },
    /// The client sends a custom message (only while linked).
    Send {
        /// The client.
        client: usize,
        /// What it sends.
        message: Message,
    },
    /// The client unlinks its user (the user stays joined).
    Unlink {
        /// The client.
        client: usize,
    },
    /// The client's user leaves.
    Leave {
        /// The client.
        client: usize,
    },
    /// The client closes its connection cleanly (a close frame), linked or not: a linked
    /// user stays joined, unlinked.
    Close {
        /// The client.
        client: usize,
    },
    /// The network resets the client's connection: the client learns at once and loses what
    /// was on its way down; the server learns after what was already on its way up.
    Reset {
        /// The client.
        client: usize,
    },
    /// The network delivers up to `count` items, each on a connection and in a direction the
    /// seed picks: deliveries are reordered across connections, each connection keeps its
    /// order.
    Deliver {
        /// How many items at most.
        count: usize,
    },
    /// The network delivers the next item from the client's last connection to the server.
    Up {
        /// The client.
        client: usize,
    },
    /// The network delivers the next item from the server to the client's last connection.
    Down {
        /// The client.
        client: usize,
    },
    /// The network delivers everything in flight, in the order it took it (reordering
    /// nothing); time moves on to pending authentication
    /// decisions and timeouts until nothing is left to deliver.
    Settle,
    /// Time moves on by `ms` milliseconds: decisions due in between arrive at their time, then
    /// the server's due timers fire.
    Advance {
        /// Milliseconds.
        ms: u64,
    },
    /// How the application's next authentication decisions arrive.
    Auth(AuthTiming),
}

/// A seed and the steps of a simulation: printed as text (one step per line) and parsed back,
/// so a failing case replays exactly.
///
/// ```
/// use krmx_testkit::Script;
///
/// let script: Script = "seed 7\nc0 connect\nsettle\nc0 link alice\nsettle".parse()?;
/// assert_eq!(script.ops.len(), 4);
/// assert_eq!(script.to_string().parse::<Script>()?.to_string(), script.to_string());
/// # Ok::<(), krmx_testkit::ParseError>(())
/// ```
#[derive(Clone, Default)]
pub struct Script {
    /// Picks the connections and directions of `deliver N` steps (the only random part).
    pub seed: u64,
    /// The steps, in order.
    pub ops: Vec<Op>,
}

impl Script {
    /// A script of `ops` with `seed`.
    #[must_use]
    pub fn new(seed: u64, ops: Vec<Op>) -> Self {
        Self { seed, ops }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { client } => write!(f, "c{client} connect"),
            Self::Link {
                client,
                username,
                auth,
            } => {
                write!(f, "c{client} link {}", Word(username))?;
                match auth {
                    Some(auth) => write!(f, " {}", serde_json::Value::from(auth.as_str())),
                    None => Ok(()),
                }
            }
            Self::Send { client, message } => write!(f, "c{client} send {}", message.to_text()),
            Self::Unlink { client } => write!(f, "c{client} unlink"),
            Self::Leave { client } => write!(f, "c{client} leave"),
            Self::Close { client } => write!(f, "c{client} close"),
            Self::Reset { client } => write!(f, "c{client} reset"),
            Self::Up { client } => write!(f, "c{client} up"),
            Self::Down { client } => write!(f, "c{client} down"),
            Self::Deliver { count } => write!(f, "deliver {count}"),
            Self::Settle => f.write_str("settle"),
            Self::Advance { ms } => write!(f, "advance {ms}"),
            Self::Auth(AuthTiming::Now) => f.write_str("auth now"),
            Self::Auth(AuthTiming::Later { ms }) => write!(f, "auth later {ms}"),
            Self::Auth(AuthTiming::AfterTimeout) => f.write_str("auth after-timeout"),
            Self::Auth(AuthTiming::Never) => f.write_str("auth never"),
        }
    }
}

/// A username as a script prints it: bare when it is a plain word, else a JSON string.
struct Word<'a>(&'a str);

impl fmt::Display for Word<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.0.is_empty()
            && !self.0.starts_with('"')
            && !self.0.chars().any(|c| c.is_whitespace() || c.is_control());
        if plain {
            f.write_str(self.0)
        } else {
            write!(f, "{}", serde_json::Value::from(self.0))
        }
    }
}

/// The first word of `text` (a JSON string when it starts with `"`) and the rest.
fn first_word(text: &str) -> Result<(String, &str), String> {
    if text.starts_with('"') {
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<String>();
        let word = match values.next() {
            Some(Ok(word)) => word,
            _ => return Err(format!("expected a JSON string, found {text:?}")),
        };
        let rest = text.get(values.byte_offset()..).unwrap_or_default();
        Ok((word, rest.trim_start()))
    } else {
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        Ok((word.to_owned(), rest.trim_start()))
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {}", self.seed)?;
        for op in &self.ops {
            write!(f, "\n{op}")?;
        }
        Ok(())
    }
}

/// Prints the script as the Rust expression that replays it (proptest shows a failing case's
/// shrunk input this way).
impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Script::replay(r#\"\n{self}\n\"#)")
    }
}

/// A line of a script that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "script line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

impl FromStr for Op {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, String> {
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let number = |text: &str| -> Result<u64, String> {
            text.parse()
                .map_err(|_| format!("expected a number, found {text:?}"))
        };
        match head {
            "settle" => return Ok(Self::Settle),
            "deliver" => {
                let count = usize::try_from(number(rest)?).map_err(|e| e.to_string())?;
                return Ok(Self::Deliver { count });
            }
            "advance" => return Ok(Self::Advance { ms: number(rest)? }),
            "auth" => {
                let timing = match rest.split_once(' ') {
                    None if rest == "now" => AuthTiming::Now,
                    None if rest == "after-timeout" => AuthTiming::AfterTimeout,
                    None if rest == "never" => AuthTiming::Never,
                    Some(("later", ms)) => AuthTiming::Later { ms: number(ms)? },
                    _ => return Err(format!("unknown auth timing {rest:?}")),
                };
                return Ok(Self::Auth(timing));
            }
            _ => {}
        }
        let client = head
            .strip_prefix('c')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("unknown step {head:?}"))?;
        let (verb, argument) = rest.split_once(' ').unwrap_or((rest, ""));
        let argument = argument.trim();
        Ok(match verb {
            "connect" => Self::Connect { client },
            "unlink" => Self::Unlink { client },
            "leave" => Self::Leave { client },
            "close" => Self::Close { client },
            "reset" => Self::Reset { client },
            "up" => Self::Up { client },
            "down" => Self::Down { client },
            "link" => {
                let (username, auth) = first_word(argument)?;
                let auth = match auth.trim() {
                    "" => None,
                    quoted => Some(
                        serde_json::from_str::<String>(quoted)
                            .map_err(|e| format!("auth must be a JSON string: {e}"))?,
                    ),
                };
                Self::Link {
                    client,
                    username,
                    auth,
                }
            }
            "send" => Self::Send {
                client,
                message: Message::parse(argument).map_err(|e| e.to_string())?,
            },
            _ => return Err(format!("unknown client action {verb:?}")),
        })
    }
}

impl FromStr for Script {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let mut script = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |reason: String| ParseError {
                line: number + 1,
                reason,
            };
            if let Some(seed) = line.strip_prefix("seed ") {
                script.seed = seed
                    .trim()
                    .parse()
                    .map_err(|_| fail(format!("bad seed {seed:?}")))?;
                continue;
            }
            script.ops.push(line.parse().map_err(fail)?);
        }
        Ok(script)
    }
}

impl Script {
    /// Parses a script printed by a failing case (its `Debug` form calls this).
    ///
    /// # Panics
    /// When `text` is not a script: replays are written by hand into tests, where a typo
    /// should fail the test at once.
    #[must_use]
    #[allow(clippy::panic)] // documented: a replay in a test that does not parse is a typo
    pub fn replay(text: &str) -> Self {
        match text.parse() {
            Ok(script) => script,
            Err(error) => panic!("not a script: {error}"),
        }
    }
}
