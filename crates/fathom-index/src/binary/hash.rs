//! Hash-table binary indexes (Faiss's `IndexBinaryHash`, factory `BHash<b>`, and
//! `IndexBinaryMultiHash`, factory `BHash<nhash>x<b>`): the first `b` bits of a vector
//! (or each of `nhash` consecutive `b`-bit fields) are a bucket key; a search visits the
//! buckets whose key is within `nflip` bit flips of the query's and compares the full
//! codes found there. Exact within that Hamming ball of the key; fast when `b` is large
//! enough for buckets to be small.

use std::collections::HashMap;

use fathom_core::{Error, IdSelector, Idx, RangeSearchResult, Result, SearchParams, SearchResult};
use fathom_kernels::codes::hamming;
use fathom_quant::bits::BitReader;

use super::{
    BinaryIndexView, IndexBinary, IndexBinaryFlat, Sink, check_queries, knn_over_runs,
    range_over_runs,
};

/// Buckets by key, in the order keys first appeared — so that a file read and written
/// back comes out byte for byte (Faiss writes its hash map's order).
#[derive(Debug, Clone, Default)]
pub(crate) struct Buckets<T> {
    keys: Vec<u64>,
    items: Vec<T>,
    slot: HashMap<u64, usize>,
}

impl<T: Default> Buckets<T> {
    fn entry(&mut self, key: u64) -> &mut T {
        let i = *self.slot.entry(key).or_insert_with(|| {
            self.keys.push(key);
            self.items.push(T::default());
            self.items.len() - 1
        });
        &mut self.items[i]
    }

    /// Adds a bucket read from a file; a key seen before is an error.
    fn insert_new(&mut self, key: u64, item: T) -> Result<()> {
        if self.slot.insert(key, self.items.len()).is_some() {
            return Err(Error::invalid(format!(
                "hash bucket {key} appears twice; expected each key once"
            )));
        }
        self.keys.push(key);
        self.items.push(item);
        Ok(())
    }

    fn get(&self, key: u64) -> Option<&T> {
        self.slot.get(&key).map(|&i| &self.items[i])
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.keys.iter().copied().zip(&self.items)
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn clear(&mut self) {
        *self = Buckets {
            keys: Vec::new(),
            items: Vec::new(),
            slot: HashMap::new(),
        };
    }
}

/// Checks a key width `b` for `d`-bit vectors and `nhash` keys each.
fn check_key_bits(d: usize, nhash: usize, b: usize) -> Result<()> {
    if b == 0 || b > 64 || nhash == 0 || nhash.saturating_mul(b) > d {
        return Err(Error::invalid(format!(
            "{nhash} hash key(s) of b = {b} bits for {d}-bit vectors: expected 1 ≤ b ≤ 64 and \
             nhash × b ≤ d"
        )));
    }
    Ok(())
}

/// The `nhash` successive `b`-bit keys at the start of `code`.
fn keys_of(code: &[u8], nhash: usize, b: usize) -> impl Iterator<Item = u64> + '_ {
    let mut r = BitReader::new(code);
    // `check_key_bits` guarantees the fields fit in the code.
    (0..nhash).map(move |_| r.read(b).unwrap_or(0))
}

/// Every `b`-bit mask with at most `nflip` bits set, fewest first (the keys of a
/// Hamming ball are `key ^ mask`).
fn flip_masks(b: usize, nflip: usize) -> Vec<u64> {
    let mut out = vec![0u64];
    // Masks with r bits set from those with r − 1, adding a bit above the highest one:
    // each mask is produced once.
    let mut level = vec![0u64];
    for _ in 0..nflip.min(b) {
        let mut next = Vec::new();
        for &m in &level {
            let from = if m == 0 {
                0
            } else {
                64 - m.leading_zeros() as usize
            };
            for bit in from..b {
                next.push(m | (1u64 << bit));
            }
        }
        out.extend_from_slice(&next);
        level = next;
    }
    out
}

/// The `nflip` a hash index's `set_param(name, value)` asks for (the only parameter
/// these indexes have), checked against the key width `b`.
fn nflip_param(index: &dyn IndexBinary, b: usize, name: &str, value: f64) -> Result<usize> {
    if name != "nflip" {
        return Err(super::unknown_param(index, name, "nflip"));
    }
    let v = crate::param_values::count(name, value)?;
    check_flips(b, v)?;
    Ok(v)
}

/// The masks of the Hamming ball a search visits, after checking it is not too large.
fn ball_masks(b: usize, nflip: usize) -> Result<Vec<u64>> {
    check_flips(b, nflip)?;
    Ok(flip_masks(b, nflip))
}

/// Most masks a search may enumerate per key, so that a large `nflip` is an error
/// rather than a search that never ends.
const MAX_FLIP_MASKS: u128 = 1 << 24;

