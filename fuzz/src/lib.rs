//! Fuzz targets for `krmx-core`, as library code so that the seed corpus can be written (and
//! replayed) by ordinary tests: `cargo test` in this directory.
//!
//! Every target decodes its input with [`arbitrary::Unstructured`], one byte per choice (an
//! opcode byte, then a fixed number of operand bytes, raw byte strings length-prefixed), so that
//! [`Seed`] can write meaningful seeds by hand and libFuzzer's byte mutations map to small
//! changes of the step list.
//!
//! - [`server_inputs`]: sequences of transport facts, decisions, time steps and server commands,
//!   invariants after every step, timers and limits judged against the reference of their
//!   deadlines ([`deadlines`], shared with the simulation like [`check`]);
//! - [`frames`]: raw bytes as text and binary frames into linked, unlinked and pending
//!   connections, checked against an independent classification of the bytes;
//! - [`handshake`]: request targets against configured path and query rules;
//! - [`client`]: the client state machine fed arbitrary server messages and commands.

/// The server checker and the reference of its deadlines, from the published `krmx-testkit`
/// (shared with the simulation).
pub use krmx_testkit::{check, deadlines};

pub mod client;
pub mod frames;
pub mod handshake;
pub mod server_inputs;
pub mod vocab;

use arbitrary::Unstructured;

/// Reads one choice byte; `0` once the input is exhausted.
pub fn byte(u: &mut Unstructured<'_>) -> u8 {
    u.arbitrary::<u8>().unwrap_or(0)
}

/// Reads a length-prefixed byte string (length byte, then up to that many bytes).
pub fn raw<'a>(u: &mut Unstructured<'a>) -> &'a [u8] {
    let len = usize::from(byte(u)).min(u.len());
    u.bytes(len).unwrap_or_default()
}

/// Reads a length-prefixed string, invalid UTF-8 replaced.
pub fn lossy(u: &mut Unstructured<'_>) -> String {
    String::from_utf8_lossy(raw(u)).into_owned()
}

/// Writes inputs in the encoding the targets decode: for hand-made seeds.
#[derive(Debug, Default, Clone)]
pub struct Seed(pub Vec<u8>);

impl Seed {
    /// An empty seed.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends choice bytes.
    #[must_use]
    pub fn b(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Appends a length-prefixed byte string (at most 255 bytes).
    #[must_use]
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        let len = bytes.len().min(255);
        self.0.push(u8::try_from(len).unwrap_or(u8::MAX));
        self.0
            .extend_from_slice(bytes.get(..len).unwrap_or_default());
        self
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Named seeds of one target.
pub type Seeds = Vec<(&'static str, Vec<u8>)>;

/// Every target's name and seeds.
#[must_use]
pub fn all_seeds() -> [(&'static str, Seeds); 4] {
    [
        ("server_inputs", server_inputs::seeds()),
        ("frames", frames::seeds()),
        ("handshake", handshake::seeds()),
        ("client", client::seeds()),
    ]
}

/// Writes every target's seed corpus under `dir` (`fuzz/corpus`), one folder per target.
///
/// # Errors
/// A file could not be written.
pub fn write_corpus(dir: &std::path::Path) -> std::io::Result<()> {
    for (target, seeds) in all_seeds() {
        let folder = dir.join(target);
        std::fs::create_dir_all(&folder)?;
        for (name, bytes) in seeds {
            std::fs::write(folder.join(name), bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The function that runs one input of `target`.
    fn runner(target: &str) -> fn(&[u8]) {
        match target {
            "server_inputs" => server_inputs::run,
            "frames" => frames::run,
            "handshake" => handshake::run,
            "client" => client::run,
            other => panic!("unknown target {other}"),
        }
    }

    /// Every seed runs without a failure (the targets panic on one; the seed's name is printed
    /// first, and replays with `KRMX_FUZZ_REPLAY=corpus/TARGET/NAME cargo test replay`).
    #[test]
    fn seeds_pass() {
        for (target, seeds) in all_seeds() {
            for (name, seed) in seeds {
                println!("seed {target}/{name}");
                runner(target)(&seed);
            }
        }
    }

    /// `KRMX_FUZZ_REPLAY=PATH cargo test replay -- --nocapture` runs one input file (a seed, or
    /// a crash left in `artifacts/TARGET/`) through the target named by its folder;
    /// `KRMX_FUZZ_TRACE=1` prints the `server_inputs` steps and outputs.
    #[test]
    fn replay() {
        let Some(path) = std::env::var_os("KRMX_FUZZ_REPLAY") else {
            return;
        };
        let path = std::path::PathBuf::from(path);
        let target = path
            .parent()
            .and_then(std::path::Path::file_name)
            .and_then(std::ffi::OsStr::to_str)
            .unwrap_or_default()
            .to_owned();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        runner(&target)(&bytes);
    }

    /// The committed corpus is what the seed functions write: `KRMX_FUZZ_WRITE_SEEDS=1 cargo
    /// test` rewrites it.
    #[test]
    fn corpus_is_up_to_date() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        if std::env::var_os("KRMX_FUZZ_WRITE_SEEDS").is_some() {
            write_corpus(&dir).unwrap();
        }
        for (target, seeds) in all_seeds() {
            for (name, bytes) in seeds {
                let path = dir.join(target).join(name);
                let stored = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e} (KRMX_FUZZ_WRITE_SEEDS=1)", path.display())
                });
                assert_eq!(stored, bytes, "{} is stale", path.display());
            }
        }
    }

    #[test]
    fn raw_round_trips() {
        let seed = Seed::new().b(&[7]).raw(b"hello").b(&[9]);
        let mut u = Unstructured::new(seed.bytes());
        assert_eq!(byte(&mut u), 7);
        assert_eq!(raw(&mut u), b"hello");
        assert_eq!(byte(&mut u), 9);
        assert!(u.is_empty());
        assert_eq!(byte(&mut u), 0);
    }
}
