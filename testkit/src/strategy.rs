//! proptest strategies for scripts: sequences of client actions, faults and time that shrink
//! to a short script when a property fails.

use crate::script::{AuthTiming, Op, Script};
use krmx_core::Message;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, NewTree, ValueTree};
use proptest::test_runner::TestRunner;

/// What scripts a [`scripts`] strategy makes.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// How many clients act (`c0` .. `c{clients - 1}`).
    pub clients: usize,
    /// The usernames clients link as (two clients may pick the same one: their links race).
    pub usernames: Vec<String>,
    /// The authentications links carry (`None` for none).
    pub auths: Vec<Option<String>>,
    /// The most steps in a script.
    pub max_steps: usize,
    /// Whether the network resets connections and clients close them.
    pub faults: bool,
    /// Whether authentication decisions may arrive later, after the timeout, or never.
    pub auth_timing: bool,
    /// The largest single jump of time, in milliseconds.
    pub max_advance_ms: u64,
}

impl Scripts {
    /// Scripts for `clients` clients linking as `usernames`, up to 60 steps, with faults and
    /// late decisions, time jumping up to 20 s.
    #[must_use]
    pub fn new(clients: usize, usernames: &[&str]) -> Self {
        Self {
            clients,
            usernames: usernames.iter().map(|&u| u.to_owned()).collect(),
            auths: vec![None],
            max_steps: 60,
            faults: true,
            auth_timing: true,
            max_advance_ms: 20_000,
        }
    }
}

/// One step: a client's action (its custom messages drawn from `messages`), a fault, or time.
pub fn op(config: &Scripts, messages: BoxedStrategy<Message>) -> BoxedStrategy<Op> {
    let client = 0..config.clients.max(1);
    let usernames = config.usernames.clone();
    let auths = config.auths.clone();
    let link = (
        client.clone(),
        proptest::sample::select(if usernames.is_empty() {
            vec!["user".to_owned()]
        } else {
            usernames
        }),
        proptest::sample::select(if auths.is_empty() { vec![None] } else { auths }),
    )
        .prop_map(|(client, username, auth)| Op::Link {
            client,
            username,
            auth,
        });
    let mut steps: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            3,
            client
                .clone()
                .prop_map(|client| Op::Connect { client })
                .boxed(),
        ),
        (3, link.boxed()),
        (
            6,
            (client.clone(), messages)
                .prop_map(|(client, message)| Op::Send { client, message })
                .boxed(),
        ),
        (
            1,
            client
                .clone()
                .prop_map(|client| Op::Unlink { client })
                .boxed(),
        ),
        (
            1,
            client
                .clone()
                .prop_map(|client| Op::Leave { client })
                .boxed(),
        ),
        (
            4,
            client.clone().prop_map(|client| Op::Up { client }).boxed(),
        ),
        (
            4,
            client
                .clone()
                .prop_map(|client| Op::Down { client })
                .boxed(),
        ),
        (
            1,
            (1..8usize).prop_map(|count| Op::Deliver { count }).boxed(),
        ),
        (2, Just(Op::Settle).boxed()),
        (
            1,
            (0..=config.max_advance_ms)
                .prop_map(|ms| Op::Advance { ms })
                .boxed(),
        ),
    ];
    if config.faults {
        steps.push((
            1,
            client
                .clone()
                .prop_map(|client| Op::Close { client })
                .boxed(),
        ));
        steps.push((1, client.prop_map(|client| Op::Reset { client }).boxed()));
    }
    if config.auth_timing {
        let timing = prop_oneof![
            Just(AuthTiming::Now),
            (1..5_000u64).prop_map(|ms| AuthTiming::Later { ms }),
            Just(AuthTiming::AfterTimeout),
            Just(AuthTiming::Never),
        ];
        steps.push((1, timing.prop_map(Op::Auth).boxed()));
    }
    proptest::strategy::Union::new_weighted(steps).boxed()
}

