//! Memory-mapped loading (`read_index_mmap`, Faiss's IO_FLAG_MMAP): the inverted lists of
//! every IVF fixture and the codes of PQ, SQ and LSH indexes (HNSW storage included) are
//! served from the file, searches equal those of the copied index, and every change is
//! refused with an error that leaves the index as it was.

use std::path::PathBuf;

use fathom_core::IdSelectorRange;
use fathom_index::{Index, IndexIvfFlat, IndexPq};
use fathom_io::faiss::{index_to_bytes, read_index, read_index_mmap};
use fathom_io::{NpyArray, read_npy};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/faiss_files")
}

fn queries() -> Vec<f32> {
    match read_npy(dir().join("q.npy")).unwrap() {
        NpyArray::F32(a) => a.data,
        _ => unreachable!(),
    }
}

const MAPPED_FIXTURES: &[&str] = &[
    "ivf8_flat",
    "ivf8_flat_ip",
    "ivf8_sq8",
    "ivf8_pq4",
    "ivf8_pqr",
    "imi2x3_flat",
    "ivf16_hnsw8_flat",
    "ivf64_sparse",
    "ivf8_dm_array",
    "ivf8_dm_hash",
    "pca8_ivf8_pq4",
    "ivf8_flat_rflat",
    "ivf8_ondisk",
    // Flat-codes indexes: the codes are served from the file.
    "pq4",
    "pq4x6np",
    "sq8",
    "sq4",
    "sqfp16",
    "lsh",
    "lshrt",
    "pq4_rflat",
    "hnsw8_sq8",
    "hnsw8_pq4",
];

#[test]
fn mapped_ivf_indexes_search_as_loaded_ones_and_refuse_changes() {
    let q = queries();
    for name in MAPPED_FIXTURES {
        let path = dir().join(format!("{name}.faiss"));
        let file_before = std::fs::read(&path).unwrap();
        let loaded = read_index(&path).unwrap();
        let mut mapped = read_index_mmap(&path).unwrap();
        assert_eq!(mapped.ntotal(), loaded.ntotal(), "{name}");
        let want = loaded.search(&q, 5).unwrap();
        assert_eq!(mapped.search(&q, 5).unwrap(), want, "{name}");
        // What a mapped index writes is what it read.
        assert!(
            index_to_bytes(&*mapped).unwrap() == index_to_bytes(&*loaded).unwrap(),
            "{name}"
        );

        let err = mapped.add(&q[..16]).unwrap_err().to_string();
        assert!(err.contains("read-only"), "{name}: {err}");
        assert!(
            mapped
                .remove_ids(&IdSelectorRange::new(0, 1_000_000))
                .is_err(),
            "{name}"
        );
        assert_eq!(
            mapped.ntotal(),
            loaded.ntotal(),
            "{name}: unchanged after refusals"
        );
        assert_eq!(
            mapped.search(&q, 5).unwrap(),
            want,
            "{name}: unchanged after refusals"
        );

        mapped.reset().unwrap();
        assert_eq!(mapped.ntotal(), 0, "{name}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            file_before,
            "{name}: the file is untouched"
        );
    }
}

#[test]
fn mapped_lists_are_served_from_the_file() {
    let path = dir().join("ivf8_flat.faiss");
    let mapped = read_index_mmap(&path).unwrap();
    let ivf = mapped.downcast_ref::<IndexIvfFlat>().unwrap();
    assert!(ivf.invlists().is_read_only());
    let file = std::fs::read(&path).unwrap();
    // List 0's codes are bytes of the file itself.
    let codes = ivf.invlists().codes(0);
    assert!(file.windows(codes.len()).any(|w| w == codes));
    let loaded = read_index(&path).unwrap();
    let copy = loaded.downcast_ref::<IndexIvfFlat>().unwrap();
    assert!(!copy.invlists().is_read_only());

    let path = dir().join("pq4.faiss");
    let mapped = read_index_mmap(&path).unwrap();
    let pq = mapped.downcast_ref::<IndexPq>().unwrap();
    assert!(pq.codes_are_mapped());
    let loaded = read_index(&path).unwrap();
    assert!(!loaded.downcast_ref::<IndexPq>().unwrap().codes_are_mapped());
}
