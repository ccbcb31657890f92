//! fathom-gpu's kernels run on the CPU: kernels.cu compiled by the system's C++ compiler
//! against tests/emu/cuda_host.h (a block's threads are OS threads, `__syncthreads` a
//! barrier, warp shuffles exchanges through memory), launched by tests/emu/driver.cpp,
//! and their outputs compared with references computed here. This checks what the
//! kernels compute — selection across tiles, merging, masks, range lists, re-ranking and
//! its certificate, the IVF scans over interleaved lists, the k-means update — on every
//! machine; the device tests (tests/gpu.rs) check the rest on a GPU. Without a C++20
//! compiler the tests report themselves skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fathom_tests::harness::{Outcome, PASSED, skipped};

/// The driver built once for all tests, or why it could not be.
fn driver() -> Result<&'static Path, String> {
    static DRIVER: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let source =
                std::fs::read_to_string(here.join("src/kernels.cu")).map_err(|e| e.to_string())?;
            // Blocks run one after another, so block-shared variables are statics and the
            // dynamic shared memory one global buffer (cuda_host.h).
            std::fs::write(
                dir.path().join("kernels_host.cu"),
                source.replace("extern __shared__", "extern"),
            )
            .map_err(|e| e.to_string())?;
            for f in ["cuda_host.h", "driver.cpp"] {
                std::fs::copy(here.join("tests/emu").join(f), dir.path().join(f))
                    .map_err(|e| e.to_string())?;
            }
            let exe = dir.path().join("driver");
            let out = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
                .current_dir(dir.path())
                .args(["-std=c++20", "-O1", "-pthread", "-DFATHOM_HOST_EMULATION"])
                .args(["-o", "driver", "driver.cpp"])
                .output()
                .map_err(|e| format!("no C++ compiler (c++, or $CXX): {e}"))?;
            if !out.status.success() {
                let log = String::from_utf8_lossy(&out.stderr);
                // A compiler too old for C++20 is a missing environment; anything else is
                // the kernels' or the shim's fault.
                if log.contains("c++20") || log.contains("barrier: No such file") {
                    return Err(format!("the C++ compiler lacks C++20: {log}"));
                }
                panic!("kernels.cu does not compile on the host:\n{log}");
            }
            Ok((dir, exe))
        })
        .as_ref()
        .map(|(_, exe)| exe.as_path())
        .map_err(Clone::clone)
}

/// A kernel argument: a buffer (read back after the launch), an integer or a float.
enum Arg {
    Buf(Vec<u8>),
    Int(i64),
    Float(f32),
}

