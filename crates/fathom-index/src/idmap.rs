//! User-chosen ids over any index.

use std::collections::HashMap;

use fathom_core::{
    Error, IdSelector, IdSelectorTranslated, Idx, MetricType, RangeSearchResult, Result,
    SearchParams, SearchResult, check,
};

use crate::Index;

/// Replaces row numbers in `labels` by the ids they map to (`-1` stays `-1`).
/// Replaces each row number in `labels` with its id, `map[row]`; a row beyond the map (an
/// inner index whose stored ids are not its rows, e.g. from a crafted file) is an error.
pub(crate) fn translate_labels(labels: &mut [Idx], map: &[Idx]) -> Result<()> {
    for l in labels.iter_mut().filter(|l| **l >= 0) {
        *l = *map.get(*l as usize).ok_or_else(|| {
            Error::invalid(format!(
                "the wrapped index returned row {l}, beyond its {} ids: its stored ids are \
                 not its rows (a damaged or hand-made file?)",
                map.len()
            ))
        })?;
    }
    Ok(())
}

/// Per-call parameters for an inner index whose rows map to ids through `map`.
pub(crate) fn translated_params<'a>(
    params: &SearchParams<'a>,
    translated: &'a Option<IdSelectorTranslated<'a>>,
) -> SearchParams<'a> {
    let mut p = *params;
    p.selector = translated.as_ref().map(|t| t as &dyn IdSelector);
    p
}

fn check_ids_valid(ids: &[Idx]) -> Result<()> {
    if let Some(bad) = ids.iter().find(|&&i| i < 0) {
        return Err(Error::invalid(format!(
            "id {bad} is negative; ids must be >= 0 (-1 marks a missing result)"
        )));
    }
    Ok(())
}

/// id → row of the vector with that id; for an id held twice (possible in a Faiss file),
/// the later row, as Faiss's `construct_rev_map` leaves it.
pub(crate) fn reverse_map(id_map: &[Idx]) -> HashMap<Idx, usize> {
    id_map
        .iter()
        .enumerate()
        .map(|(row, &id)| (id, row))
        .collect()
}

/// The first of `ids` that `rev` (an id map's reverse map) holds already or that `ids`
/// repeats: what an IDMap2 add must refuse.
pub(crate) fn taken_id(ids: &[Idx], rev: &HashMap<Idx, usize>) -> Option<Idx> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter()
        .copied()
        .find(|&id| rev.contains_key(&id) || !seen.insert(id))
}

/// Any index with ids chosen by the user: Faiss's `IndexIDMap` ([`IndexIdMap`], `REVERSE =
/// false`) and `IndexIDMap2` ([`IndexIdMap2`], `REVERSE = true`). The wrapped index numbers
/// its vectors 0, 1, 2, …; this wrapper keeps the id of each and translates results,
/// selectors and removals. With `REVERSE` it also keeps an id → row map, so vectors can be
/// reconstructed by id, and then ids must be unique.
///
/// Removal requires the wrapped index to keep the order of the vectors it keeps, as
/// [`crate::IndexFlat`] does.
#[derive(Debug, Clone)]
pub struct IdMapped<I: Index, const REVERSE: bool> {
    inner: I,
    id_map: Vec<Idx>,
    /// id → row; maintained only when `REVERSE`.
    rev: HashMap<Idx, usize>,
}

/// Any index with ids chosen by the user: Faiss's `IndexIDMap`. Ids must be non-negative;
/// duplicates are allowed (as in Faiss) but make removal by id remove all of them. To
/// reconstruct by id, use [`IndexIdMap2`].
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIdMap};
/// let mut index = IndexIdMap::new(IndexFlat::new_l2(2).unwrap());
/// index.add_with_ids(&[0.0, 0.0, 3.0, 3.0], &[1000, 2000]).unwrap();
/// assert_eq!(index.search(&[2.5, 2.5], 1).unwrap().labels, vec![2000]);
/// assert!(index.add(&[1.0, 1.0]).is_err(), "ids are required");
/// ```
pub type IndexIdMap<I = Box<dyn Index>> = IdMapped<I, false>;

