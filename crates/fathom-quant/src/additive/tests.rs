//! Tests shared by the additive quantizers.

use super::*;

fn data(n: usize, d: usize, seed: u32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n * d)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn mse(rq: &AdditiveQuantizer, x: &[f32]) -> f64 {
    let d = rq.d();
    let cs = rq.code_size();
    let mut codes = vec![0u8; x.len() / d * cs];
    rq.encode(x, &mut codes).unwrap();
    let mut y = vec![0.0f32; d];
    let mut err = 0.0f64;
    for (xi, c) in x.chunks(d).zip(codes.chunks(cs)) {
        rq.decode(c, &mut y);
        err += xi
            .iter()
            .zip(&y)
            .map(|(a, b)| ((a - b) * (a - b)) as f64)
            .sum::<f64>();
    }
    err / (x.len() / d) as f64
}

#[test]
fn more_levels_and_wider_beams_code_better() {
    let (d, n) = (16, 3000);
    let x = data(n, d, 5);
    let mut errs = Vec::new();
    for (levels, tt) in [(1, 1), (2, 1), (4, 1), (4, 0)] {
        let mut rq =
            AdditiveQuantizer::residual(d, vec![5; levels], AqSearchType::Decompress).unwrap();
        if let AqKind::Residual(p) = rq.kind_mut() {
            p.train_type = tt;
        }
        rq.train(&x).unwrap();
        errs.push(mse(&rq, &x));
        if levels == 4 && tt == 1 {
            // The same codebooks searched with a narrower beam code worse.
            rq.set_max_beam_size(1);
            let narrow = mse(&rq, &x);
            assert!(narrow > errs[2], "beam 1 {narrow} vs beam 5 {}", errs[2]);
        }
    }
    assert!(
        errs[1] < errs[0] && errs[2] < errs[1] && errs[3] < errs[1],
        "{errs:?}"
    );
}

#[test]
fn norms_and_tables_give_the_decoded_distances() {
    let (d, n) = (12, 2000);
    let x = data(n, d, 9);
    let q = data(3, d, 11);
    for st in [
        AqSearchType::NormFloat,
        AqSearchType::NormQint8,
        AqSearchType::NormQint4,
    ] {
        let mut rq = AdditiveQuantizer::residual(d, vec![4, 4, 4], st).unwrap();
        rq.train(&x).unwrap();
        let cs = rq.code_size();
        let mut codes = vec![0u8; 50 * cs];
        rq.encode(&x[..50 * d], &mut codes).unwrap();
        let mut y = vec![0.0f32; d];
        for qi in q.chunks(d) {
            let lut = rq.compute_lut(qi);
            let qn: f32 = qi.iter().map(|v| v * v).sum();
            for c in codes.chunks(cs) {
                rq.decode(c, &mut y);
                let exact: f32 = qi.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
                let est = qn + rq.lut_score(c, &lut, MetricType::L2);
                let tol = match st {
                    AqSearchType::NormFloat => 1e-4,
                    AqSearchType::NormQint8 => 0.02,
                    _ => 0.3,
                };
                assert!(
                    (est - exact).abs() <= tol * exact.max(1.0),
                    "{st:?}: {est} vs {exact}"
                );
                let ip: f32 = qi.iter().zip(&y).map(|(a, b)| a * b).sum();
                assert!((rq.lut_score(c, &lut, MetricType::InnerProduct) - ip).abs() < 1e-4);
            }
        }
    }
    assert!(AdditiveQuantizer::residual(d, vec![4], AqSearchType::NormFromLut).is_err());
    assert!(AdditiveQuantizer::residual(d, vec![17], AqSearchType::Decompress).is_err());
    assert!(AdditiveQuantizer::residual(d, vec![], AqSearchType::Decompress).is_err());
}

