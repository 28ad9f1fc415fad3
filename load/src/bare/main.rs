//! `krmx-bare`: a bare WebSocket relay or echo server with no Krmx logic, the limit the Krmx
//! servers are measured against. `--relay` (the default) sends every text message to every
//! connection (the sender included), `--echo` back to its sender. Two transports, built the way
//! the Krmx ones are: `mio` (one thread, tungstenite over non-blocking sockets) and `smol`
//! (async-tungstenite reader tasks on one thread); both read through the thread's scratch
//! buffer into a 512-byte tungstenite buffer, queue frames in the shared `Outbox` of each
//! connection and write it with vectored writes once per turn. Prints
//! `{"event":"listen","port":N}` on stdout once listening; SIGTERM ends it. Accepts (and
//! ignores) `--quiet` and `--krmx-version` so a benchmark can start it with the flags it gives
//! `krmx serve`.
#![forbid(unsafe_code)]

mod mio_server;
mod smol_server;

use clap::{Parser, ValueEnum};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Mio,
    Smol,
}

/// What the server does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// To every connection, the sender included.
    Relay,
    /// Back to the sender.
    Echo,
}

#[derive(Debug, Parser)]
#[command(
    name = "krmx-bare",
    about = "A bare WebSocket relay or echo server (no Krmx)"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port.
    #[arg(long, default_value_t = 8082)]
    port: u16,
    /// Send every message to every connection (the default).
    #[arg(long, conflicts_with = "echo")]
    relay: bool,
    /// Send every message back to its sender.
    #[arg(long)]
    echo: bool,
    #[arg(long, value_enum, default_value = "mio")]
    transport: Transport,
    /// A connection with more than this many bytes queued is dropped (a slow consumer).
    #[arg(long, default_value_t = 4 << 20)]
    max_buffered_bytes: usize,
    /// Ignored (no events are printed anyway).
    #[arg(long)]
    quiet: bool,
    /// Ignored (there is no protocol version).
    #[arg(long, value_name = "X.Y")]
    krmx_version: Option<String>,
}

/// Prints the listen line.
pub(crate) fn announce(port: u16) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, r#"{{"event":"listen","port":{port}}}"#)?;
    stdout.flush()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let addr: SocketAddr = match format!("{}:{}", args.host, args.port).parse() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("krmx-bare: invalid address: {error}");
            return ExitCode::from(2);
        }
    };
    let mode = if args.echo { Mode::Echo } else { Mode::Relay };
    let served = match args.transport {
        Transport::Mio => mio_server::serve(addr, mode, args.max_buffered_bytes),
        Transport::Smol => smol_server::serve(addr, mode, args.max_buffered_bytes),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("krmx-bare: {error}");
            ExitCode::FAILURE
        }
    }
}
