//! Shards of one IVF index merged into on-disk lists (Faiss's `contrib.ondisk.merge_ondisk`):
//! the way to build an index larger than memory — train once, fill shards in separate
//! processes, write each, then merge their lists into one memory-mapped data file.

use std::path::Path;

use fathom_core::{Error, Result};
use fathom_invlists::{InvertedLists, OnDiskInvertedLists};

use crate::ivf::DynIvf;
use crate::{Index, IndexView, IndexViewMut, Part};

/// Fills the empty, trained IVF index `trained` (or the IVF inside its transforms) with
/// every entry of `shards` — IVF indexes trained alike, typically read with memory-mapped
/// lists so they need not fit in memory — writing the lists to a new data file at
/// `data_path`. With `shift_ids` the ids of each shard are shifted past those of the
/// shards before it. Returns the number of entries.
///
/// Indexes wrapped in an id map are refused: the map would not follow the merged lists.
///
/// ```
/// use fathom_index::{Index, MetricType, index_factory, ivf::merge_ondisk};
/// let d = 8;
/// let x: Vec<f32> = (0..800).map(|i| ((i * 37) % 101) as f32).collect();
/// let mut trained = index_factory(d, "IVF4,Flat", MetricType::L2).unwrap();
/// trained.train(&x).unwrap();
/// let mut shards = Vec::new();
/// for part in x.chunks(400) {
///     // Training is deterministic: each shard gets the same centroids.
///     let mut shard = index_factory(d, "IVF4,Flat", MetricType::L2).unwrap();
///     shard.train(&x).unwrap();
///     shard.add(part).unwrap();
///     shards.push(shard);
/// }
/// let dir = std::env::temp_dir().join(format!("merge-ondisk-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let refs: Vec<&dyn Index> = shards.iter().map(|s| &**s).collect();
/// let n = merge_ondisk(&mut *trained, &refs, &dir.join("lists.ivfdata"), true).unwrap();
/// assert_eq!((n, trained.ntotal()), (100, 100));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn merge_ondisk(
    trained: &mut dyn Index,
    shards: &[&dyn Index],
    data_path: &Path,
    shift_ids: bool,
) -> Result<usize> {
    if trained.ntotal() != 0 {
        return Err(Error::invalid(format!(
            "merge_ondisk fills an empty index; this one holds {} vectors (reset() it, or \
             start from the trained index before any add)",
            trained.ntotal()
        )));
    }
    let lists: Vec<&dyn InvertedLists> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| {
            ivf_of(*s).map(|ivf| ivf.invlists()).ok_or_else(|| {
                Error::invalid(format!("shard {i} ({}): {}", s.description(), NOT_IVF))
            })
        })
        .collect::<Result<_>>()?;
    let target = ivf_of_mut(trained)?;
    let mut merged =
        OnDiskInvertedLists::create(data_path, target.nlist(), target.invlists().code_size())?;
    let n = merged.merge_from_multiple(&lists, shift_ids)?;
    merged.flush()?;
    target.replace_invlists(Box::new(merged))?;
    Ok(n)
}

const NOT_IVF: &str =
    "merge_ondisk needs IVF indexes, bare or behind transforms (not id maps or IVF-PQR)";

/// The IVF index `index` is, or holds behind transforms.
fn ivf_of(index: &dyn Index) -> Option<&dyn DynIvf> {
    match index.view() {
        IndexView::Ivf(ivf) => Some(ivf),
        IndexView::PreTransform { inner, .. } => ivf_of(inner),
        _ => None,
    }
}

fn ivf_of_mut(index: &mut dyn Index) -> Result<&mut dyn DynIvf> {
    let through_transform = matches!(index.view(), IndexView::PreTransform { .. });
    if through_transform {
        let description = index.description();
        let inner = index
            .part_mut(Part::Inner)
            .ok_or_else(|| Error::invalid(format!("{description}: {NOT_IVF}")))?;
        return ivf_of_mut(inner);
    }
    let description = index.description();
    match index.view_mut() {
        IndexViewMut::Ivf(ivf) => Ok(ivf),
        _ => Err(Error::invalid(format!("{description}: {NOT_IVF}"))),
    }
}
