//! What every index over a flat array of codes shares: the code store (add, remove with
//! renumbering as Faiss's `IndexFlatCodes`, reset) and the exhaustive scan that turns a
//! per-query scorer into k-NN or range results.
//!
//! A scorer fills the *keys* (smaller is better; similarities negated) of a contiguous
//! range of codes; the scan cuts the codes into chunks, parallelises over queries when
//! there are enough of them and over chunks otherwise (one heap per worker, merged), and
//! applies the id selector only to candidates that would enter the heap.

use fathom_core::{Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchResult};
use fathom_invlists::SharedBytes;
use fathom_kernels::TopK;
use rayon::prelude::*;

/// Codes scanned per scorer call.
pub(crate) const CHUNK: usize = 1024;
/// Most queries scanned together over one chunk of codes.
const QUERY_GROUP: usize = 8;

/// `map_codes` and `codes_are_mapped` for an index keeping its codes in a `store:
/// CodeStore` field.
macro_rules! mapped_code_methods {
    () => {
        /// Serves the codes from `bytes[start..start + len]` (whole codes) without
        /// copying, as when an index file is memory-mapped: the index searches them in
        /// place and refuses every change to them. The index must be empty.
        pub fn map_codes(
            &mut self,
            bytes: fathom_invlists::SharedBytes,
            start: usize,
            len: usize,
        ) -> Result<()> {
            self.store.map(bytes, start, len)
        }
        /// Whether the codes are served read-only from a mapped buffer.
        pub fn codes_are_mapped(&self) -> bool {
            self.store.is_mapped()
        }
    };
}
pub(crate) use mapped_code_methods;

/// The bytes of a code store: its own, or a read-only range of a shared buffer (a
/// memory-mapped index file).
#[derive(Clone)]
pub(crate) enum CodeBytes {
    Owned(Vec<u8>),
    Shared {
        bytes: SharedBytes,
        start: usize,
        len: usize,
    },
}

impl Default for CodeBytes {
    fn default() -> Self {
        CodeBytes::Owned(Vec::new())
    }
}

impl std::ops::Deref for CodeBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            CodeBytes::Owned(v) => v,
            CodeBytes::Shared { bytes, start, len } => &(**bytes).as_ref()[*start..*start + *len],
        }
    }
}

impl std::fmt::Debug for CodeBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodeBytes::Owned(v) => write!(f, "Owned({} bytes)", v.len()),
            CodeBytes::Shared { start, len, .. } => write!(f, "Shared({len} bytes at {start})"),
        }
    }
}

impl PartialEq for CodeBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl CodeBytes {
    /// The owned bytes, to change; shared bytes are read-only.
    fn owned_mut(&mut self) -> Result<&mut Vec<u8>> {
        match self {
            CodeBytes::Owned(v) => Ok(v),
            CodeBytes::Shared { .. } => Err(Error::Unsupported(
                "the codes are read-only (memory-mapped from a file opened read-only); load \
                 the index with read_index to change it"
                    .into(),
            )),
        }
    }

    /// Empties the store (letting go of a shared buffer).
    pub fn clear(&mut self) {
        *self = CodeBytes::Owned(Vec::new());
    }
}

/// `n` codes of `code_size` bytes, row `i` having id `i`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CodeStore {
    pub code_size: usize,
    pub codes: CodeBytes,
}

impl CodeStore {
    pub fn new(code_size: usize) -> Self {
        CodeStore {
            code_size,
            codes: CodeBytes::default(),
        }
    }

    /// Serves the codes from `bytes[start..start + len]` without copying (read-only);
    /// the store must be empty.
    pub fn map(&mut self, bytes: SharedBytes, start: usize, len: usize) -> Result<()> {
        if !self.codes.is_empty() {
            return Err(Error::invalid(
                "codes can only be mapped into an empty index",
            ));
        }
        let total = (*bytes).as_ref().len();
        if start.checked_add(len).is_none_or(|end| end > total)
            || (self.code_size > 0 && !len.is_multiple_of(self.code_size))
        {
            return Err(Error::invalid(format!(
                "{len} bytes of codes at {start} do not fit a {total}-byte buffer in whole \
                 {}-byte codes",
                self.code_size
            )));
        }
        self.codes = CodeBytes::Shared { bytes, start, len };
        Ok(())
    }

