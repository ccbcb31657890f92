//! Autotuning: the parameter ranges each index reports (against faiss-cpu's
//! `ParameterSpace.initialize` on the same factory strings), exploration measured against
//! exact ground truth, the tuned setting's real recall, and bad input.

use fathom_tests::harness::{Outcome, PASSED, skipped};
use std::process::Command;

use fathom_index::autotune::{
    Criterion, ExploreEvent, ParameterSpace, TuneGoal, set_index_parameters, tune,
};
use fathom_index::{Index, IndexFlat, MetricType, index_factory};

/// Factory strings whose ranges Faiss's `ParameterSpace.initialize` defines (d = 16).
const DESCRIPTIONS: &[&str] = &[
    "Flat",
    "IVF64,Flat",
    "IVF64,PQ8",
    "IVF64,PQ4",
    "IVF64,PQ8x10",
    "IVF64,PQ8,RFlat",
    "PCA8,IVF64,PQ4",
    "PCA8,IVF64,SQ8,RFlat",
    "IMI2x4,PQ8",
    "IVF64,PQ8+4",
    "HNSW16",
    "HNSW16,PQ8",
    "IVF64_HNSW16,Flat",
    "IVF64(PQ4),Flat",
    "IVF1000,SQ4",
    "IVF8192,Flat",
    "PQ8",
    "PQ8np,Refine(SQ8)",
    "IVF64,PQ8x4fs",
    "LSH",
];