fn check_flips(b: usize, nflip: usize) -> Result<()> {
    let mut total: u128 = 0;
    let mut c: u128 = 1;
    for r in 0..=nflip.min(b) {
        total += c;
        c = c * (b - r) as u128 / (r + 1) as u128;
    }
    if total > MAX_FLIP_MASKS {
        return Err(Error::invalid(format!(
            "nflip = {nflip} on {b}-bit keys visits {total} buckets per key; at most \
             {MAX_FLIP_MASKS} are allowed"
        )));
    }
    Ok(())
}

/// One bucket of an [`IndexBinaryHash`]: ids and their codes.
#[derive(Debug, Clone, Default)]
pub struct HashBucket {
    /// Ids of the vectors in the bucket.
    pub ids: Vec<Idx>,
    /// Their codes, `ids.len() × code_size` bytes.
    pub codes: Vec<u8>,
}

/// Binary vectors bucketed by their first `b` bits (Faiss's `IndexBinaryHash`).
///
/// ```
/// use fathom_index::binary::{IndexBinary, IndexBinaryHash};
/// let mut index = IndexBinaryHash::new(16, 8).unwrap();
/// index.add(&[0x0f, 0x00, 0x0e, 0xff, 0xf0, 0x00]).unwrap();
/// let res = index.search(&[0x0f, 0x01], 3).unwrap();
/// // nflip = 0: only the bucket of key 0x0f is visited.
/// assert_eq!((res.labels[0], res.distances[0], res.labels[1]), (0, 1.0, -1));
/// index.nflip = 1; // also keys one bit away: 0x0e
/// let res = index.search(&[0x0f, 0x01], 3).unwrap();
/// assert_eq!(&res.labels[..2], &[0, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct IndexBinaryHash {
    d: usize,
    b: usize,
    /// Bits of the key that may differ from the query's in the buckets visited (0).
    pub nflip: usize,
    buckets: Buckets<HashBucket>,
    ntotal: usize,
}

impl IndexBinaryHash {
    /// An empty index of `d`-bit vectors keyed by their first `b` bits (`1 ≤ b ≤ 64`).
    pub fn new(d: usize, b: usize) -> Result<Self> {
        IndexBinaryFlat::new(d)?;
        check_key_bits(d, 1, b)?;
        Ok(IndexBinaryHash {
            d,
            b,
            nflip: 0,
            buckets: Buckets::default(),
            ntotal: 0,
        })
    }

    /// An index from its buckets `(key, bucket)` in file order (as read from a file).
    pub fn from_buckets(
        d: usize,
        b: usize,
        nflip: usize,
        buckets: impl IntoIterator<Item = (u64, HashBucket)>,
    ) -> Result<Self> {
        let mut index = IndexBinaryHash::new(d, b)?;
        index.nflip = nflip;
        let cs = index.code_size();
        for (key, bucket) in buckets {
            if bucket.codes.len() != bucket.ids.len() * cs {
                return Err(Error::invalid(format!(
                    "hash bucket {key} has {} code bytes for {} ids of {cs} bytes",
                    bucket.codes.len(),
                    bucket.ids.len()
                )));
            }
            if b < 64 && key >> b != 0 {
                return Err(Error::invalid(format!(
                    "hash bucket key {key} has more than b = {b} bits"
                )));
            }
            index.ntotal += bucket.ids.len();
            index.buckets.insert_new(key, bucket)?;
        }
        Ok(index)
    }

    /// Bits per key.
    pub fn b(&self) -> usize {
        self.b
    }
    /// The buckets `(key, bucket)` in the order their keys first appeared.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, &HashBucket)> {
        self.buckets.iter()
    }
    /// Number of non-empty buckets (Faiss's `hashtable_size`).
    pub fn hashtable_size(&self) -> usize {
        self.buckets.len()
    }

    /// Calls `visit(keys, ids)` for each bucket within `nflip` of the query's key.
    fn scan(&self, q: &[u8], masks: &[u64], visit: Sink<'_>) {
        let key = keys_of(q, 1, self.b).next().unwrap_or(0);
        let mut dis = Vec::new();
        for &m in masks {
            if let Some(bucket) = self.buckets.get(key ^ m) {
                dis.resize(bucket.ids.len(), 0.0);
                hamming::distances_f32(q, &bucket.codes, &mut dis);
                visit(&dis, &bucket.ids);
            }
        }
    }
}

