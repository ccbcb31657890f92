//! The inverted-file binary index (Faiss's `IndexBinaryIVF`, factory `BIVF<nlist>` and
//! `BIVF<nlist>_HNSW<M>`): a binary coarse quantizer sends each vector to the list of
//! its nearest centroid; a search scans the `nprobe` lists nearest the query.
//!
//! Training runs k-means on the vectors read as `±1` floats (bit `i` of byte `j` is
//! coordinate `8j + i`), then binarises the centroids by sign — as Faiss does, on the
//! same seeded subsample, so that both train the same quantizer from the same data.

use fathom_core::{Error, IdSelector, Idx, RangeSearchResult, Result, SearchParams, SearchResult};
use fathom_invlists::{ArrayInvertedLists, DirectMap, DirectMapType, InvertedLists};
use fathom_kernels::codes::hamming;
use fathom_linalg::{ClusteringParameters, Kmeans};

use super::{
    BinaryIndexView, IndexBinary, Sink, check_queries, check_radius, knn_over_runs, range_over_runs,
};

/// Bits to `±1` floats: coordinate `8j + i` is `+1` when bit `i` of byte `j` is set
/// (Faiss's `binary_to_real`).
pub fn binary_to_real(codes: &[u8]) -> Vec<f32> {
    codes
        .iter()
        .flat_map(|&b| (0..8).map(move |i| if (b >> i) & 1 == 1 { 1.0 } else { -1.0 }))
        .collect()
}

/// Floats to bits by sign: bit `i` of byte `j` is set when coordinate `8j + i` is `> 0`
/// (Faiss's `real_to_binary`). `x.len()` must be a multiple of 8.
pub fn real_to_binary(x: &[f32]) -> Vec<u8> {
    x.chunks_exact(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &v)| b | (u8::from(v > 0.0) << i))
        })
        .collect()
}

/// Binary vectors in inverted lists (Faiss's `IndexBinaryIVF`).
///
/// ```
/// use fathom_index::binary::{IndexBinary, IndexBinaryFlat, IndexBinaryIvf};
/// let xb: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
/// let mut index = IndexBinaryIvf::new(Box::new(IndexBinaryFlat::new(32).unwrap()), 4).unwrap();
/// index.train(&xb).unwrap();
/// index.add(&xb).unwrap();
/// index.nprobe = 4; // every list: exhaustive
/// let res = index.search(&xb[40..44], 1).unwrap();
/// assert_eq!(res.distances[0], 0.0);
/// ```
pub struct IndexBinaryIvf {
    d: usize,
    nlist: usize,
    quantizer: Box<dyn IndexBinary>,
    lists: Box<dyn InvertedLists>,
    direct_map: DirectMap,
    ntotal: usize,
    is_trained: bool,
    /// Lists scanned per query (1 by default, as Faiss).
    pub nprobe: usize,
    /// Stop scanning a query's lists once this many codes were compared (0: no limit).
    pub max_codes: usize,
    /// The k-means settings of [`IndexBinary::train`] (Faiss's defaults with 10
    /// iterations, as Faiss's binary IVF sets).
    pub cp: ClusteringParameters,
}

impl IndexBinaryIvf {
    /// An empty index of `nlist` lists over `quantizer` (which holds the centroids, or is
    /// empty and will be trained).
    pub fn new(quantizer: Box<dyn IndexBinary>, nlist: usize) -> Result<Self> {
        if nlist == 0 {
            return Err(Error::invalid(
                "a binary IVF index needs at least one list (nlist ≥ 1)",
            ));
        }
        let d = quantizer.d();
        let is_trained = quantizer.is_trained() && quantizer.ntotal() == nlist;
        Ok(IndexBinaryIvf {
            d,
            nlist,
            quantizer,
            lists: Box::new(ArrayInvertedLists::new(nlist, d / 8)),
            direct_map: DirectMap::default(),
            ntotal: 0,
            is_trained,
            nprobe: 1,
            max_codes: 0,
            cp: ClusteringParameters {
                niter: 10,
                ..Default::default()
            },
        })
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.nlist
    }
    /// The coarse quantizer (its vectors are the list centroids).
    pub fn quantizer(&self) -> &dyn IndexBinary {
        &*self.quantizer
    }
    /// The inverted lists.
    pub fn invlists(&self) -> &dyn InvertedLists {
        &*self.lists
    }
    /// The id → (list, offset) map, when one is kept.
    pub fn direct_map(&self) -> &DirectMap {
        &self.direct_map
    }

    /// Replaces the inverted lists (as read from a file); `ntotal` becomes their size and
    /// the direct map is rebuilt from them.
    pub fn replace_invlists(&mut self, lists: Box<dyn InvertedLists>) -> Result<()> {
        if lists.nlist() != self.nlist || lists.code_size() != self.code_size() {
            return Err(Error::invalid(format!(
                "inverted lists of {} lists of {}-byte codes for a binary IVF index of {} \
                 lists of {}-byte codes",
                lists.nlist(),
                lists.code_size(),
                self.nlist,
                self.code_size()
            )));
        }
        let ntotal = lists.compute_ntotal();
        let kind = self.direct_map.kind();
        let mut map = DirectMap::default();
        map.set_type(kind, &*lists, ntotal)?;
        self.lists = lists;
        self.ntotal = ntotal;
        self.direct_map = map;
        Ok(())
    }

