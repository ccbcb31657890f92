//! The store against brute force, across reopen, deletion and compaction; bad input.

use fathom_store::{Hit, SearchOptions, Similarity, StoreOptions, VectorStore};

/// Deterministic vectors with varied norms, one of them exactly zero.
fn vectors(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut x: Vec<f32> = (0..n * d)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    if n > 3 {
        x[3 * d..4 * d].fill(0.0);
    }
    x
}

fn brute(
    x: &[f32],
    d: usize,
    q: &[f32],
    k: usize,
    sim: Similarity,
    deleted: &[u64],
    allowed: Option<&[u64]>,
) -> Vec<(u64, f32)> {
    let qn = q.iter().map(|v| v * v).sum::<f32>().sqrt();
    let mut all: Vec<(u64, f32)> = x
        .chunks_exact(d)
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .filter(|(i, _)| !deleted.contains(i) && allowed.is_none_or(|a| a.contains(i)))
        .map(|(i, r)| {
            let dot: f32 = q.iter().zip(r).map(|(a, b)| a * b).sum();
            let rn = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            let score = match sim {
                Similarity::Cosine => {
                    if rn == 0.0 {
                        0.0
                    } else {
                        dot / (qn * rn)
                    }
                }
                Similarity::InnerProduct => dot,
                Similarity::L2 => q.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum(),
            };
            (i, score)
        })
        .collect();
    if sim.higher_is_better() {
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    } else {
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    }
    all.truncate(k);
    all
}

fn assert_hits(got: &[Hit], want: &[(u64, f32)]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.score - w.1).abs() <= 1e-4 * (1.0 + w.1.abs()),
            "{got:?} vs {want:?}"
        );
    }
    // Ids agree except where scores tie within rounding.
    let same = got.iter().zip(want).filter(|(g, w)| g.id == w.0).count();
    assert!(same + 1 >= want.len(), "{got:?} vs {want:?}");
}

#[test]
fn search_matches_brute_force_across_segments_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.store");
    let d = 24;
    // 5000 rows span three segments (1024, 2048, 4096).
    let x = vectors(5000, d, 1);
    let mut q = vectors(9, d, 2);
    q[3 * d] = 1.0; // queries must not be zero for cosine
    {
        let store =
            VectorStore::create_with(&path, d, StoreOptions::default().sync(false)).unwrap();
        let ids = store.add_vectors(&x[..1500 * d]).unwrap();
        assert_eq!(ids, (0..1500).collect::<Vec<u64>>());
        let rows: Vec<&[f32]> = x[1500 * d..].chunks_exact(d).collect();
        assert_eq!(store.add_vector_list(&rows).unwrap()[0], 1500);
    }
    let store = VectorStore::open(&path).unwrap();
    assert_eq!(store.total(), 5000);
    let deleted: Vec<u64> = (0..5000).filter(|i| i % 7 == 2).collect();
    assert_eq!(store.mark_deleted(&deleted).unwrap(), deleted.len());
    assert_eq!(
        store.mark_deleted(&deleted[..3]).unwrap(),
        0,
        "already deleted"
    );
    for sim in [Similarity::Cosine, Similarity::InnerProduct, Similarity::L2] {
        for batch in [0usize, 333] {
            let opts = SearchOptions {
                batch_size: batch,
                ..Default::default()
            };
            // 9 queries take the GEMM path, one query the pass path.
            let res = store.search(&q, 10, sim, &opts).unwrap();
            for (qi, hits) in res.iter().enumerate() {
                let want = brute(&x, d, &q[qi * d..(qi + 1) * d], 10, sim, &deleted, None);
                assert_hits(hits, &want);
            }
            let one = store.search(&q[..d], 10, sim, &opts).unwrap();
            assert_hits(&one[0], &brute(&x, d, &q[..d], 10, sim, &deleted, None));
        }
    }
    // Threshold and id filter.
    let hits = store.cosine_search(&q[..d], 50, Some(0.3), 0).unwrap();
    assert!(hits.iter().all(|h| h.score >= 0.3));
    let want: Vec<_> = brute(&x, d, &q[..d], 50, Similarity::Cosine, &deleted, None)
        .into_iter()
        .filter(|w| w.1 >= 0.3)
        .collect();
    assert_hits(&hits, &want);
    let allowed: Vec<u64> = (100..400).collect();
    let hits = store
        .cosine_search_in_ids(&q[..d], &allowed, 5, None)
        .unwrap();
    assert_hits(
        &hits,
        &brute(
            &x,
            d,
            &q[..d],
            5,
            Similarity::Cosine,
            &deleted,
            Some(&allowed),
        ),
    );
    // The zero vector is data, not a deletion; it scores 0 by cosine.
    assert_eq!(store.get(3), Some(vec![0.0; d]));
    assert_eq!(store.get(2), None, "deleted");
    assert_eq!(store.get(5000), None, "never stored");

    let st = store.stat();
    assert_eq!(
        (st.total, st.deleted, st.live),
        (5000, deleted.len() as u64, 5000 - deleted.len() as u64)
    );
    assert_eq!(st.deleted_ids, deleted);
    assert_eq!(
        st.reclaimable_bytes,
        deleted.len() as u64 * (d as u64 * 4 + 4)
    );
    assert!(st.utilisation > 0.0 && st.utilisation <= 1.0);

    let mapping = store.compact().unwrap();
    assert_eq!(mapping.len(), 5000 - deleted.len());
    let st2 = store.stat();
    assert_eq!((st2.total, st2.deleted), (st.live, 0));
    assert!(st2.file_bytes <= st.file_bytes);
    for &(old, new) in mapping.iter().step_by(97) {
        assert_eq!(
            store.get(new).unwrap(),
            x[old as usize * d..(old as usize + 1) * d]
        );
    }
    // Search after compaction returns the same vectors under their new ids.
    let before = brute(&x, d, &q[..d], 10, Similarity::L2, &deleted, None);
    let after = store
        .search(&q[..d], 10, Similarity::L2, &SearchOptions::default())
        .unwrap();
    let old_of: std::collections::HashMap<u64, u64> =
        mapping.iter().map(|&(o, n)| (n, o)).collect();
    let renamed: Vec<Hit> = after[0]
        .iter()
        .map(|h| Hit {
            id: old_of[&h.id],
            score: h.score,
        })
        .collect();
    assert_hits(&renamed, &before);
    drop(store);
    let store = VectorStore::open(&path).unwrap();
    assert_eq!(store.total(), st.live);
    assert!(!dir.path().join("v.compact-tmp").exists());
}

