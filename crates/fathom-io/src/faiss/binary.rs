//! Binary index records, read and written side by side: Faiss's `write_index_binary`
//! format — `IBxF` (flat), `IBwF` (IVF), `IBHf` (HNSW), `IBHh` (hash), `IBHm`
//! (multi-hash), `IBFf` (from float) and `IBMp` / `IBM2` (id maps) — whose header is
//! `d, code_size, ntotal, is_trained, metric_type`.

use fathom_core::{Error, Idx, Result};
use fathom_index::binary::{
    BinaryIndexView, HashBucket, IndexBinary, IndexBinaryFlat, IndexBinaryFromFloat,
    IndexBinaryHash, IndexBinaryHnsw, IndexBinaryIdMap, IndexBinaryIvf, IndexBinaryMultiHash,
};
use fathom_invlists::{ArrayInvertedLists, InvertedLists};
use fathom_quant::bits::{BitReader, BitWriter};

use super::cursor::{Cursor, MAX_DIM};
use super::header::unsupported;
use super::hnsw::{read_hnsw_graph, write_hnsw_graph};
use super::invlists::{read_lists, write_lists};
use super::ivf::{read_direct_map, write_direct_map};
use super::read::read_index;
use super::sink::Sink;
use super::write::write_index;

/// The header of a binary index record.
struct BinaryHeader {
    d: usize,
    ntotal: usize,
    is_trained: bool,
}

fn read_binary_header(c: &mut Cursor<'_>) -> Result<BinaryHeader> {
    let d = c.i32_in("dimension d (bits)", 8 * MAX_DIM)?;
    let code_size = c.i32_in("code_size", MAX_DIM)?;
    if d == 0 || !d.is_multiple_of(8) || code_size != d / 8 {
        return Err(c.err(format!(
            "a binary index of d = {d} bits has code_size {code_size}; expected a positive \
             multiple of 8 bits and d / 8 bytes"
        )));
    }
    let ntotal = c.i64("ntotal")?;
    if ntotal < 0 {
        return Err(c.err(format!("ntotal is {ntotal}; expected ≥ 0")));
    }
    let is_trained = c.bool("is_trained")?;
    c.i32("metric type")?;
    Ok(BinaryHeader {
        d,
        ntotal: ntotal as usize,
        is_trained,
    })
}

fn write_binary_header(s: &mut Sink<'_>, index: &dyn IndexBinary) -> Result<()> {
    s.i32(index.d() as i32)?;
    s.i32(index.code_size() as i32)?;
    s.i64(index.ntotal() as i64)?;
    s.bool(index.is_trained())?;
    // Faiss's METRIC_L2 (binary indexes record it; Hamming is implied).
    s.i32(1)
}

/// Checks a nested binary index against the header of the record holding it.
fn check_inner(
    c: &Cursor<'_>,
    h: &BinaryHeader,
    inner: &dyn IndexBinary,
    ntotal: Option<usize>,
    what: &str,
) -> Result<()> {
    if inner.d() != h.d || ntotal.is_some_and(|n| n != inner.ntotal()) {
        return Err(c.err(format!(
            "{what} has d = {} and {} vectors; the header says d = {} and ntotal = {}",
            inner.d(),
            inner.ntotal(),
            h.d,
            h.ntotal
        )));
    }
    Ok(())
}

/// A nested record that must be a flat binary index (the storage of HNSW and
/// multi-hash indexes).
fn read_flat_storage(c: &mut Cursor<'_>) -> Result<IndexBinaryFlat> {
    c.nested(|c| {
        let at = c.pos();
        if &c.fourcc()? != b"IBxF" {
            return Err(c.err_at(at, "the storage must be an IndexBinaryFlat (IBxF) record"));
        }
        read_flat_body(c)
    })
}

fn read_flat_body(c: &mut Cursor<'_>) -> Result<IndexBinaryFlat> {
    let h = read_binary_header(c)?;
    let len = h
        .ntotal
        .checked_mul(h.d / 8)
        .ok_or_else(|| c.err(format!("{} vectors of {} bits overflow", h.ntotal, h.d)))?;
    let codes = c.vec_len::<u8>("binary vectors", len)?;
    let mut index = IndexBinaryFlat::new(h.d).map_err(|e| c.err(e))?;
    index.add(&codes).map_err(|e| c.err(e))?;
    Ok(index)
}

