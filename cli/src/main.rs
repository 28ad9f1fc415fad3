//! `krmx`: the Krmx command-line server. See `krmx serve --help` and CLI.md.
// One measured exception, in `trim`: glibc's `malloc_trim` after a burst.
#![deny(unsafe_code)]

mod app;
mod args;
mod command;
mod controls;
mod json;
mod serve_mio;
mod serve_smol;
mod serve_workers;
mod shared_out;
mod trim;

use app::{App, Behaviour, Reaction};
use args::{Cli, Command, LogLevel, ServeArgs, Transport};
use clap::Parser;
use std::io::{self, BufWriter};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    init_logging(args.log_level);
    let addr = match resolve(&args.host, args.port) {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!(
                "krmx: cannot use --host {} --port {}: {error}",
                args.host, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    let behaviour = Behaviour {
        manual_auth: args.manual_auth,
        rejects: args.reject_reasons().into_iter().collect(),
        reaction: if args.relay {
            Reaction::Relay
        } else if args.echo {
            Reaction::Echo
        } else {
            Reaction::None
        },
        quiet: args.quiet,
        rooms: args.rooms.is_some(),
        lifecycle: true,
    };
    let transport = match args.transport_config() {
        Ok(transport) => transport,
        Err(error) => {
            eprintln!("krmx: {error}");
            return ExitCode::FAILURE;
        }
    };
    let workers = args.workers();
    if workers > 1 {
        if args.transport != Transport::Mio {
            eprintln!("krmx: --workers runs on the mio transport");
            return ExitCode::FAILURE;
        }
        let config = args.krmx_config();
        return match serve_workers::serve(addr, &config, &transport, &behaviour, workers) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("krmx: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let mut app = App::new(behaviour, BufWriter::new(io::stdout().lock()));
    app.trim_after_bursts();
    let served = match args.transport {
        Transport::Mio => serve_mio::serve(addr, args.krmx_config(), transport, app),
        Transport::Smol => serve_smol::serve(addr, args.krmx_config(), transport, app),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("krmx: {error}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("the host resolves to no address"))
}

fn init_logging(level: LogLevel) {
    use tracing::Level;
    let level = match level {
        LogLevel::Off => return,
        LogLevel::Error => Level::ERROR,
        LogLevel::Warn => Level::WARN,
        LogLevel::Info => Level::INFO,
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Trace => Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(level)
        .with_ansi(false)
        .init();
}