impl IndexBinary for IndexBinaryHash {
    fn d(&self) -> usize {
        self.d
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn add(&mut self, x: &[u8]) -> Result<()> {
        let n = fathom_core::check::codes("added binary vectors", x, self.code_size())?;
        let ids: Vec<Idx> = (self.ntotal..self.ntotal + n).map(|i| i as Idx).collect();
        self.add_with_ids(x, &ids)
    }
    fn add_with_ids(&mut self, x: &[u8], ids: &[Idx]) -> Result<()> {
        let cs = self.code_size();
        let n = fathom_core::check::codes("added binary vectors", x, cs)?;
        fathom_core::check::ids(ids, n)?;
        for (code, &id) in x.chunks_exact(cs).zip(ids) {
            let key = keys_of(code, 1, self.b).next().unwrap_or(0);
            let bucket = self.buckets.entry(key);
            bucket.ids.push(id);
            bucket.codes.extend_from_slice(code);
        }
        self.ntotal += n;
        Ok(())
    }
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        check_queries(self, queries)?;
        let masks = ball_masks(self.b, self.nflip)?;
        knn_over_runs(queries, self.code_size(), k, params, |_, q, sink| {
            self.scan(q, &masks, sink)
        })
    }
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        let masks = ball_masks(self.b, self.nflip)?;
        range_over_runs(queries, self.code_size(), radius, params, |_, q, sink| {
            self.scan(q, &masks, sink)
        })
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>> {
        let cs = self.code_size();
        self.buckets
            .iter()
            .find_map(|(_, b)| {
                let o = b.ids.iter().position(|&i| i == id)?;
                Some(b.codes[o * cs..(o + 1) * cs].to_vec())
            })
            .ok_or(Error::IdNotFound(id))
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let cs = self.code_size();
        let mut removed = 0;
        for bucket in &mut self.buckets.items {
            let mut kept = 0;
            for o in 0..bucket.ids.len() {
                if selector.is_member(bucket.ids[o]) {
                    continue;
                }
                bucket.ids[kept] = bucket.ids[o];
                bucket.codes.copy_within(o * cs..(o + 1) * cs, kept * cs);
                kept += 1;
            }
            removed += bucket.ids.len() - kept;
            bucket.ids.truncate(kept);
            bucket.codes.truncate(kept * cs);
        }
        self.ntotal -= removed;
        Ok(removed)
    }
    fn reset(&mut self) -> Result<()> {
        self.buckets.clear();
        self.ntotal = 0;
        Ok(())
    }
    fn description(&self) -> String {
        format!("BHash{}", self.b)
    }
    fn view(&self) -> BinaryIndexView<'_> {
        BinaryIndexView::Hash(self)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.nflip = nflip_param(self, self.b, name, value)?;
        Ok(())
    }
    fn param(&self, name: &str) -> Option<f64> {
        (name == "nflip").then_some(self.nflip as f64)
    }
}

/// Binary vectors in an [`IndexBinaryFlat`] plus `nhash` hash tables, table `h` keyed by
/// bits `h·b .. (h+1)·b` (Faiss's `IndexBinaryMultiHash`): a vector is a candidate when
/// any of its keys is within `nflip` flips of the query's.
///
/// ```
/// use fathom_index::binary::{IndexBinary, IndexBinaryMultiHash};
/// let mut index = IndexBinaryMultiHash::new(16, 2, 8).unwrap();
/// index.add(&[0x0f, 0x00, 0xff, 0x33]).unwrap();
/// // The first byte matches vector 0, the second vector 1's: both are found.
/// let res = index.search(&[0x0f, 0x33], 2).unwrap();
/// assert_eq!((res.labels, res.distances), (vec![0, 1], vec![4.0, 4.0]));
/// ```
pub struct IndexBinaryMultiHash {
    storage: IndexBinaryFlat,
    b: usize,
    /// Bits of each key that may differ from the query's (0).
    pub nflip: usize,
    maps: Vec<Buckets<Vec<Idx>>>,
}

impl IndexBinaryMultiHash {
    /// An empty index of `d`-bit vectors with `nhash` tables of `b`-bit keys
    /// (`nhash × b ≤ d`, `b ≤ 64`).
    pub fn new(d: usize, nhash: usize, b: usize) -> Result<Self> {
        let storage = IndexBinaryFlat::new(d)?;
        check_key_bits(d, nhash, b)?;
        Ok(IndexBinaryMultiHash {
            storage,
            b,
            nflip: 0,
            maps: (0..nhash).map(|_| Buckets::default()).collect(),
        })
    }

    /// An index from its storage and tables, each a list of `(key, ids)` in file order
    /// (as read from a file). Ids must be rows of the storage.
    pub fn from_parts(
        storage: IndexBinaryFlat,
        b: usize,
        nflip: usize,
        maps: Vec<Vec<(u64, Vec<Idx>)>>,
    ) -> Result<Self> {
        let mut index = IndexBinaryMultiHash::new(storage.d(), maps.len(), b)?;
        index.nflip = nflip;
        let n = storage.ntotal();
        for (table, map) in index.maps.iter_mut().zip(maps) {
            for (key, ids) in map {
                if let Some(&bad) = ids.iter().find(|&&i| i < 0 || i as usize >= n) {
                    return Err(Error::invalid(format!(
                        "hash table entry {bad} is not a stored vector (0..{n})"
                    )));
                }
                table.insert_new(key, ids)?;
            }
        }
        index.storage = storage;
        Ok(index)
    }

