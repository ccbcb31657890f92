//! Process metrics for `/metrics`, under the names Prometheus client libraries use:
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`, and `fathom_uptime_seconds`.
//!
//! On Linux they are read from `/proc/self` (`stat`, `status`, `fd/`, `limits`) and
//! `/proc/stat`; a value that cannot be read is left out rather than made up. Elsewhere
//! only `fathom_uptime_seconds` is written.
//!
//! ```
//! let text = "# TYPE fathom_x gauge\nfathom_x 1\n# EOF\n".to_string();
//! let mut extra = String::new();
//! fathom_serve::process::render_process_metrics(&mut extra);
//! let out = fathom_serve::process::append_before_eof(text, &extra);
//! assert!(out.ends_with("# EOF\n") && out.contains("fathom_uptime_seconds "));
//! ```

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Marks the service's start, from which `fathom_uptime_seconds` counts where the
/// process's own start time cannot be read (not Linux). Call it early; later calls do
/// nothing. Without a call, the first [`render_process_metrics`] marks it.
pub fn mark_start() {
    START.get_or_init(Instant::now);
}

/// Writes one metric family: HELP, TYPE and its sample (`name` is the family; a counter's
/// sample gets `_total`).
fn family(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let sample = if kind == "counter" {
        format!("{name}_total")
    } else {
        name.to_string()
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{sample} {value}");
}

/// What `/proc` says about this process.
#[derive(Debug, Default, Clone, PartialEq)]
struct ProcStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    start_time_seconds: Option<f64>,
}

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`): fixed at 100 in Linux's ABI on
/// every architecture Rust targets, as Prometheus's own `procfs` assumes.
#[cfg(any(target_os = "linux", test))]
const USER_HZ: f64 = 100.0;

/// From `/proc/self/stat`: (utime + stime in seconds, start ticks since boot, vsize bytes).
#[cfg(any(target_os = "linux", test))]
fn parse_stat(stat: &str) -> Option<(f64, u64, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start: u64 = f.get(19)?.parse().ok()?;
    let vsize: u64 = f.get(20)?.parse().ok()?;
    Some(((utime + stime) as f64 / USER_HZ, start, vsize))
}

/// The value of a `Name:   123 kB` line of `/proc/self/status`, in bytes.
#[cfg(any(target_os = "linux", test))]
fn parse_status_kb(status: &str, name: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.split(':').next() == Some(name))?;
    let mut words = line.split(':').nth(1)?.split_whitespace();
    let n: f64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(n * 1024.0),
        None => Some(n),
        _ => None,
    }
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`None` when unlimited).
#[cfg(any(target_os = "linux", test))]
fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` (boot time, seconds since the Unix epoch) in `/proc/stat`.
#[cfg(any(target_os = "linux", test))]
fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(target_os = "linux")]
fn read_proc() -> ProcStats {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mut s = ProcStats::default();
    let stat = read("/proc/self/stat").and_then(|t| parse_stat(&t));
    if let Some((cpu, start_ticks, vsize)) = stat {
        s.cpu_seconds = Some(cpu);
        s.virtual_bytes = Some(vsize as f64);
        let btime = read("/proc/stat").and_then(|t| parse_btime(&t));
        s.start_time_seconds = btime.map(|b| b as f64 + start_ticks as f64 / USER_HZ);
    }
    s.resident_bytes = read("/proc/self/status").and_then(|t| parse_status_kb(&t, "VmRSS"));
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.filter(|e| e.is_ok()).count() as f64);
    s.max_fds = read("/proc/self/limits").and_then(|t| parse_max_fds(&t));
    s
}

#[cfg(not(target_os = "linux"))]
fn read_proc() -> ProcStats {
    ProcStats::default()
}

