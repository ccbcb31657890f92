//! The norm stored after an additive code for L2 search (Faiss's `encode_norm`,
//! `decode_norm`, `train_norm`): the squared norm of the reconstruction as a float,
//! quantized uniformly between the training extremes (`qint8`/`qint4`), or as the index
//! of the nearest entry of a table of norms trained on the training norms — 1-D k-means
//! (`cqint8`/`cqint4`) or the 256 sums of a 2×4-bit 1-D LSQ or RQ (`lsq2x4`/`rq2x4`).

use fathom_core::{Error, Result};

use super::{AdditiveQuantizer, AqSearchType};

impl AdditiveQuantizer {
    /// Learns the norm encoding from the training reconstructions' squared norms.
    pub(super) fn train_norm(&mut self, norms: &[f32]) -> Result<()> {
        self.norm_min = norms.iter().copied().fold(f32::INFINITY, f32::min);
        self.norm_max = norms.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.norm_table.clear();
        self.norm_tabs.clear();
        match self.search_type {
            AqSearchType::NormCqint8 => self.norm_table = kmeans_1d(norms, 256),
            AqSearchType::NormCqint4 => self.norm_table = kmeans_1d(norms, 16),
            AqSearchType::NormLsq2x4 | AqSearchType::NormRq2x4 => {
                let mut aq = if self.search_type == AqSearchType::NormLsq2x4 {
                    AdditiveQuantizer::local_search(1, 2, 4, AqSearchType::Decompress)?
                } else {
                    AdditiveQuantizer::residual(1, vec![4, 4], AqSearchType::Decompress)?
                };
                aq.train(norms)?;
                self.norm_tabs = aq.codebooks;
                self.norm_table = pair_sums(&self.norm_tabs);
            }
            _ => {}
        }
        Ok(())
    }

    /// The norm field of a code.
    pub(super) fn encode_norm(&self, norm: f32) -> u64 {
        let (lo, hi) = (self.norm_min, self.norm_max);
        let uniform = |levels: f32, max: i64| -> u64 {
            let v = ((norm - lo) / (hi - lo) * levels).floor();
            (if v.is_nan() {
                0
            } else {
                (v as i64).clamp(0, max)
            }) as u64
        };
        match self.search_type {
            AqSearchType::NormFloat => norm.to_bits() as u64,
            AqSearchType::NormQint8 => uniform(256.0, 255),
            AqSearchType::NormQint4 => uniform(16.0, 15),
            st if st.has_norm_table() => nearest(&self.norm_table, norm) as u64,
            _ => 0,
        }
    }

    /// The squared norm a code's norm field stands for.
    pub(super) fn decode_norm(&self, v: u64) -> f32 {
        let (lo, hi) = (self.norm_min as f64, self.norm_max as f64);
        match self.search_type {
            AqSearchType::NormFloat => f32::from_bits(v as u32),
            AqSearchType::NormQint8 => ((v as f64 + 0.5) / 256.0 * (hi - lo) + lo) as f32,
            AqSearchType::NormQint4 => ((v as f64 + 0.5) / 16.0 * (hi - lo) + lo) as f32,
            st if st.has_norm_table() => self.norm_table.get(v as usize).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

/// Checks a norm table and 2×4-bit codebooks read from a file against the search type.
pub(super) fn check_state(
    st: AqSearchType,
    table: &[f32],
    tabs: &[f32],
    trained: bool,
) -> Result<()> {
    let want_table = match st {
        AqSearchType::NormCqint8 | AqSearchType::NormLsq2x4 | AqSearchType::NormRq2x4 => 256,
        AqSearchType::NormCqint4 => 16,
        _ => 0,
    };
    let want_tabs = if matches!(st, AqSearchType::NormLsq2x4 | AqSearchType::NormRq2x4) {
        32
    } else {
        0
    };
    // An untrained quantizer has no tables yet.
    let ok = (table.len() == want_table || (!trained && table.is_empty()))
        && (tabs.len() == want_tabs || (!trained && tabs.is_empty()));
    if !ok {
        return Err(Error::invalid(format!(
            "norm encoding {}: a table of {} norms and {} codebook floats; expected {want_table} \
             and {want_tabs}",
            st.factory_suffix(),
            table.len(),
            tabs.len()
        )));
    }
    Ok(())
}

/// The 256 norms of a 2×4-bit code: entry `16·i + j` is `c0[j] + c1[i]` (Faiss's order).
fn pair_sums(tabs: &[f32]) -> Vec<f32> {
    (0..256).map(|t| tabs[t % 16] + tabs[16 + t / 16]).collect()
}

/// The index of the entry of `table` nearest to `v` (the first of equals).
fn nearest(table: &[f32], v: f32) -> usize {
    let mut best = (f32::INFINITY, 0);
    for (i, &t) in table.iter().enumerate() {
        let e = (t - v).abs();
        if e < best.0 {
            best = (e, i);
        }
    }
    best.1
}

/// `k` centroids of 1-D data by Lloyd's iterations on the sorted values, started from
/// evenly spaced order statistics; ascending. Each iteration costs `k log n` with
/// prefix sums. Fewer distinct values than `k` repeat the last centroid.
fn kmeans_1d(values: &[f32], k: usize) -> Vec<f32> {
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mut prefix = vec![0.0f64; n + 1];
    for (i, &x) in v.iter().enumerate() {
        prefix[i + 1] = prefix[i] + x;
    }
    let mut distinct = v.clone();
    distinct.dedup();
    let mut c: Vec<f64> = if distinct.len() <= k {
        // As many centroids as values: each value is its own, with no error.
        distinct
    } else {
        let mut c: Vec<f64> = (0..k)
            .map(|j| v[((2 * j + 1) * n / (2 * k)).min(n - 1)])
            .collect();
        c.dedup();
        c
    };
    for _ in 0..100 {
        let mut next = Vec::with_capacity(c.len());
        let mut lo = 0usize;
        for j in 0..c.len() {
            let hi = if j + 1 < c.len() {
                let mid = (c[j] + c[j + 1]) / 2.0;
                v.partition_point(|&x| x <= mid)
            } else {
                n
            };
            if hi > lo {
                next.push((prefix[hi] - prefix[lo]) / (hi - lo) as f64);
            }
            lo = hi;
        }
        next.dedup();
        if next == c {
            break;
        }
        c = next;
    }
    let mut out: Vec<f32> = c.iter().map(|&x| x as f32).collect();
    let last = out.last().copied().unwrap_or(0.0);
    out.resize(k, last);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dimensional_kmeans_finds_separated_groups() {
        let mut x = Vec::new();
        for (c, n) in [(1.0f32, 50), (5.0, 30), (9.0, 20)] {
            x.extend((0..n).map(|i| c + (i % 5) as f32 * 0.01));
        }
        let cs = kmeans_1d(&x, 3);
        for (got, want) in cs.iter().zip([1.02f32, 5.02, 9.02]) {
            assert!((got - want).abs() < 1e-4, "{cs:?}");
        }
        // Fewer distinct values than centroids.
        assert_eq!(kmeans_1d(&[2.0, 2.0, 3.0], 4), vec![2.0, 3.0, 3.0, 3.0]);
        assert_eq!(nearest(&cs, 5.5), 1);
    }
}