fn ranges_line(index: &dyn Index) -> String {
    ParameterSpace::new(index)
        .ranges
        .iter()
        .map(|r| {
            let v: Vec<String> = r.values.iter().map(|v| format!("{v}")).collect();
            format!("{}:{}", r.name, v.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn parameter_ranges_match_faiss() -> Outcome {
    let ours: Vec<String> = DESCRIPTIONS
        .iter()
        .map(|s| ranges_line(&*index_factory(16, s, MetricType::L2).unwrap()))
        .collect();
    // Spot checks that hold whether or not faiss-cpu is available.
    assert_eq!(ours[1], "nprobe:1,2,4,8,16,32");
    assert!(ours[5].starts_with("k_factor_rf:1,2,4,8,16,32,64;nprobe:"));
    assert!(ours[8].ends_with(
        "max_codes:256,512,1024,2048,4096,8192,16384,32768,65536,131072,262144,524288,inf"
    ));
    assert_eq!(ours[10], "efSearch:4,8,16,32,64,128,256,512");
    let python = match fathom_tests::faiss_python() {
        Ok(p) => p,
        Err(why) => return skipped(format!("its comparison with faiss-cpu did not run: {why}")),
    };
    let script = format!(
        r#"
import faiss
for s in {DESCRIPTIONS:?}:
    ps = faiss.ParameterSpace()
    ps.initialize(faiss.index_factory(16, s))
    parts = []
    for i in range(ps.parameter_ranges.size()):
        pr = ps.parameter_ranges.at(i)
        vals = [faiss.vector_to_array(pr.values)][0]
        parts.append(pr.name + ":" + ",".join("inf" if v == float("inf") else "%g" % v for v in vals))
    print(";".join(parts))
"#
    );
    let out = Command::new(&python)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(theirs.len(), DESCRIPTIONS.len());
    for ((s, a), b) in DESCRIPTIONS.iter().zip(&ours).zip(&theirs) {
        assert_eq!(a, b, "{s}: fathom's ranges, then faiss's");
    }
    PASSED
}

struct Data {
    d: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
    gt: Vec<i64>,
    gt_k: usize,
}

fn data() -> Data {
    let d = 16;
    let (xt, base, queries) = fathom_tests::get_dataset_2(d, 0, 20_000, 300);
    drop(xt);
    let gt_k = 10;
    let mut flat = IndexFlat::new_l2(d).unwrap();
    flat.add(&base).unwrap();
    let gt = flat.search(&queries, gt_k).unwrap().labels;
    Data {
        d,
        base,
        queries,
        gt,
        gt_k,
    }
}

fn built(data: &Data, s: &str) -> Box<dyn Index> {
    let mut index = index_factory(data.d, s, MetricType::L2).unwrap();
    index.train(&data.base).unwrap();
    index.add(&data.base).unwrap();
    index
}

/// 1-recall@1 computed by hand, independent of `Criterion`.
fn recall_at_1(index: &dyn Index, data: &Data) -> f64 {
    let r = index.search(&data.queries, 1).unwrap();
    let nq = data.queries.len() / data.d;
    let hits = (0..nq)
        .filter(|&q| r.labels[q] == data.gt[q * data.gt_k])
        .count();
    hits as f64 / nq as f64
}

fn exhaustive_exploration_measures_each_setting_correctly() -> Outcome {
    let data = data();
    let mut index = built(&data, "IVF64,Flat");
    let crit = Criterion::one_recall_at(1, &data.gt, data.gt_k).unwrap();
    let mut space = ParameterSpace::new(&*index);
    space.n_experiments = 0;
    let mut events = Vec::new();
    let ops = space
        .explore(&mut *index, &data.queries, &crit, &mut |e| {
            events.push(e.clone())
        })
        .unwrap();
    assert_eq!(ops.all().len(), 6, "nprobe 1..32, every one measured");
    assert_eq!(events.len(), 6);
    for p in ops.all() {
        set_index_parameters(&mut *index, &p.key).unwrap();
        assert_eq!(
            p.perf,
            recall_at_1(&*index, &data),
            "{}: the criterion's value is the real recall",
            p.key
        );
    }
    let perfs: Vec<f64> = ops.all().iter().map(|p| p.perf).collect();
    assert!(perfs.windows(2).all(|w| w[0] <= w[1]), "{perfs:?}");
    assert!(perfs[5] > 0.9 && perfs[0] < perfs[5], "{perfs:?}");
    let front = ops.optimal();
    assert!(!front.is_empty());
    assert!(
        front
            .windows(2)
            .all(|w| w[0].perf < w[1].perf && w[0].t < w[1].t)
    );
    PASSED
}

fn pruned_exploration_of_nested_parameters() -> Outcome {
    let data = data();
    let mut index = built(&data, "IVF64,PQ8,RFlat");
    let crit = Criterion::r_recall_at(10, &data.gt, data.gt_k).unwrap();
    let mut space = ParameterSpace::new(&*index);
    // k_factor_rf × nprobe × ht = 7 × 6 × 17 combinations; keep it small.
    space.ranges[0].values.truncate(4);
    space.ranges[2].values = vec![16.0, 64.0];
    space.n_experiments = 30;
    let total = space.n_combinations();
    assert_eq!(total, 4 * 6 * 2);
    let mut measured = 0;
    let mut skipped = 0;
    let ops = space
        .explore(&mut *index, &data.queries, &crit, &mut |e| match e {
            ExploreEvent::Measured { .. } => measured += 1,
            ExploreEvent::Skipped { .. } => skipped += 1,
        })
        .unwrap();
    assert_eq!(measured + skipped, 30);
    assert_eq!(ops.all().len(), measured);
    // The cheapest and the most accurate settings come first.
    assert_eq!(ops.all()[0].cno, 0);
    assert_eq!(ops.all()[1].cno, total - 1);
    assert_eq!(ops.all()[1].key, "k_factor_rf=8,nprobe=32,ht=64");
    let best = ops.optimal().last().unwrap();
    assert!(best.perf > 0.5, "{best:?}");
    PASSED
}

fn tune_applies_a_setting_that_really_meets_the_goal() -> Outcome {
    let data = data();
    let crit = Criterion::one_recall_at(1, &data.gt, data.gt_k).unwrap();
    for s in ["IVF64,Flat", "HNSW16", "IDMap,PCA16,IVF64_HNSW16,Flat"] {
        let mut index = index_factory(data.d, s, MetricType::L2).unwrap();
        index.train(&data.base).unwrap();
        if s.starts_with("IDMap") {
            let ids: Vec<i64> = (0..(data.base.len() / data.d) as i64).collect();
            index.add_with_ids(&data.base, &ids).unwrap();
        } else {
            index.add(&data.base).unwrap();
        }
        let space = ParameterSpace::new(&*index);
        let report = tune(
            &mut *index,
            &data.queries,
            &crit,
            &space,
            TuneGoal::MinPerf(0.9),
            &mut |_| {},
        )
        .unwrap();
        assert!(report.goal_met, "{s}: {}", report.points);
        let chosen = report.chosen.unwrap();
        assert!(chosen.perf >= 0.9);
        // The index now searches with the chosen setting: its recall is the chosen one.
        assert_eq!(recall_at_1(&*index, &data), chosen.perf, "{s}");
        // An impossible time goal falls back to the fastest setting, and says so.
        let report = tune(
            &mut *index,
            &data.queries,
            &crit,
            &space,
            TuneGoal::MaxTimePerQuery(std::time::Duration::from_nanos(1)),
            &mut |_| {},
        )
        .unwrap();
        assert!(!report.goal_met);
        assert_eq!(
            report.chosen.unwrap().key,
            report.points.optimal()[0].key,
            "{s}"
        );
    }
    PASSED
}

fn bad_parameters_and_inputs_are_errors_that_name_the_problem() -> Outcome {
    let data = data();
    let mut index = built(&data, "PCA16,IVF64,PQ8,RFlat");
    for (settings, wants) in [
        ("nprob=3", "nprob"),
        ("nprobe=0", "nprobe"),
        ("nprobe=2.5", "nprobe"),
        ("k_factor_rf=0", "k_factor"),
        ("ht=-1", "ht"),
        ("quantizer_efSearch=16", "efSearch"),
        ("efSearch=16", "efSearch"),
        ("nprobe", "<name>=<number>"),
        ("nprobe=abc", "nprobe=abc"),
    ] {
        let err = set_index_parameters(&mut *index, settings)
            .unwrap_err()
            .to_string();
        assert!(err.contains(wants), "{settings}: {err}");
    }
    set_index_parameters(&mut *index, "nprobe=4 ht=24, k_factor_rf=2").unwrap();
    assert!(index.description().ends_with("RFlat"));

    let crit = Criterion::one_recall_at(1, &data.gt, data.gt_k).unwrap();
    let space = ParameterSpace::new(&*index);
    let err = space
        .explore(
            &mut *index,
            &data.queries[..data.d * 10],
            &crit,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("300"), "{err}");
    assert!(
        space
            .explore(&mut *index, &data.queries[..5], &crit, &mut |_| {})
            .is_err()
    );
    for goal in [
        TuneGoal::MinPerf(1.5),
        TuneGoal::MinPerf(f64::NAN),
        TuneGoal::MaxTimePerQuery(std::time::Duration::ZERO),
    ] {
        assert!(
            tune(&mut *index, &data.queries, &crit, &space, goal, &mut |_| {}).is_err(),
            "{goal:?}"
        );
    }
    assert!(space.set_index_parameters(&mut *index, usize::MAX).is_err());
    assert!(Criterion::r_recall_at(20, &data.gt, data.gt_k).is_err());
    PASSED
}

fathom_tests::harness::main!(
    parameter_ranges_match_faiss,
    exhaustive_exploration_measures_each_setting_correctly,
    pruned_exploration_of_nested_parameters,
    tune_applies_a_setting_that_really_meets_the_goal,
    bad_parameters_and_inputs_are_errors_that_name_the_problem,
);