    /// Whether the codes are served read-only from a shared buffer.
    pub fn is_mapped(&self) -> bool {
        matches!(self.codes, CodeBytes::Shared { .. })
    }

    pub fn len(&self) -> usize {
        self.codes.len().checked_div(self.code_size).unwrap_or(0)
    }

    pub fn code(&self, i: usize) -> &[u8] {
        &self.codes[i * self.code_size..(i + 1) * self.code_size]
    }

    /// The code of `id`, or an error naming the valid range.
    pub fn checked_code(&self, id: Idx) -> Result<&[u8]> {
        if id < 0 || id as usize >= self.len() {
            return Err(Error::IdNotFound(id));
        }
        Ok(self.code(id as usize))
    }

    /// Appends whole codes (`what` names them in the error when the length is not a
    /// multiple of the code size).
    pub fn append(&mut self, what: &str, codes: &[u8]) -> Result<()> {
        let n = fathom_core::check::codes(what, codes, self.code_size)?;
        self.append_with(n, |tail| {
            tail.copy_from_slice(codes);
            Ok(())
        })
    }

    /// Appends `n` codes written in place by `fill` (given exactly `n × code_size`
    /// zeroed bytes); on error the store is left as it was.
    pub fn append_with(
        &mut self,
        n: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let codes = self.codes.owned_mut()?;
        let old = codes.len();
        let extra = n * self.code_size;
        codes
            .try_reserve(extra)
            .map_err(|_| Error::invalid(format!("cannot allocate {extra} more bytes for codes")))?;
        codes.resize(old + extra, 0);
        let res = fill(&mut codes[old..]);
        if res.is_err() {
            codes.truncate(old);
        }
        res
    }

    /// Encodes the rows of `x` with `codec` straight into new rows of the store; on error
    /// nothing is added.
    pub fn add_vectors(&mut self, codec: &impl fathom_quant::Codec, x: &[f32]) -> Result<()> {
        let n = fathom_core::check::vectors("added", x, codec.dim())?;
        self.append_with(n, |tail| codec.compute_codes_into(x, tail))
    }

    /// Removes the selected rows; later rows move up (ids are renumbered, as Faiss's
    /// flat indexes do).
    pub fn remove(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let (n, cs) = (self.len(), self.code_size);
        let codes = self.codes.owned_mut()?;
        let mut kept = 0;
        for i in 0..n {
            if !selector.is_member(i as Idx) {
                if kept != i {
                    codes.copy_within(i * cs..(i + 1) * cs, kept * cs);
                }
                kept += 1;
            }
        }
        codes.truncate(kept * cs);
        Ok(n - kept)
    }
}

/// Scorers by Hamming distance, for binary codes and LSH: query `q`'s code is
/// `qcodes[q·cs..(q+1)·cs]`, the keys of a run of `codes` are bit counts.
pub(crate) fn hamming_scorer<'a>(
    qcodes: &'a [u8],
    codes: &'a [u8],
    cs: usize,
) -> impl Fn(usize) -> crate::CodeScorer<'a> + Sync + 'a {
    move |q| {
        let qc = &qcodes[q * cs..(q + 1) * cs];
        Box::new(move |start: usize, out: &mut [f32]| {
            fathom_kernels::codes::hamming::distances_f32(
                qc,
                &codes[start * cs..(start + out.len()) * cs],
                out,
            );
        })
    }
}

/// Pushes the keys of codes `start..start + keys.len()` into `top`.
#[inline]
fn push_keys(top: &mut TopK, start: usize, keys: &[f32], selector: Option<&dyn IdSelector>) {
    top.push_run(start as Idx, keys, |id| {
        selector.is_none_or(|s| s.is_member(id))
    });
}

