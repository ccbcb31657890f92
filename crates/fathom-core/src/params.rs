use crate::IdSelector;

/// Per-call search parameters. Every field is optional: unset means "use the index's own
/// setting", so a per-call parameter never silently overrides what the user configured on
/// the index with a library default (the trap in Faiss's `SearchParametersIVF`).
///
/// ```
/// use fathom_core::{IdSelectorRange, SearchParams};
/// let even_half = IdSelectorRange::new(0, 500);
/// let params = SearchParams::default().with_selector(&even_half);
/// assert!(params.selector.is_some());
/// ```
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct SearchParams<'a> {
    /// Only ids in this set may appear in the results.
    pub selector: Option<&'a dyn IdSelector>,
    /// Graph indexes (HNSW): the search beam width for this call instead of the index's
    /// `efSearch` (Faiss's `SearchParametersHNSW::efSearch`). At least `k` is used.
    pub ef_search: Option<usize>,
    /// Inverted-file indexes: lists probed for this call instead of the index's `nprobe`
    /// (Faiss's `SearchParametersIVF::nprobe`). At least 1; at most `nlist` are probed.
    pub nprobe: Option<usize>,
}

impl<'a> SearchParams<'a> {
    /// Restricts the results to the ids `selector` contains.
    pub fn with_selector(mut self, selector: &'a dyn IdSelector) -> Self {
        self.selector = Some(selector);
        self
    }

    /// Sets the HNSW search beam width for this call.
    pub fn with_ef_search(mut self, ef_search: usize) -> Self {
        self.ef_search = Some(ef_search);
        self
    }

    /// Sets the number of inverted lists probed for this call.
    pub fn with_nprobe(mut self, nprobe: usize) -> Self {
        self.nprobe = Some(nprobe);
        self
    }
}

impl std::fmt::Debug for SearchParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchParams")
            .field("selector", &self.selector.map(|_| "<selector>"))
            .field("ef_search", &self.ef_search)
            .field("nprobe", &self.nprobe)
            .finish()
    }
}
