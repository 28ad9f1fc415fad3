//! Every loopback scenario, as a plain function taking the [`Transport`] to run on.
//!
//! A transport's test file runs them all with [`scenario_tests!`](crate::scenario_tests):
//!
//! ```text
//! krmx_tests::scenario_tests!(krmx_tests::Transport::Mio);
//! ```

pub mod adopt;
pub mod auth;
pub mod close;
pub mod handshake;
pub mod limits;
pub mod linking;
pub mod liveness;
pub mod presence;
pub mod rejections;

use crate::{Client, RunningServer, ServerEvent, Transport};

/// One `#[test]` per scenario, running it on the given transport. Scenario names are unique
/// across modules, so each test is named after its scenario.
#[macro_export]
macro_rules! scenario_tests {
    ($transport:expr) => {
        $crate::scenario_tests!(@each $transport;
            adopt::adopted_connection_with_a_pre_read_request_links,
            auth::application_accepts_a_link_later,
            auth::application_rejects_a_link_with_its_reason,
            auth::application_failure_rejects_with_authentication_failed,
            auth::pending_authentication_times_out,
            auth::messages_during_a_pending_link_are_handled_after_it,
            auth::connection_closed_during_a_pending_link_is_forgotten,
            auth::concurrent_links_of_one_user_link_only_the_first_accepted,
            auth::too_many_messages_during_a_pending_link_close_with_1008,
            close::server_close_unlinks_and_leaves_everyone_then_closes_with_1001,
            close::server_close_drops_connections_still_in_their_handshake,
            handshake::wrong_path_is_refused_with_http_404,
            handshake::failed_query_check_closes_with_1008_before_any_message,
            handshake::silent_tcp_client_is_dropped_after_the_handshake_timeout,
            limits::oversized_message_closes_with_1009_and_unlinks,
            limits::oversized_fragmented_message_closes_with_1009_and_unlinks,
            limits::message_of_exactly_the_maximum_size_is_accepted,
            limits::invalid_utf8_text_closes_with_1007_and_unlinks,
            limits::slow_consumer_is_disconnected_while_readers_get_every_broadcast,
            limits::burst_within_one_turn_does_not_disconnect_readers,
            linking::third_user_receives_the_roster_in_join_order,
            linking::roster_lists_unlinked_users_without_linked,
            linking::link_handler_messages_arrive_after_the_link_sequence,
            linking::custom_messages_reach_the_application_whole,
            linking::server_send_and_broadcast_reach_linked_users,
            linking::user_relinks_after_its_connection_dropped,
            linking::connection_links_to_another_user_after_unlinking,
            liveness::ping_keeps_answering_clients_and_terminates_silent_ones,
            presence::unlink_message_unlinks_and_keeps_the_user,
            presence::server_unlink_unlinks_and_keeps_the_user,
            presence::leave_message_unlinks_then_removes_the_user,
            presence::kick_removes_the_user_and_keeps_its_connection_open,
            presence::server_commands_report_the_reference_errors,
            presence::inactive_unlinked_user_is_kicked_after_the_inactivity_timeout,
            rejections::link_rejections_keep_the_connection_open,
            rejections::link_checks_run_in_the_documented_order,
            rejections::no_new_users_admits_only_joined_users,
            rejections::unlinked_connection_gets_rejected_answers,
            rejections::invalid_or_reserved_messages_unlink_a_linked_user,
        );
    };
    (@each $transport:expr; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$module::$name($transport);
            }
        )*
    };
}

/// Starts a server with the default configuration (pings off, so they never interfere).
pub(crate) fn start_default(transport: Transport) -> RunningServer {
    transport.start(quiet_config())
}

/// The default configuration without liveness pings.
#[must_use]
pub fn quiet_config() -> krmx_core::KrmxConfig {
    krmx_core::KrmxConfig::default().ping_interval(std::time::Duration::ZERO)
}

/// Links new users one after the other, checking every message each client receives and
/// every event the server emits; returns their clients in the same order.
pub fn link_users(server: &mut RunningServer, names: &[&str]) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut client = Client::connect(server.addr());
        client.link(name);
        let roster: Vec<(&str, bool)> = names
            .get(..=i)
            .unwrap_or_default()
            .iter()
            .map(|name| (*name, true))
            .collect();
        client.expect_linked(&roster);
        for other in &mut clients {
            other.expect_jsons(&[crate::msg::joined(name), crate::msg::linked(name)]);
        }
        server.expect_events(&[ServerEvent::joined(name), ServerEvent::linked(name)]);
        clients.push(client);
    }
    clients
}
