//! `fathom store` processes racing each other on one store file: what a command
//! acknowledges (exit 0, "added N vectors", "deleted N …") must be in the store afterwards,
//! whatever ran beside it. Every child is waited on with a deadline, so a hang fails the
//! test instead of stalling it.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fathom, finish};

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The number after `prefix` at the start of `out` ("added 200 vectors…" → 200).
fn leading_count(out: &str, prefix: &str) -> Option<u64> {
    out.trim()
        .strip_prefix(prefix)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn live(store: &Path) -> u64 {
    let out = fathom()
        .args(["store", "stat", "--json"])
        .arg(store)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    v["live"].as_u64().unwrap()
}

/// `store compact` beside `store add` and `store delete`, many times over: a writer that
/// waited for the compaction's lock must not write into the file the compaction replaced
/// (it used to, print "added 200 vectors", exit 0, and the vectors were gone).
#[test]
fn compaction_beside_writers_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("race.store");
    let d = 16;
    // Enough rows that a compaction takes a moment: writers started beside it find the
    // file locked and wait.
    let base: Vec<f32> = (0..40_000 * d).map(|i| (i % 97) as f32 + 1.0).collect();
    let base_file = dir.path().join("base.npy");
    fathom_io::write_npy(&base_file, &base, d).unwrap();
    let batch: Vec<f32> = (0..200 * d).map(|i| (i % 13) as f32 + 1.0).collect();
    let batch_file = dir.path().join("batch.npy");
    fathom_io::write_npy(&batch_file, &batch, d).unwrap();

    let limit = Duration::from_secs(60);
    let ok = |mut c: Command, what: &str| {
        let out = finish(spawn(&mut c), limit, what);
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let mut c = fathom();
    c.args(["store", "create"])
        .arg(&store)
        .args(["--dim", "16"]);
    ok(c, "create");
    let mut c = fathom();
    c.args(["store", "add"]).arg(&store).arg(&base_file);
    ok(c, "add");
    let mut expected = 40_000u64;

    let (mut acked_adds, mut acked_deletes, mut compactions) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for round in 0..40u64 {
        if started.elapsed() > Duration::from_secs(40) {
            break;
        }
        // Something to compact away: one more deleted row.
        let mut c = fathom();
        c.args(["store", "delete"])
            .arg(&store)
            .arg((round * 31 % 1000).to_string());
        let out = ok(c, "delete before compaction");
        expected -= leading_count(&out, "deleted").unwrap_or_else(|| panic!("{out}"));

        let compact = spawn(fathom().args(["store", "compact"]).arg(&store));
        // Stagger the writers so that some find the compaction running and wait for it.
        std::thread::sleep(Duration::from_micros(round % 8 * 700));
        let add = spawn(fathom().args(["store", "add"]).arg(&store).arg(&batch_file));
        let delete = spawn(
            fathom()
                .args(["store", "delete"])
                .arg(&store)
                .arg((round * 7 % 500).to_string()),
        );
        let compact = finish(compact, limit, "compact");
        let add = finish(add, limit, "add");
        let delete = finish(delete, limit, "delete");
        for (out, what) in [(&compact, "compact"), (&add, "add"), (&delete, "delete")] {
            let err = text(&out.stderr);
            assert!(!err.contains("panicked"), "{what}: {err}");
            // A writer refused because the store stayed busy acknowledged nothing.
            assert!(
                out.status.success() || err.contains("in use by another process"),
                "{what}: {err}"
            );
        }
        compactions += compact.status.success() as u64;
        if add.status.success() {
            let out = text(&add.stdout);
            assert_eq!(leading_count(&out, "added"), Some(200), "{out}");
            expected += 200;
            acked_adds += 1;
        }
        if delete.status.success() {
            let out = text(&delete.stdout);
            let n = leading_count(&out, "deleted").unwrap_or_else(|| panic!("{out}"));
            expected -= n;
            acked_deletes += n;
        }
        assert_eq!(
            live(&store),
            expected,
            "round {round}: live vectors after compact {:?} / add {:?} / delete {:?}\n\
             compact: {}{}\nadd: {}{}\ndelete: {}{}",
            compact.status,
            add.status,
            delete.status,
            text(&compact.stdout),
            text(&compact.stderr),
            text(&add.stdout),
            text(&add.stderr),
            text(&delete.stdout),
            text(&delete.stderr),
        );
    }
    eprintln!(
        "{compactions} compactions, {acked_adds} acknowledged adds, {acked_deletes} acknowledged deletions"
    );
    assert!(
        compactions > 0 && acked_adds > 0,
        "the race never ran: {compactions} compactions, {acked_adds} adds"
    );
    assert!(!dir.path().join("race.compact-tmp").exists());
}
