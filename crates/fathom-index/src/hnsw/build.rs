//! Inserting nodes into the graph (Faiss's `hnsw_add_vertices` / `add_with_locks`):
//! nodes go in from the highest level to the lowest, each level's nodes in a shuffled
//! order and in parallel, every adjacency list written under its node's lock.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, MutexGuard};

use fathom_core::Result;
use fathom_linalg::rng::FaissRng;
use rayon::prelude::*;

use super::graph::{BeamOpts, Hnsw, NodeDistance};
use super::heap::Candidate;
use super::storage::HnswStorage;
use super::visited::{Visited, with_visited};

/// Below this many nodes of one level, insertion runs on the calling thread (as Faiss's
/// `omp parallel if (i1 > i0 + 100)`).
const PARALLEL_MIN: usize = 100;

fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds the graph nodes for rows `n0 ..` of `storage` (already stored), whose vectors
/// are `x`.
pub(crate) fn add_vertices<S: HnswStorage>(
    g: &mut Hnsw,
    storage: &S,
    x: &[f32],
    n0: usize,
) -> Result<()> {
    let d = storage.dim();
    add_vertices_with(g, n0, x.len() / d, |pt| {
        storage.prepare(&x[(pt as usize - n0) * d..][..d])
    })
}

/// Adds `n` graph nodes `n0 ..` (already stored): `prepare(pt)` gives the distances from
/// node `pt`'s own vector to every stored node. Any storage — float vectors or binary
/// codes — builds its graph through this one function.
pub(crate) fn add_vertices_with<D, P>(g: &mut Hnsw, n0: usize, n: usize, prepare: P) -> Result<()>
where
    D: NodeDistance,
    P: Fn(u32) -> D + Sync,
{
    if n == 0 {
        return Ok(());
    }
    g.prepare_levels(n)?;
    let ntotal = n0 + n;
    let level_of = |g: &Hnsw, pt: usize| g.levels()[pt] as usize - 1;

    // Bucket the new nodes by level, ascending (Faiss's histogram + bucket sort).
    let top = (n0..ntotal).map(|pt| level_of(g, pt)).max().unwrap_or(0);
    let mut hist = vec![0usize; top + 1];
    for pt in n0..ntotal {
        hist[level_of(g, pt)] += 1;
    }
    let mut starts = vec![0usize; top + 2];
    for l in 0..=top {
        starts[l + 1] = starts[l] + hist[l];
    }
    let mut order = vec![0u32; n];
    {
        let mut next = starts.clone();
        for pt in n0..ntotal {
            let l = level_of(g, pt);
            order[next[l]] = pt as u32;
            next[l] += 1;
        }
    }

    let locks: Vec<Mutex<()>> = (0..ntotal).map(|_| Mutex::new(())).collect();
    let mut rng = FaissRng::new(789);
    let mut i1 = n;
    for level in (0..=top).rev() {
        let i0 = i1 - hist[level];
        // Shuffle to remove any bias from the order of the input (same draws as Faiss).
        for j in i0..i1 {
            let r = j + rng.rand_int((i1 - j) as u32) as usize;
            order.swap(j, r);
        }
        let mut group = &order[i0..i1];
        if let Some(&first) = group.first()
            && (g.entry_point() < 0 || level as i32 > g.max_level())
        {
            // A node that raises the top of the graph goes in alone, then becomes the
            // entry point; the rest of its level can then run in parallel against a
            // fixed entry point.
            if g.entry_point() >= 0 {
                insert(g, &prepare(first), first, level, &locks);
            }
            g.set_entry(first, level);
            group = &group[1..];
        }
        let gr: &Hnsw = g;
        let one = |&pt: &u32| insert(gr, &prepare(pt), pt, level, &locks);
        if group.len() > PARALLEL_MIN && rayon::current_num_threads() > 1 {
            group.par_iter().with_min_len(16).for_each(one);
        } else {
            group.iter().for_each(one);
        }
        i1 = i0;
    }
    Ok(())
}

/// Inserts node `pt` of level `pt_level` (Faiss's `add_with_locks`). The visited set is
/// the calling thread's own (a fresh table per rayon job would cost a zeroed allocation
/// and its page faults every few dozen insertions).
fn insert<D: NodeDistance>(g: &Hnsw, dis: &D, pt: u32, pt_level: usize, locks: &[Mutex<()>]) {
    with_visited(g.ntotal(), |vt| {
        insert_with(g, dis, pt, pt_level, locks, vt)
    })
}

