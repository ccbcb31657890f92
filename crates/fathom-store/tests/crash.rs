//! Crash safety: a writer process is killed at random points, hundreds of times, and every
//! vector it had acknowledged must be there on reopen, whole; a writer that hits a file
//! size limit (a full disk, as far as the store can tell) gets an error and leaves the
//! store consistent.
//!
//! The writer is this test binary itself, re-run with an environment variable that turns
//! `child_writer` from a no-op into the writer loop.

use fathom_tests::harness::{Outcome, PASSED, skipped};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use fathom_store::{StoreOptions, VectorStore};

const D: usize = 8;
const CHILD: &str = "FATHOM_STORE_CRASH_CHILD";

/// The vector whose first component is `tag`: every other component derives from it, so
/// a torn vector (mixed from two writes, or half zero) is detectable without knowing
/// its id (compaction renumbers).
fn tagged(tag: u64) -> [f32; D] {
    let mut v = [0.0f32; D];
    v[0] = tag as f32;
    for (j, x) in v.iter_mut().enumerate().skip(1) {
        *x = (tag as f32 + 1.0) * j as f32 + 0.5;
    }
    v
}

fn is_whole(v: &[f32]) -> bool {
    v[0] >= 0.0 && v[0].fract() == 0.0 && v == tagged(v[0] as u64)
}

/// The writer: adds batches of tagged vectors, deletes some, compacts now and then, and
/// prints what each call acknowledged once it has returned.
fn child_writer(spec: &str) {
    let (path, start) = spec.split_once('|').expect("path|start");
    let mut tag: u64 = start.parse().unwrap();
    let store = VectorStore::open(path).unwrap();
    let out = std::io::stdout();
    for round in 0u64.. {
        let n = 1 + (round * 7919 % 30);
        let batch: Vec<f32> = (tag..tag + n).flat_map(tagged).collect();
        match store.add_vectors(&batch) {
            Ok(ids) => {
                let mut o = out.lock();
                writeln!(o, "ACK {} {} {}", ids[0], tag, n).unwrap();
                o.flush().unwrap();
            }
            Err(e) => {
                let mut o = out.lock();
                writeln!(o, "ERR {e}").unwrap();
                o.flush().unwrap();
                return;
            }
        }
        tag += n;
        if round % 5 == 4 {
            // Delete the first vector of the newest batch: the id is the store's last
            // minus n + 1.
            let id = store.total() - n;
            // Announced first: a deletion that completes but is killed before its
            // acknowledgement may legitimately have happened.
            {
                let mut o = out.lock();
                writeln!(o, "TRY {}", tag - n).unwrap();
                o.flush().unwrap();
            }
            store.mark_deleted(&[id]).unwrap();
            let mut o = out.lock();
            writeln!(o, "DEL {}", tag - n).unwrap();
            o.flush().unwrap();
        }
        if round % 23 == 22 {
            store.compact().unwrap();
            let mut o = out.lock();
            writeln!(o, "CMP").unwrap();
            o.flush().unwrap();
        }
    }
}

/// Reopens the store and checks it against what was acknowledged: returns the next tag.
fn verify(
    path: &std::path::Path,
    acked: &[(u64, u64)],
    deleted: &[u64],
    maybe_deleted: &[u64],
) -> u64 {
    let deleted: std::collections::HashSet<u64> = deleted.iter().copied().collect();
    let maybe_deleted: std::collections::HashSet<u64> = maybe_deleted.iter().copied().collect();
    let store = VectorStore::open(path).expect("a crashed store reopens");
    let mut present = std::collections::HashSet::new();
    for id in 0..store.total() {
        if let Some(v) = store.get(id) {
            assert!(is_whole(&v), "torn vector at id {id}: {v:?}");
            present.insert(v[0] as u64);
        }
    }
    for &(tag, n) in acked {
        for t in tag..tag + n {
            if !deleted.contains(&t) && !maybe_deleted.contains(&t) {
                assert!(present.contains(&t), "acknowledged vector {t} lost");
            }
        }
    }
    for t in &deleted {
        assert!(!present.contains(t), "acknowledged deletion of {t} lost");
    }
    present.iter().max().map_or(0, |m| m + 1)
}

fn killed_writers_lose_nothing_acknowledged() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.store");
    VectorStore::create(&path, D).unwrap();
    let exe = std::env::current_exe().unwrap();
    let (mut acked, mut deleted, mut tried) = (Vec::new(), Vec::new(), Vec::new());
    let mut next_tag = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let iterations = 200;
    for _ in 0..iterations {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % 40_000);
        let mut child = Command::new(&exe)
            .env(CHILD, format!("{}|{next_tag}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let stdout = child.stdout.take().unwrap();
        child.wait().unwrap();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.first() {
                Some(&"ACK") => acked.push((f[2].parse().unwrap(), f[3].parse().unwrap())),
                Some(&"DEL") => deleted.push(f[1].parse().unwrap()),
                Some(&"TRY") => tried.push(f[1].parse().unwrap()),
                Some(&"ERR") => panic!("writer failed: {line}"),
                _ => {}
            }
        }
        // Tags written but not acknowledged may be present; start past all of them.
        next_tag = verify(&path, &acked, &deleted, &tried).max(next_tag) + 10_000;
    }
    assert!(
        acked.len() > iterations / 4,
        "too few acknowledged writes ({}) for the test to mean anything",
        acked.len()
    );
    PASSED
}

fn a_file_size_limit_leaves_the_store_consistent() -> Outcome {
    if Command::new("sh").arg("-c").arg("true").status().is_err() {
        return skipped("no sh to set a file-size limit");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.store");
    VectorStore::create(&path, D).unwrap();
    let exe = std::env::current_exe().unwrap();
    // 4096 blocks (2 or 4 MiB depending on the shell's unit) holds a few segments of
    // 8-dimensional rows; SIGXFSZ is ignored so growing the file fails with EFBIG.
    let script = format!("trap '' XFSZ; ulimit -f 4096 && exec '{}'", exe.display());
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env(CHILD, format!("{}|0", path.display()))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = text
        .lines()
        .find(|l| l.starts_with("ERR"))
        .unwrap_or_else(|| panic!("the writer never hit the limit: {text}"));
    assert!(err.contains("unchanged"), "{err}");
    let mut acked = Vec::new();
    let (mut deleted, mut tried) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            Some(&"ACK") => acked.push((f[2].parse().unwrap(), f[3].parse().unwrap())),
            Some(&"DEL") => deleted.push(f[1].parse().unwrap()),
            Some(&"TRY") => tried.push(f[1].parse().unwrap()),
            _ => {}
        }
    }
    assert!(!acked.is_empty());
    verify(&path, &acked, &deleted, &tried);
    // And the store still takes writes once there is room.
    let store = VectorStore::open_with(&path, StoreOptions::default()).unwrap();
    let before = store.total();
    store.add_vectors(&tagged(1 << 40)).unwrap();
    assert_eq!(store.total(), before + 1);
    PASSED
}

// The writer runs in a child process of this test binary (the same executable, told by
// the environment), so it is not a test of its own.
fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        child_writer(&spec);
        return;
    }
    fathom_tests::harness::run(&[
        (
            "killed_writers_lose_nothing_acknowledged",
            killed_writers_lose_nothing_acknowledged,
        ),
        (
            "a_file_size_limit_leaves_the_store_consistent",
            a_file_size_limit_leaves_the_store_consistent,
        ),
    ]);
}
