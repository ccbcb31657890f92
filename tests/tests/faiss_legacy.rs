//! The IVF records Faiss wrote before 2018 (`IvFl`, `IvFL`, `IvSQ`, `IvPQ`): each list's
//! ids inside the IVF header and its codes after the class's fields, no inverted-lists
//! record. faiss-cpu no longer writes them, so they are rebuilt here from the modern
//! fixtures' bytes; each must read to the index the modern file holds.

use std::path::PathBuf;

use fathom_index::ivf::{IvfCodec, IvfFlat, IvfPq, IvfScalarQuantizer};
use fathom_index::{Index, IndexIvf};
use fathom_io::faiss::read_index_bytes;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("fixtures/faiss_files/{name}.faiss")),
    )
    .unwrap()
}

fn put_vec<T: bytemuck::Pod>(out: &mut Vec<u8>, v: &[T]) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    out.extend_from_slice(bytemuck::cast_slice(v));
}

const D: usize = 16;
const NLIST: usize = 8;
/// Index header + nlist + nprobe.
const HEAD: usize = 4 + 33 + 16;
/// The coarse quantizer: a flat L2 index of NLIST centroids.
const QUANTIZER: usize = 4 + 33 + 8 + NLIST * D * 4;
/// A "no direct map" record.
const NO_MAP: usize = 1 + 8;

/// `fourcc`, the modern head and quantizer, the ids of every list, the direct map, then
/// `middle` (the class's own fields) and the codes of every list.
fn legacy<C: IvfCodec + 'static>(
    fourcc: &[u8; 4],
    modern: &[u8],
    index: &IndexIvf<C>,
    middle: std::ops::Range<usize>,
    float_codes: bool,
) -> Vec<u8> {
    let lists = index.invlists();
    let mut out = fourcc.to_vec();
    out.extend_from_slice(&modern[4..HEAD + QUANTIZER]);
    for l in 0..NLIST {
        put_vec(&mut out, lists.ids(l));
    }
    out.extend_from_slice(&modern[HEAD + QUANTIZER..HEAD + QUANTIZER + NO_MAP]);
    out.extend_from_slice(&modern[middle]);
    for l in 0..NLIST {
        let codes = lists.codes(l);
        if float_codes {
            let floats: Vec<f32> = codes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            put_vec(&mut out, &floats);
        } else {
            put_vec(&mut out, codes);
        }
    }
    out
}

fn assert_same_index(name: &str, a: &dyn Index, b: &dyn Index) {
    assert_eq!(a.ntotal(), b.ntotal(), "{name}");
    let q: Vec<f32> = (0..10 * D)
        .map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0)
        .collect();
    assert_eq!(a.search(&q, 5).unwrap(), b.search(&q, 5).unwrap(), "{name}");
}

#[test]
fn legacy_ivf_records_read_as_their_modern_equivalents() {
    let after_map = HEAD + QUANTIZER + NO_MAP;

    let modern = fixture("ivf8_flat");
    let index = read_index_bytes(&modern).unwrap();
    let ivf = index.downcast_ref::<IndexIvf<IvfFlat>>().unwrap();
    for (fourcc, floats) in [(b"IvFL", false), (b"IvFl", true)] {
        let old = legacy(fourcc, &modern, ivf, after_map..after_map, floats);
        let back = read_index_bytes(&old).unwrap_or_else(|e| panic!("{fourcc:?}: {e}"));
        assert_same_index("IvFL/IvFl", &*back, &*index);
    }

    let modern = fixture("ivf8_sq8");
    let index = read_index_bytes(&modern).unwrap();
    let ivf = index
        .downcast_ref::<IndexIvf<IvfScalarQuantizer>>()
        .unwrap();
    let sq = 4 + 4 + 4 + 8 + 8 + 8 + 2 * D * 4;
    // IvSQ: the scalar quantizer and code_size, no by_residual (always residuals).
    let old = legacy(b"IvSQ", &modern, ivf, after_map..after_map + sq + 8, false);
    assert_same_index("IvSQ", &*read_index_bytes(&old).unwrap(), &*index);

    let modern = fixture("ivf8_pq4");
    let index = read_index_bytes(&modern).unwrap();
    let ivf = index.downcast_ref::<IndexIvf<IvfPq>>().unwrap();
    let pq = 8 * 3 + 8 + D * 256 * 4;
    let old = legacy(
        b"IvPQ",
        &modern,
        ivf,
        after_map..after_map + 1 + 8 + pq,
        false,
    );
    assert_same_index("IvPQ", &*read_index_bytes(&old).unwrap(), &*index);

    // A legacy list whose codes do not match its ids is refused.
    let modern = fixture("ivf8_flat");
    let index = read_index_bytes(&modern).unwrap();
    let ivf = index.downcast_ref::<IndexIvf<IvfFlat>>().unwrap();
    let mut bad = legacy(b"IvFL", &modern, ivf, after_map..after_map, false);
    // The last list's code count says 64 bytes fewer than its ids need.
    let last = ivf.invlists().list_size(NLIST - 1) * 4 * D;
    let at = bad.len() - last - 8;
    bad[at..at + 8].copy_from_slice(&((last - 64) as u64).to_le_bytes());
    bad.truncate(bad.len() - 64);
    assert!(read_index_bytes(&bad).is_err());
}