fn insert_with<D: NodeDistance>(
    g: &Hnsw,
    dis: &D,
    pt: u32,
    pt_level: usize,
    locks: &[Mutex<()>],
    vt: &mut Visited,
) {
    let mut guard = Some(lock(&locks[pt as usize]));
    let (nearest, d_nearest) = g.descend(dis, pt_level);
    let top = (g.max_level().max(0) as usize).min(pt_level);
    for level in (0..=top).rev() {
        let targets = {
            vt.prepare(g.ntotal());
            vt.set(pt);
            let opts = BeamOpts {
                ef: g.ef_construction,
                accept: None,
            };
            let found = g.beam_search(dis, (nearest, d_nearest), level, &opts, vt, &mut |_, _| {});
            let mut found = found.into_sorted();
            found.retain(|c| c.id != pt);
            let room = g.nb_neighbors(level);
            let keep = match g.max_new_links {
                0 => room,
                m => m.min(room),
            };
            shrink_neighbor_list(dis, found, keep)
        };
        for t in &targets {
            add_link(g, dis, pt, t.id, level);
        }
        drop(guard.take());
        for t in &targets {
            let _l = lock(&locks[t.id as usize]);
            add_link(g, dis, t.id, pt, level);
        }
        guard = Some(lock(&locks[pt as usize]));
    }
    drop(guard);
}

/// Faiss's neighbour-selection heuristic: going from the nearest candidate outwards,
/// keep one only if it is nearer to the base node than to every neighbour already kept,
/// until `max_size` are kept. Lists shorter than `max_size` are kept whole, as Faiss.
/// `cands` are sorted nearest first with their distances to the base node.
fn shrink_neighbor_list<D: NodeDistance>(
    dis: &D,
    cands: Vec<Candidate>,
    max_size: usize,
) -> Vec<Candidate> {
    if cands.len() < max_size {
        return cands;
    }
    let mut out: Vec<Candidate> = Vec::with_capacity(max_size);
    let mut kept: Vec<u32> = Vec::with_capacity(max_size);
    let mut ds = [0.0f32; 4];
    for v1 in cands {
        // Compared with the kept neighbours four at a time, stopping at the first block
        // that holds one nearer to v1 than the base node is.
        let good = kept.chunks(4).all(|c| {
            dis.symmetric_many(v1.id, c, &mut ds[..c.len()]);
            ds[..c.len()].iter().all(|&d| d >= v1.d)
        });
        if good {
            out.push(v1);
            kept.push(v1.id);
            if out.len() >= max_size {
                break;
            }
        }
    }
    out
}

/// Adds `dest` to `src`'s list on `level` (caller holds `src`'s lock): into a free slot,
/// or, when the list is full, by re-running the heuristic over the old neighbours and
/// `dest`, keeping at most `1 − prune_headroom` of the slots (Faiss's `add_link`).
fn add_link<D: NodeDistance>(g: &Hnsw, dis: &D, src: u32, dest: u32, level: usize) {
    let slots = g.slots(src, level);
    let Some(last) = slots.last() else { return };
    if last.load(Relaxed) < 0 {
        let mut i = slots.len();
        while i > 0 && slots[i - 1].load(Relaxed) < 0 {
            i -= 1;
        }
        slots[i].store(dest as i32, Relaxed);
        return;
    }
    let ids: Vec<u32> = std::iter::once(dest)
        .chain(slots.iter().map(|s| s.load(Relaxed) as u32))
        .collect();
    let mut ds = vec![0.0f32; ids.len()];
    dis.symmetric_many(src, &ids, &mut ds);
    let mut cands: Vec<Candidate> = ids
        .into_iter()
        .zip(ds)
        .map(|(id, d)| Candidate::new(d, id))
        .collect();
    cands.sort_unstable();
    // Faiss's `max_size -= max_size * clamp(prune_headroom, 0, 0.5)`, in f32 as Faiss.
    let room = slots.len() as f32;
    let max_size = (room - room * g.prune_headroom.clamp(0.0, 0.5)) as usize;
    let kept = shrink_neighbor_list(dis, cands, max_size);
    for (i, s) in slots.iter().enumerate() {
        s.store(kept.get(i).map_or(-1, |c| c.id as i32), Relaxed);
    }
}
