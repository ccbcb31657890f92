//! Malformed Faiss files built field by field, one defect each, after the kinds of
//! faiss's own `tests/test_read_index_deserialize.cpp` that apply to the types fathom
//! reads. Each must give an error naming the problem, never a panic or an allocation
//! driven by the file's counts.

use fathom_io::faiss::read_index_bytes;

/// Writes Faiss's little-endian fields.
#[derive(Default, Clone)]
struct B(Vec<u8>);

impl B {
    fn cc(mut self, f: &[u8; 4]) -> Self {
        self.0.extend_from_slice(f);
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i64(self, v: i64) -> Self {
        self.u64(v as u64)
    }
    fn f32(mut self, v: f32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn b(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn vec<T: bytemuck::Pod>(mut self, v: &[T]) -> Self {
        self.0.extend_from_slice(&(v.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytemuck::cast_slice(v));
        self
    }
    fn raw(mut self, other: B) -> Self {
        self.0.extend(other.0);
        self
    }
    /// The index header: d, ntotal, two unused fields, is_trained, metric (L2).
    fn hdr(self, d: i32, ntotal: i64) -> Self {
        self.i32(d)
            .i64(ntotal)
            .i64(1 << 20)
            .i64(1 << 20)
            .b(1)
            .i32(1)
    }
}

const D: i32 = 4;

fn flat(ntotal: i64, floats: usize) -> B {
    B::default()
        .cc(b"IxF2")
        .hdr(D, ntotal)
        .vec(&vec![0.5f32; floats])
}

fn pq(d: u64, m: u64, nbits: u64, centroids: usize) -> B {
    B::default()
        .u64(d)
        .u64(m)
        .u64(nbits)
        .vec(&vec![0.25f32; centroids])
}

fn index_pq(ntotal: i64, codes: usize) -> B {
    B::default()
        .cc(b"IxPq")
        .hdr(D, ntotal)
        .raw(pq(4, 2, 4, 4 * 16))
        .vec(&vec![1u8; codes])
        .i32(0)
        .b(0)
        .i32(9)
}

fn sq(qtype: i32, d: u64, code_size: u64, trained: usize) -> B {
    B::default()
        .i32(qtype)
        .i32(0)
        .f32(0.0)
        .u64(d)
        .u64(code_size)
        .vec(&vec![0.5f32; trained])
}

fn ivf_head(cc: &[u8; 4], nlist: u64, ntotal: i64, quantizer: B) -> B {
    B::default()
        .cc(cc)
        .hdr(D, ntotal)
        .u64(nlist)
        .u64(1)
        .raw(quantizer)
        .b(0)
        .vec::<i64>(&[])
}

/// A flat IVF with `nlist` lists and one 16-byte entry in list 0.
fn ivf_flat(nlist: u64, sizes: &[u64], quantizer: B) -> B {
    let n: u64 = sizes.iter().sum();
    let mut b = ivf_head(b"IwFl", nlist, n as i64, quantizer)
        .cc(b"ilar")
        .u64(nlist)
        .u64(16)
        .cc(b"full")
        .vec(sizes);
    for (l, &s) in sizes.iter().enumerate() {
        b = b
            .vec::<u8>(&[])
            .raw(B(vec![0u8; s as usize * 16]))
            .raw(B((0..s)
                .flat_map(|i| (i as i64 + l as i64 * 100).to_le_bytes())
                .collect()));
        // `vec` above added an empty-count prefix we do not want: drop those 8 bytes.
        let len = b.0.len() - s as usize * 24;
        b.0.drain(len - 8..len);
    }
    b
}

/// A 2-list IVF-Flat record up to the size-table kind of its `ilar` lists.
fn ivf_lists(kind: &[u8; 4]) -> B {
    ivf_head(b"IwFl", 2, 0, flat(2, 8))
        .cc(b"ilar")
        .u64(2)
        .u64(16)
        .cc(kind)
}

fn hnsw(levels: &[i32], neighbors: &[i32], entry: i32, max_level: i32, storage: B) -> B {
    let cum = [0i32, 4, 6];
    let mut offsets = vec![0u64];
    for &l in levels {
        offsets.push(offsets.last().unwrap() + cum[l as usize] as u64);
    }
    B::default()
        .cc(b"IHNf")
        .hdr(D, levels.len() as i64)
        .vec(&[0.5f64, 0.5])
        .vec(&cum)
        .vec(levels)
        .vec(&offsets)
        .vec(neighbors)
        .i32(entry)
        .i32(max_level)
        .i32(40)
        .i32(16)
        .i32(1)
        .raw(storage)
}

fn pretransform(nt: i32, vts: Vec<B>, sub: B) -> B {
    let mut b = B::default().cc(b"IxPT").hdr(D, 0).i32(nt);
    for v in vts {
        b = b.raw(v);
    }
    b.raw(sub)
}

fn trailer(b: B, d_in: i32, d_out: i32) -> B {
    b.i32(d_in).i32(d_out).b(1)
}

fn cases() -> Vec<(&'static str, B, &'static str)> {
    let ok_flat = flat(2, 8);
    let ok_hnsw = hnsw(
        &[1, 2],
        &[1, -1, -1, -1, 0, -1, -1, -1, -1, -1],
        1,
        1,
        flat(2, 8),
    );
    vec![
        ("valid flat (control)", ok_flat.clone(), ""),
        ("valid HNSW (control)", ok_hnsw, ""),
        ("valid IVF (control)", ivf_flat(2, &[1, 0], flat(2, 8)), ""),
        (
            "unknown fourcc",
            B::default().cc(b"Ix??").hdr(D, 0),
            "unknown or unsupported index type",
        ),
        (
            "negative dimension",
            B::default().cc(b"IxF2").hdr(-4, 0).vec::<f32>(&[]),
            "dimension d",
        ),
        (
            "negative ntotal",
            B::default().cc(b"IxF2").hdr(D, -1).vec::<f32>(&[]),
            "ntotal",
        ),
        (
            "is_trained is 7",
            B::default()
                .cc(b"IxF2")
                .i32(D)
                .i64(0)
                .i64(0)
                .i64(0)
                .b(7)
                .i32(1)
                .vec::<f32>(&[]),
            "0 or 1",
        ),
        (
            "unknown metric",
            B::default()
                .cc(b"IxFl")
                .i32(D)
                .i64(0)
                .i64(0)
                .i64(0)
                .b(1)
                .i32(99)
                .f32(0.0)
                .vec::<f32>(&[]),
            "metric",
        ),
        (
            "Lp with p = NaN",
            B::default()
                .cc(b"IxFl")
                .i32(D)
                .i64(0)
                .i64(0)
                .i64(0)
                .b(1)
                .i32(4)
                .f32(f32::NAN)
                .vec::<f32>(&[]),
            "metric",
        ),
        (
            "flat vectors fewer than ntotal × d",
            flat(3, 8),
            "expected 12",
        ),
        (
            "flat vector count beyond the file",
            B::default().cc(b"IxF2").hdr(D, 2).u64(u64::MAX / 4),
            "more than the",
        ),
        (
            "PQ with M = 0",
            B::default().cc(b"IxPq").hdr(D, 0).raw(pq(4, 0, 8, 0)),
            "PQ has M = 0",
        ),
        (
            "PQ M not dividing d",
            B::default().cc(b"IxPq").hdr(D, 0).raw(pq(4, 3, 4, 64)),
            "multiple of",
        ),
        (
            "PQ nbits 0",
            B::default().cc(b"IxPq").hdr(D, 0).raw(pq(4, 2, 0, 4)),
            "nbits = 0",
        ),
        (
            "PQ nbits 25",
            B::default().cc(b"IxPq").hdr(D, 0).raw(pq(4, 2, 25, 4)),
            "PQ nbits",
        ),
        (
            "PQ centroid table of the wrong size",
            B::default().cc(b"IxPq").hdr(D, 0).raw(pq(4, 2, 4, 63)),
            "PQ centroids",
        ),
        (
            "PQ centroid table past 2^40 floats",
            B::default()
                .cc(b"IxPq")
                .hdr(D, 0)
                .raw(pq(1 << 20, 1, 24, 0)),
            "PQ centroids",
        ),
        ("PQ codes fewer than ntotal", index_pq(3, 2), "expected 3"),
        (
            "PQ unknown search type",
            {
                let mut b = index_pq(1, 1);
                let n = b.0.len();
                b.0[n - 9..n - 5].copy_from_slice(&77i32.to_le_bytes());
                b
            },
            "search type",
        ),
        (
            "SQ unknown type",
            B::default().cc(b"IxSQ").hdr(D, 0).raw(sq(42, 4, 4, 0)),
            "type",
        ),
        (
            "SQ d differs from the index",
            B::default().cc(b"IxSQ").hdr(D, 0).raw(sq(0, 5, 5, 10)),
            "d = 5",
        ),
        (
            "SQ code size wrong",
            B::default().cc(b"IxSQ").hdr(D, 0).raw(sq(0, 4, 3, 8)),
            "code_size",
        ),
        (
            "SQ trained ranges of the wrong size",
            B::default().cc(b"IxSQ").hdr(D, 0).raw(sq(0, 4, 4, 7)),
            "trained",
        ),
        (
            "SQ codes fewer than ntotal",
            B::default()
                .cc(b"IxSQ")
                .hdr(D, 2)
                .raw(sq(0, 4, 4, 8))
                .vec(&[0u8; 7]),
            "expected 8",
        ),
        (
            "IDMap ids fewer than ntotal",
            B::default()
                .cc(b"IxMp")
                .hdr(D, 2)
                .raw(ok_flat.clone())
                .vec(&[5i64]),
            "id map",
        ),
        (
            "IDMap over a sub-index of another size",
            B::default()
                .cc(b"IxMp")
                .hdr(D, 3)
                .raw(ok_flat.clone())
                .vec(&[5i64, 6, 7]),
            "holds 2 vectors",
        ),
        (
            // Valid: Faiss's adds do not check for repeats (see `idmap2_repeats_read_as_faiss_reads_them`).
            "IDMap2 with a repeated id",
            B::default()
                .cc(b"IxM2")
                .hdr(D, 2)
                .raw(ok_flat.clone())
                .vec(&[5i64, 5]),
            "",
        ),
        (
            "IDMap over a sub-index of another dimension",
            B::default()
                .cc(b"IxMp")
                .hdr(8, 2)
                .raw(ok_flat.clone())
                .vec(&[5i64, 6]),
            "dimension",
        ),
        (
            "PreTransform with a negative chain length",
            pretransform(-1, vec![], flat(0, 0)),
            "chain length",
        ),
        (
            "PreTransform chain not matching the index",
            pretransform(
                1,
                vec![trailer(B::default().cc(b"VNrm").f32(2.0), 8, 8)],
                flat(0, 0),
            ),
            "takes 8 dimensions",
        ),
        (
            "normalization changing the dimension",
            pretransform(
                1,
                vec![trailer(B::default().cc(b"VNrm").f32(2.0), 4, 3)],
                flat(0, 0),
            ),
            "keep the dimension",
        ),
        (
            "centering changing the dimension",
            pretransform(
                1,
                vec![trailer(B::default().cc(b"VCnt").vec(&[0f32; 4]), 4, 5)],
                flat(0, 0),
            ),
            "keep the dimension",
        ),
        (
            "centering mean too short",
            pretransform(
                1,
                vec![trailer(B::default().cc(b"VCnt").vec(&[0f32; 3]), 4, 4)],
                flat(0, 0),
            ),
            "centering mean",
        ),
        (
            "remap map too short",
            pretransform(
                1,
                vec![trailer(B::default().cc(b"RmDT").vec(&[0i32, 1]), 4, 3)],
                flat(0, 0),
            ),
            "dimension map",
        ),
        (
            "remap to a missing input dimension",
            pretransform(
                1,
                vec![trailer(
                    B::default().cc(b"RmDT").vec(&[0i32, 1, 9, 2]),
                    4,
                    4,
                )],
                flat(0, 0),
            ),
            "input dimension 9",
        ),
        (
            "linear transform matrix too short",
            pretransform(
                1,
                vec![trailer(
                    B::default()
                        .cc(b"LTra")
                        .b(0)
                        .vec(&[1f32; 15])
                        .vec::<f32>(&[]),
                    4,
                    4,
                )],
                flat(0, 0),
            ),
            "matrix",
        ),
        (
            "unknown transform",
            pretransform(
                1,
                vec![trailer(B::default().cc(b"HRot").i32(3), 4, 4)],
                flat(0, 0),
            ),
            "transform",
        ),
        (
            "refine k_factor 0",
            B::default()
                .cc(b"IxRF")
                .hdr(D, 2)
                .raw(ok_flat.clone())
                .raw(ok_flat.clone())
                .f32(0.0),
            "k_factor",
        ),
        (
            "refine k_factor 1e9",
            B::default()
                .cc(b"IxRF")
                .hdr(D, 2)
                .raw(ok_flat.clone())
                .raw(ok_flat.clone())
                .f32(1e9),
            "k_factor",
        ),
        (
            "IVF with nlist 0",
            ivf_head(b"IwFl", 0, 0, flat(0, 0)),
            "nlist is 0",
        ),
        (
            "IVF quantizer with more centroids than lists",
            ivf_flat(2, &[1, 0], flat(3, 12)),
            "centroids for 2 lists",
        ),
        (
            "IVF quantizer with fewer centroids than lists",
            ivf_flat(2, &[1, 0], flat(1, 4)),
            "centroids for 2 lists",
        ),
        (
            "IVF with 2^40 lists",
            ivf_head(b"IwFl", 1 << 40, 0, flat(0, 0)),
            "nlist",
        ),
        (
            "IVF lists stored elsewhere (il00)",
            ivf_head(b"IwFl", 2, 0, flat(2, 8)).cc(b"il00"),
            "not stored in this file",
        ),
        (
            "IVF unknown list type",
            ivf_head(b"IwFl", 2, 0, flat(2, 8)).cc(b"ilxx"),
            "unknown or unsupported inverted lists",
        ),
        (
            "IVF lists of another count",
            ivf_head(b"IwFl", 2, 0, flat(2, 8))
                .cc(b"ilar")
                .u64(3)
                .u64(16),
            "hold 3 lists",
        ),
        (
            "IVF lists of another code size",
            ivf_head(b"IwFl", 2, 0, flat(2, 8))
                .cc(b"ilar")
                .u64(2)
                .u64(12),
            "12-byte codes",
        ),
        ("IVF unknown size table", ivf_lists(b"half"), "size table"),
        (
            "IVF size table of the wrong length",
            ivf_lists(b"full").vec(&[1u64]),
            "expected 2",
        ),
        (
            "IVF list bigger than the file",
            ivf_head(b"IwFl", 2, 1, flat(2, 8))
                .cc(b"ilar")
                .u64(2)
                .u64(16)
                .cc(b"full")
                .vec(&[u64::MAX / 8, 0]),
            "more than the file holds",
        ),
        (
            "IVF sparse list out of range",
            ivf_lists(b"sprs").vec(&[5u64, 1]),
            "not below nlist",
        ),
        (
            "IVF sparse lists out of order",
            ivf_lists(b"sprs").vec(&[1u64, 0, 0, 0]),
            "out of order",
        ),
        (
            "IVF sparse sizes not in pairs",
            ivf_lists(b"sprs").vec(&[1u64]),
            "pairs",
        ),
        (
            "IVF ntotal not the lists' total",
            {
                let mut b = ivf_flat(2, &[1, 0], flat(2, 8));
                b.0[8..16].copy_from_slice(&5i64.to_le_bytes());
                b
            },
            "ntotal = 5",
        ),
        (
            "IVF unknown direct map type",
            {
                let b = ivf_head(b"IwFl", 2, 0, flat(2, 8));
                let mut v = b.0;
                let at = v.len() - 9;
                v[at] = 9;
                B(v)
            },
            "direct map type",
        ),
        (
            "IVF array direct map of the wrong size",
            B::default()
                .cc(b"IwFl")
                .hdr(D, 1)
                .u64(2)
                .u64(1)
                .raw(flat(2, 8))
                .b(1)
                .vec(&[0i64, 1, 2]),
            "array direct map",
        ),
        (
            "block lists with 0 codes per block",
            ivf_head(b"IwFl", 2, 0, flat(2, 8))
                .cc(b"ilbl")
                .u64(2)
                .u64(16)
                .u64(0)
                .u64(0),
            "blocks of 0 codes",
        ),
        (
            "block lists with an odd block size",
            ivf_head(b"IwFl", 2, 0, flat(2, 8))
                .cc(b"ilbl")
                .u64(2)
                .u64(16)
                .u64(32)
                .u64(100),
            "blocks of 32 codes in 100 bytes",
        ),
        (
            "HNSW levels fewer than ntotal",
            {
                let mut b = hnsw(&[1], &[-1; 4], 0, 0, flat(2, 8));
                b.0[8..16].copy_from_slice(&2i64.to_le_bytes());
                b
            },
            "HNSW levels",
        ),
        (
            "HNSW storage of another size",
            hnsw(&[1, 1], &[1, -1, -1, -1, 0, -1, -1, -1], 0, 0, flat(3, 12)),
            "storage",
        ),
        (
            "HNSW neighbour -2",
            hnsw(&[1, 1], &[-2, -1, -1, -1, 0, -1, -1, -1], 0, 0, flat(2, 8)),
            "neighbour -2",
        ),
        (
            "HNSW neighbour past ntotal",
            hnsw(&[1, 1], &[7, -1, -1, -1, 0, -1, -1, -1], 0, 0, flat(2, 8)),
            "neighbour 7",
        ),
        (
            "HNSW entry point past ntotal",
            hnsw(&[1, 1], &[1, -1, -1, -1, 0, -1, -1, -1], 5, 0, flat(2, 8)),
            "entry point 5",
        ),
        (
            "HNSW entry point below the top level",
            hnsw(
                &[1, 2],
                &[1, -1, -1, -1, 0, -1, -1, -1, -1, -1],
                0,
                1,
                flat(2, 8),
            ),
            "entry point 0",
        ),
        (
            "HNSW upper link to a lower node",
            hnsw(
                &[2, 2, 1],
                &[1, 2, -1, -1, 1, -1, 0, -1, -1, -1, 2, -1, 0, 1, -1, -1],
                0,
                1,
                flat(3, 12),
            ),
            "links on layer 1 to node 2",
        ),
        (
            "HNSW storage saved apart (null)",
            hnsw(
                &[1, 1],
                &[1, -1, -1, -1, 0, -1, -1, -1],
                0,
                0,
                B::default().cc(b"null"),
            ),
            "IO_FLAG_SKIP_STORAGE",
        ),
        (
            "HNSW storage of the wrong kind",
            hnsw(
                &[1, 1],
                &[1, -1, -1, -1, 0, -1, -1, -1],
                0,
                0,
                index_pq(2, 2),
            ),
            "expected a flat index record",
        ),
        (
            "null record at the top",
            B::default().cc(b"null"),
            "stores no index",
        ),
        (
            "trailing bytes",
            ok_flat.clone().b(0),
            "follow the index record",
        ),
    ]
}

#[test]
fn each_defect_is_refused_with_a_reason() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (what, bytes, needle) in &cases {
        match read_index_bytes(&bytes.0) {
            Ok(_) if needle.is_empty() => {}
            Ok(i) => failures.push(format!("{what}: accepted as {}", i.description())),
            Err(e) if needle.is_empty() => {
                failures.push(format!("{what}: refused a valid file: {e}"))
            }
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(needle) {
                    failures.push(format!("{what}: error {msg:?} does not mention {needle:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Faiss's `IndexIDMap2::add_with_ids` does not check for repeated ids, so its files can
/// hold them; fathom reads them with Faiss's meaning: search reports the id for each
/// vector, the id reconstructs the later vector (Faiss's `construct_rev_map`), removal
/// removes every vector with it, and writing gives the same bytes back.
#[test]
fn idmap2_repeats_read_as_faiss_reads_them() {
    let rows: Vec<f32> = (0..3)
        .flat_map(|r| [r as f32 * 10.0, 0.0, 0.0, 0.0])
        .collect();
    let bytes = B::default()
        .cc(b"IxM2")
        .hdr(D, 3)
        .raw(B::default().cc(b"IxF2").hdr(D, 3).vec(&rows))
        .vec(&[5i64, 7, 5])
        .0;
    let mut index = read_index_bytes(&bytes).unwrap();
    assert_eq!(index.ntotal(), 3);
    assert_eq!(index.reconstruct(5).unwrap(), rows[8..12].to_vec());
    assert_eq!(index.reconstruct(7).unwrap(), rows[4..8].to_vec());
    let near_first = index.search(&[1.0, 0.0, 0.0, 0.0], 3).unwrap();
    assert_eq!(near_first.labels, vec![5, 7, 5]);
    assert_eq!(fathom_io::faiss::index_to_bytes(&*index).unwrap(), bytes);
    let removed = index
        .remove_ids(&fathom_core::IdSelectorBatch::new([5]))
        .unwrap();
    assert_eq!((removed, index.ntotal()), (2, 1));
    assert!(index.reconstruct(5).is_err());
    assert_eq!(index.reconstruct(7).unwrap(), rows[4..8].to_vec());
}