#[test]
fn bad_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.store");
    assert!(VectorStore::create(&path, 0).is_err());
    let store = VectorStore::create(&path, 4).unwrap();
    assert!(VectorStore::create(&path, 4).is_err(), "exists");
    assert!(
        VectorStore::open(&path).is_err(),
        "locked by the writer above"
    );
    assert!(store.add_vectors(&[1.0; 5]).is_err());
    assert!(store.add_vectors(&[1.0, f32::NAN, 0.0, 0.0]).is_err());
    assert_eq!(store.add_vectors(&[]).unwrap(), Vec::<u64>::new());
    store.add_vectors(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(store.add_vector_list(&[vec![1.0; 3]]).is_err());
    assert!(
        store
            .cosine_search(&[0.0; 4], 1, None, 0)
            .unwrap_err()
            .to_string()
            .contains("zero")
    );
    assert!(store.cosine_search(&[1.0; 3], 1, None, 0).is_err());
    assert!(store.cosine_search(&[1.0; 4], 0, None, 0).is_err(), "k = 0");
    assert!(
        store
            .cosine_search(&[f32::NAN, 1.0, 1.0, 1.0], 1, None, 0)
            .is_err()
    );
    assert!(
        store
            .cosine_search_in_ids(&[1.0; 4], &[7], 1, None)
            .is_err(),
        "id out of range"
    );
    let e = store.mark_deleted(&[0, 9]).unwrap_err().to_string();
    assert!(e.contains('9') && e.contains("0..1"), "{e}");
    assert_eq!(store.live(), 1, "a failed delete deletes nothing");
    drop(store);

    // Read-only: searches work, writes are refused.
    let ro = VectorStore::open_with(&path, StoreOptions::default().read_only(true)).unwrap();
    assert_eq!(ro.cosine_search(&[1.0; 4], 1, None, 0).unwrap()[0].id, 0);
    assert!(ro.add_vectors(&[1.0; 4]).is_err());
    assert!(ro.mark_deleted(&[0]).is_err());
    assert!(ro.compact().is_err());
    drop(ro);

    // Not a store, truncated, newer version.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    assert!(
        VectorStore::open(&junk)
            .unwrap_err()
            .to_string()
            .contains("not a fathom vector store")
    );
    std::fs::write(&junk, b"short").unwrap();
    assert!(VectorStore::open(&junk).is_err());
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.store");
    std::fs::write(&cut, &bytes[..5000]).unwrap();
    let e = VectorStore::open(&cut).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    let mut newer = bytes.clone();
    for slot in [0usize, 2048] {
        newer[slot + 8..slot + 12].copy_from_slice(&99u32.to_le_bytes());
    }
    std::fs::write(&cut, &newer).unwrap();
    // The version changed, so the checksum no longer holds: refused as corrupt.
    assert!(VectorStore::open(&cut).is_err());
    assert!(VectorStore::open(dir.path().join("missing")).is_err());
}

