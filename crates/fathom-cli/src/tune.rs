//! `fathom tune`: build an index on a TEXMEX-layout dataset, explore its run-time
//! parameters against the ground truth, print the Pareto front and apply the setting that
//! meets the goal — `fathom_index::autotune::tune` on files.

use std::path::PathBuf;
use std::time::Duration;

use fathom_core::{Error, Idx, MetricType, Result};
use fathom_index::autotune::{
    Criterion, ExploreEvent, ParameterRange, ParameterSpace, TuneGoal, TuneReport, tune,
};
use fathom_io::read_ivecs;
use serde::Serialize;

use crate::{bench, progress};

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Dataset directory: base.fvecs, query.fvecs, learn.fvecs, groundtruth.ivecs.
    dir: PathBuf,
    /// Index description (Faiss factory grammar), e.g. "IVF1024,PQ16", "HNSW32".
    #[arg(long)]
    index: String,
    /// Metric: l2, ip, … (as `fathom bench`).
    #[arg(long, default_value = "l2")]
    metric: String,
    /// Quality measure: <k>-recall@<R> (1-recall@1, 10-recall@10, 1-recall@10, …).
    #[arg(long, default_value = "1-recall@1")]
    criterion: String,
    /// Goal: the fastest setting reaching this quality.
    #[arg(long, conflicts_with = "max_ms")]
    target_recall: Option<f64>,
    /// Goal: the most accurate setting searching a query in at most this many
    /// milliseconds on average (all queries searched in one batch).
    #[arg(long)]
    max_ms: Option<f64>,
    /// Replace a parameter's range, e.g. nprobe=1,4,16,64 (repeatable).
    #[arg(long)]
    param: Vec<String>,
    /// Combinations to try at most (0: all, without pruning).
    #[arg(long, default_value_t = 500)]
    experiments: usize,
    /// Repeat each measurement for at least this many seconds (steadier times; 0: one
    /// search per setting, as Faiss's default).
    #[arg(long, default_value_t = 0.1)]
    min_time: f64,
    /// Use only the first N queries.
    #[arg(long)]
    queries: Option<usize>,
    /// Save the tuned index (setting applied) to this Faiss-format file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Point<'a> {
    setting: &'a str,
    perf: f64,
    ms_per_query: f64,
    qps: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    index: &'a str,
    criterion: String,
    nq: usize,
    threads: usize,
    train_s: f64,
    add_s: f64,
    measured: usize,
    skipped: usize,
    pareto: Vec<Point<'a>>,
    chosen: Option<Point<'a>>,
    goal_met: bool,
}

fn point(p: &fathom_index::autotune::OperatingPoint, nq: usize) -> Point<'_> {
    Point {
        setting: &p.key,
        perf: p.perf,
        ms_per_query: p.t * 1e3 / nq as f64,
        qps: nq as f64 / p.t.max(1e-12),
    }
}

/// `name=v1,v2,…` → a range.
fn parse_range(spec: &str) -> Result<ParameterRange> {
    let bad = || {
        Error::invalid(format!(
            "--param {spec:?} not understood; expected <name>=<v1>,<v2>,…, e.g. nprobe=1,4,16"
        ))
    };
    let (name, values) = spec.split_once('=').ok_or_else(bad)?;
    let values = values
        .split(',')
        .map(|v| match v.trim() {
            "inf" => Ok(f64::INFINITY),
            v => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(bad),
        })
        .collect::<Result<Vec<f64>>>()?;
    if name.trim().is_empty() || values.is_empty() {
        return Err(bad());
    }
    Ok(ParameterRange::new(name.trim(), values))
}