fn read_ivf_body(c: &mut Cursor<'_>) -> Result<IndexBinaryIvf> {
    let h = read_binary_header(c)?;
    let nlist = c.u64_in("nlist", i64::MAX as usize)?;
    let nprobe = c.u64_in("nprobe", i64::MAX as usize)?;
    let quantizer = read_index_binary(c)?;
    check_inner(c, &h, &*quantizer, None, "the coarse quantizer")?;
    if nlist == 0 || (h.is_trained && quantizer.ntotal() != nlist) {
        return Err(c.err(format!(
            "nlist = {nlist} lists and a coarse quantizer of {} centroids; expected one \
             centroid per list",
            quantizer.ntotal()
        )));
    }
    let direct_map = read_direct_map(c, h.ntotal)?;
    let cs = h.d / 8;
    let lists = read_lists(c, nlist, cs, cs, &|| {
        Box::new(ArrayInvertedLists::new(nlist, cs)) as Box<dyn InvertedLists>
    })?;
    if lists.compute_ntotal() != h.ntotal {
        return Err(c.err(format!(
            "the inverted lists hold {} vectors; the header says ntotal = {}",
            lists.compute_ntotal(),
            h.ntotal
        )));
    }
    let mut index = IndexBinaryIvf::new(quantizer, nlist).map_err(|e| c.err(e))?;
    index.replace_invlists(lists).map_err(|e| c.err(e))?;
    index
        .set_direct_map_type(direct_map)
        .map_err(|e| c.err(e))?;
    index.nprobe = nprobe.clamp(1, nlist);
    Ok(index)
}

fn read_hnsw_body(c: &mut Cursor<'_>) -> Result<IndexBinaryHnsw> {
    let h = read_binary_header(c)?;
    let hnsw = read_hnsw_graph(c, h.ntotal)?;
    let storage = read_flat_storage(c)?;
    check_inner(c, &h, &storage, Some(h.ntotal), "the HNSW storage")?;
    IndexBinaryHnsw::from_parts(hnsw, storage).map_err(|e| c.err(e))
}

/// A bit count read as a field width: 0..=64.
fn key_bits(c: &mut Cursor<'_>, what: &str) -> Result<usize> {
    c.i32_in(what, 64)
}

fn read_hash_body(c: &mut Cursor<'_>) -> Result<IndexBinaryHash> {
    let h = read_binary_header(c)?;
    let b = key_bits(c, "hash key bits b")?;
    let nflip = c.i32_in("nflip", 64)?;
    let nbuckets = c.u64_in("hash buckets", c.remaining())?;
    let il_nbit = key_bits(c, "bucket size bits")?;
    if nbuckets > 0 && il_nbit == 0 {
        return Err(c.err("bucket sizes of 0 bits for a non-empty hash table"));
    }
    let buf = c.vec::<u8>("hash bucket keys and sizes")?;
    let needed = (b + il_nbit)
        .checked_mul(nbuckets)
        .ok_or_else(|| c.err("hash table size overflows"))?
        .div_ceil(8);
    if buf.len() < needed {
        return Err(c.err(format!(
            "hash table of {nbuckets} buckets needs {needed} bytes of keys and sizes; the \
             record has {}",
            buf.len()
        )));
    }
    let mut bits = BitReader::new(&buf);
    let cs = h.d / 8;
    let mut buckets = Vec::with_capacity(nbuckets.min(c.remaining() / 16));
    for _ in 0..nbuckets {
        // Both fit: the buffer was checked to hold every (key, size) pair.
        let key = bits.read(b).unwrap_or(0);
        let size = bits.read(il_nbit).unwrap_or(0) as usize;
        let ids = c.vec_len::<Idx>("hash bucket ids", size)?;
        let codes = c.vec_len::<u8>("hash bucket codes", size.saturating_mul(cs))?;
        buckets.push((key, HashBucket { ids, codes }));
    }
    let index = IndexBinaryHash::from_buckets(h.d, b, nflip, buckets).map_err(|e| c.err(e))?;
    if index.ntotal() != h.ntotal {
        return Err(c.err(format!(
            "the hash buckets hold {} vectors; the header says ntotal = {}",
            index.ntotal(),
            h.ntotal
        )));
    }
    Ok(index)
}

