//! Lines from stdin and termination signals, read by helper threads and handed to the serving
//! loop of either transport.

use smol::channel::{Receiver, Sender};
use std::io::{self, BufRead};

/// What the helper threads report.
pub(crate) enum Control {
    /// A line from stdin, a command.
    Line(String),
    /// SIGINT or SIGTERM.
    Signal,
}

/// Starts the stdin reader and the signal watcher. Each report is followed by `wake()`, for a
/// loop that does not wait on the channel itself.
pub(crate) fn spawn(wake: impl Fn() + Clone + Send + 'static) -> io::Result<Receiver<Control>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (control, controls) = smol::channel::unbounded();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let signal_control = control.clone();
    let signal_wake = wake.clone();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if !report(&signal_control, Control::Signal, &signal_wake) {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if !report(&control, Control::Line(line), &wake) {
                break;
            }
        }
        // End of stdin is not a command: the server keeps running.
    });
    Ok(controls)
}

/// Sends one report and wakes the loop; `false` once the loop is gone.
fn report(control: &Sender<Control>, report: Control, wake: &impl Fn()) -> bool {
    let sent = control.send_blocking(report).is_ok();
    if sent {
        wake();
    }
    sent
}