/// [`IndexIdMap`] plus a reverse map, so vectors can be reconstructed by id: Faiss's
/// `IndexIDMap2`. Ids added must be unique: adding an id that is already present is an
/// error (and adds nothing), where Faiss would keep both and reconstruct only the later.
/// A Faiss file that holds an id twice still reads, with Faiss's meaning
/// ([`IdMapped::from_parts`]).
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIdMap2};
/// let mut index = IndexIdMap2::new(IndexFlat::new_l2(2).unwrap());
/// index.add_with_ids(&[1.0, 2.0, 3.0, 4.0], &[7, 9]).unwrap();
/// assert_eq!(index.reconstruct(9).unwrap(), vec![3.0, 4.0]);
/// assert!(index.add_with_ids(&[0.0, 0.0], &[7]).is_err(), "7 is taken");
/// ```
pub type IndexIdMap2<I = Box<dyn Index>> = IdMapped<I, true>;

impl<I: Index, const REVERSE: bool> IdMapped<I, REVERSE> {
    /// Adds `n` rows to the inner index with `add`, under `ids` (checked first: one per
    /// row, valid, and unique for `IndexIdMap2`).
    fn add_rows(
        &mut self,
        n: usize,
        ids: &[Idx],
        add: impl FnOnce(&mut I) -> Result<()>,
    ) -> Result<()> {
        check::ids(ids, n)?;
        check_ids_valid(ids)?;
        if REVERSE && let Some(id) = taken_id(ids, &self.rev) {
            return Err(Error::invalid(format!(
                "id {id} is already in the index; IndexIdMap2 needs unique ids"
            )));
        }
        let start = self.id_map.len();
        add(&mut self.inner)?;
        self.id_map.extend_from_slice(ids);
        if REVERSE {
            self.rev
                .extend(ids.iter().enumerate().map(|(i, &id)| (id, start + i)));
        }
        Ok(())
    }

    /// Wraps `inner`. Vectors already in it keep their positions as ids (0, 1, …); later
    /// ones get the ids they are added with. [`IdMapped::try_new`] insists on an empty
    /// index, as Faiss's constructor does.
    pub fn new(inner: I) -> Self {
        let id_map: Vec<Idx> = (0..inner.ntotal() as Idx).collect();
        Self::from_parts(inner, id_map).expect("one id per vector")
    }

    /// Wraps `inner`, which must be empty.
    pub fn try_new(inner: I) -> Result<Self> {
        if inner.ntotal() != 0 {
            return Err(Error::invalid(format!(
                "IndexIdMap needs an empty index to wrap, got one with {} vectors",
                inner.ntotal()
            )));
        }
        Ok(Self::new(inner))
    }

    /// Wraps `inner`, whose `i`-th vector has id `id_map[i]` (e.g. as read from a file).
    /// `id_map` must have one id per vector. An id may appear twice even with `REVERSE`:
    /// Faiss's `IndexIDMap2` does not check its adds, so its files can hold repeats, and
    /// they read as Faiss reads them (the id reconstructs the later vector; removal
    /// removes both).
    pub fn from_parts(inner: I, id_map: Vec<Idx>) -> Result<Self> {
        if id_map.len() != inner.ntotal() {
            return Err(Error::DimensionMismatch {
                what: "id map".into(),
                got: id_map.len(),
                expected: format!(
                    "one id per vector of the wrapped index ({})",
                    inner.ntotal()
                ),
            });
        }
        let rev = if REVERSE {
            reverse_map(&id_map)
        } else {
            HashMap::new()
        };
        Ok(IdMapped { inner, id_map, rev })
    }

    /// The id of each vector of the wrapped index, in its order.
    pub fn id_map(&self) -> &[Idx] {
        &self.id_map
    }

    /// The wrapped index.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// Unwraps, dropping the ids.
    pub fn into_inner(self) -> I {
        self.inner
    }

    fn selector<'a>(&'a self, params: &SearchParams<'a>) -> Option<IdSelectorTranslated<'a>> {
        params
            .selector
            .map(|s| IdSelectorTranslated::new(&self.id_map, s))
    }
}

