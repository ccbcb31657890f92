//! Processes for the CLI's tests: `fathom` subcommands that serve (`serve`, `searcher`)
//! started on 127.0.0.1, killed and reaped when their guard drops — also when a test
//! fails — and HTTP requests with timeouts, so a hang fails a test instead of stalling it.

#![allow(dead_code)]

pub mod etcd;
pub mod sharded;

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// The `fathom` binary.
pub fn fathom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fathom"))
}

/// A running `fathom` process that announced `listening on ADDR`; SIGKILLed on drop.
pub struct Proc {
    pub child: Child,
    pub addr: String,
    pub first_line: String,
    /// Its stderr so far (drained by a thread, so the pipe never fills).
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Sends `sig` ("-TERM", "-STOP", …).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// Starts `cmd` and waits (at most 120 s) for its first stdout line, which must say
/// `listening on …ADDR…` (`http://ADDR` or `ADDR`).
pub fn start(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let (mut pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    let mut p = Proc {
        child,
        addr: String::new(),
        first_line: String::new(),
        stderr,
    };
    let first = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            let _ = p.child.kill();
            let _ = p.child.wait();
            panic!("{cmd:?} did not start: {}", p.stderr())
        });
    let rest = first
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("{first}"));
    p.addr = rest
        .trim_start_matches("http://")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    p.first_line = first;
    p
}

/// One request over a fresh connection with a 90 s timeout: `Ok((status, body))` (JSON,
/// or a string when the body is not JSON), or
/// `Err` when the connection failed (the server is gone). A timeout panics: the server
/// hung.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, Value), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(90);
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(limit)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            panic!("{method} {path}: no answer within {limit:?}: the server hangs");
        }
        return Err(e.to_string());
    }
    let text = String::from_utf8_lossy(&out);
    if text.len() < 12 {
        return Err(format!("short answer {text:?}"));
    }
    let status = text[9..12].parse().map_err(|_| text.to_string())?;
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
    // Non-JSON bodies (metrics text) come back as a string.
    Ok((
        status,
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string())),
    ))
}

/// Runs a `fathom` command to completion: (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for `child` (stdout and stderr piped) at most `limit`, reading both pipes
/// meanwhile so that neither fills and stalls it; past the limit, kills it and fails the
/// test, naming `what`.
pub fn finish(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}; stdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.join().unwrap()),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
