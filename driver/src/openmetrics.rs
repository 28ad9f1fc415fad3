//! Encoding a [`Metrics`] snapshot in the OpenMetrics text format with the `prometheus-client`
//! crate: a [`Collector`] that writes the snapshot's figures at scrape time, so the driver's
//! hot path only adds to plain numbers.

use crate::metrics::Metrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::fmt;

/// Every metric's prefix.
const PREFIX: &str = "krmx";

/// The snapshot, as a collector of a registry made for one scrape.
#[derive(Debug)]
struct Snapshot(Metrics);

/// The snapshot's text, ending with `# EOF`.
pub(crate) fn encode(metrics: &Metrics) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(Snapshot(metrics.clone())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: N,
) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let m = &self.0;
        let e = &mut encoder;
        let info = Info::new([("protocol_version", m.protocol_version.as_str())]);
        info.encode(e.encode_descriptor(
            "server",
            "The Krmx server: the protocol version it serves",
            None,
            MetricType::Info,
        )?)?;
        gauge(
            e,
            "uptime",
            "Time since the server started, as of its current turn",
            Some(&Unit::Seconds),
            m.uptime.as_secs_f64(),
        )?;
        counter(
            e,
            "streams_accepted",
            "TCP streams taken (accepted or adopted), before their request is read",
            None,
            m.streams_accepted,
        )?;
        let mut requests = e.encode_descriptor(
            "http_requests",
            "Plain HTTP requests (not upgrades) answered, by status code",
            None,
            MetricType::Counter,
        )?;
        for &(status, count) in &m.http_requests {
            let labels = [("code", status)];
            ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
        }
        counter(
            e,
            "upgrades_failed",
            "WebSocket upgrades refused (403 for the origin), broken, or not complete within \
             the handshake timeout",
            None,
            m.upgrades_failed,
        )?;
        counter(
            e,
            "tls_handshakes_failed",
            "TLS handshakes that failed (plain requests on a TLS port, a refused certificate, \
             garbage), timed out, or were attempted on a port without TLS",
            None,
            m.tls_handshakes_failed,
        )?;
        gauge(e, "rooms", "Rooms open (0 with rooms off)", None, m.rooms)?;
        counter(
            e,
            "connections_accepted",
            "WebSocket connections taken in (upgraded, and not refused for their path, query, \
             the unlinked limit or the server's status)",
            None,
            m.connections_accepted,
        )?;
        gauge(
            e,
            "connections_open",
            "WebSocket connections open",
            None,
            m.connections_open,
        )?;
        gauge(e, "users", "Users, linked or not", None, m.users)?;
        gauge(
            e,
            "linked_users",
            "Users linked to a connection",
            None,
            m.linked_users,
        )?;
        gauge(
            e,
            "pending_authentications",
            "Links waiting for the application's authentication decision",
            None,
            m.pending_auths,
        )?;
        counter(
            e,
            "messages_received",
            "Krmx messages received from clients (text and binary WebSocket messages)",
            None,
            m.messages_received,
        )?;
        counter(
            e,
            "messages_received",
            "Payload bytes of the Krmx messages received from clients (no WebSocket framing)",
            Some(&Unit::Bytes),
            m.messages_received_bytes,
        )?;
        counter(
            e,
            "messages_sent",
            "Krmx messages queued to clients, one per recipient, the protocol's own included",
            None,
            m.messages_sent,
        )?;
        counter(
            e,
            "messages_sent",
            "Payload bytes of the Krmx messages queued to clients (no WebSocket framing)",
            Some(&Unit::Bytes),
            m.messages_sent_bytes,
        )?;
        gauge(
            e,
            "buffered",
            "Bytes queued for all connections and not yet taken by their sockets",
            Some(&Unit::Bytes),
            m.buffered_bytes,
        )?;
        counter(
            e,
            "links_accepted",
            "Links accepted (krmx/accepted sent)",
            None,
            m.links_accepted,
        )?;
        let mut rejected = e.encode_descriptor(
            "links_rejected",
            "krmx/rejected sent, by reason (a fixed set: an application's own reasons count as \
             'rejected by the application'; 'unlinked connection' and 'invalid message' answer \
             messages other than a link from an unlinked connection)",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in m.rejections.iter() {
            let labels = [("reason", reason.label())];
            ConstCounter::new(count).encode(rejected.encode_family(&labels)?)?;
        }
        let mut closes = e.encode_descriptor(
            "closes",
            "WebSocket closes, by who began them (server or client) and close code (a client's \
             code outside 1000-1015 counts as 'other')",
            None,
            MetricType::Counter,
        )?;
        for close in &m.closes {
            let code = close
                .code
                .map_or_else(|| "other".to_owned(), |code| code.to_string());
            let labels = [("by", close.by.label().to_owned()), ("code", code)];
            ConstCounter::new(close.count).encode(closes.encode_family(&labels)?)?;
        }
        let mut slow = e.encode_descriptor(
            "slow_consumer_closes",
            "Slow consumers closed, by the limit they broke (hard, soft, stall, budget)",
            None,
            MetricType::Counter,
        )?;
        let limits = m.slow_consumers;
        for (limit, count) in [
            ("hard", limits.hard),
            ("soft", limits.soft),
            ("stall", limits.stall),
            ("budget", limits.budget),
        ] {
            let labels = [("limit", limit)];
            ConstCounter::new(count).encode(slow.encode_family(&labels)?)?;
        }
        let turns = &m.turns;
        let mut histogram = e.encode_descriptor(
            "turn_duration",
            "Time the server's pump was busy per turn: from the clock reading that starts a \
             turn to the one before it waits again",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            turns.sum_seconds,
            turns.count,
            &turns.buckets,
            None,
        )?;
        Ok(())
    }
}