pub fn run(args: &TuneArgs) -> Result<()> {
    let metric = MetricType::parse(&args.metric)?;
    let goal = match (args.target_recall, args.max_ms) {
        (Some(r), None) if (0.0..=1.0).contains(&r) => TuneGoal::MinPerf(r),
        (Some(r), None) => {
            return Err(Error::invalid(format!(
                "--target-recall lies in [0, 1], got {r}"
            )));
        }
        (None, Some(ms)) if ms.is_finite() && ms > 0.0 => {
            TuneGoal::MaxTimePerQuery(Duration::from_secs_f64(ms / 1e3))
        }
        (None, Some(ms)) => {
            return Err(Error::invalid(format!(
                "--max-ms is a positive number of milliseconds, got {ms}"
            )));
        }
        // The default goal: the most accurate setting (the whole front is printed).
        _ => TuneGoal::MinPerf(1.0),
    };
    if !(args.min_time.is_finite() && args.min_time >= 0.0) {
        return Err(Error::invalid(format!(
            "--min-time is a number of seconds ≥ 0, got {}",
            args.min_time
        )));
    }
    let overrides = args
        .param
        .iter()
        .map(|s| parse_range(s))
        .collect::<Result<Vec<_>>>()?;

    let mut query = bench::load(&args.dir, "query.fvecs")?;
    let gt = read_ivecs(args.dir.join("groundtruth.ivecs"))?;
    let nq = args.queries.unwrap_or(query.n()).min(query.n()).max(1);
    if gt.n() < nq {
        return Err(Error::DimensionMismatch {
            what: "groundtruth.ivecs rows".into(),
            got: gt.n(),
            expected: format!("one per query, {nq}"),
        });
    }
    query.data.truncate(nq * query.d);
    let gt_ids: Vec<Idx> = gt.data[..nq * gt.d].iter().map(|&i| i as Idx).collect();
    let criterion = Criterion::parse(&args.criterion, &gt_ids, gt.d)?;

    let (mut index, train_s, add_s) =
        bench::build_index(&args.dir, &args.index, metric, query.d, &[])?;

    let mut space = ParameterSpace::new(&*index);
    for r in overrides {
        match space.ranges.iter_mut().find(|x| x.name == r.name) {
            Some(x) => *x = r,
            None => space.ranges.push(r),
        }
    }
    space.n_experiments = args.experiments;
    space.min_test_duration = Duration::from_secs_f64(args.min_time);
    let n_comb = space.n_combinations();
    let steps = if args.experiments == 0 {
        n_comb
    } else {
        n_comb.min(args.experiments.max(2))
    };
    let stage = progress::stage_lines(format!(
        "exploring up to {} of {}",
        crate::count(steps as u64, "setting", "settings"),
        args.index
    ));
    let bar = progress::bar(steps as u64, "exploring");
    let (mut measured, mut skipped) = (0usize, 0usize);
    let report: TuneReport = tune(
        &mut *index,
        &query.data,
        &criterion,
        &space,
        goal,
        &mut |e| {
            match e {
                ExploreEvent::Measured { key, perf, .. } => {
                    measured += 1;
                    bar.set_message(format!("{key} → {perf:.3}"));
                }
                ExploreEvent::Skipped { .. } => skipped += 1,
            }
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    stage.done();

    if let Some(path) = &args.save {
        fathom_io::faiss::write_index(&*index, path)?;
    }
    let out = Report {
        index: &args.index,
        criterion: criterion.name(),
        nq,
        threads: rayon::current_num_threads(),
        train_s,
        add_s,
        measured,
        skipped,
        pareto: report
            .points
            .optimal()
            .iter()
            .map(|p| point(p, nq))
            .collect(),
        chosen: report.chosen.as_ref().map(|p| point(p, nq)),
        goal_met: report.goal_met,
    };
    if args.json {
        outln!(
            "{}",
            serde_json::to_string(&out).map_err(|e| Error::invalid(e.to_string()))?
        );
        return Ok(());
    }
    outln!(
        "{}: {} of {}, {} measured, {} skipped by pruning; {} on {}, {} (train {:.2} s, \
         add {:.2} s)",
        args.index,
        crate::count(n_comb as u64, "combination", "combinations"),
        if space.ranges.is_empty() {
            "no parameters".to_string()
        } else {
            space
                .ranges
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(" × ")
        },
        measured,
        skipped,
        out.criterion,
        crate::count(nq as u64, "query", "queries"),
        crate::count(out.threads as u64, "thread", "threads"),
        train_s,
        add_s
    );
    outln!(
        "{:>10}  {:>12}  {:>10}  setting (Pareto front)",
        out.criterion,
        "ms/query",
        "QPS"
    );
    for p in &out.pareto {
        outln!(
            "{:>10.4}  {:>12.4}  {:>10.0}  {}",
            p.perf,
            p.ms_per_query,
            p.qps,
            p.setting
        );
    }
    match &out.chosen {
        Some(p) => outln!(
            "{}: {} ({} {:.4}, {:.4} ms/query){}",
            if out.goal_met {
                "best"
            } else {
                "goal not met; closest"
            },
            if p.setting.is_empty() {
                "(no parameters)"
            } else {
                p.setting
            },
            out.criterion,
            p.perf,
            p.ms_per_query,
            args.save
                .as_ref()
                .map(|s| format!("; saved to {}", s.display()))
                .unwrap_or_default()
        ),
        None => outln!("no setting found anything (every measured quality was 0)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_from_the_command_line() {
        let r = parse_range("nprobe=1,4, 16").unwrap();
        assert_eq!(
            (r.name.as_str(), r.values),
            ("nprobe", vec![1.0, 4.0, 16.0])
        );
        assert_eq!(
            parse_range("max_codes=inf").unwrap().values,
            [f64::INFINITY]
        );
        for bad in ["nprobe", "nprobe=", "=1", "nprobe=1,x", "nprobe=NaN"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
