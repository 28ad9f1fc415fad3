//! [`SharedOut`]: stdout shared by the workers of `krmx serve --workers`, written a flush at a
//! time so that lines from different workers never interleave.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// One worker's stdout: its lines are buffered and written whole, under the lock, on flush.
#[derive(Debug)]
pub(crate) struct SharedOut {
    buf: Vec<u8>,
    out: Arc<Mutex<io::Stdout>>,
}

impl SharedOut {
    pub(crate) fn new(out: Arc<Mutex<io::Stdout>>) -> Self {
        Self {
            buf: Vec::new(),
            out,
        }
    }
}

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| io::Error::other("stdout's lock is poisoned"))?;
        out.write_all(&self.buf)?;
        out.flush()?;
        self.buf.clear();
        Ok(())
    }
}

/// Writes `line` and a newline to the shared stdout at once.
pub(crate) fn print_line(out: &Arc<Mutex<io::Stdout>>, line: &str) -> io::Result<()> {
    let mut shared = SharedOut::new(Arc::clone(out));
    writeln!(shared, "{line}")?;
    shared.flush()
}
