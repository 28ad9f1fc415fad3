//! [`run`]: a script through a [`Sim`], with a property checked after every step, and the
//! [`Failure`] that says how to replay it.

use crate::script::Script;
use crate::sim::{Sim, SimConfig};
use krmx_core::Application;
use std::fmt;

/// How many trace lines a [`Failure`] shows (set `KRMX_TESTKIT_TRACE=1` for all of them).
const TRACE_TAIL: usize = 40;

/// A script that broke an invariant or the application's property: what broke, at which step,
/// the trace's tail, and the script to replay it.
#[derive(Clone)]
pub struct Failure {
    /// The script that failed.
    pub script: Script,
    /// The index of the step that failed; `None` for the final settle.
    pub step: Option<usize>,
    /// What broke.
    pub message: String,
    /// The last lines of the trace (all of them with `KRMX_TESTKIT_TRACE=1`).
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match self
            .step
            .and_then(|i| self.script.ops.get(i).map(|op| (i, op)))
        {
            Some((i, op)) => format!("step {} ({op})", i + 1),
            None => "the final settle".to_owned(),
        };
        writeln!(f, "{at}: {}", self.message)?;
        writeln!(f, "trace (last {} lines):", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "replay: {:?}", self.script)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// proptest turns it into a failed case with `?` (its message is this `Display`).
impl std::error::Error for Failure {}

/// Runs `script` with `app` on a fresh [`Sim`], checking `property` after every step and after
/// a final settle (when every client must agree with the server and have every message it was
/// owed). The testkit's own invariants are checked throughout.
///
/// ```
/// use krmx_core::{Control, Event, KrmxConfig};
/// use krmx_testkit::{Script, SimConfig};
///
/// let relay = |server: &mut dyn Control, event: Event| {
///     if let Event::Message { message, .. } = event {
///         let _ = server.broadcast(message, None);
///     }
/// };
/// let script = Script::replay(r#"
///     seed 3
///     c0 connect
///     c1 connect
///     settle
///     c0 link alice
///     c1 link bob
///     settle
///     c0 send {"type":"chat/say","payload":"hi"}
/// "#);
/// let sim = krmx_testkit::run(&SimConfig::new(KrmxConfig::default(), 2), relay, &script, |sim| {
///     // The application's own property, after every step.
///     if sim.krmx().users().count() > 2 { Err("too many users".into()) } else { Ok(()) }
/// })?;
/// assert_eq!(sim.received(1).len(), 1);
/// # Ok::<(), krmx_testkit::Failure>(())
/// ```
///
/// # Errors
/// The first broken invariant or property, with the script to replay it.
pub fn run<A: Application>(
    config: &SimConfig,
    app: A,
    script: &Script,
    mut property: impl FnMut(&Sim<A>) -> Result<(), String>,
) -> Result<Sim<A>, Failure> {
    let mut sim = Sim::new(config.clone(), app, script.seed);
    let fail = |sim: &Sim<A>, step: Option<usize>, message: String| {
        let trace = sim.trace();
        let keep = if std::env::var_os("KRMX_TESTKIT_TRACE").is_some() {
            trace.len()
        } else {
            TRACE_TAIL
        };
        Failure {
            script: script.clone(),
            step,
            message,
            trace: trace
                .get(trace.len().saturating_sub(keep)..)
                .unwrap_or_default()
                .to_vec(),
        }
    };
    for (i, op) in script.ops.iter().enumerate() {
        if let Err(message) = sim.step(op).and_then(|()| property(&sim)) {
            return Err(fail(&sim, Some(i), message));
        }
    }
    if let Err(message) = sim.settle().and_then(|()| property(&sim)) {
        return Err(fail(&sim, None, message));
    }
    Ok(sim)
}