/// Whole scripts: a seed, a warm-up in which some clients connect and link (so that the
/// random steps find linked clients to act on), and up to `config.max_steps` random steps.
/// Shrinking drops steps, takes clients out of the warm-up and simplifies the rest, then deletes
/// single steps while the script still fails, down to a short script in which every step
/// matters.
///
/// ```
/// use krmx_core::Message;
/// use krmx_testkit::strategy::{Scripts, scripts};
/// use proptest::prelude::*;
///
/// let chat = any::<u8>()
///     .prop_map(|n| Message::new("chat/say").with_payload(n.into()))
///     .boxed();
/// let strategy = scripts(&Scripts::new(3, &["alice", "bob"]), chat);
/// # let _ = strategy;
/// ```
pub fn scripts(config: &Scripts, messages: BoxedStrategy<Message>) -> BoxedStrategy<Script> {
    let usernames = if config.usernames.is_empty() {
        vec!["user".to_owned()]
    } else {
        config.usernames.clone()
    };
    let auths = if config.auths.is_empty() {
        vec![None]
    } else {
        config.auths.clone()
    };
    let warm_up = proptest::collection::vec(
        proptest::option::of((
            proptest::sample::select(usernames),
            proptest::sample::select(auths),
        )),
        config.clients,
    );
    (
        any::<u64>(),
        warm_up,
        proptest::collection::vec(op(config, messages), 0..=config.max_steps),
    )
        .prop_map(|(seed, warm_up, steps)| {
            let mut ops: Vec<Op> = warm_up
                .iter()
                .enumerate()
                .filter(|(_, link)| link.is_some())
                .map(|(client, _)| Op::Connect { client })
                .collect();
            if !ops.is_empty() {
                ops.push(Op::Settle);
                ops.extend(warm_up.iter().enumerate().filter_map(|(client, link)| {
                    link.clone().map(|(username, auth)| Op::Link {
                        client,
                        username,
                        auth,
                    })
                }));
                ops.push(Op::Settle);
            }
            ops.extend(steps);
            Script { seed, ops }
        })
        .minimized()
}

/// Adds a last phase to a script strategy's shrinking: deleting one step at a time while the
/// script still fails, pass after pass until no single step can go. (proptest deletes steps
/// first and then simplifies them, and a step simplified into one that does nothing is never
/// deleted.)
trait Minimized {
    fn minimized(self) -> BoxedStrategy<Script>;
}

impl<S: Strategy<Value = Script> + 'static> Minimized for S
where
    S::Tree: 'static,
{
    fn minimized(self) -> BoxedStrategy<Script> {
        Minimizing(self).boxed()
    }
}

#[derive(Debug)]
struct Minimizing<S>(S);

impl<S: Strategy<Value = Script>> Strategy for Minimizing<S> {
    type Tree = MinimizingTree<S::Tree>;
    type Value = Script;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        self.0.new_tree(runner).map(|inner| MinimizingTree {
            inner,
            phase: Phase::Inner,
        })
    }
}

#[derive(Debug)]
enum Phase {
    /// The inner strategy's own shrinking.
    Inner,
    /// Deleting steps from `base`, the smallest failing script so far.
    Deleting {
        base: Script,
        /// `base` without its step `index`, being tried.
        candidate: Option<Script>,
        index: usize,
        deleted_in_pass: bool,
    },
}

#[derive(Debug)]
struct MinimizingTree<T> {
    inner: T,
    phase: Phase,
}

impl<T: ValueTree<Value = Script>> ValueTree for MinimizingTree<T> {
    type Value = Script;

    fn current(&self) -> Script {
        match &self.phase {
            Phase::Inner => self.inner.current(),
            Phase::Deleting {
                base, candidate, ..
            } => candidate.clone().unwrap_or_else(|| base.clone()),
        }
    }

    fn simplify(&mut self) -> bool {
        if matches!(self.phase, Phase::Inner) {
            if self.inner.simplify() {
                return true;
            }
            self.phase = Phase::Deleting {
                base: self.inner.current(),
                candidate: None,
                index: 0,
                deleted_in_pass: false,
            };
        }
        let Phase::Deleting {
            base,
            candidate,
            index,
            deleted_in_pass,
        } = &mut self.phase
        else {
            return false;
        };
        if let Some(still_failing) = candidate.take() {
            // The deletion kept the failure: keep it; `index` is now the next step.
            *base = still_failing;
            *deleted_in_pass = true;
        }
        loop {
            if *index < base.ops.len() {
                let mut next = base.clone();
                next.ops.remove(*index);
                *candidate = Some(next);
                return true;
            }
            if !*deleted_in_pass {
                return false;
            }
            *index = 0;
            *deleted_in_pass = false;
        }
    }

    fn complicate(&mut self) -> bool {
        match &mut self.phase {
            Phase::Inner => self.inner.complicate(),
            Phase::Deleting {
                candidate, index, ..
            } => {
                // The deletion lost the failure: that step stays.
                let tried = candidate.take().is_some();
                if tried {
                    *index += 1;
                }
                tried
            }
        }
    }
}