impl<I: Index + 'static, const REVERSE: bool> Index for IdMapped<I, REVERSE> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn ntotal(&self) -> usize {
        self.id_map.len()
    }
    fn metric(&self) -> MetricType {
        self.inner.metric()
    }
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.inner.train(x)
    }
    fn add(&mut self, _x: &[f32]) -> Result<()> {
        Err(Error::Unsupported(
            "IndexIdMap needs explicit ids: call add_with_ids".into(),
        ))
    }
    fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> {
        let n = check::vectors("added", x, self.dim())?;
        self.add_rows(n, ids, |inner| inner.add(x))
    }
    fn sa_code_size(&self) -> Result<usize> {
        self.inner.sa_code_size()
    }
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        self.inner.sa_encode(x)
    }
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        self.inner.sa_decode(codes)
    }
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        let ids = ids.ok_or_else(|| {
            Error::invalid("an id map needs the ids of the codes it adds; none were given")
        })?;
        let n = check::codes("standalone codes", codes, self.inner.sa_code_size()?)?;
        self.add_rows(n, ids, |inner| inner.add_sa_codes(codes, None))
    }
    fn search_with(&self, q: &[f32], k: usize, params: &SearchParams<'_>) -> Result<SearchResult> {
        let sel = self.selector(params);
        let mut res = self
            .inner
            .search_with(q, k, &translated_params(params, &sel))?;
        translate_labels(&mut res.labels, &self.id_map)?;
        Ok(res)
    }
    fn range_search_with(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let sel = self.selector(params);
        let mut res = self
            .inner
            .range_search_with(q, radius, &translated_params(params, &sel))?;
        translate_labels(&mut res.labels, &self.id_map)?;
        Ok(res)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        if !REVERSE {
            return Err(Error::Unsupported(
                "IndexIdMap keeps no id → vector lookup: use IndexIdMap2 to reconstruct by id"
                    .into(),
            ));
        }
        let row = *self.rev.get(&id).ok_or(Error::IdNotFound(id))?;
        self.inner.reconstruct(row as Idx)
    }
    fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> {
        if !REVERSE && n > 0 {
            return self.reconstruct(start);
        }
        let mut out = Vec::new();
        for i in 0..n as Idx {
            out.extend(self.reconstruct(start + i)?);
        }
        Ok(out)
    }
    fn ids_are_positions(&self) -> bool {
        false
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        if !self.inner.ids_are_positions() {
            // Faiss compacts its table here regardless and silently mismatches ids.
            return Err(Error::Unsupported(format!(
                "{} keeps its own ids, which do not shift on removal, so the id map could \
                 not follow; add with ids to {} directly and remove from it",
                self.inner.description(),
                self.inner.description()
            )));
        }
        let removed = {
            let translated = IdSelectorTranslated::new(&self.id_map, selector);
            self.inner.remove_ids(&translated)?
        };
        let before = self.id_map.len();
        self.id_map.retain(|&id| !selector.is_member(id));
        debug_assert_eq!(before - self.id_map.len(), removed);
        if REVERSE && removed > 0 {
            self.rev = reverse_map(&self.id_map);
        }
        Ok(before - self.id_map.len())
    }
    fn reset(&mut self) -> Result<()> {
        self.inner.reset()?;
        self.id_map.clear();
        self.rev.clear();
        Ok(())
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.inner.set_param(name, value)
    }
    fn param(&self, name: &str) -> Option<f64> {
        self.inner.param(name)
    }
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        self.inner.parameter_ranges()
    }
    fn description(&self) -> String {
        let name = if REVERSE { "IDMap2" } else { "IDMap" };
        format!("{name},{}", self.inner.description())
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::IdMap {
            inner: &self.inner,
            ids: &self.id_map,
            two_way: REVERSE,
        }
    }
    fn part_mut(&mut self, part: crate::Part) -> Option<&mut dyn Index> {
        (part == crate::Part::Inner).then_some(&mut self.inner as &mut dyn Index)
    }
}
