//! Faiss's "merge on disk" workflow with fathom: an IVF index too large to build in memory
//! is trained once, filled in shards that are built (here: one after the other; in
//! practice on different machines) and saved separately, then merged into one set of
//! on-disk inverted lists that searches straight from the data file.
//!
//! `cargo run --release -p fathom-io --example merge_on_disk [DIR]`

use fathom_core::Result;
use fathom_index::{Index, IndexViewMut, MetricType, index_factory};
use fathom_invlists::{InvertedLists, OnDiskInvertedLists};
use fathom_io::faiss::{clone_index, read_index, write_index};

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("fathom-merge-on-disk"));
    std::fs::create_dir_all(&dir).map_err(|e| fathom_core::Error::io(&dir, e))?;
    let (d, n, shards) = (32, 60_000, 3);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let x: Vec<f32> = (0..n * d)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();

    // 1. Train once, on a sample, and save the empty trained index.
    let mut trained = index_factory(d, "IVF64,Flat", MetricType::L2)?;
    trained.train(&x[..20_000 * d])?;
    write_index(&*trained, dir.join("trained.faiss"))?;

    // 2. Each shard: load the trained index, add its part, save.
    let per = n / shards;
    for s in 0..shards {
        let mut shard = read_index(dir.join("trained.faiss"))?;
        shard.add(&x[s * per * d..(s + 1) * per * d])?;
        write_index(&*shard, dir.join(format!("shard{s}.faiss")))?;
    }

    // 3. Merge the shards' lists into one data file. Each shard numbered its vectors from
    //    0, so shift_ids renumbers them as one sequence.
    let parts: Vec<Box<dyn Index>> = (0..shards)
        .map(|s| read_index(dir.join(format!("shard{s}.faiss"))))
        .collect::<Result<_>>()?;
    let lists: Vec<&dyn InvertedLists> = parts
        .iter()
        .map(|p| p.view().ivf_lists().expect("an IVF shard").invlists())
        .collect();
    let mut merged = clone_index(&*trained)?;
    let IndexViewMut::Ivf(ivf) = merged.view_mut() else {
        unreachable!("the trained index is an IVF index")
    };
    let mut ondisk = OnDiskInvertedLists::create(dir.join("merged.ivfdata"), ivf.nlist(), 4 * d)?;
    let total = ondisk.merge_from_multiple(&lists, true)?;
    println!("{}", ondisk.stats_report());
    ivf.replace_invlists(Box::new(ondisk))?;
    ivf.set_param("nprobe", 8.0)?;
    write_index(&*merged, dir.join("merged.faiss"))?;

    // 4. Open and search: the lists stay in merged.ivfdata.
    let index = read_index(dir.join("merged.faiss"))?;
    let res = index.search(&x[12_345 * d..12_346 * d], 3)?;
    println!(
        "merged {total} vectors from {shards} shards into {}; nearest to vector 12345: {:?}",
        dir.join("merged.faiss").display(),
        res.labels
    );
    Ok(())
}
