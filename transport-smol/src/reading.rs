//! [`Reading`]: the reading phase of a connection's reader, a future written out by hand so an
//! idle connection holds only its WebSocket, its handles and a pointer: every message read is
//! reported to the driver, and so is what tungstenite wrote while reading (pongs, the close
//! reply), at once rather than when the next message comes.

use crate::connection::{End, Report};
use crate::stream::{Socket, Written};
use async_tungstenite::WebSocketStream;
use futures_sink::Sink;
use krmx_core::ConnectionId;
use krmx_transport_shared::Step;
use smol::channel::{Sender, TrySendError};
use smol::stream::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Reports waiting for room in the driver's channel, in order.
type Waiting = Pin<Box<dyn Future<Output = bool> + Send>>;

/// The reading phase: ready with how reading ended.
pub(crate) struct Reading {
    conn: ConnectionId,
    ws: WebSocketStream<Socket>,
    written: Written,
    reports: Sender<Report>,
    /// Reports that found the channel full (on the heap only while they wait).
    waiting: Option<Waiting>,
    /// How reading ended, once every report before it is delivered.
    end: Option<End>,
}

impl Reading {
    pub(crate) fn new(
        conn: ConnectionId,
        ws: WebSocketStream<Socket>,
        written: Written,
        reports: Sender<Report>,
    ) -> Self {
        Self {
            conn,
            ws,
            written,
            reports,
            waiting: None,
            end: None,
        }
    }

    /// Sends a report after those already waiting: at once when the channel has room.
    fn report(&mut self, report: Report) {
        if let Some(before) = self.waiting.take() {
            let reports = self.reports.clone();
            self.waiting = Some(Box::pin(async move {
                before.await && reports.send(report).await.is_ok()
            }));
            return;
        }
        match self.reports.try_send(report) {
            Ok(()) => {}
            Err(TrySendError::Full(report)) => {
                let reports = self.reports.clone();
                self.waiting = Some(Box::pin(async move { reports.send(report).await.is_ok() }));
            }
            Err(TrySendError::Closed(_)) => self.end = Some(End::DriverGone),
        }
    }

    /// Reports what tungstenite wrote, if anything. (The driver bounds these bytes: a peer
    /// that floods pings and does not read is a slow consumer.)
    fn hand_on(&mut self) {
        if !self.written.is_empty() {
            let bytes = self.written.take();
            self.report(Report::Wrote {
                conn: self.conn,
                bytes,
            });
        }
    }
}

impl Future for Reading {
    type Output = End;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<End> {
        let this = self.get_mut();
        loop {
            if let Some(waiting) = &mut this.waiting {
                match waiting.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(true) => this.waiting = None,
                    Poll::Ready(false) => return Poll::Ready(End::DriverGone),
                }
            }
            if let Some(end) = this.end.take() {
                return Poll::Ready(end);
            }
            // After a close frame (ours or the peer's) reading goes on: it reports
            // tungstenite's close reply and ends when the peer's close arrives.
            let read = Pin::new(&mut this.ws).poll_next(cx);
            // tungstenite writes the pong it owes (or a close reply) at the start of its
            // next read, which may then find nothing to read: hand it on now.
            this.hand_on();
            let read = match read {
                Poll::Pending if this.waiting.is_none() && this.end.is_none() => {
                    return Poll::Pending;
                }
                Poll::Pending => continue,
                Poll::Ready(None) => {
                    this.end = Some(End::Closed);
                    continue;
                }
                Poll::Ready(Some(read)) => read,
            };
            let failed = read.is_err();
            match krmx_transport_shared::step(read, this.conn) {
                Step::Input(input) => this.report(Report::Read {
                    conn: this.conn,
                    input,
                }),
                Step::PeerClosed => {
                    // tungstenite queued its close reply, to be written on its next call:
                    // have it written now (the socket takes every write at once), so it goes
                    // out before the driver finishes the connection.
                    let _ = Pin::new(&mut this.ws).poll_flush(cx);
                    this.hand_on();
                    this.report(Report::PeerClosed(this.conn));
                }
                Step::Nothing | Step::WouldBlock => {}
                Step::Gone => {
                    if this.end.is_none() {
                        this.end = Some(End::Gone);
                    }
                }
            }
            if failed && this.end.is_none() {
                this.end = Some(End::Violation);
            }
        }
    }
}
