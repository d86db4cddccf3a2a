//! One self-rewriting progress line on the terminal, as Incus's client shows for transfers
//! ("Transferring image: 45% (12.30MB/s)"). Silent with `--quiet` or when stdout is not a
//! terminal, so scripts and pipes see only the final messages.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A progress line.
pub struct ProgressLine {
    enabled: bool,
    started: Instant,
    /// Length of the text on screen, and when it was last drawn.
    shown: Mutex<(usize, Option<Instant>)>,
}

/// Redraw at most this often.
const EVERY: Duration = Duration::from_millis(100);

impl ProgressLine {
    /// A line that draws unless `quiet` or stdout is not a terminal.
    pub fn new(quiet: bool) -> ProgressLine {
        ProgressLine {
            enabled: !quiet && std::io::stdout().is_terminal(),
            started: Instant::now(),
            shown: Mutex::new((0, None)),
        }
    }

    /// Whether anything is drawn.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Shows `label: P% (rate)` for `done` of `total` bytes.
    pub fn transfer(&self, label: &str, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let Ok(mut shown) = self.shown.lock() else {
            return;
        };
        if done < total && shown.1.is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let text = format!("{label}: {pct}% ({})", rate(done as f64 / secs));
        let pad = shown.0.saturating_sub(text.len());
        print!("\r{text}{}", " ".repeat(pad));
        let _ = std::io::stdout().flush();
        *shown = (text.len(), Some(now));
    }

    /// Shows `text` as it is (an operation's progress message).
    pub fn text(&self, text: &str) {
        if !self.enabled {
            return;
        }
        let Ok(mut shown) = self.shown.lock() else {
            return;
        };
        let pad = shown.0.saturating_sub(text.chars().count());
        print!("\r{text}{}", " ".repeat(pad));
        let _ = std::io::stdout().flush();
        *shown = (text.chars().count(), Some(Instant::now()));
    }

    /// Erases the line.
    pub fn done(&self) {
        if !self.enabled {
            return;
        }
        if let Ok(mut shown) = self.shown.lock()
            && shown.0 > 0
        {
            print!("\r{}\r", " ".repeat(shown.0));
            let _ = std::io::stdout().flush();
            *shown = (0, None);
        }
    }
}

/// A transfer rate as Incus prints it (decimal units).
fn rate(bytes_per_sec: f64) -> String {
    format!(
        "{}/s",
        incus_core::config::byte_size_string(bytes_per_sec as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates() {
        assert_eq!(rate(999.0), "999B/s");
        assert_eq!(rate(12_300_000.0), "12.30MB/s");
        assert_eq!(rate(2.5e9), "2.50GB/s");
    }
}
