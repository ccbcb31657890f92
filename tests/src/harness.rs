//! A test harness for the tests that need something outside the repository (a GPU,
//! faiss-cpu, etcd, an S3 server, a model): each test says at run time whether it ran or
//! was skipped, and why; the summary counts the skipped ones as ignored, in libtest's own
//! format, so `cargo test` says how many did not run instead of passing them silently.
//!
//! Such a test file sets `harness = false` in its `[[test]]` and ends with
//! `fathom_tests::harness::main!(test_a, test_b, …);`, each test a `fn() -> Outcome`. A panic
//! fails the test as with libtest; output is not captured. Arguments: a substring filter, `--exact`, `--list`,
//! `--ignored` / `--include-ignored` (accepted; every test always runs its own check),
//! and libtest's other flags (accepted and ignored).

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// What a test did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and its assertions held.
    Passed,
    /// It did not run: its environment is missing (the reason says what).
    Skipped(String),
}

/// A test that ran to the end.
pub const PASSED: Outcome = Outcome::Passed;

/// A test that could not run, saying why.
pub fn skipped(why: impl std::fmt::Display) -> Outcome {
    Outcome::Skipped(why.to_string())
}

/// One named test.
pub type Test = (&'static str, fn() -> Outcome);

/// Runs `tests` as the command line asks (one at a time, in order) and exits with
/// libtest's status: 101 when any failed.
pub fn run(tests: &[Test]) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let list = args.iter().any(|a| a == "--list");
    // Flags that take a value; their value is not a filter.
    let with_value = [
        "--test-threads",
        "--format",
        "--color",
        "--logfile",
        "--skip",
        "-Z",
        "--report-time",
    ];
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--skip" {
            skips.extend(it.next().cloned());
        } else if with_value.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
    }
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| {
            let matches = |f: &String| {
                if exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            };
            (filters.is_empty() || filters.iter().any(matches))
                && !skips.iter().any(|s| name.contains(s.as_str()))
        })
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        std::process::exit(0);
    }
    println!("\nrunning {} tests", selected.len());
    let start = Instant::now();
    let (mut passed, mut failed, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
    for (name, test) in &selected {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        match catch_unwind(AssertUnwindSafe(test)) {
            Ok(Outcome::Passed) => {
                println!("ok");
                passed.push(*name);
            }
            Ok(Outcome::Skipped(why)) => {
                println!("ignored, {why}");
                ignored.push((*name, why));
            }
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    if !ignored.is_empty() {
        println!("\nskipped (their environment is missing):");
        for (name, why) in &ignored {
            println!("    SKIPPED {name}: {why}");
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    let filtered = tests.len() - selected.len();
    println!(
        "\ntest result: {}. {} passed; {} failed; {} ignored; 0 measured; {filtered} filtered \
         out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        passed.len(),
        failed.len(),
        ignored.len(),
        start.elapsed().as_secs_f64()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 });
}

/// `fn main` for a test file run by [`run`]: `main!(test_a, test_b)`.
#[macro_export]
macro_rules! harness_main {
    ($($test:ident),* $(,)?) => {
        fn main() {
            $crate::harness::run(&[$((stringify!($test), $test as fn() -> $crate::harness::Outcome)),*]);
        }
    };
}
pub use harness_main as main;
