//! The `fathom` binary end to end: gen → bench, demo, and its errors.

use std::process::Command;

use fathom_tests::harness::{Outcome, PASSED, skipped};

fn fathom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fathom"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn gen_then_bench_reports_exact_recall() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tiny");
    let (ok, out, err) = run(fathom().arg("gen").arg(&data).args([
        "--nb", "3000", "--nq", "40", "--nt", "200", "--d", "16", "--k", "20",
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("nb=3000"), "{out}");
    for metric in ["l2", "ip"] {
        let (ok, out, err) = run(fathom().args(["--threads", "2", "bench"]).arg(&data).args([
            "--index",
            "IDMap2,Flat",
            "--metric",
            metric,
            "--json",
            "--runs",
            "1",
        ]));
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(v["tool"], "fathom");
        assert_eq!(v["threads"], 2);
        if metric == "l2" {
            assert_eq!(v["recall_at_1"], 1.0, "{out}");
            assert_eq!(v["recall_10_at_10"], 1.0, "{out}");
        }
        assert!(v["qps"].as_f64().unwrap() > 0.0);
    }
    // Single-query mode on a subset of the queries.
    let (ok, out, err) = run(fathom().arg("bench").arg(&data).args([
        "--batch",
        "1",
        "--queries",
        "5",
        "--runs",
        "1",
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("R@1=1.000"), "{out}");
    // Without --param there is no parameter column (it used to read "-=None").
    assert!(out.starts_with("fathom Flat l2 train="), "{out}");
    // The long steps say on stderr what they do and how long it took.
    let (ok, out, err) = run(fathom().arg("bench").arg(&data).args([
        "--index",
        "IVF8,Flat",
        "--param",
        "nprobe=2",
        "--runs",
        "1",
    ]));
    assert!(ok, "{err}");
    assert!(out.contains(" nprobe=2 "), "{out}");
    for want in [
        "training IVF8,Flat on 200 vectors…",
        "training IVF8,Flat on 200 vectors: done in ",
        "adding 3000 vectors to IVF8,Flat…",
        "adding 3000 vectors to IVF8,Flat: done in ",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    PASSED
}

fn errors_are_reported_not_panics() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "bench".into(),
                dir.path().join("missing").display().to_string(),
            ],
            "query.fvecs",
        ),
        (
            vec![
                "bench".into(),
                ".".into(),
                "--metric".into(),
                "cosine".into(),
            ],
            "cosine",
        ),
        (
            vec!["--threads".into(), "0".into(), "demo".into()],
            "--threads",
        ),
        (
            vec![
                "gen".into(),
                dir.path().display().to_string(),
                "--d".into(),
                "0".into(),
            ],
            "at least 1",
        ),
        (
            // An empty learn.fvecs could not be read back by `bench`.
            vec![
                "gen".into(),
                dir.path().display().to_string(),
                "--nt".into(),
                "0".into(),
            ],
            "--nt must be at least 1",
        ),
    ];
    for (args, needle) in cases {
        let (ok, _, err) = run(fathom().args(&args));
        assert!(!ok, "{args:?} should fail");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    // A truncated base file and an unknown index description.
    let data = dir.path().join("d");
    assert!(
        run(fathom().arg("gen").arg(&data).args([
            "--nb", "100", "--nq", "3", "--nt", "10", "--d", "4", "--k", "5"
        ]))
        .0
    );
    // The default number of training vectors is at most the base's.
    let small = dir.path().join("small");
    let (ok, out, err) = run(fathom()
        .arg("gen")
        .arg(&small)
        .args(["--nb", "50", "--nq", "3", "--d", "4", "--k", "5"]));
    assert!(ok && out.contains("nt=50 "), "{out}{err}");
    let (ok, _, err) = run(fathom().arg("bench").arg(&data).args(["--index", "NSG32"]));
    assert!(!ok && err.contains("NSG32"), "{err}");
    let base = data.join("base.fvecs");
    let len = std::fs::metadata(&base).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&base)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (ok, _, err) = run(fathom().arg("bench").arg(&data));
    assert!(
        !ok && err.contains("base.fvecs") && err.contains("not a whole number"),
        "{err}"
    );
    PASSED
}