/// The `k` smallest keys of each of `nq` queries over `n` codes. `scorer(q)` returns the
/// scorer of query `q`: `(start, keys)` fills `keys` for codes `start..start+keys.len()`.
pub(crate) fn knn_scan<F, S>(
    nq: usize,
    n: usize,
    k: usize,
    selector: Option<&dyn IdSelector>,
    scorer: F,
) -> Vec<TopK>
where
    F: Fn(usize) -> S + Sync,
    S: FnMut(usize, &mut [f32]) + Send,
{
    let threads = rayon::current_num_threads();
    if nq >= threads || n <= CHUNK {
        // Queries in groups: each chunk of codes is scored for every query of the group
        // while it is in cache, so memory traffic is divided by the group size.
        let group = (nq / threads).clamp(1, QUERY_GROUP);
        (0..nq.div_ceil(group))
            .into_par_iter()
            .flat_map_iter(|g| {
                let qs = g * group..((g + 1) * group).min(nq);
                let mut tops: Vec<TopK> = qs.clone().map(|_| TopK::new(k)).collect();
                let mut scorers: Vec<S> = qs.map(&scorer).collect();
                let mut keys = vec![0.0f32; CHUNK.min(n)];
                for start in (0..n).step_by(CHUNK) {
                    let len = CHUNK.min(n - start);
                    for (top, score) in tops.iter_mut().zip(&mut scorers) {
                        score(start, &mut keys[..len]);
                        push_keys(top, start, &keys[..len], selector);
                    }
                }
                tops
            })
            .collect()
    } else {
        (0..nq)
            .map(|q| {
                (0..n.div_ceil(CHUNK))
                    .into_par_iter()
                    .fold(
                        || (TopK::new(k), scorer(q), vec![0.0f32; CHUNK]),
                        |(mut top, mut score, mut keys), c| {
                            let start = c * CHUNK;
                            let len = CHUNK.min(n - start);
                            score(start, &mut keys[..len]);
                            push_keys(&mut top, start, &keys[..len], selector);
                            (top, score, keys)
                        },
                    )
                    .map(|(top, _, _)| top)
                    .reduce(
                        || TopK::new(k),
                        |mut a, b| {
                            a.merge(&b);
                            a
                        },
                    )
            })
            .collect()
    }
}

/// Turns key heaps into a result: distances are the keys, negated for similarities,
/// after `map` (e.g. de-quantization).
pub(crate) fn to_result(
    tops: Vec<TopK>,
    k: usize,
    metric: MetricType,
    map: impl Fn(usize, f32) -> f32,
) -> Result<SearchResult> {
    let mut res = SearchResult::try_empty(tops.len(), k, metric)?;
    let sign = key_sign(metric);
    for (q, top) in tops.into_iter().enumerate() {
        for (j, (key, id)) in top.into_sorted().into_iter().enumerate() {
            res.distances[q * k + j] = sign * map(q, key);
            res.labels[q * k + j] = id;
        }
    }
    Ok(res)
}

/// Every code with key `< radius_key` for each query (selector applied), parallel over
/// queries.
pub(crate) fn range_scan<F, S>(
    nq: usize,
    n: usize,
    radius_key: f32,
    metric: MetricType,
    selector: Option<&dyn IdSelector>,
    scorer: F,
) -> RangeSearchResult
where
    F: Fn(usize) -> S + Sync,
    S: FnMut(usize, &mut [f32]) + Send,
{
    let sign = key_sign(metric);
    let lists: Vec<(Vec<Idx>, Vec<f32>)> = (0..nq)
        .into_par_iter()
        .map(|q| {
            let mut score = scorer(q);
            let mut keys = vec![0.0f32; CHUNK.min(n)];
            let (mut ids, mut dis) = (Vec::new(), Vec::new());
            for start in (0..n).step_by(CHUNK) {
                let len = CHUNK.min(n - start);
                score(start, &mut keys[..len]);
                for (j, &key) in keys[..len].iter().enumerate() {
                    let id = (start + j) as Idx;
                    if key < radius_key && selector.is_none_or(|s| s.is_member(id)) {
                        ids.push(id);
                        dis.push(sign * key);
                    }
                }
            }
            (ids, dis)
        })
        .collect();
    RangeSearchResult::from_lists(lists)
}

/// Keys are "smaller is better": `−1` turns similarities into keys and back, `1` leaves
/// distances as they are.
pub(crate) fn key_sign(metric: MetricType) -> f32 {
    if metric.is_similarity() { -1.0 } else { 1.0 }
}

/// The key a radius corresponds to (`radius` for distances, `−radius` for similarities).
pub(crate) fn radius_key(metric: MetricType, radius: f32) -> f32 {
    key_sign(metric) * radius
}
