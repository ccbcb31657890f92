//! A process killed while saving an index leaves the old file or the new one, never a
//! mix: a child process rewrites one path over and over, alternating two different
//! indexes, and is killed (SIGKILL) at random moments; after each kill the path must
//! open and hold exactly one of the two.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fathom_index::{Index, IndexFlat};
use fathom_io::faiss::{index_to_bytes, read_index, write_index};

const CHILD_ENV: &str = "FATHOM_CRASH_SAVE_PATH";

/// Two indexes of different sizes (1.5 and 3 MiB), so a torn write would show.
fn versions() -> [IndexFlat; 2] {
    let make = |n: usize, seed: f32| {
        let d = 64;
        let mut f = IndexFlat::new_l2(d).unwrap();
        let x: Vec<f32> = (0..n * d)
            .map(|i| (i as f32 * 0.001 + seed).sin())
            .collect();
        f.add(&x).unwrap();
        f
    };
    [make(6_000, 0.0), make(12_000, 1.0)]
}

/// The writer: runs in the child process only (see `kill_during_save`).
#[test]
#[ignore = "helper process of kill_during_save_leaves_the_old_or_the_new_file"]
fn crash_save_writer() {
    let path = PathBuf::from(std::env::var(CHILD_ENV).expect("run by the parent test"));
    let v = versions();
    for i in 0.. {
        write_index(&v[i % 2], &path).unwrap();
        if i == 0 {
            // Tells the parent the loop is running: its kill then lands among saves, not
            // in this process's start-up (which a busy machine can stretch past any
            // fixed sleep).
            std::fs::write(ready_marker(&path), b"").unwrap();
        }
    }
}

/// The file the writer creates once its first save is done.
fn ready_marker(path: &Path) -> PathBuf {
    path.with_extension("ready")
}

fn spawn_writer(path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_save_writer", "--ignored", "--nocapture"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_during_save_leaves_the_old_or_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.faiss");
    let v = versions();
    let expected = [
        index_to_bytes(&v[0]).unwrap(),
        index_to_bytes(&v[1]).unwrap(),
    ];
    write_index(&v[0], &path).unwrap();
    let mut seen = [0usize; 2];
    // Kills go on until `WANTED_TORN` of them have landed mid-write (a kill may also land
    // in the directory sync after a rename, or between saves, which proves nothing), with
    // a bound so a writer that never leaves a temporary file fails the test instead of
    // looping.
    const WANTED_TORN: usize = 6;
    const MAX_ROUNDS: usize = 120;
    let mut torn = 0;
    let mut rounds = 0;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    while torn < WANTED_TORN && rounds < MAX_ROUNDS {
        let round = rounds;
        rounds += 1;
        let _ = std::fs::remove_file(ready_marker(&path));
        let tmp_before = temporary_files(dir.path());
        let mut child = spawn_writer(&path);
        // Wait until it is in its loop, then kill it somewhere inside a save.
        let waiting = Instant::now();
        while !ready_marker(&path).exists() {
            if waiting.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("round {round}: the writer did not finish a first save in 120 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(10 + seed % 90));
        child.kill().unwrap();
        child.wait().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let which = expected
            .iter()
            .position(|e| *e == bytes)
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: after a kill at {:?} the file ({} bytes) is neither version",
                    start.elapsed(),
                    bytes.len()
                )
            });
        seen[which] += 1;
        let index = read_index(&path).unwrap();
        assert_eq!(index.ntotal(), v[which].ntotal());
        // A kill inside a save leaves that process's temporary file (its name holds the
        // pid) behind: proof that this kill landed mid-write.
        if temporary_files(dir.path()) > tmp_before {
            torn += 1;
        }
    }
    assert_eq!(seen[0] + seen[1], rounds, "{seen:?}");
    assert!(
        torn >= WANTED_TORN,
        "only {torn} of {rounds} kills interrupted a write; the test needs {WANTED_TORN}"
    );
}

/// How many writers' temporary files lie in `dir`.
fn temporary_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")
        })
        .count()
}
