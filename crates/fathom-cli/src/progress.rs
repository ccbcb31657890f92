//! Progress display on stderr: spinners and bars when stderr is a terminal (silent
//! otherwise, so logs stay clean), and stage lines for the long steps — what is starting
//! and, after it, how long it took — which are printed either way. Standard output (and
//! with it `--json`) is never touched.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner with a message, for steps that may take more than a second.
pub fn spinner(msg: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("static template"),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over `len` steps.
pub fn bar(len: u64, msg: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed}<{eta}]")
            .expect("static template"),
    );
    bar.set_message(msg);
    bar
}

/// A long step (training, adding): a line on stderr when it starts, a spinner while it
/// runs when stderr is a terminal, and a line with the time it took when it is
/// [`done`](Stage::done).
pub struct Stage {
    what: String,
    started: Instant,
    spinner: Option<ProgressBar>,
}

/// Starts a stage described by `what` ("training IVF1024,Flat on 100000 vectors").
pub fn stage(what: String) -> Stage {
    let spin = std::io::stderr().is_terminal();
    start(what, spin)
}

/// [`stage`] without the spinner, for a step that shows a [`bar`] of its own.
pub fn stage_lines(what: String) -> Stage {
    start(what, false)
}

fn start(what: String, spin: bool) -> Stage {
    eprintln!("{what}…");
    let spinner = spin.then(|| spinner(what.clone()));
    Stage {
        what,
        started: Instant::now(),
        spinner,
    }
}

impl Stage {
    /// Ends the stage, prints its time and returns it in seconds.
    pub fn done(self) -> f64 {
        let s = self.started.elapsed().as_secs_f64();
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
        eprintln!("{}: done in {s:.2} s", self.what);
        s
    }
}