/// Seconds since the Unix epoch now.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Appends the process metrics to `out` as OpenMetrics text (HELP, TYPE and sample lines,
/// each family once), leaving out what cannot be read on this platform.
pub fn render_process_metrics(out: &mut String) {
    let start = *START.get_or_init(Instant::now);
    let s = read_proc();
    let families = [
        (
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time spent in seconds",
            s.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes",
            s.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes",
            s.virtual_bytes,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors",
            s.open_fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors",
            s.max_fds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds",
            s.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(v) = value {
            family(out, name, kind, help, v);
        }
    }
    let uptime = match s.start_time_seconds {
        Some(t) => (unix_now() - t).max(0.0),
        None => start.elapsed().as_secs_f64(),
    };
    family(
        out,
        "fathom_uptime_seconds",
        "gauge",
        "Seconds since the process started",
        uptime,
    );
}

/// `text` (OpenMetrics, ending with `# EOF`) with `extra` inserted before its final
/// `# EOF` line; `text` without one gets `extra` at its end. Lines are kept whole: a
/// newline is added where either part lacks its last.
pub fn append_before_eof(text: String, extra: &str) -> String {
    let mut text = text;
    let body_len = {
        let t = text.trim_end_matches('\n');
        match t.strip_suffix("# EOF") {
            Some(before) if before.is_empty() || before.ends_with('\n') => Some(before.len()),
            _ => None,
        }
    };
    let tail = match body_len {
        Some(n) => text.split_off(n),
        None => String::new(),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(extra);
    if !extra.is_empty() && !extra.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&tail);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let mut parts = l.split(' ');
                let name = parts.next().unwrap().to_string();
                let value: f64 = parts.next().unwrap().parse().unwrap();
                assert!(parts.next().is_none(), "{l}");
                assert!(
                    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{name}"
                );
                (name, value)
            })
            .collect()
    }

    #[test]
    fn renders_plausible_values() {
        mark_start();
        let mut out = String::new();
        render_process_metrics(&mut out);
        // Some CPU time, so the counter is not trivially 0.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i * i));
        }
        std::hint::black_box(x);
        let s = samples(&out);
        let get = |n: &str| s.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        let uptime = get("fathom_uptime_seconds").unwrap();
        assert!((0.0..1e6).contains(&uptime), "{uptime}");
        // Each family has HELP and TYPE once, before its sample.
        for (name, _) in &s {
            let fam = name.strip_suffix("_total").unwrap_or(name);
            assert_eq!(out.matches(&format!("# TYPE {fam} ")).count(), 1, "{out}");
            assert_eq!(out.matches(&format!("# HELP {fam} ")).count(), 1, "{out}");
        }
        if cfg!(target_os = "linux") {
            assert_eq!(s.len(), 7, "{out}");
            assert!(out.contains("# TYPE process_cpu_seconds counter\n"));
            assert!(get("process_cpu_seconds_total").unwrap() >= 0.0);
            let rss = get("process_resident_memory_bytes").unwrap();
            let vsz = get("process_virtual_memory_bytes").unwrap();
            assert!(rss > 1e5 && vsz >= rss, "rss {rss} vsz {vsz}");
            let fds = get("process_open_fds").unwrap();
            assert!(fds >= 3.0, "{fds}");
            if let Some(max) = get("process_max_fds") {
                assert!(max >= fds, "{max}");
            }
            let start = get("process_start_time_seconds").unwrap();
            let now = unix_now();
            assert!(start > 1.5e9 && start <= now + 1.0, "{start} vs {now}");
            let mut again = String::new();
            render_process_metrics(&mut again);
            let s2 = samples(&again);
            let cpu2 = s2
                .iter()
                .find(|(k, _)| k == "process_cpu_seconds_total")
                .unwrap()
                .1;
            assert!(cpu2 >= get("process_cpu_seconds_total").unwrap());
        } else {
            assert_eq!(s.len(), 1, "{out}");
        }
    }

    #[test]
    fn parses_proc_files() {
        // The command name may hold spaces and parentheses.
        let stat = "4242 (fathom (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 9 0 123456 987654321 2000 18446744073709551615";
        let (cpu, start, vsize) = parse_stat(stat).unwrap();
        assert_eq!((cpu, start, vsize), (3.0, 123456, 987654321));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);

        let status = "Name:\tfathom\nVmSize:\t  100 kB\nVmRSS:\t    20 kB\nThreads:\t9\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(20.0 * 1024.0));
        assert_eq!(parse_status_kb(status, "Threads"), Some(9.0));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);

        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);

        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1700000000)
        );
        assert_eq!(parse_btime("cpu 1 2 3\n"), None);
    }

    #[test]
    fn inserts_before_eof() {
        let text = "# TYPE a gauge\na 1\n# EOF\n".to_string();
        assert_eq!(
            append_before_eof(text, "b 2\n"),
            "# TYPE a gauge\na 1\nb 2\n# EOF\n"
        );
        // Without a final newline on either side.
        assert_eq!(
            append_before_eof("a 1\n# EOF".into(), "b 2"),
            "a 1\nb 2\n# EOF"
        );
        // Only the final EOF counts; no EOF: at the end.
        assert_eq!(append_before_eof("a 1".into(), "b 2\n"), "a 1\nb 2\n");
        assert_eq!(append_before_eof("# EOF\n".into(), "b 2\n"), "b 2\n# EOF\n");
        assert_eq!(append_before_eof(String::new(), "b 2\n"), "b 2\n");
        assert_eq!(
            append_before_eof("x # EOF\n".into(), "b 2\n"),
            "x # EOF\nb 2\n"
        );
        // With real process metrics: one EOF, at the end.
        let mut extra = String::new();
        render_process_metrics(&mut extra);
        let out = append_before_eof("a_total 1\n# EOF\n".into(), &extra);
        assert!(out.ends_with("# EOF\n"), "{out}");
        assert_eq!(out.matches("# EOF").count(), 1);
        assert!(out.starts_with("a_total 1\n# HELP"));
    }
}