fn read_multi_hash_body(c: &mut Cursor<'_>) -> Result<IndexBinaryMultiHash> {
    let h = read_binary_header(c)?;
    let storage = read_flat_storage(c)?;
    check_inner(c, &h, &storage, Some(h.ntotal), "the multi-hash storage")?;
    let b = key_bits(c, "hash key bits b")?;
    let nhash = c.i32_in("nhash", h.d)?;
    let nflip = c.i32_in("nflip", 64)?;
    let mut maps = Vec::with_capacity(nhash);
    for _ in 0..nhash {
        let id_bits = key_bits(c, "id bits")?;
        let nbuckets = c.u64_in("hash buckets", c.remaining().saturating_mul(8))?;
        let buf = c.vec::<u8>("hash table")?;
        let nbit = (b + id_bits)
            .checked_mul(nbuckets)
            .and_then(|v| v.checked_add(h.ntotal.checked_mul(id_bits)?))
            .ok_or_else(|| c.err("hash table size overflows"))?;
        if buf.len() != nbit.div_ceil(8) {
            return Err(c.err(format!(
                "hash table of {nbuckets} buckets over {} ids takes {} bytes; the record has {}",
                h.ntotal,
                nbit.div_ceil(8),
                buf.len()
            )));
        }
        let mut bits = BitReader::new(&buf);
        let mut left = h.ntotal;
        let mut map = Vec::with_capacity(nbuckets);
        for _ in 0..nbuckets {
            let key = bits.read(b).unwrap_or(0);
            let size = bits.read(id_bits).unwrap_or(0) as usize;
            if size > left {
                return Err(c.err(format!(
                    "hash table buckets hold more than the {} stored vectors",
                    h.ntotal
                )));
            }
            left -= size;
            let ids: Vec<Idx> = (0..size)
                .map(|_| bits.read(id_bits).unwrap_or(0) as Idx)
                .collect();
            map.push((key, ids));
        }
        maps.push(map);
    }
    IndexBinaryMultiHash::from_parts(storage, b, nflip, maps).map_err(|e| c.err(e))
}

/// One binary index record, fourcc included.
pub(crate) fn read_index_binary(c: &mut Cursor<'_>) -> Result<Box<dyn IndexBinary>> {
    c.nested(|c| {
        let at = c.pos();
        let fourcc = c.fourcc()?;
        let index: Box<dyn IndexBinary> = match &fourcc {
            b"IBxF" => Box::new(read_flat_body(c)?),
            b"IBwF" => Box::new(read_ivf_body(c)?),
            b"IBHf" => Box::new(read_hnsw_body(c)?),
            b"IBHh" => Box::new(read_hash_body(c)?),
            b"IBHm" => Box::new(read_multi_hash_body(c)?),
            b"IBFf" => {
                let h = read_binary_header(c)?;
                let inner = read_index(c)?;
                if inner.dim() != h.d || inner.ntotal() != h.ntotal {
                    return Err(c.err(format!(
                        "the float index has d = {} and {} vectors; the header says d = {} \
                         and ntotal = {}",
                        inner.dim(),
                        inner.ntotal(),
                        h.d,
                        h.ntotal
                    )));
                }
                Box::new(IndexBinaryFromFloat::new(inner).map_err(|e| c.err(e))?)
            }
            b"IBMp" | b"IBM2" => {
                let h = read_binary_header(c)?;
                let inner = read_index_binary(c)?;
                check_inner(c, &h, &*inner, Some(h.ntotal), "the id map's index")?;
                let ids = c.vec_len::<i64>("id map", h.ntotal)?;
                let two_way = &fourcc == b"IBM2";
                Box::new(IndexBinaryIdMap::from_parts(inner, ids, two_way).map_err(|e| c.err(e))?)
            }
            other => {
                return Err(c.err_at(
                    at,
                    format!(
                        "unknown or unsupported binary index type {:?}",
                        String::from_utf8_lossy(other)
                    ),
                ));
            }
        };
        Ok(index)
    })
}

/// The fewest bits that hold every value `0..=max` as Faiss counts them: the smallest
/// `n` with `max < 2^n`.
fn bits_for(max: usize) -> usize {
    (usize::BITS - max.leading_zeros()) as usize
}