#[test]
fn a_writer_is_not_starved_by_readers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let d = 16;
    let store = VectorStore::create_with(
        dir.path().join("c.store"),
        d,
        StoreOptions::default().sync(false),
    )
    .unwrap();
    store.add_vectors(&vectors(20_000, d, 3)).unwrap();
    let stop = AtomicBool::new(false);
    let q = vectors(1, d, 4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let hits = store.cosine_search(&q, 5, None, 0).unwrap();
                    assert_eq!(hits.len(), 5);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        for i in 0..20 {
            store.add_vectors(&vectors(10, d, 100 + i)).unwrap();
        }
        let took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        assert!(took < Duration::from_secs(30), "writer waited {took:?}");
    });
    assert_eq!(store.total(), 20_200);
}

#[test]
fn huge_values_are_refused_everywhere_vectors_come_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = VectorStore::create(dir.path().join("h.store"), 4).unwrap();
    store.add_vectors(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    // Finite, but the squared norm (and every distance to it) overflows f32.
    let huge = [3e38f32, 0.0, 0.0, 0.0];
    let limit = |e: fathom_core::Error| {
        let e = e.to_string();
        assert!(e.contains("limit") && e.contains("squared norm"), "{e}");
    };
    limit(store.add_vectors(&huge).unwrap_err());
    limit(store.add_vector_list(&[huge]).unwrap_err());
    for sim in [Similarity::Cosine, Similarity::InnerProduct, Similarity::L2] {
        limit(
            store
                .search(&huge, 1, sim, &SearchOptions::default())
                .unwrap_err(),
        );
    }
    limit(store.cosine_search(&huge, 1, None, 0).unwrap_err());
    limit(
        store
            .cosine_search_in_ids(&huge, &[0], 1, None)
            .unwrap_err(),
    );
    assert_eq!(store.total(), 1, "nothing was added");
    // Large but within the limit is fine.
    store.add_vectors(&[1e18, 1e18, 1e18, 1e18]).unwrap();
    let hits = store
        .search(&[1e18; 4], 2, Similarity::L2, &SearchOptions::default())
        .unwrap();
    assert!(hits[0].iter().all(|h| h.score.is_finite()), "{hits:?}");
}

#[test]
fn deletion_counts_distinct_ids_and_a_bad_id_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = VectorStore::create(dir.path().join("d.store"), 2).unwrap();
    store.add_vectors(&[1.0; 10]).unwrap();
    assert_eq!(store.mark_deleted(&[3, 4, 3, 3]).unwrap(), 2);
    assert_eq!(store.mark_deleted(&[4, 1, 1]).unwrap(), 1);
    let e = store.mark_deleted(&[0, 7, 2, 9]).unwrap_err().to_string();
    assert!(
        e.contains("ids 7, 9 are out of range")
            && e.contains("0..5")
            && e.contains("nothing was deleted"),
        "{e}"
    );
    assert_eq!(store.live(), 2, "ids 0 and 2 are still live");
    assert!(VectorStore::create(dir.path().join("big.store"), fathom_store::MAX_DIM).is_ok());
    let e = VectorStore::create(dir.path().join("huge.store"), 100_000_000)
        .unwrap_err()
        .to_string();
    assert!(e.contains("65536") && e.contains("100000000"), "{e}");
    assert!(!dir.path().join("huge.store").exists());
}

#[cfg(unix)]
#[test]
fn compaction_keeps_the_file_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    // Two modes, so that neither umask 022 nor 077 gives the new file the same by chance.
    for (i, mode) in [0o600u32, 0o660].into_iter().enumerate() {
        let path = dir.path().join(format!("m{i}.store"));
        let store = VectorStore::create(&path, 2).unwrap();
        store.add_vectors(&[1.0; 8]).unwrap();
        store.mark_deleted(&[1]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        store.compact().unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_ne!(before.ino(), after.ino(), "compaction wrote a new file");
        assert_eq!(after.mode() & 0o7777, mode, "mode {:o}", after.mode());
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    }
}