#[test]
fn local_search_codes_better_than_random_and_than_residual_of_same_size() {
    let (d, n) = (16, 2000);
    let x = data(n, d, 21);
    let mut lsq = AdditiveQuantizer::local_search(d, 4, 4, AqSearchType::Decompress).unwrap();
    if let AqKind::LocalSearch(p) = lsq.kind_mut() {
        p.train_iters = 10;
    }
    lsq.train(&x).unwrap();
    let e_lsq = mse(&lsq, &x);
    let mut rq = AdditiveQuantizer::residual(d, vec![4; 4], AqSearchType::Decompress).unwrap();
    rq.train(&x).unwrap();
    let e_rq = mse(&rq, &x);
    // The data's own energy: what coding everything as zero would cost.
    let e0 = x.iter().map(|v| (v * v) as f64).sum::<f64>() / n as f64;
    assert!(e_lsq < 0.8 * e0, "LSQ {e_lsq} vs zero code {e0}");
    // LSQ's joint search is at least about as good as the greedy residual one.
    assert!(e_lsq < 1.05 * e_rq, "LSQ {e_lsq} vs RQ {e_rq}");
    // More local search never codes worse on average.
    if let AqKind::LocalSearch(p) = lsq.kind_mut() {
        p.encode_ils_iters = 1;
    }
    assert!(mse(&lsq, &x) >= e_lsq * 0.999);
    assert!(AdditiveQuantizer::local_search(d, 64, 12, AqSearchType::Decompress).is_err());
}

#[test]
fn product_quantizers_code_each_split_with_its_own_part() {
    let (d, n) = (12, 2000);
    let x = data(n, d, 33);
    for mut pq in [
        AdditiveQuantizer::product_residual(d, 3, 2, 4, AqSearchType::NormFloat).unwrap(),
        AdditiveQuantizer::product_local_search(d, 3, 2, 4, AqSearchType::NormFloat).unwrap(),
    ] {
        if let AqKind::Product(subs) = pq.kind_mut() {
            for s in subs {
                if let AqKind::LocalSearch(p) = s.kind_mut() {
                    p.train_iters = 5;
                }
            }
        }
        assert_eq!(pq.m(), 6);
        pq.train(&x).unwrap();
        assert_eq!(pq.codebook_len(), 6 * 16 * 4);
        // The product's code is its parts' codes side by side.
        let AqKind::Product(subs) = pq.kind() else {
            panic!()
        };
        let mut code = vec![0u8; pq.code_size()];
        pq.encode(&x[..d], &mut code).unwrap();
        let mut y = vec![0.0; d];
        pq.decode(&code, &mut y);
        for (s, sub) in subs.iter().enumerate() {
            let mut sc = vec![0u8; sub.code_size()];
            sub.encode(&x[s * 4..s * 4 + 4], &mut sc).unwrap();
            let mut sy = vec![0.0; 4];
            sub.decode(&sc, &mut sy);
            assert_eq!(&y[s * 4..s * 4 + 4], &sy[..]);
        }
        // Tables over split codebooks give the decoded inner products and distances.
        let q = data(1, d, 5);
        let lut = pq.compute_lut(&q);
        let ip: f32 = q.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert!((pq.lut_score(&code, &lut, MetricType::InnerProduct) - ip).abs() < 1e-4);
        let l2: f32 = q.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
        let qn: f32 = q.iter().map(|v| v * v).sum();
        assert!((qn + pq.lut_score(&code, &lut, MetricType::L2) - l2).abs() < 1e-3);
    }
    assert!(AdditiveQuantizer::product_residual(10, 3, 2, 4, AqSearchType::Decompress).is_err());
}

#[test]
fn table_coded_norms_track_the_exact_norms() {
    let (d, n) = (8, 3000);
    let x = data(n, d, 41);
    let q = data(1, d, 43);
    let qn: f32 = q.iter().map(|v| v * v).sum();
    for (st, tol) in [
        (AqSearchType::NormQint8, 0.002),
        (AqSearchType::NormCqint8, 0.002),
        (AqSearchType::NormQint4, 0.03),
        (AqSearchType::NormCqint4, 0.03),
        (AqSearchType::NormRq2x4, 0.03),
        (AqSearchType::NormLsq2x4, 0.03),
    ] {
        let mut rq = AdditiveQuantizer::residual(d, vec![6, 6], st).unwrap();
        rq.train(&x).unwrap();
        assert_eq!(rq.code_size(), (12 + st.norm_bits()).div_ceil(8));
        let lut = rq.compute_lut(&q);
        let (lo, hi) = rq.norm_range();
        let mut code = vec![0u8; rq.code_size()];
        let mut y = vec![0.0f32; d];
        let mut total = 0.0f32;
        for xi in x.chunks(d).take(1000) {
            rq.encode(xi, &mut code).unwrap();
            rq.decode(&code, &mut y);
            let exact: f32 = q.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
            let est = qn + rq.lut_score(&code, &lut, MetricType::L2);
            total += (est - exact).abs() / (hi - lo);
        }
        // Table-coded norms minimise the mean error (not the worst one).
        let mean = total / 1000.0;
        assert!(mean < tol, "{st:?}: mean error {mean} of the norm range");
    }
}
