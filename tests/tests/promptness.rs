//! Issue 11: when linked connections end abruptly (plain TCP closes and resets), every user is
//! unlinked within one second, with nothing else waking the server: on `krmx serve` (its stdout)
//! and on the in-process servers (the events their run loops hand to the application), on both
//! transports. See `krmx_tests::promptness` for what one round does.
//!
//! Each test repeats its round, against a fresh server each time, and stops after 3 late rounds;
//! `KRMX_PROMPTNESS_ROUNDS` sets how many rounds (the default, 60, keeps the whole file within
//! about a minute in a debug build on two cores; the bar for a fix is 200 in a row).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_tests::Transport;
use krmx_tests::promptness::{Target, Variant, rounds, run};

/// Rounds per test unless `KRMX_PROMPTNESS_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 60;

fn check(target: Target, variant: Variant) {
    run(target, variant, rounds(DEFAULT_ROUNDS));
}

/// The same four tests against one target.
macro_rules! promptness_tests {
    ($module:ident, $target:expr) => {
        mod $module {
            use super::*;

            /// The reproduction: 20 users linked at once drop (half closed, half reset)
            /// right after their `krmx/accepted`; all 20 unlinks come within a second.
            #[test]
            fn every_unlink_comes_within_a_second_when_linked_users_drop_at_once() {
                check($target, Variant::AtOnce);
            }

            /// Users drop while the server broadcasts to all of them (their relayed chat and a
            /// large server broadcast in flight); all unlinks come within a second.
            #[test]
            fn every_unlink_comes_within_a_second_when_users_drop_during_broadcasts() {
                check($target, Variant::DuringBroadcast);
            }

            /// Users drop while links wait for, or have just been given, an authentication
            /// decision; every linked one is unlinked within a second, and a decision that
            /// comes after the drop links nobody.
            #[test]
            fn every_unlink_comes_within_a_second_when_users_drop_amid_pending_auth() {
                check($target, Variant::PendingAuth);
            }

            /// Linked users drop beside connections reset in the middle of their handshake;
            /// all unlinks come within a second, the handshaking ones leave no event and no
            /// descriptor behind, and a fresh client still links.
            #[test]
            fn every_unlink_comes_within_a_second_when_users_drop_beside_resets_mid_handshake() {
                check($target, Variant::MidHandshake);
            }
        }
    };
}

promptness_tests!(krmx_serve_mio, Target::Cli("mio"));
promptness_tests!(krmx_serve_smol, Target::Cli("smol"));
promptness_tests!(in_process_mio, Target::InProcess(Transport::Mio));
promptness_tests!(in_process_smol, Target::InProcess(Transport::Smol));