    /// Keeps an id → location map of `kind` (needed by `reconstruct`), built from the
    /// lists.
    pub fn set_direct_map_type(&mut self, kind: DirectMapType) -> Result<()> {
        self.direct_map.set_type(kind, &*self.lists, self.ntotal)
    }

    /// Faiss's `make_direct_map(true/false)`: an array map, or none.
    pub fn make_direct_map(&mut self, on: bool) -> Result<()> {
        self.set_direct_map_type(if on {
            DirectMapType::Array
        } else {
            DirectMapType::NoMap
        })
    }

    fn check_writable(&self, what: &str) -> Result<()> {
        if self.lists.is_read_only() {
            return Err(Error::Unsupported(format!(
                "{what} a binary IVF index whose lists are read-only"
            )));
        }
        Ok(())
    }

    /// Adds vectors with `ids` (their positions when `None`).
    fn add_core(&mut self, x: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        let n = fathom_core::check::codes("added binary vectors", x, self.code_size())?;
        if let Some(ids) = ids {
            fathom_core::check::ids(ids, n)?;
        }
        if !self.is_trained {
            return Err(Error::NotTrained(format!("add to {}", self.description())));
        }
        self.check_writable("add to")?;
        self.direct_map.check_can_add(ids.is_some())?;
        if n == 0 {
            return Ok(());
        }
        let assign = self.quantizer.search(x, 1)?.labels;
        if let Some(i) = assign
            .iter()
            .position(|&l| l < 0 || l as usize >= self.nlist)
        {
            return Err(Error::invalid(format!(
                "the coarse quantizer assigned vector {i} to list {}; expected 0..{}",
                assign[i], self.nlist
            )));
        }
        let cs = self.code_size();
        for (i, (code, &list)) in x.chunks_exact(cs).zip(&assign).enumerate() {
            let id = ids.map_or((self.ntotal + i) as Idx, |ids| ids[i]);
            let offset = self.lists.add_entry(list as usize, id, code)?;
            self.direct_map.add_single(id, list as usize, offset);
        }
        self.ntotal += n;
        Ok(())
    }

    /// The lists to scan for each query, `nprobe` per query (`-1` where the quantizer
    /// has fewer).
    fn probes(&self, queries: &[u8], params: &SearchParams<'_>) -> Result<(usize, Vec<Idx>)> {
        let nprobe = params.nprobe.unwrap_or(self.nprobe);
        if nprobe == 0 {
            return Err(Error::invalid("nprobe must be at least 1"));
        }
        let nprobe = nprobe.min(self.nlist);
        Ok((nprobe, self.quantizer.search(queries, nprobe)?.labels))
    }

    /// Calls `visit(keys, ids)` for each probed list of one query, in probe order, until
    /// `max_codes` codes were scanned.
    fn scan_lists(&self, q: &[u8], probes: &[Idx], visit: Sink<'_>) {
        let mut keys = Vec::new();
        let mut scanned = 0;
        for (i, &list) in probes.iter().enumerate() {
            if list < 0 {
                continue;
            }
            // As the float IVF scan: the next list's start requested ahead.
            if let Some(&next) = probes.get(i + 1).filter(|&&n| n >= 0) {
                let codes = self.lists.codes(next as usize);
                fathom_kernels::prefetch_lines(codes, crate::ivf::PREFETCH_LINES);
            }
            let ids = self.lists.ids(list as usize);
            keys.resize(ids.len(), 0.0);
            hamming::distances_f32(q, self.lists.codes(list as usize), &mut keys);
            visit(&keys, ids);
            scanned += ids.len();
            if self.max_codes > 0 && scanned >= self.max_codes {
                break;
            }
        }
    }

    /// Moves every vector of `other` (same quantizer size and code size) into this
    /// index, adding `add_id` to their ids (Faiss's `merge_from`); `other` is left empty.
    pub fn merge_from(&mut self, other: &mut IndexBinaryIvf, add_id: Idx) -> Result<()> {
        if other.d != self.d || other.nlist != self.nlist {
            return Err(Error::invalid(format!(
                "cannot merge a binary IVF index of d = {}, nlist = {} into one of d = {}, \
                 nlist = {}",
                other.d, other.nlist, self.d, self.nlist
            )));
        }
        if self.direct_map.is_enabled() || other.direct_map.is_enabled() {
            return Err(Error::Unsupported(
                "merge_from with a direct map; drop it with make_direct_map(false) first".into(),
            ));
        }
        self.check_writable("merge into")?;
        other.check_writable("merge from")?;
        for l in 0..self.nlist {
            let ids: Vec<Idx> = other.lists.ids(l).iter().map(|&i| i + add_id).collect();
            self.lists.add_entries(l, &ids, other.lists.codes(l))?;
        }
        self.ntotal += other.ntotal;
        other.reset()
    }
}