fn write_hash(s: &mut Sink<'_>, index: &IndexBinaryHash) -> Result<()> {
    s.i32(index.b() as i32)?;
    s.i32(index.nflip as i32)?;
    let nbuckets = index.hashtable_size();
    s.usize(nbuckets)?;
    let max_size = index.buckets().map(|(_, b)| b.ids.len()).max().unwrap_or(0);
    let il_nbit = bits_for(max_size);
    s.i32(il_nbit as i32)?;
    let mut buf = vec![0u8; ((index.b() + il_nbit) * nbuckets).div_ceil(8)];
    let mut w = BitWriter::new(&mut buf);
    for (key, bucket) in index.buckets() {
        // Keys have at most b bits and sizes at most il_nbit: both always fit.
        w.write(key, index.b());
        w.write(bucket.ids.len() as u64, il_nbit);
    }
    s.vec(&buf)?;
    for (_, bucket) in index.buckets() {
        s.vec(&bucket.ids)?;
        s.vec(&bucket.codes)?;
    }
    Ok(())
}

fn write_multi_hash(s: &mut Sink<'_>, index: &IndexBinaryMultiHash) -> Result<()> {
    s.i32(index.b() as i32)?;
    s.i32(index.nhash() as i32)?;
    s.i32(index.nflip as i32)?;
    let ntotal = index.ntotal();
    // Faiss's width: the smallest with ntotal ≤ 2^id_bits.
    let id_bits = bits_for(ntotal.saturating_sub(1));
    for h in 0..index.nhash() {
        s.i32(id_bits as i32)?;
        let nbuckets = index.table(h).count();
        s.usize(nbuckets)?;
        let mut buf = vec![0u8; ((index.b() + id_bits) * nbuckets + ntotal * id_bits).div_ceil(8)];
        let mut w = BitWriter::new(&mut buf);
        for (key, ids) in index.table(h) {
            let fits = w.write(key, index.b())
                && w.write(ids.len() as u64, id_bits)
                && ids.iter().all(|&id| w.write(id as u64, id_bits));
            if !fits {
                // Faiss sizes bucket lengths with the id width: a bucket holding all
                // 2^id_bits vectors cannot be recorded.
                return Err(Error::Unsupported(format!(
                    "{} holding {ntotal} vectors cannot be written as a Faiss file: the \
                     format sizes buckets with {id_bits}-bit numbers here, too narrow for a \
                     bucket of {} ids (Faiss writes it anyway and loses those vectors)",
                    index.description(),
                    ids.len()
                )));
            }
        }
        s.vec(&buf)?;
    }
    Ok(())
}

/// One binary index record, fourcc included.
pub(crate) fn write_index_binary(s: &mut Sink<'_>, index: &dyn IndexBinary) -> Result<()> {
    match index.view() {
        BinaryIndexView::Flat(f) => {
            s.fourcc(b"IBxF")?;
            write_binary_header(s, f)?;
            s.vec(f.codes())
        }
        BinaryIndexView::Ivf(ivf) => {
            s.fourcc(b"IBwF")?;
            write_binary_header(s, ivf)?;
            s.usize(ivf.nlist())?;
            s.usize(ivf.nprobe)?;
            write_index_binary(s, ivf.quantizer())?;
            write_direct_map(s, ivf.direct_map())?;
            write_lists(s, ivf.invlists())
        }
        BinaryIndexView::Hnsw(h) => {
            s.fourcc(b"IBHf")?;
            write_binary_header(s, h)?;
            write_hnsw_graph(s, h.hnsw())?;
            write_index_binary(s, h.storage())
        }
        BinaryIndexView::Hash(h) => {
            s.fourcc(b"IBHh")?;
            write_binary_header(s, h)?;
            write_hash(s, h)
        }
        BinaryIndexView::MultiHash(h) => {
            s.fourcc(b"IBHm")?;
            write_binary_header(s, h)?;
            write_index_binary(s, h.storage())?;
            write_multi_hash(s, h)
        }
        BinaryIndexView::FromFloat(f) => {
            s.fourcc(b"IBFf")?;
            write_binary_header(s, f)?;
            write_index(s, f.index())
        }
        BinaryIndexView::IdMap {
            inner,
            ids,
            two_way,
        } => {
            s.fourcc(if two_way { b"IBM2" } else { b"IBMp" })?;
            write_binary_header(s, index)?;
            write_index_binary(s, inner)?;
            s.vec(ids)
        }
        BinaryIndexView::Other => Err(unsupported(&index.description())),
    }
}

#[cfg(test)]
mod tests {
    use super::bits_for;

    #[test]
    fn bit_widths_follow_faiss() {
        // write_binary_hash_invlists: while (maxil >= 1 << il_nbit) il_nbit++.
        for (max, bits) in [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (255, 8), (256, 9)] {
            assert_eq!(bits_for(max), bits, "max {max}");
        }
    }
}