    /// Bits per key.
    pub fn b(&self) -> usize {
        self.b
    }
    /// Number of hash tables.
    pub fn nhash(&self) -> usize {
        self.maps.len()
    }
    /// The stored vectors.
    pub fn storage(&self) -> &IndexBinaryFlat {
        &self.storage
    }
    /// Table `h`'s buckets `(key, ids)` in the order their keys first appeared.
    pub fn table(&self, h: usize) -> impl Iterator<Item = (u64, &[Idx])> {
        self.maps[h].iter().map(|(k, v)| (k, v.as_slice()))
    }
    /// Total number of buckets over the tables (Faiss's `hashtable_size`).
    pub fn hashtable_size(&self) -> usize {
        self.maps.iter().map(Buckets::len).sum()
    }

    /// The candidates of one query (each once, in id order) and their distances.
    fn candidates(&self, q: &[u8], masks: &[u64]) -> (Vec<f32>, Vec<Idx>) {
        let mut ids: Vec<Idx> = Vec::new();
        for (table, key) in self.maps.iter().zip(keys_of(q, self.nhash(), self.b)) {
            for &m in masks {
                if let Some(bucket) = table.get(key ^ m) {
                    ids.extend_from_slice(bucket);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let cs = self.code_size();
        let codes = self.storage.codes();
        let dis = ids
            .iter()
            .map(|&i| {
                let mut d = [0.0f32];
                hamming::distances_f32_scalar(q, &codes[i as usize * cs..][..cs], &mut d);
                d[0]
            })
            .collect();
        (dis, ids)
    }
}

impl IndexBinary for IndexBinaryMultiHash {
    fn d(&self) -> usize {
        self.storage.d()
    }
    fn ntotal(&self) -> usize {
        self.storage.ntotal()
    }
    fn add(&mut self, x: &[u8]) -> Result<()> {
        let cs = self.code_size();
        fathom_core::check::codes("added binary vectors", x, cs)?;
        let n0 = self.ntotal();
        self.storage.add(x)?;
        let (nhash, b) = (self.nhash(), self.b);
        for (i, code) in x.chunks_exact(cs).enumerate() {
            for (table, key) in self.maps.iter_mut().zip(keys_of(code, nhash, b)) {
                table.entry(key).push((n0 + i) as Idx);
            }
        }
        Ok(())
    }
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        check_queries(self, queries)?;
        let masks = ball_masks(self.b, self.nflip)?;
        knn_over_runs(queries, self.code_size(), k, params, |_, q, sink| {
            let (dis, ids) = self.candidates(q, &masks);
            sink(&dis, &ids)
        })
    }
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        let masks = ball_masks(self.b, self.nflip)?;
        range_over_runs(queries, self.code_size(), radius, params, |_, q, sink| {
            let (dis, ids) = self.candidates(q, &masks);
            sink(&dis, &ids)
        })
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>> {
        self.storage.reconstruct(id)
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let _ = selector;
        Err(Error::Unsupported(
            "IndexBinaryMultiHash cannot remove vectors (neither can Faiss's); rebuild it \
             without them"
                .into(),
        ))
    }
    fn reset(&mut self) -> Result<()> {
        self.storage.reset()?;
        self.maps.iter_mut().for_each(Buckets::clear);
        Ok(())
    }
    fn description(&self) -> String {
        format!("BHash{}x{}", self.nhash(), self.b)
    }
    fn view(&self) -> BinaryIndexView<'_> {
        BinaryIndexView::MultiHash(self)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.nflip = nflip_param(self, self.b, name, value)?;
        Ok(())
    }
    fn param(&self, name: &str) -> Option<f64> {
        (name == "nflip").then_some(self.nflip as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_masks_enumerate_each_mask_of_the_ball_once() {
        for (b, nflip) in [(8, 0), (8, 1), (8, 2), (10, 3), (64, 2), (3, 5)] {
            let masks = flip_masks(b, nflip);
            let mut sorted = masks.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), masks.len(), "b {b} nflip {nflip}: duplicates");
            let expect: usize = (0..=nflip.min(b))
                .map(|r| (0..r).fold(1usize, |c, i| c * (b - i) / (i + 1)))
                .sum();
            assert_eq!(masks.len(), expect, "b {b} nflip {nflip}");
            assert!(masks.iter().all(|m| m.count_ones() as usize <= nflip));
            assert!(b == 64 || masks.iter().all(|m| m >> b == 0));
        }
        assert!(check_flips(64, 3).is_ok());
        assert!(check_flips(64, 10).is_err());
    }
}
