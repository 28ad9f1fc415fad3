//! [`Trimmer`]: gives the heap a burst freed back to the operating system once the server has
//! been quiet for a moment.
//!
//! A link storm or a broadcast flood allocates and frees many short-lived buffers among the
//! long-lived state of new connections; glibc keeps the freed pages in the middle of the heap,
//! where they count towards the process's resident memory for good. Measured with
//! `krmx-load idle --clients 1000` on the smol transport: 5.0 KB resident per linked
//! connection before a trim, 3.3 KB after. So a helper thread watches the serve loop's turns
//! and, after [`QUIET`] without one, calls glibc's `malloc_trim` once. Elsewhere (not glibc)
//! it does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long the serve loop must be idle before the heap is trimmed.
pub(crate) const QUIET: Duration = Duration::from_millis(500);

/// Counts the serve loop's turns for the trimming thread.
#[derive(Debug, Clone)]
pub(crate) struct Trimmer {
    turns: Arc<AtomicU64>,
}

impl Trimmer {
    /// Starts the trimming thread.
    pub(crate) fn start() -> Self {
        let turns = Arc::new(AtomicU64::new(0));
        let watched = Arc::clone(&turns);
        let spawned = std::thread::Builder::new()
            .name("krmx-trim".into())
            .spawn(move || {
                let mut seen = 0;
                let mut trimmed = 0;
                loop {
                    std::thread::sleep(QUIET);
                    let now = watched.load(Ordering::Relaxed);
                    if now == seen && now != trimmed {
                        release_free_heap();
                        trimmed = now;
                    }
                    seen = now;
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "no heap trimming thread");
        }
        Self { turns }
    }

    /// The serve loop took one turn.
    pub(crate) fn touch(&self) {
        self.turns.fetch_add(1, Ordering::Relaxed);
    }
}

/// Returns free heap pages to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_heap() {
    // SAFETY: `malloc_trim` only takes glibc's allocator locks and releases free memory; it
    // touches no memory of ours and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns free heap pages to the operating system (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}