fn f32s(v: &[f32]) -> Arg {
    Arg::Buf(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}
fn i64s(v: &[i64]) -> Arg {
    Arg::Buf(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}
fn u8s(v: &[u8]) -> Arg {
    Arg::Buf(v.to_vec())
}
fn u16s(v: &[u16]) -> Arg {
    Arg::Buf(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}
fn i32s(v: &[i32]) -> Arg {
    Arg::Buf(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}
fn int(v: impl TryInto<i64>) -> Arg {
    Arg::Int(v.try_into().ok().expect("an integer argument"))
}

impl Arg {
    /// The buffer's little-endian values.
    fn values<T, const N: usize>(&self, from: fn([u8; N]) -> T) -> Vec<T> {
        match self {
            Arg::Buf(b) => b
                .chunks_exact(N)
                .map(|c| from(c.try_into().unwrap()))
                .collect(),
            _ => panic!("not a buffer"),
        }
    }
    fn as_f32(&self) -> Vec<f32> {
        self.values(f32::from_le_bytes)
    }
    fn as_i64(&self) -> Vec<i64> {
        self.values(i64::from_le_bytes)
    }
    fn as_i32(&self) -> Vec<i32> {
        self.values(i32::from_le_bytes)
    }
}

/// Launches `kernel` with `grid` blocks of `block` threads on the CPU; buffers come back.
fn launch(exe: &Path, kernel: &str, grid: usize, block: usize, args: &mut [Arg]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([kernel, &grid.to_string(), &block.to_string()]);
    for (i, a) in args.iter().enumerate() {
        match a {
            Arg::Buf(b) => {
                let p = dir.path().join(format!("a{i}"));
                std::fs::write(&p, b).unwrap();
                cmd.arg(format!("b:{}", p.display()));
            }
            Arg::Int(v) => {
                cmd.arg(format!("i:{v}"));
            }
            Arg::Float(v) => {
                cmd.arg(format!("f:{v:e}"));
            }
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{kernel} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, a) in args.iter_mut().enumerate() {
        if let Arg::Buf(b) = a {
            *b = std::fs::read(dir.path().join(format!("a{i}"))).unwrap();
        }
    }
}

/// The kernels' block size (kernels.rs, BLOCK).
const BLOCK: usize = 128;

fn kpow(k: usize) -> usize {
    k.next_power_of_two().max(BLOCK)
}

fn topk_smem(kpow: usize) -> usize {
    36 * kpow + 16
}

/// Deterministic pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit() * 2.0 - 1.0).collect()
    }
}

/// The best `k` of `(key, id)` pairs, smaller keys first, padded with (+inf, −1).
fn best_k(mut all: Vec<(f32, i64)>, k: usize) -> (Vec<f32>, Vec<i64>) {
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all.resize(k, (f32::INFINITY, -1));
    all.into_iter().unzip()
}

macro_rules! emu_or_skip {
    () => {
        match driver() {
            Ok(exe) => exe,
            Err(why) => return skipped(why),
        }
    };
}

/// select_tile and argmin_tile merge tile after tile into each query's best k — with and
/// without an allow mask, by L2 and inner product, for k below and above the block size —
/// and range_tile counts every hit under the bound while keeping the first `cap`.
fn selection_kernels_keep_the_best_across_tiles() -> Outcome {
    let exe = emu_or_skip!();
    let mut rng = Rng(0x5eed);
    let nq = 12;
    let widths = [700usize, 513, 900];
    let total: usize = widths.iter().sum();
    // Norms of 2 to 6 and products within ±1 keep L2 keys positive: no clamping at 0, so
    // no ties, whose order the kernels leave open.
    let xnorm: Vec<f32> = (0..total).map(|_| 2.0 + rng.unit() * 4.0).collect();
    let qnorm: Vec<f32> = (0..nq).map(|_| 2.0 + rng.unit() * 4.0).collect();
    let mask: Vec<u8> = (0..total).map(|_| u8::from(rng.below(10) < 7)).collect();
    // ip[q][x] for every query and vector; tiles are column ranges of it.
    let ip: Vec<f32> = (0..nq * total).map(|_| rng.unit() * 2.0 - 1.0).collect();
    for l2 in [true, false] {
        for filtered in [false, true] {
            let key = |q: usize, x: usize| {
                let v = ip[q * total + x];
                if l2 {
                    (qnorm[q] + xnorm[x] - 2.0 * v).max(0.0)
                } else {
                    -v
                }
            };
            let allowed = |x: usize| !filtered || mask[x] != 0;
            for k in [1usize, 5, 200] {
                let mut best_d = vec![f32::INFINITY; nq * k];
                let mut best_i = vec![-1i64; nq * k];
                let mut x0 = 0;
                for &w in &widths {
                    let tile: Vec<f32> = (0..nq)
                        .flat_map(|q| ip[q * total + x0..q * total + x0 + w].to_vec())
                        .collect();
                    let common = [
                        f32s(&tile),
                        int(w),
                        int(w),
                        int(x0),
                        f32s(&qnorm),
                        f32s(&xnorm[x0..x0 + w]),
                        int(u8::from(l2)),
                        u8s(&mask),
                        int(u8::from(filtered)),
                    ];
                    let mut args: Vec<Arg> = common.into_iter().collect();
                    let (kernel, smem_k) = if k == 1 {
                        ("argmin_tile", None)
                    } else {
                        ("select_tile", Some(kpow(k)))
                    };
                    if let Some(kp) = smem_k {
                        args.push(int(k));
                        args.push(int(kp));
                        assert!(topk_smem(kp) < 1 << 20);
                    }
                    args.push(f32s(&best_d));
                    args.push(i64s(&best_i));
                    launch(exe, kernel, nq, BLOCK, &mut args);
                    let n = args.len();
                    best_d = args[n - 2].as_f32();
                    best_i = args[n - 1].as_i64();
                    x0 += w;
                }
                for q in 0..nq {
                    let all = (0..total)
                        .filter(|&x| allowed(x))
                        .map(|x| (key(q, x), x as i64))
                        .collect();
                    let (wd, wi) = best_k(all, k);
                    let what = format!("l2={l2} filtered={filtered} k={k} query {q}");
                    assert_eq!(&best_i[q * k..(q + 1) * k], &wi[..], "{what}");
                    assert_eq!(&best_d[q * k..(q + 1) * k], &wd[..], "{what}");
                }
            }
            // Range: keys under a bound most queries pass a few dozen times, room for 8.
            let bound = if l2 { 7.0 } else { -0.5 };
            let cap = 8usize;
            let mut count = vec![0i64; nq];
            let mut out_d = vec![0f32; nq * cap];
            let mut out_i = vec![0i64; nq * cap];
            let mut x0 = 0;
            for &w in &widths {
                let tile: Vec<f32> = (0..nq)
                    .flat_map(|q| ip[q * total + x0..q * total + x0 + w].to_vec())
                    .collect();
                let mut args = vec![
                    f32s(&tile),
                    int(w),
                    int(w),
                    int(x0),
                    f32s(&qnorm),
                    f32s(&xnorm[x0..x0 + w]),
                    int(u8::from(l2)),
                    u8s(&mask),
                    int(u8::from(filtered)),
                    Arg::Float(bound),
                    int(cap),
                    i64s(&count),
                    f32s(&out_d),
                    i64s(&out_i),
                ];
                launch(exe, "range_tile", nq, BLOCK, &mut args);
                (count, out_d, out_i) = (args[11].as_i64(), args[12].as_f32(), args[13].as_i64());
                x0 += w;
            }
            for q in 0..nq {
                let hits: Vec<usize> = (0..total)
                    .filter(|&x| allowed(x) && key(q, x) < bound)
                    .collect();
                assert_eq!(count[q] as usize, hits.len(), "range l2={l2} query {q}");
                assert!(hits.len() > cap, "the bound should overflow the room");
                for s in 0..cap {
                    let id = out_i[q * cap + s] as usize;
                    assert!(hits.contains(&id), "a stored hit is a hit");
                    assert_eq!(out_d[q * cap + s], key(q, id));
                }
            }
        }
    }
    PASSED
}

/// rerank keeps the exact best k of the candidates (FP32 rows and FP16 rows) and
/// certifies a query exactly when the k-th exact key plus the bound is at most the last
/// candidate's approximate key, or the candidates ran out.
fn rerank_recomputes_and_certifies() -> Outcome {
    let exe = emu_or_skip!();
    let mut rng = Rng(0xabcdef);
    let (d, n, nq, kc, k) = (20usize, 300usize, 9usize, 64usize, 10usize);
    let data = rng.vec(n * d);
    let queries = rng.vec(nq * d);
    let halves: Vec<u16> = data
        .iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect();
    let rounded: Vec<f32> = halves
        .iter()
        .map(|&b| half::f16::from_bits(b).to_f32())
        .collect();
    for (l2, f16) in [(true, false), (false, false), (true, true)] {
        let rows = if f16 { &rounded } else { &data };
        let exact = |q: usize, x: usize| {
            let (qv, xv) = (&queries[q * d..(q + 1) * d], &rows[x * d..(x + 1) * d]);
            if l2 {
                qv.iter().zip(xv).fold(0.0f32, |s, (a, b)| {
                    let e = a - b;
                    s + e * e
                })
            } else {
                -qv.iter().zip(xv).fold(0.0f32, |s, (a, b)| s + a * b)
            }
        };
        // Candidates: kc distinct ids with approximate keys ascending; query 0 has fewer
        // than kc (padded with −1); the approximate last key is sometimes far, sometimes
        // close to the exact k-th.
        let mut cand_d = vec![0f32; nq * kc];
        let mut cand_i = vec![-1i64; nq * kc];
        for q in 0..nq {
            let have = if q == 0 { 30 } else { kc };
            let mut ids: Vec<usize> = (0..n).collect();
            for i in 0..have {
                let j = i + rng.below(n - i);
                ids.swap(i, j);
            }
            let mut c: Vec<(f32, i64)> = ids[..have]
                .iter()
                .map(|&x| (exact(q, x) + (rng.unit() - 0.5) * 0.01, x as i64))
                .collect();
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (s, (key, id)) in c.into_iter().enumerate() {
                cand_d[q * kc + s] = key;
                cand_i[q * kc + s] = id;
            }
        }
        let mut seen = [0, 0];
        // A tight bound certifies queries, a loose one does not.
        for err_a in [0.001f32, 0.5, 50.0] {
            let (err_b, max_sq) = (0.0001f32, 2.0f32);
            let kp = kpow(k);
            let mut args = vec![
                f32s(&queries),
                int(d),
                if f16 { u16s(&halves) } else { f32s(&data) },
                f32s(&cand_d),
                i64s(&cand_i),
                int(kc),
                int(u8::from(l2)),
                Arg::Float(err_a),
                Arg::Float(err_b),
                Arg::Float(max_sq),
                int(k),
                int(kp),
                f32s(&vec![f32::INFINITY; nq * k]),
                i64s(&vec![-1; nq * k]),
                i32s(&vec![7; nq]),
            ];
            let kernel = if f16 { "rerank_f16" } else { "rerank" };
            launch(exe, kernel, nq, BLOCK, &mut args);
            let (best_d, best_i, certain) =
                (args[12].as_f32(), args[13].as_i64(), args[14].as_i32());
            for q in 0..nq {
                let cands: Vec<(f32, i64)> = cand_i[q * kc..(q + 1) * kc]
                    .iter()
                    .filter(|&&id| id >= 0)
                    .map(|&id| (exact(q, id as usize), id))
                    .collect();
                let (wd, wi) = best_k(cands, k);
                let what = format!("{kernel} l2={l2} query {q}");
                assert_eq!(&best_i[q * k..(q + 1) * k], &wi[..], "{what}");
                assert_eq!(&best_d[q * k..(q + 1) * k], &wd[..], "{what}");
                let qn: f32 = queries[q * d..(q + 1) * d]
                    .iter()
                    .fold(0.0, |s, v| s + v * v);
                let err = err_a * qn.sqrt() + err_b * (qn + max_sq);
                let want =
                    cand_i[q * kc + kc - 1] < 0 || wd[k - 1] + err <= cand_d[q * kc + kc - 1];
                assert_eq!(certain[q], i32::from(want), "{what}: certificate");
                seen[usize::from(want)] += 1;
            }
        }
        assert!(
            seen[0] > 0 && seen[1] > 0,
            "{l2} {f16}: both outcomes ({seen:?})"
        );
    }
    // The FP16 norms kernel widens as the half crate does.
    let mut args = vec![u16s(&halves), int(n), int(d), f32s(&vec![0.0; n])];
    launch(exe, "l2_norms_f16", n.div_ceil(BLOCK), BLOCK, &mut args);
    let norms = args[3].as_f32();
    for x in 0..n {
        let want = rounded[x * d..(x + 1) * d]
            .iter()
            .fold(0.0f32, |s, v| s + v * v);
        assert_eq!(norms[x], want, "row {x}");
    }
    PASSED
}

/// centroid_means gives the CPU's means to the bit, zeroes for an empty cluster.
fn centroid_means_are_the_cpu_means() -> Outcome {
    let exe = emu_or_skip!();
    let mut rng = Rng(77);
    let (n, d, k) = (1000usize, 24usize, 9usize);
    let x = rng.vec(n * d);
    let assign: Vec<usize> = (0..n).map(|_| rng.below(k - 1)).collect(); // cluster k−1 empty
    let members = fathom_linalg::ClusterMembers::new(&assign, k);
    let order: Vec<i64> = members.order.iter().map(|&i| i as i64).collect();
    let start: Vec<i64> = members.start.iter().map(|&i| i as i64).collect();
    let mut args = vec![
        f32s(&x),
        int(d),
        i64s(&order),
        i64s(&start),
        f32s(&vec![9.0; k * d]),
    ];
    launch(exe, "centroid_means", k, BLOCK, &mut args);
    let got = args[4].as_f32();
    for c in 0..k {
        let mut want = vec![0.0f32; d];
        let m = members.of(c);
        for &i in m {
            for (w, v) in want.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                *w += v;
            }
        }
        if !m.is_empty() {
            let norm = 1.0 / m.len() as f32;
            want.iter_mut().for_each(|w| *w *= norm);
        }
        assert_eq!(&got[c * d..(c + 1) * d], &want[..], "cluster {c}");
    }
    PASSED
}

/// Lists in the device layout: each padded to a multiple of 32 rows (ids −1), element e of
/// row r at ((r / 32)·elems + e)·32 + r % 32 (an element `elem` bytes of a code).
struct Lists {
    offsets: Vec<i64>,
    ids: Vec<i64>,
    codes: Vec<u8>,
}

fn interleave(lists: &[(Vec<i64>, Vec<u8>)], code_size: usize, elem: usize) -> Lists {
    let mut out = Lists {
        offsets: vec![0],
        ids: Vec::new(),
        codes: Vec::new(),
    };
    let elems = code_size / elem;
    for (ids, codes) in lists {
        let padded = ids.len().div_ceil(32) * 32;
        let base_row = out.ids.len();
        out.ids.extend(ids);
        out.ids.resize(base_row + padded, -1);
        out.codes.resize((base_row + padded) * code_size, 0);
        for (r, code) in codes.chunks_exact(code_size).enumerate() {
            let g = base_row + r;
            for e in 0..elems {
                let at = (((g / 32) * elems + e) * 32 + g % 32) * elem;
                out.codes[at..at + elem].copy_from_slice(&code[e * elem..(e + 1) * elem]);
            }
        }
        out.offsets.push(out.ids.len() as i64);
    }
    out
}

/// The IVF scans — flat rows, 8- and 4-bit PQ codes, SQ8 codes — find the best k of the
/// probed lists (a −1 probe skipped), by L2 and inner product, with and without residuals,
/// over lists of 0 to 100 rows.
fn ivf_scans_find_the_best_of_the_probed_lists() -> Outcome {
    let exe = emu_or_skip!();
    let mut rng = Rng(4242);
    let (d, nq, k, nprobe) = (16usize, 40usize, 10usize, 3usize);
    let sizes = [0usize, 5, 33, 64, 100, 7];
    let nlist = sizes.len();
    let coarse = rng.vec(nlist * d);
    let queries = rng.vec(nq * d);
    let mut next_id = 1000i64;
    let mut list_ids = Vec::new();
    for &s in &sizes {
        list_ids.push((next_id..next_id + s as i64).collect::<Vec<i64>>());
        next_id += s as i64 + 17;
    }
    let probes: Vec<i64> = (0..nq)
        .flat_map(|q| {
            let mut p: Vec<i64> = (0..nlist as i64).collect();
            for i in 0..nprobe {
                let j = i + (q * 7 + i * 3) % (nlist - i);
                p.swap(i, j);
            }
            if q == 2 {
                p[1] = -1;
            }
            p[..nprobe].to_vec()
        })
        .collect();
    let kp = kpow(k);
    // The allow mask of the filtered runs keeps rows whose id is not a multiple of 3.
    let keep = |id: i64| id % 3 != 0;
    let check = |name: &str,
                 filtered: bool,
                 best_d: &[f32],
                 best_i: &[i64],
                 key: &dyn Fn(usize, usize, usize) -> f32| {
        for q in 0..nq {
            let mut all = Vec::new();
            for &l in &probes[q * nprobe..(q + 1) * nprobe] {
                if l < 0 {
                    continue;
                }
                let l = l as usize;
                for (r, &id) in list_ids[l].iter().enumerate() {
                    if !filtered || keep(id) {
                        all.push((key(q, l, r), id));
                    }
                }
            }
            let (wd, wi) = best_k(all, k);
            assert_eq!(&best_i[q * k..(q + 1) * k], &wi[..], "{name} query {q}");
            for (a, b) in best_d[q * k..(q + 1) * k].iter().zip(&wd) {
                assert!(
                    a == b || (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{name} query {q}: {a} vs {b}"
                );
            }
        }
    };
    let mask_of = |lists: &Lists| -> Vec<u8> {
        lists
            .ids
            .iter()
            .map(|&id| u8::from(id >= 0 && keep(id)))
            .collect()
    };
    let fresh = || (f32s(&vec![f32::INFINITY; nq * k]), i64s(&vec![-1; nq * k]));

    // IVF-Flat.
    let rows: Vec<Vec<f32>> = sizes.iter().map(|&s| rng.vec(s * d)).collect();
    let flat_lists: Vec<(Vec<i64>, Vec<u8>)> = list_ids
        .iter()
        .zip(&rows)
        .map(|(ids, r)| {
            (
                ids.clone(),
                r.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let lists = interleave(&flat_lists, 4 * d, 4);
    let mask = mask_of(&lists);
    let flat_key = |l2: bool| {
        let rows = &rows;
        let queries = &queries;
        move |q: usize, l: usize, r: usize| {
            let (qv, xv) = (&queries[q * d..(q + 1) * d], &rows[l][r * d..(r + 1) * d]);
            if l2 {
                qv.iter()
                    .zip(xv)
                    .fold(0.0f32, |s, (a, b)| s + (a - b) * (a - b))
            } else {
                -qv.iter().zip(xv).fold(0.0f32, |s, (a, b)| s + a * b)
            }
        }
    };
    for (l2, filtered) in [(true, false), (false, false), (true, true)] {
        let (bd, bi) = fresh();
        let mut args = vec![
            f32s(&queries),
            int(d),
            i64s(&probes),
            int(nprobe),
            i64s(&lists.offsets),
            u8s(&lists.codes),
            i64s(&lists.ids),
            u8s(&mask),
            int(u8::from(filtered)),
            int(u8::from(l2)),
            int(k),
            int(kp),
            bd,
            bi,
        ];
        launch(exe, "ivf_flat_scan", nq, BLOCK, &mut args);
        let name = format!("ivf_flat_scan l2={l2} filtered={filtered}");
        check(
            &name,
            filtered,
            &args[12].as_f32(),
            &args[13].as_i64(),
            &flat_key(l2),
        );
    }

    // IVF-Flat range: every row of the probed lists under the bound, counted past the
    // room of 4 a query, the first 4 kept.
    for (l2, filtered) in [(true, false), (false, true)] {
        let bound = if l2 { 9.0 } else { -0.2 };
        let cap = 4usize;
        let mut args = vec![
            f32s(&queries),
            int(d),
            i64s(&probes),
            int(nprobe),
            i64s(&lists.offsets),
            u8s(&lists.codes),
            i64s(&lists.ids),
            u8s(&mask),
            int(u8::from(filtered)),
            int(u8::from(l2)),
            Arg::Float(bound),
            int(cap),
            i64s(&vec![0; nq]),
            f32s(&vec![0.0; nq * cap]),
            i64s(&vec![0; nq * cap]),
        ];
        launch(exe, "ivf_flat_range", nq, BLOCK, &mut args);
        let (count, out_d, out_i) = (args[12].as_i64(), args[13].as_f32(), args[14].as_i64());
        let key = flat_key(l2);
        let mut overflowed = 0;
        for q in 0..nq {
            let mut hits = Vec::new();
            for &l in &probes[q * nprobe..(q + 1) * nprobe] {
                if l < 0 {
                    continue;
                }
                for (r, &id) in list_ids[l as usize].iter().enumerate() {
                    let dist = key(q, l as usize, r);
                    if (!filtered || keep(id)) && dist < bound {
                        hits.push((id, dist));
                    }
                }
            }
            assert_eq!(
                count[q] as usize,
                hits.len(),
                "ivf_flat_range l2={l2} query {q}"
            );
            overflowed += usize::from(hits.len() > cap);
            for s in 0..hits.len().min(cap) {
                let (id, dist) = (out_i[q * cap + s], out_d[q * cap + s]);
                assert!(
                    hits.contains(&(id, dist)),
                    "query {q}: ({id}, {dist}) is no hit"
                );
            }
        }
        assert!(overflowed > 0, "some query should find more than the room");
    }

    // IVF-Flat list-major: per list, blocks of up to 16 of the queries probing it write
    // keys into each (query, list) pair's segment; then the selection reads them.
    for (l2, filtered) in [(true, false), (false, true)] {
        let (mut block_list, mut block_pair0, mut block_pairs) = (vec![], vec![], vec![]);
        let (mut pair_query, mut pair_out) = (vec![], vec![]);
        let mut seg = vec![-1i64; nq * nprobe];
        let mut used = 0i64;
        for l in 0..nlist {
            let len = lists.offsets[l + 1] - lists.offsets[l];
            let probing: Vec<(usize, usize)> = (0..nq)
                .flat_map(|q| (0..nprobe).map(move |p| (q, p)))
                .filter(|&(q, p)| probes[q * nprobe + p] == l as i64)
                .collect();
            for chunk in probing.chunks(16) {
                block_list.push(l as i64);
                block_pair0.push(pair_query.len() as i64);
                block_pairs.push(chunk.len() as i32);
                for &(q, p) in chunk {
                    pair_query.push(q as i64);
                    pair_out.push(used);
                    seg[q * nprobe + p] = used;
                    used += len;
                }
            }
        }
        let mut args = vec![
            f32s(&queries),
            int(d),
            i64s(&lists.offsets),
            u8s(&lists.codes),
            i64s(&block_list),
            i64s(&block_pair0),
            i32s(&block_pairs),
            i64s(&pair_query),
            i64s(&pair_out),
            int(u8::from(l2)),
            f32s(&vec![f32::NAN; used as usize]),
        ];
        launch(
            exe,
            "ivf_flat_list_major",
            block_list.len(),
            BLOCK,
            &mut args,
        );
        let dists = args[10].as_f32();
        let (bd, bi) = fresh();
        let mut args = vec![
            f32s(&dists),
            i64s(&seg),
            i64s(&probes),
            int(nprobe),
            i64s(&lists.offsets),
            i64s(&lists.ids),
            u8s(&mask),
            int(u8::from(filtered)),
            int(k),
            int(kp),
            bd,
            bi,
        ];
        launch(exe, "ivf_select_segments", nq, BLOCK, &mut args);
        let name = format!("list-major ivf_flat l2={l2} filtered={filtered}");
        check(
            &name,
            filtered,
            &args[10].as_f32(),
            &args[11].as_i64(),
            &flat_key(l2),
        );
    }

    // IVF-PQ, 8 and 4 bits.
    for nbits in [8usize, 4] {
        let m = 4usize;
        let (ksub, dsub) = (1usize << nbits, d / m);
        let code_size = (m * nbits).div_ceil(8);
        let books = rng.vec(m * ksub * dsub);
        let codes: Vec<Vec<Vec<usize>>> = sizes
            .iter()
            .map(|&s| {
                (0..s)
                    .map(|_| (0..m).map(|_| rng.below(ksub)).collect())
                    .collect()
            })
            .collect();
        let packed: Vec<(Vec<i64>, Vec<u8>)> = list_ids
            .iter()
            .zip(&codes)
            .map(|(ids, cs)| {
                let mut bytes = vec![0u8; cs.len() * code_size];
                for (r, c) in cs.iter().enumerate() {
                    fathom_quant::bits::pack(
                        c.iter().map(|&v| v as u32),
                        nbits,
                        &mut bytes[r * code_size..(r + 1) * code_size],
                    );
                }
                (ids.clone(), bytes)
            })
            .collect();
        let lists = interleave(&packed, code_size, 1);
        let mask = mask_of(&lists);
        for (l2, by_residual) in [(true, true), (true, false), (false, true), (false, false)] {
            let (bd, bi) = fresh();
            let mut args = vec![
                f32s(&queries),
                int(d),
                i64s(&probes),
                int(nprobe),
                f32s(&coarse),
                f32s(&books),
                int(m),
                int(nbits),
                int(u8::from(by_residual)),
                i64s(&lists.offsets),
                u8s(&lists.codes),
                i64s(&lists.ids),
                u8s(&mask),
                int(1),
                int(u8::from(l2)),
                int(k),
                int(kp),
                bd,
                bi,
            ];
            launch(exe, "ivf_pq_scan", nq, BLOCK, &mut args);
            let key = |q: usize, l: usize, r: usize| {
                let qv = &queries[q * d..(q + 1) * d];
                let c = &coarse[l * d..(l + 1) * d];
                let res: Vec<f32> = (0..d)
                    .map(|j| {
                        if l2 && by_residual {
                            qv[j] - c[j]
                        } else {
                            qv[j]
                        }
                    })
                    .collect();
                let mut s = 0.0f32;
                for (sub, &code) in codes[l][r].iter().enumerate() {
                    let cen = &books[(sub * ksub + code) * dsub..(sub * ksub + code + 1) * dsub];
                    let rr = &res[sub * dsub..(sub + 1) * dsub];
                    s += if l2 {
                        rr.iter()
                            .zip(cen)
                            .fold(0.0f32, |t, (a, b)| t + (a - b) * (a - b))
                    } else {
                        rr.iter().zip(cen).fold(0.0f32, |t, (a, b)| t + a * b)
                    };
                }
                let qc = if !l2 && by_residual {
                    qv.iter().zip(c).fold(0.0f32, |t, (a, b)| t + a * b)
                } else {
                    0.0
                };
                if l2 { s } else { -(qc + s) }
            };
            let name = format!("ivf_pq_scan nbits={nbits} l2={l2} residual={by_residual}");
            check(&name, true, &args[17].as_f32(), &args[18].as_i64(), &key);
        }
    }

    // IVF-SQ8.
    let affine: Vec<f32> = (0..2 * d).map(|_| rng.unit() * 0.02 + 0.001).collect();
    let codes: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&s| (0..s * d).map(|_| rng.below(256) as u8).collect())
        .collect();
    let sq_lists: Vec<(Vec<i64>, Vec<u8>)> = list_ids
        .iter()
        .cloned()
        .zip(codes.iter().cloned())
        .collect();
    let lists = interleave(&sq_lists, d, 1);
    let mask = mask_of(&lists);
    for (l2, by_residual) in [(true, true), (false, true), (true, false)] {
        let (bd, bi) = fresh();
        let mut args = vec![
            f32s(&queries),
            int(d),
            i64s(&probes),
            int(nprobe),
            f32s(&coarse),
            f32s(&affine),
            int(u8::from(by_residual)),
            i64s(&lists.offsets),
            u8s(&lists.codes),
            i64s(&lists.ids),
            u8s(&mask),
            int(1),
            int(u8::from(l2)),
            int(k),
            int(kp),
            bd,
            bi,
        ];
        launch(exe, "ivf_sq8_scan", nq, BLOCK, &mut args);
        let key = |q: usize, l: usize, r: usize| {
            let qv = &queries[q * d..(q + 1) * d];
            let c = &coarse[l * d..(l + 1) * d];
            let mut s = 0.0f32;
            for j in 0..d {
                let x = affine[j] * codes[l][r * d + j] as f32 + affine[d + j];
                let rj = if l2 && by_residual {
                    qv[j] - c[j]
                } else {
                    qv[j]
                };
                s += if l2 { (rj - x) * (rj - x) } else { rj * x };
            }
            let qc = if !l2 && by_residual {
                qv.iter().zip(c).fold(0.0f32, |t, (a, b)| t + a * b)
            } else {
                0.0
            };
            if l2 { s } else { -(qc + s) }
        };
        let name = format!("ivf_sq8_scan l2={l2} residual={by_residual}");
        check(&name, true, &args[15].as_f32(), &args[16].as_i64(), &key);
    }
    PASSED
}

fathom_tests::harness::main!(
    selection_kernels_keep_the_best_across_tiles,
    rerank_recomputes_and_certifies,
    centroid_means_are_the_cpu_means,
    ivf_scans_find_the_best_of_the_probed_lists,
);
