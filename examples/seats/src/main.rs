//! `seats`: the game served for real.
//!
//! ```text
//! seats [--transport mio|smol] [--host HOST] [--port PORT] [--krmx-version MAJOR.MINOR]
//! ```
//!
//! `--krmx-version 0.5` serves the protocol version the published `@krmx/client` 0.5 speaks
//! (the default is the core's, 0.6).
//!
//! Prints `listening on PORT` once bound (port 0 picks a free one), then serves until killed.

use krmx_core::{KrmxConfig, ProtocolVersion};
use krmx_example_seats::Seats;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

struct Args {
    transport: String,
    address: SocketAddr,
    version: ProtocolVersion,
}

const USAGE: &str =
    "usage: seats [--transport mio|smol] [--host HOST] [--port PORT] [--krmx-version MAJOR.MINOR]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut transport = "mio".to_owned();
    let mut host = "127.0.0.1".to_owned();
    let mut port = "8082".to_owned();
    let mut version = ProtocolVersion::DEFAULT;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--transport" => transport = value,
            "--host" => host = value,
            "--port" => port = value,
            "--krmx-version" => {
                version = value
                    .parse()
                    .map_err(|e| format!("--krmx-version {value}: {e}"))?;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if transport != "mio" && transport != "smol" {
        return Err(format!("--transport is mio or smol, not {transport}"));
    }
    let address = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    Ok(Args {
        transport,
        address,
        version,
    })
}

fn announce(port: Option<u16>) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", port.unwrap_or_default());
    let _ = out.flush();
}

fn serve(args: &Args) -> std::io::Result<()> {
    let config = KrmxConfig::default().version(args.version);
    if args.transport == "smol" {
        use krmx_transport_smol::{Server, TransportConfig};
        smol::block_on(async {
            let server = Server::bind(args.address, config, TransportConfig::default()).await?;
            announce(server.local_addr().map(|a| a.port()));
            server.run_app(Seats::new()).await;
            Ok(())
        })
    } else {
        use krmx_transport_mio::{Server, TransportConfig, run_app};
        let server = Server::bind(args.address, config, TransportConfig::default())?;
        announce(server.local_addr()?.map(|a| a.port()));
        run_app(server, Seats::new())
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("seats: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seats: {error}");
            ExitCode::FAILURE
        }
    }
}