impl IndexBinary for IndexBinaryIvf {
    fn d(&self) -> usize {
        self.d
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn is_trained(&self) -> bool {
        self.is_trained
    }
    fn train(&mut self, x: &[u8]) -> Result<()> {
        let cs = self.code_size();
        let n = fathom_core::check::codes("training set", x, cs)?;
        if self.quantizer.is_trained() && self.quantizer.ntotal() == self.nlist {
            self.is_trained = true;
            return Ok(());
        }
        if n < self.nlist {
            return Err(Error::invalid(format!(
                "training {} lists needs at least {} vectors; got {n}",
                self.nlist, self.nlist
            )));
        }
        // Subsample the codes first (the same rows as Faiss's `train_encoded`), so only
        // what k-means uses is expanded to floats.
        let max = self.nlist.saturating_mul(self.cp.max_points_per_centroid);
        let sample = fathom_linalg::sample::subsample(x, cs, max, self.cp.seed);
        let xf = binary_to_real(sample.as_deref().unwrap_or(x));
        let mut km = Kmeans::new(self.d, self.nlist)?.with_params(self.cp.clone());
        km.train(&xf)?;
        let centroids = real_to_binary(km.centroids());
        self.quantizer.reset()?;
        self.quantizer.train(&centroids)?;
        self.quantizer.add(&centroids)?;
        self.is_trained = true;
        Ok(())
    }
    fn add(&mut self, x: &[u8]) -> Result<()> {
        self.add_core(x, None)
    }
    fn add_with_ids(&mut self, x: &[u8], ids: &[Idx]) -> Result<()> {
        self.add_core(x, Some(ids))
    }
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        fathom_core::check::k(k)?;
        check_queries(self, queries)?;
        let (nprobe, probes) = self.probes(queries, params)?;
        knn_over_runs(queries, self.code_size(), k, params, |qi, q, sink| {
            self.scan_lists(q, &probes[qi * nprobe..(qi + 1) * nprobe], sink)
        })
    }
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        check_radius(radius)?;
        let (nprobe, probes) = self.probes(queries, params)?;
        range_over_runs(queries, self.code_size(), radius, params, |qi, q, sink| {
            self.scan_lists(q, &probes[qi * nprobe..(qi + 1) * nprobe], sink)
        })
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>> {
        let (list, offset) = self.direct_map.get(id)?;
        Ok(self.lists.code(list, offset).into_owned())
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.check_writable("remove from")?;
        if self.direct_map.kind() == DirectMapType::Array {
            return Err(Error::Unsupported(
                "remove_ids with an array direct map (ids would stop being 0..ntotal); use \
                 the hashtable map"
                    .into(),
            ));
        }
        let cs = self.code_size();
        let mut removed = 0;
        for l in 0..self.nlist {
            let ids = self.lists.ids(l);
            if !ids.iter().any(|&id| selector.is_member(id)) {
                continue;
            }
            let codes = self.lists.codes(l);
            let (mut kept_ids, mut kept_codes) = (Vec::new(), Vec::new());
            for (o, &id) in ids.iter().enumerate() {
                if !selector.is_member(id) {
                    kept_ids.push(id);
                    kept_codes.extend_from_slice(&codes[o * cs..(o + 1) * cs]);
                }
            }
            let gone = ids.len() - kept_ids.len();
            // Both calls only fail on read-only lists, checked above.
            self.lists.update_entries(l, 0, &kept_ids, &kept_codes)?;
            self.lists.resize(l, kept_ids.len())?;
            self.ntotal -= gone;
            removed += gone;
        }
        let kind = self.direct_map.kind();
        self.direct_map.set_type(kind, &*self.lists, self.ntotal)?;
        Ok(removed)
    }
    fn reset(&mut self) -> Result<()> {
        self.check_writable("reset")?;
        self.lists.reset()?;
        self.direct_map.clear();
        self.ntotal = 0;
        Ok(())
    }
    fn description(&self) -> String {
        match self.quantizer.view() {
            BinaryIndexView::Hnsw(h) => format!("BIVF{}_HNSW{}", self.nlist, h.hnsw().m()),
            _ => format!("BIVF{}", self.nlist),
        }
    }
    fn view(&self) -> BinaryIndexView<'_> {
        BinaryIndexView::Ivf(self)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        match name {
            "nprobe" => {
                self.nprobe = crate::param_values::positive(name, value)?;
                Ok(())
            }
            "max_codes" => {
                self.max_codes = crate::param_values::count(name, value)?;
                Ok(())
            }
            _ => Err(super::unknown_param(self, name, "nprobe, max_codes")),
        }
    }
    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "nprobe" => Some(self.nprobe as f64),
            "max_codes" => Some(self.max_codes as f64),
            _ => None,
        }
    }
}
