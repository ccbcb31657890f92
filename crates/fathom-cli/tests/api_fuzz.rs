//! `fathom serve` under Schemathesis (from PyPI, in `target/schemathesis-venv`): requests
//! generated from the server's own `/openapi.json`, valid and deliberately invalid, in
//! every phase (the document's examples, boundary coverage, random fuzzing, and stateful
//! sequences that create, fill and drop collections).
//!
//! What must hold: no 5xx (but a search shed with 503) and no hang (a 10 s limit a request), only documented status
//! codes and content types, every schema-violating request refused with a 4xx, no panic in
//! the server's log, and the server healthy afterwards. The one check left out is
//! `positive_data_acceptance`: a request can be valid by the document and still be refused
//! for what depends on stored state (a vector of another collection's dimension, a factory
//! string or filter that does not parse), which a schema cannot state.
//!
//! Skipped, saying why, where Schemathesis cannot be installed. The server is killed when
//! the test ends, failed or not.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use fathom_tests::harness::{Outcome, PASSED, skipped};

/// The Schemathesis release the checks were written against.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Operations on one collection use the demo one (so that they reach past "no such
/// collection"), and item routes a stored id; collection routes get generated names. A
/// search may answer 503: it is shed when it cannot meet its deadline, and a generated
/// `"deadline_ms": 0` never can.
const CONFIG: &str = r#"
[[operations]]
include-path-regex = "^/collections/\\{name\\}/(items|retrain)"
parameters = { "name" = "demo" }

[[operations]]
include-path = "/collections/{name}/search"
parameters = { "name" = "demo" }
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

[[operations]]
include-path-regex = "\\{id\\}"
parameters = { "name" = "demo", "id" = "7" }
"#;

/// The longest the whole run may take before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn serve_passes_schemathesis_on_its_openapi_document() -> Outcome {
    let python = match fathom_tests::venv_python(
        "schemathesis-venv",
        &[SCHEMATHESIS],
        "import schemathesis",
    ) {
        Ok(p) => p,
        Err(why) => return skipped(format!("Schemathesis is not available: {why}")),
    };
    let st = python.with_file_name("schemathesis");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = common::fathom();
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--demo"])
        .args(["--snapshot-secs", "0", "--threads", "2", "--data-dir"])
        .arg(&data);
    let server = common::start(cmd);
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let child = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{}/openapi.json", server.addr))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "60", "--seed", "20261206"])
        .args(["--request-timeout", "10", "--workers", "1"])
        .args(["--suppress-health-check", "all", "--no-color"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::finish(child, RUN_LIMIT, "Schemathesis (a request hangs)");
    let status = out.status;
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let tail = |text: &str, n: usize| {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    };
    eprintln!("{}", tail(&report, 10));
    assert!(
        status.success(),
        "Schemathesis found failures ({status}):\n{report}\nthe server's log, its end:\n{}",
        tail(&server.stderr(), 40)
    );
    assert!(report.contains("passed"), "no test cases ran:\n{report}");
    let (code, health) = common::http(&server.addr, "GET", "/health", "")
        .unwrap_or_else(|e| panic!("the server is gone after the run: {e}\n{}", server.stderr()));
    assert_eq!(code, 200, "{health}");
    let log = server.stderr();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    PASSED
}

fathom_tests::harness::main!(serve_passes_schemathesis_on_its_openapi_document);