fn demo_runs_and_finds_exact_neighbours() -> Outcome {
    let (ok, out, err) = run(fathom().args(["demo"]));
    assert!(ok, "{err}");
    assert!(out.contains("1-recall@1 = 1.0000"), "{out}");
    // The IVF part: recall grows with nprobe and is high with 64 of 1024 lists.
    let recall_at = |nprobe: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("nprobe {nprobe}:")))
            .unwrap_or_else(|| panic!("no nprobe {nprobe} line in {out}"));
        let at = line.find("1-recall@1 = ").unwrap() + "1-recall@1 = ".len();
        line[at..at + 5].parse().unwrap()
    };
    let (r4, r64) = (recall_at(" 4"), recall_at("64"));
    assert!(r4 < r64 && r64 > 0.9, "{out}");
    PASSED
}

fn store_commands_end_to_end() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("v.store");
    let vecs = dir.path().join("v.npy");
    let d = 4;
    let x: Vec<f32> = (0..20 * d).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
    fathom_io::write_npy(&vecs, &x, d).unwrap();
    let fv = dir.path().join("v.fvecs");
    fathom_io::write_fvecs(&fv, &x[..5 * d], d).unwrap();

    let (ok, _, err) = run(fathom()
        .args(["store", "create"])
        .arg(&store)
        .args(["--dim", "4"]));
    assert!(ok, "{err}");
    let (ok, out, err) = run(fathom().args(["store", "add"]).arg(&store).arg(&vecs));
    assert!(ok && out.contains("ids 0..=19"), "{out}{err}");
    let (ok, out, err) = run(fathom().args(["store", "add"]).arg(&store).arg(&fv));
    assert!(ok && out.contains("ids 20..=24"), "{out}{err}");
    let (ok, out, err) = run(fathom()
        .args(["store", "delete"])
        .arg(&store)
        .args(["3", "4", "3"]));
    assert!(
        ok && out.contains("deleted 2 of 2 ids (1 id repeated)"),
        "{out}{err}"
    );
    let (ok, out, err) = run(fathom()
        .args(["store", "delete"])
        .arg(&store)
        .args(["4", "5"]));
    assert!(
        ok && out.contains("deleted 1 of 2 ids (1 was already deleted)"),
        "{out}{err}"
    );
    // An id out of range: refused, and the message says nothing was deleted.
    let (ok, _, err) = run(fathom()
        .args(["store", "delete"])
        .arg(&store)
        .args(["6", "99"]));
    assert!(
        !ok && err.contains("id 99 is out of range") && err.contains("nothing was deleted"),
        "{err}"
    );
    let (ok, out, err) = run(fathom().args(["store", "stat", "--json"]).arg(&store));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (
            v["total"].as_u64(),
            v["live"].as_u64(),
            v["deleted"].as_u64()
        ),
        (Some(25), Some(22), Some(3))
    );
    assert_eq!(v["deleted_ids"], serde_json::json!([3, 4, 5]));

    // Query = vector 7: its best cosine match is itself.
    let q = dir.path().join("q.npy");
    fathom_io::write_npy(&q, &x[7 * d..8 * d], d).unwrap();
    let (ok, out, err) = run(fathom()
        .args(["store", "search"])
        .arg(&store)
        .arg(&q)
        .args(["--top-k", "3", "--json"]));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v[0][0]["id"], 7);
    assert!((v[0][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    assert_eq!(v[0].as_array().unwrap().len(), 3);

    // --min-score is a similarity; an L2 threshold is --max-distance.
    let (ok, _, err) = run(fathom()
        .args(["store", "search"])
        .arg(&store)
        .arg(&q)
        .args(["--metric", "l2", "--min-score", "5"]));
    assert!(!ok && err.contains("--max-distance"), "{err}");
    let (ok, _, err) = run(fathom()
        .args(["store", "search"])
        .arg(&store)
        .arg(&q)
        .args(["--max-distance", "5"]));
    assert!(!ok && err.contains("--min-score"), "{err}");
    let (ok, out, err) = run(fathom()
        .args(["store", "search"])
        .arg(&store)
        .arg(&q)
        .args(["--metric", "l2", "--max-distance", "0.5", "--json"]));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let hits = v[0].as_array().unwrap();
    // Vector 7 itself and its copies (the data repeats), nothing farther.
    assert!(
        hits.iter().any(|h| h["id"] == 7)
            && hits.len() < 10
            && hits.iter().all(|h| h["score"].as_f64().unwrap() <= 0.5),
        "{v}"
    );
    // Queries of another dimension, even one the store's divides: refused.
    let wide = dir.path().join("wide.npy");
    fathom_io::write_npy(&wide, &x[..2 * 4 * d], 4 * d).unwrap();
    let (ok, _, err) = run(fathom().args(["store", "search"]).arg(&store).arg(&wide));
    assert!(
        !ok && err.contains("wide.npy") && err.contains("has 16, expected the store's dimension 4"),
        "{err}"
    );

    let (ok, out, err) = run(fathom().args(["store", "compact"]).arg(&store));
    assert!(
        ok && out.contains("22 vectors kept, 3 removed"),
        "{out}{err}"
    );
    // The old → new map is kept beside the store by default.
    let map_file = dir.path().join("v.store.mapping.tsv");
    assert!(
        out.contains(&format!("written to {}", map_file.display())),
        "{out}"
    );
    let map = std::fs::read_to_string(&map_file).unwrap();
    let lines: Vec<&str> = map.lines().collect();
    assert_eq!(lines.len(), 1 + 22, "{map}");
    assert_eq!(
        (lines[0], lines[3], lines[4], lines[22]),
        ("old\tnew", "2\t2", "6\t3", "24\t21")
    );
    let (ok, out, _) = run(fathom().args(["store", "stat"]).arg(&store));
    assert!(ok && out.contains("deleted 0"), "{out}");
    let (ok, out, _) = run(fathom().args(["store", "compact"]).arg(&store));
    assert!(ok && out.contains("nothing to compact"), "{out}");
    let (ok, out, err) = run(fathom().args(["store", "delete"]).arg(&store).arg("0"));
    assert!(ok, "{err}");
    let custom = dir.path().join("moves.tsv");
    let (ok, out2, err) = run(fathom()
        .args(["store", "compact", "--mapping", "--mapping-file"])
        .arg(&custom)
        .arg(&store));
    assert!(
        ok && out2.contains("1 -> 0") && custom.exists(),
        "{out}{out2}{err}"
    );

    // One thread is "1 thread"; a batch of 0 and huge dimensions are refused.
    let (ok, out, err) = run(fathom()
        .args(["--threads", "1", "store", "bench"])
        .arg(&store)
        .args(["--reps", "1", "--batch", "1"]));
    assert!(
        ok && out.contains(" 1 thread,") && out.contains("1 query at once"),
        "{out}{err}"
    );
    for args in [["--batch", "0"], ["--reps", "0"]] {
        let (ok, out, err) = run(fathom().args(["store", "bench"]).arg(&store).args(args));
        assert!(
            !ok && err.contains("at least 1") && !out.contains("inf"),
            "{out}{err}"
        );
    }
    let (ok, _, err) = run(fathom()
        .args(["store", "create"])
        .arg(dir.path().join("huge.store"))
        .args(["--dim", "100000000"]));
    assert!(!ok && err.contains("1..=65536"), "{err}");

    // Errors: wrong dimension, unknown metric, a file that is not a store.
    let bad = dir.path().join("b.npy");
    fathom_io::write_npy(&bad, &[1.0f32; 6], 3).unwrap();
    let (ok, _, err) = run(fathom().args(["store", "add"]).arg(&store).arg(&bad));
    assert!(!ok && err.contains("dimension"), "{err}");
    let (ok, _, err) = run(fathom()
        .args(["store", "search"])
        .arg(&store)
        .arg(&q)
        .args(["--metric", "hamming"]));
    assert!(!ok && err.contains("hamming"), "{err}");
    let (ok, _, err) = run(fathom().args(["store", "stat"]).arg(&vecs));
    assert!(!ok && err.contains("not a"), "{err}");
    PASSED
}

/// `fathom store search … | head -1`: the reader goes away after one line; the search ends
/// quietly (it used to panic in println! and exit 101).
fn a_closed_pipe_ends_output_quietly() -> Outcome {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("p.store");
    let d = 4;
    let x: Vec<f32> = (0..50 * d).map(|i| ((i * 37) % 11) as f32 + 1.0).collect();
    let vecs = dir.path().join("v.npy");
    fathom_io::write_npy(&vecs, &x, d).unwrap();
    // Far more output than a pipe holds, so the writer is still writing when it closes.
    let q: Vec<f32> = (0..20_000 * d)
        .map(|i| ((i * 13) % 7) as f32 + 1.0)
        .collect();
    let queries = dir.path().join("q.npy");
    fathom_io::write_npy(&queries, &q, d).unwrap();
    assert!(
        run(fathom()
            .args(["store", "create"])
            .arg(&store)
            .args(["--dim", "4"]))
        .0
    );
    assert!(run(fathom().args(["store", "add"]).arg(&store).arg(&vecs)).0);
    for json in [false, true] {
        let mut child = fathom()
            .args(["store", "search"])
            .arg(&store)
            .arg(&queries)
            .args(if json { &["--json"][..] } else { &[][..] })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        if json {
            // One long line: read a little of it.
            let mut buf = [0u8; 64];
            std::io::Read::read_exact(&mut reader, &mut buf).unwrap();
            first = String::from_utf8_lossy(&buf).into_owned();
        } else {
            reader.read_line(&mut first).unwrap();
        }
        assert!(
            first.starts_with(if json { "[[" } else { "query 0:" }),
            "{first}"
        );
        drop(reader);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the search did not end after its reader left");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(status.code(), Some(0), "json {json}: {status:?} {err}");
    }
    PASSED
}

fn bench_saves_and_reloads_and_info_describes_the_file() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tiny");
    let (ok, _, err) = run(fathom().arg("gen").arg(&data).args([
        "--nb", "2000", "--nq", "30", "--nt", "1000", "--d", "16", "--k", "10",
    ]));
    assert!(ok, "{err}");
    let file = dir.path().join("ivf.faiss");
    let bench = |extra: &[&str]| {
        let (ok, out, err) = run(fathom()
            .arg("bench")
            .arg(&data)
            .args(["--param", "nprobe=4", "--json", "--runs", "1"])
            .args(extra));
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        (
            v["key"].as_str().unwrap().to_string(),
            v["recall_10_at_10"].as_f64().unwrap(),
        )
    };
    let (key, built) = bench(&["--index", "IVF16,SQ8", "--save", file.to_str().unwrap()]);
    assert_eq!(key, "IVF16,SQ8");
    let (key, loaded) = bench(&["--load", file.to_str().unwrap()]);
    assert_eq!(key, "IVF16,SQ8");
    assert_eq!(
        built, loaded,
        "the reloaded index searches as the one built"
    );

    let (ok, out, err) = run(fathom().arg("info").arg(&file));
    assert!(ok, "{err}");
    for want in [
        "IVF16,SQ8",
        "d = 16, 2000 vectors, metric l2, trained",
        "IwSq  IndexIVFScalarQuantizer",
        "IxF2  IndexFlatL2",
        "ilar  ArrayInvertedLists",
        "nlist 16",
        "SQ8",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let (ok, _, err) = run(fathom().arg("info").arg(data.join("base.fvecs")));
    assert!(!ok);
    assert!(err.contains("unknown or unsupported index type"), "{err}");
    PASSED
}

fn tune_finds_applies_and_saves_a_setting_meeting_the_goal() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tiny");
    let (ok, _, err) = run(fathom().arg("gen").arg(&data).args([
        "--nb", "4000", "--nq", "50", "--nt", "2000", "--d", "16", "--k", "10",
    ]));
    assert!(ok, "{err}");
    let file = dir.path().join("tuned.faiss");
    let (ok, out, err) = run(fathom().arg("tune").arg(&data).args([
        "--index",
        "IVF64,Flat",
        "--target-recall",
        "0.9",
        "--min-time",
        "0",
        "--json",
        "--save",
        file.to_str().unwrap(),
    ]));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["criterion"], "1-recall@1");
    assert_eq!(v["goal_met"], true, "{out}");
    assert!(v["chosen"]["perf"].as_f64().unwrap() >= 0.9);
    let setting = v["chosen"]["setting"].as_str().unwrap().to_string();
    let nprobe = setting.strip_prefix("nprobe=").unwrap();
    assert!(!v["pareto"].as_array().unwrap().is_empty());
    // The saved file carries the chosen nprobe, and searching it gives the chosen recall.
    let (ok, out, err) = run(fathom().arg("info").arg(&file));
    assert!(ok, "{err}");
    assert!(out.contains(&format!("nprobe {nprobe}")), "{out}");
    let (ok, out, err) = run(fathom().arg("bench").arg(&data).args([
        "--load",
        file.to_str().unwrap(),
        "--json",
        "--runs",
        "1",
    ]));
    assert!(ok, "{err}");
    let b: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(b["recall_at_1"], v["chosen"]["perf"]);

    // The table form, a time goal, a range override and a wider criterion.
    let (ok, out, err) = run(fathom().arg("tune").arg(&data).args([
        "--index",
        "HNSW16",
        "--max-ms",
        "1000",
        "--param",
        "efSearch=8,32",
        "--criterion",
        "10-recall@10",
        "--min-time",
        "0",
    ]));
    assert!(ok, "{err}");
    assert!(
        out.contains("Pareto front") && out.contains("best: efSearch="),
        "{out}"
    );
    assert!(out.contains("2 combinations of efSearch"), "{out}");

    for (args, wants) in [
        (
            vec!["--index", "IVF64,Flat", "--target-recall", "1.5"],
            "[0, 1]",
        ),
        (vec!["--index", "IVF64,Flat", "--max-ms", "0"], "--max-ms"),
        (
            vec!["--index", "IVF64,Flat", "--param", "nprobe"],
            "--param",
        ),
        (
            vec!["--index", "IVF64,Flat", "--param", "nprob=1,2"],
            "nprob",
        ),
        (
            vec!["--index", "IVF64,Flat", "--criterion", "recall"],
            "criterion",
        ),
        (
            vec!["--index", "IVF64,Flat", "--criterion", "20-recall@20"],
            "ground truth",
        ),
        (vec!["--index", "IVF64,Flatt"], "token 2"),
        (vec!["--index", "PQ5"], "multiple"),
    ] {
        let (ok, _, err) = run(fathom()
            .arg("tune")
            .arg(&data)
            .args(&args)
            .args(["--min-time", "0"]));
        assert!(!ok, "{args:?}");
        assert!(err.contains(wants), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    PASSED
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

fn serve_answers_the_readme_curl_and_snapshots_on_sigterm() -> Outcome {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = fathom()
        .args(["serve", "--port", "0", "--demo", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let try_line = lines.next().unwrap().unwrap();
    assert!(try_line.contains("/collections/demo/search"), "{try_line}");
    let (status, body) = http(
        &addr,
        "POST",
        "/collections/demo/search",
        r#"{"vector": [0.1, 0.2, 0.3, 0.4], "top_k": 3}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    assert!(v["results"][0]["metadata"]["name"].is_string(), "{v}");
    let (status, body) = http(&addr, "GET", "/health", "");
    assert_eq!(status, 200);
    assert!(body.contains("\"demo\""), "{body}");
    // SIGTERM: drains and writes a final snapshot.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("snap-"))
        .collect();
    assert_eq!(snaps.len(), 1);
    assert!(snaps[0].path().join("manifest.json").exists());
    PASSED
}

#[cfg(feature = "text")]
fn index_text_then_serve_answers_text_queries() -> Outcome {
    let model = match fathom_tests::minilm_dir() {
        Ok(m) => m,
        Err(why) => return skipped(format!("the text model is not available: {why}")),
    };
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.txt");
    std::fs::write(
        &doc,
        "Cats are small furry pets that purr. The stock market fell sharply today!\n\
         我喜欢吃苹果。Rust is a systems programming language? Paris is the capital of France.",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = run(fathom()
        .arg("index-text")
        .arg(&doc)
        .arg("--model")
        .arg(&model)
        .arg("--data-dir")
        .arg(&data));
    assert!(ok, "{err}");
    assert!(out.contains("indexed 5 sentences"), "{out}");
    let (ok, _, err) = run(fathom()
        .arg("index-text")
        .arg(dir.path().join("missing.txt"))
        .arg("--model")
        .arg(&model)
        .arg("--data-dir")
        .arg(&data));
    assert!(!ok && err.contains("missing.txt"), "{err}");

    let mut child = fathom()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let first = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    for (query, want) in [
        (
            "which animal purrs?",
            "Cats are small furry pets that purr.",
        ),
        (
            "what is the capital city of France",
            "Paris is the capital of France.",
        ),
        (
            "programming languages",
            "Rust is a systems programming language?",
        ),
    ] {
        let body = serde_json::json!({ "text": query, "top_k": 1 }).to_string();
        let (status, resp) = http(&addr, "POST", "/collections/texts/search", &body);
        assert_eq!(status, 200, "{resp}");
        let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(v["results"][0]["metadata"]["text"], want, "{query}: {v}");
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    PASSED
}

#[cfg(not(feature = "text"))]
fn index_text_then_serve_answers_text_queries() -> Outcome {
    skipped("built without the `text` feature")
}

fathom_tests::harness::main!(
    gen_then_bench_reports_exact_recall,
    errors_are_reported_not_panics,
    demo_runs_and_finds_exact_neighbours,
    store_commands_end_to_end,
    a_closed_pipe_ends_output_quietly,
    bench_saves_and_reloads_and_info_describes_the_file,
    tune_finds_applies_and_saves_a_setting_meeting_the_goal,
    serve_answers_the_readme_curl_and_snapshots_on_sigterm,
    index_text_then_serve_answers_text_queries,
);
