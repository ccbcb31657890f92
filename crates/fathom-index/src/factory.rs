//! Building an index from a description in Faiss's factory grammar, and the way back.
//! The grammar: an optional `IDMap` / `IDMap2`, transform prefixes (`PCA…`, `OPQ…`,
//! `RR…`, `L2norm`, `Pad…`), an optional coarse quantizer (`IVF<n>`, `IVF<n>_HNSW<M>`,
//! `IVF<n>(<any description>)`, `IMI<m>x<nbits>`), one storage or IVF codec token (`Flat`,
//! `PQ…`, `SQ…`, `LSH…`, `PQ…x4fs[r][_<bbs>]`, `HNSW…`) and an optional refinement
//! (`RFlat`, `Refine(<any description>)`). Other Faiss tokens (NSG, RaBitQ, additive
//! quantizers, …) are rejected with a message naming the token and what is available at
//! that position.

use fathom_core::{Error, MetricType, Result};
use fathom_linalg::{
    NormalizationTransform, OpqMatrix, PcaMatrix, RandomRotationMatrix, RemapDimensionsTransform,
    VectorTransform,
};
use fathom_quant::QuantizerType;

use crate::ivf::QuantizerTraining;
use crate::{
    Index, IndexFlat, IndexHnsw, IndexHnswFlat, IndexIdMap, IndexIdMap2, IndexIvfFlat, IndexIvfPq,
    IndexIvfPqFastScan, IndexIvfScalarQuantizer, IndexLsh, IndexPq, IndexPqFastScan,
    IndexPreTransform, IndexRefine, IndexScalarQuantizer,
};

const STORAGE_TOKENS: &str = "Flat, PQ<M>[x<nbits>][np], PQ<M>x4fs[_<bbs>], SQ4, SQ6, SQ8, SQfp16, \
     SQbf16, SQ8_direct, SQ8_direct_signed, LSH[<nbits>][r][t]";

/// The index a description names, for vectors of dimension `d` compared with `metric`,
/// as Faiss's `index_factory(d, description, metric)`.
///
/// Accepted: `[IDMap,|IDMap2,][<transform>,…][<coarse>,]<storage>[,RFlat|,Refine(<description>)]`.
/// Transforms: `PCA<n>` (`W` whitens, `R` adds a random rotation: `PCAW64`, `PCAR64`,
/// `PCAWR64`), `OPQ<M>` or `OPQ<M>_<d_out>`, `RR<n>`, `L2norm`, `Pad<n>`; each feeds the
/// next, the index gets the last one's output. As in Faiss the id map wraps everything and
/// a refinement (`RFlat`) re-ranks with the original vectors, outside the transforms.
/// Storage is `Flat`, `PQ16` (`PQ<M>x<nbits>`, `np` to skip polysemous training),
/// `PQ32x4fs`, `SQ8` / `SQ4` / `SQ6` / `SQfp16` / `SQbf16` / `SQ8_direct` /
/// `SQ8_direct_signed`, or `LSH` (`LSH<nbits>`, `r` to rotate, `t` to train thresholds).
/// The coarse quantizer `IVF<nlist>` (`k` / `M` suffixes: ×1024, ×1024²), `IVF<nlist>_HNSW<M>`,
/// `IVF<nlist>(<description>)` (any index as quantizer, e.g. `IVF1024(PQ16x4fs)`) or
/// `IMI<M>x<nbits>` makes an IVF index of the storage that follows: `Flat`, `PQ…`,
/// `PQ<M>+<M2>` (IVFPQR), `PQ<M>x4fs` (`r`: residuals, `_<bbs>`: Faiss's block size) or
/// `SQ…`; with inner product its k-means is spherical, as Faiss's factory sets it.
/// `IDMap` may also come last, as Faiss accepts. Errors name the token (position and
/// text), also when a constructor refuses it (`PQ5` with `d = 12`).
///
/// ```
/// use fathom_index::{index_factory, Index, MetricType};
/// let index = index_factory(64, "IDMap2,Flat", MetricType::InnerProduct).unwrap();
/// assert_eq!(index.description(), "IDMap2,Flat");
/// let index = index_factory(64, "PQ16,RFlat", MetricType::L2).unwrap();
/// assert_eq!(index.description(), "PQ16,RFlat");
/// let index = index_factory(64, "IVF1k,PQ16", MetricType::L2).unwrap();
/// assert_eq!(index.description(), "IVF1024,PQ16");
/// let err = index_factory(64, "IVF100,LSH", MetricType::L2).unwrap_err().to_string();
/// assert!(err.contains("LSH"), "{err}");
/// ```
pub fn index_factory(d: usize, description: &str, metric: MetricType) -> Result<Box<dyn Index>> {
    let tokens = split_top_level(description);
    // As Faiss: an id map wraps everything; refinement is peeled off the end before the
    // transform prefixes, so it re-ranks with the untransformed vectors.
    let (wrapper, tokens, first) = match tokens.first().map(String::as_str) {
        Some("IDMap" | "IDMap2") if tokens.len() > 1 => (Some(tokens[0].clone()), &tokens[1..], 2),
        _ => (None, &tokens[..], 1),
    };
    if wrapper.is_some() && tokens.iter().any(|t| t == "IDMap" || t == "IDMap2") {
        return Err(Error::invalid(format!(
            "{description:?}: an id map appears twice"
        )));
    }
    let n_prefix = tokens.iter().take_while(|t| is_transform(t)).count();
    if n_prefix == 0 {
        let inner = build(d, tokens, first, description, metric)?;
        return Ok(wrap_id_map(wrapper.as_deref(), inner));
    }
    let (prefix, rest) = tokens.split_at(n_prefix);
    let (rest, refine) = match rest.split_last() {
        Some((last, body)) if last == "RFlat" || last.starts_with("Refine(") => (body, Some(last)),
        _ => (rest, None),
    };
    let mut chain: Vec<Box<dyn VectorTransform>> = Vec::new();
    let mut dim = d;
    for (pos, tok) in prefix.iter().enumerate() {
        let t =
            transform(dim, tok).map_err(|e| e.context(token_at(description, first + pos, tok)))?;
        dim = t.d_out();
        chain.push(t);
    }
    let inner = build(dim, rest, first + n_prefix, description, metric)?;
    let mut index: Box<dyn Index> = {
        let last = chain.pop().expect("at least one transform");
        let mut pt = IndexPreTransform::new(last, inner)?;
        while let Some(t) = chain.pop() {
            pt.prepend_transform(t)?;
        }
        Box::new(pt)
    };
    if let Some(r) = refine {
        let here = token_at(description, first + tokens.len() - 1, r);
        index = Box::new(IndexRefine::new(index, refine_index(d, r, metric, &here)?)?);
    }
    Ok(wrap_id_map(wrapper.as_deref(), index))
}

/// The factory string of an index (Faiss's `reverse_index_factory`): building it with
/// [`index_factory`] for the index's dimension and metric gives an index of the same
/// structure and parameters (untrained and empty). Indexes whose structure no factory
/// string describes — a linear transform read from a file, shards — give an error.
///
/// ```
/// use fathom_index::{index_factory, reverse_index_factory, MetricType};
/// let index = index_factory(32, "OPQ8,IVF1k,PQ8x4fs,RFlat", MetricType::L2).unwrap();
/// assert_eq!(reverse_index_factory(&*index).unwrap(), "OPQ8,IVF1024,PQ8x4fs,RFlat");
/// ```
pub fn reverse_index_factory(index: &dyn Index) -> Result<String> {
    let description = index.description();
    let rebuilt = index_factory(index.dim(), &description, index.metric()).map_err(|e| {
        Error::Unsupported(format!(
            "{description:?} describes an index no factory string builds ({e})"
        ))
    })?;
    if rebuilt.description() != description {
        return Err(Error::Unsupported(format!(
            "{description:?} builds {:?}, not the same index",
            rebuilt.description()
        )));
    }
    Ok(description)
}

/// How errors name a token: the description, its 1-based position and its text.
fn token_at(description: &str, pos: usize, tok: &str) -> String {
    format!("{description:?}, token {pos} ({tok:?})")
}

/// The refinement index of an `RFlat` or `Refine(<description>)` token (any description,
/// built with the same dimension and metric, as Faiss).
fn refine_index(d: usize, tok: &str, metric: MetricType, here: &str) -> Result<Box<dyn Index>> {
    if tok == "RFlat" {
        return Ok(Box::new(IndexFlat::new(d, metric)?));
    }
    let inner = tok
        .strip_prefix("Refine(")
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| Error::invalid(format!("{here}: expected RFlat or Refine(<index>)")))?;
    index_factory(d, inner, metric).map_err(|e| e.context(format!("{here}, inside Refine()")))
}

fn wrap_id_map(wrapper: Option<&str>, index: Box<dyn Index>) -> Box<dyn Index> {
    match wrapper {
        Some("IDMap") => Box::new(IndexIdMap::new(index)),
        Some(_) => Box::new(IndexIdMap2::new(index)),
        None => index,
    }
}

/// Whether a token is (or tries to be) a vector-transform prefix: no storage or coarse
/// token starts like one, so a malformed one gets the transform's own error.
fn is_transform(tok: &str) -> bool {
    tok == "L2norm"
        || tok == "L2Norm"
        || ["PCA", "OPQ", "RR", "Pad"]
            .iter()
            .any(|p| tok.starts_with(p))
}

const TRANSFORM_TOKENS: &str =
    "PCA<n>, PCAR<n>, PCAW<n>, PCAWR<n>, OPQ<M>[_<d_out>], RR<n>, L2norm, Pad<n>";

/// One transform prefix, taking vectors of dimension `d`.
fn transform(d: usize, tok: &str) -> Result<Box<dyn VectorTransform>> {
    let bad = || {
        Error::invalid(format!(
            "not understood as a transform; expected one of {TRANSFORM_TOKENS}"
        ))
    };
    if tok == "L2norm" || tok == "L2Norm" {
        return Ok(Box::new(NormalizationTransform::new(d)?));
    }
    if let Some(rest) = tok.strip_prefix("PCA") {
        let (flags, digits) =
            rest.split_at(rest.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?);
        let (whiten, rotate) = match flags {
            "" => (false, false),
            "W" => (true, false),
            "R" => (false, true),
            "WR" => (true, true),
            _ => return Err(bad()),
        };
        let n: usize = digits.parse().map_err(|_| bad())?;
        let power = if whiten { -0.5 } else { 0.0 };
        return Ok(Box::new(PcaMatrix::new(d, n, power, rotate)?));
    }
    if let Some(rest) = tok.strip_prefix("OPQ") {
        let (m, d_out) = match rest.split_once('_') {
            Some((m, o)) => (m.parse().map_err(|_| bad())?, o.parse().map_err(|_| bad())?),
            None => (rest.parse().map_err(|_| bad())?, d),
        };
        return Ok(Box::new(OpqMatrix::new(d, m, d_out)?));
    }
    if let Some(n) = tok.strip_prefix("RR") {
        let n: usize = n.parse().map_err(|_| bad())?;
        return Ok(Box::new(RandomRotationMatrix::new(d, n)?));
    }
    if let Some(n) = tok.strip_prefix("Pad") {
        let n: usize = n.parse().map_err(|_| bad())?;
        if n < d {
            return Err(Error::invalid(format!(
                "Pad{n} pads to at least the input dimension {d}"
            )));
        }
        return Ok(Box::new(RemapDimensionsTransform::with_dims(d, n, false)?));
    }
    Err(bad())
}

/// The index of a description without transform prefixes.
/// `tokens` start at position `first` (1-based) of `description`, for error messages.
fn build(
    d: usize,
    tokens: &[String],
    first: usize,
    description: &str,
    metric: MetricType,
) -> Result<Box<dyn Index>> {
    let tokens = merge_hnsw_storage(tokens.to_vec());
    let mut wrapper = None;
    let mut storage: Option<Box<dyn Index>> = None;
    let mut refine: Option<Box<dyn Index>> = None;
    let mut coarse: Option<Coarse> = None;
    for (tok, pos) in tokens.iter() {
        let tok = tok.as_str();
        let here = || token_at(description, first + pos, tok);
        match tok {
            t if storage.is_none()
                && coarse.is_none()
                && (t.starts_with("IVF") || t.starts_with("IMI")) =>
            {
                coarse = Some(parse_coarse(d, t, metric).map_err(|e| e.context(here()))?);
            }
            _ if storage.is_none() && coarse.is_some() => {
                let c = coarse.take().expect("checked");
                let ix = ivf_index(d, c, tok, metric).map_err(|e| e.context(here()))?;
                storage = Some(ix.ok_or_else(|| {
                    Error::invalid(format!(
                        "{}: not understood after an IVF quantizer; expected {IVF_CODEC_TOKENS}",
                        here()
                    ))
                })?);
            }
            "IDMap" | "IDMap2" if wrapper.is_none() => wrapper = Some(tok.to_string()),
            "IDMap" | "IDMap2" => {
                return Err(Error::invalid(format!(
                    "{}: an id map appears twice",
                    here()
                )));
            }
            t if (t == "RFlat" || t.starts_with("Refine("))
                && storage.is_some()
                && refine.is_none() =>
            {
                refine = Some(refine_index(d, t, metric, &here())?);
            }
            _ if storage.is_none() => {
                match storage_index(d, tok, metric).map_err(|e| e.context(here()))? {
                    Some(ix) => storage = Some(ix),
                    None => {
                        return Err(Error::invalid(format!(
                            "{}: not understood; expected IDMap, IDMap2 or a storage: {STORAGE_TOKENS}",
                            here()
                        )));
                    }
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "{}: not understood after the storage; expected RFlat, Refine(<storage>), \
                     IDMap or IDMap2",
                    here()
                )));
            }
        }
    }
    if coarse.is_some() {
        return Err(Error::invalid(format!(
            "{description:?}: an IVF quantizer needs a codec after it: {IVF_CODEC_TOKENS}"
        )));
    }
    let Some(mut index) = storage else {
        return Err(Error::invalid(format!(
            "{description:?}: no storage given; expected one of {STORAGE_TOKENS}"
        )));
    };
    if let Some(r) = refine {
        index = Box::new(IndexRefine::new(index, r)?);
    }
    Ok(wrap_id_map(wrapper.as_deref(), index))
}

const IVF_CODEC_TOKENS: &str = "Flat, PQ<M>[x<nbits>][np], PQ<M>+<M2>, PQ<M>x4fs[r][_<bbs>], SQ4, SQ6, SQ8, \
     SQfp16, SQbf16, SQ8_direct, SQ8_direct_signed";

/// A parsed coarse quantizer: the quantizer, its list count and how it trains.
struct Coarse {
    quantizer: Box<dyn Index>,
    nlist: usize,
    training: QuantizerTraining,
}

/// `IVF<n>[k|M]` (a flat quantizer, `k` = ×1024, `M` = ×1024²) or `IMI<m>x<nbits>`.
fn parse_coarse(d: usize, tok: &str, metric: MetricType) -> Result<Coarse> {
    if let Some(rest) = tok.strip_prefix("IMI") {
        let parsed = number(rest).and_then(|(m, r)| {
            let (nbits, r) = number(r.strip_prefix('x')?)?;
            r.is_empty().then_some((m, nbits))
        });
        let Some((m, nbits)) = parsed else {
            return Err(Error::invalid("expected IMI<M>x<nbits>, e.g. IMI2x10"));
        };
        if metric != MetricType::L2 {
            return Err(Error::Unsupported(format!(
                "a multi-index quantizer compares with L2, not {metric:?}"
            )));
        }
        let imi = crate::MultiIndexQuantizer::new(d, m, nbits)?;
        return Ok(Coarse {
            quantizer: Box::new(imi),
            nlist: 1 << (m * nbits),
            training: QuantizerTraining::Alone,
        });
    }
    let rest = tok.strip_prefix("IVF").unwrap_or(tok);
    if let Some((head, inner)) = rest.split_once('(') {
        // Faiss's IVF<n>(<index>): any index serves as the quantizer. A flat one is
        // trained by k-means directly, a multi-index alone, anything else gets k-means'
        // centroids added (Faiss's get_trains_alone).
        let inner = inner.strip_suffix(')').ok_or_else(|| {
            Error::invalid(
                "expected IVF<nlist>(<quantizer>) with the parenthesis closing the token",
            )
        })?;
        let nlist = match ivf_nlist(head)? {
            (n, "") => n,
            (_, s) => {
                return Err(Error::invalid(format!(
                    "unexpected {s:?} before the quantizer's parenthesis"
                )));
            }
        };
        let quantizer = index_factory(d, inner, metric)
            .map_err(|e| e.context(format!("the quantizer ({inner:?}) in parentheses")))?;
        let training = match quantizer.view() {
            crate::IndexView::Flat(_) => QuantizerTraining::Kmeans,
            crate::IndexView::MultiIndexQuantizer(_) => QuantizerTraining::Alone,
            _ => QuantizerTraining::KmeansThenAdd,
        };
        return Ok(Coarse {
            quantizer,
            nlist,
            training,
        });
    }
    let (nlist, hnsw) = ivf_nlist(rest)?;
    let hnsw = match hnsw {
        "" => None,
        s => Some(s.strip_prefix('_').ok_or_else(|| {
            Error::invalid(format!(
                "unknown suffix {s:?} after the list count; expected nothing, k, M, \
                 _HNSW<M> or (<quantizer>)"
            ))
        })?),
    };
    if let Some(q) = hnsw {
        // Faiss's IVF<n>_HNSW<M>: k-means with a flat index, then the centroids are
        // added to an HNSW graph that assigns vectors to lists.
        let m = match q.strip_prefix("HNSW").map(number_or_default(32)) {
            Some(Some(m)) => m,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown quantizer {q:?} after IVF{nlist}_; expected HNSW[<M>], e.g. \
                     IVF65536_HNSW32"
                )));
            }
        };
        return Ok(Coarse {
            quantizer: Box::new(IndexHnswFlat::new_flat(d, m, metric)?),
            nlist,
            training: QuantizerTraining::KmeansThenAdd,
        });
    }
    Ok(Coarse {
        quantizer: Box::new(IndexFlat::new(d, metric)?),
        nlist,
        training: QuantizerTraining::Kmeans,
    })
}

/// `<n>[k|M]` at the start of `s` → (the list count, the rest).
fn ivf_nlist(s: &str) -> Result<(usize, &str)> {
    let Some((n, rest)) = number(s) else {
        return Err(Error::invalid("expected IVF<nlist>, e.g. IVF4096 or IVF1k"));
    };
    let (mult, rest) = match rest.chars().next() {
        Some('k' | 'K') => (1usize << 10, &rest[1..]),
        Some('M') => (1 << 20, &rest[1..]),
        _ => (1, rest),
    };
    let nlist = n
        .checked_mul(mult)
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::invalid(format!("the list count IVF{s} is 0 or overflows")))?;
    Ok((nlist, rest))
}

/// The IVF index of a coarse quantizer and a codec token, `None` when the token names
/// no codec.
fn ivf_index(d: usize, c: Coarse, tok: &str, metric: MetricType) -> Result<Option<Box<dyn Index>>> {
    fn finish<C: crate::ivf::IvfCodec + 'static>(
        mut ix: crate::IndexIvf<C>,
        training: QuantizerTraining,
    ) -> Option<Box<dyn Index>> {
        ix.quantizer_training = training;
        // As Faiss's factory (fix_ivf_fields): inner-product centroids live on the sphere.
        ix.cp.spherical = ix.metric() == MetricType::InnerProduct;
        Some(Box::new(ix))
    }
    let _ = d;
    let Coarse {
        quantizer,
        nlist,
        training,
    } = c;
    if tok == "Flat" {
        return Ok(finish(
            IndexIvfFlat::new(quantizer, nlist, metric)?,
            training,
        ));
    }
    if let Some(rest) = tok.strip_prefix("SQ") {
        return Ok(match QuantizerType::parse(rest) {
            Some(qt) => finish(
                IndexIvfScalarQuantizer::new(quantizer, nlist, qt, metric)?,
                training,
            ),
            None => None,
        });
    }
    if let Some(rest) = tok.strip_prefix("PQ") {
        let Some((m, rest)) = number(rest) else {
            return Ok(None);
        };
        if let Some(r) = rest.strip_prefix('+') {
            let Some((m2, "")) = number(r) else {
                return Ok(None);
            };
            if metric != MetricType::L2 {
                return Err(Error::Unsupported(format!(
                    "{tok}: IVFPQR re-ranks with L2 distances; not available for {metric:?}"
                )));
            }
            let mut ix = crate::ivf::IndexIvfPqr::new(quantizer, nlist, m, 8, m2)?;
            ix.ivf_mut().quantizer_training = training;
            ix.ivf_mut().cp.spherical = false; // L2 only
            return Ok(Some(Box::new(ix)));
        }
        if let Some(r) = rest.strip_prefix("x4fs") {
            let (by_residual, r) = match r.strip_prefix('r') {
                Some(r) => (true, r),
                None => (false, r),
            };
            let Some(bbs) = fast_scan_bbs(r) else {
                return Ok(None);
            };
            let mut ix = IndexIvfPqFastScan::new(quantizer, nlist, m, metric)?;
            ix.by_residual = by_residual;
            ix.codec_mut().set_bbs(bbs)?;
            return Ok(finish(ix, training));
        }
        let Some((nbits, np)) = pq_bits_and_np(rest) else {
            return Ok(None);
        };
        let mut ix = IndexIvfPq::new(quantizer, nlist, m, nbits, metric)?;
        ix.codec_mut().do_polysemous_training = !np;
        return Ok(finish(ix, training));
    }
    Ok(None)
}

/// The block-size tail of a fast-scan token: nothing (32) or `_<bbs>`.
fn fast_scan_bbs(rest: &str) -> Option<usize> {
    match rest {
        "" => Some(32),
        r => match number(r.strip_prefix('_')?)? {
            (bbs, "") => Some(bbs),
            _ => None,
        },
    }
}

/// The tail of a `PQ<M>` token: `[x<nbits>][np]` → `(nbits, np)` (8 bits by default).
fn pq_bits_and_np(rest: &str) -> Option<(usize, bool)> {
    let (nbits, rest) = match rest.strip_prefix('x') {
        Some(r) => number(r)?,
        None => (8, rest),
    };
    match rest {
        "" => Some((nbits, false)),
        "np" => Some((nbits, true)),
        _ => None,
    }
}

/// Faiss's newer `HNSW32,SQ8` syntax as the older single token `HNSW32_SQ8`; each token
/// keeps its 0-based position in the input.
fn merge_hnsw_storage(tokens: Vec<String>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::with_capacity(tokens.len());
    for (pos, t) in tokens.into_iter().enumerate() {
        let is_code = t == "Flat" || t.starts_with("SQ") || t.starts_with("PQ");
        match out.last_mut() {
            Some((prev, _)) if is_code && prev.starts_with("HNSW") && !prev.contains('_') => {
                prev.push('_');
                prev.push_str(&t);
            }
            _ => out.push((t, pos)),
        }
    }
    out
}

/// Splits at commas outside parentheses.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            out.push(String::new());
        } else {
            out.last_mut().expect("non-empty").push(c);
        }
    }
    out.into_iter().map(|t| t.trim().to_string()).collect()
}

/// A leading decimal number and the rest.
fn number(s: &str) -> Option<(usize, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// `HNSW[<M>]` → `Some(M)` (32 by default), the rest of the token must be empty.
fn number_or_default(default: usize) -> impl Fn(&str) -> Option<usize> {
    move |s: &str| match number(s) {
        Some((m, "")) => Some(m),
        None if s.is_empty() => Some(default),
        _ => None,
    }
}

const HNSW_STORAGE_TOKENS: &str = "Flat, SQ4, SQ6, SQ8, SQfp16, SQbf16, SQ8_direct, \
     SQ8_direct_signed, PQ<M>[x<nbits>][np]";

/// `HNSW[<M>][_<storage>]` (Faiss's old syntax; the factory also merges `HNSW32,SQ8`
/// into it): an HNSW graph over Flat, SQ or PQ storage. `Ok(None)` when the token is not
/// an HNSW token.
fn hnsw_index(d: usize, tok: &str, metric: MetricType) -> Result<Option<Box<dyn Index>>> {
    let Some(rest) = tok.strip_prefix("HNSW") else {
        return Ok(None);
    };
    let (m_part, code) = match rest.split_once('_') {
        Some((m, c)) => (m, c),
        None => (rest, "Flat"),
    };
    let Some(m) = number_or_default(32)(m_part) else {
        return Err(Error::invalid(format!(
            "{tok:?}: expected HNSW[<M>][,<storage>], e.g. HNSW32 or HNSW32,SQ8"
        )));
    };
    let unknown = || {
        Error::invalid(format!(
            "{tok:?}: HNSW storage {code:?} not available; expected {HNSW_STORAGE_TOKENS}"
        ))
    };
    if code == "Flat" {
        return Ok(Some(Box::new(IndexHnswFlat::new_flat(d, m, metric)?)));
    }
    if let Some(q) = code.strip_prefix("SQ") {
        let qt = QuantizerType::parse(q).ok_or_else(unknown)?;
        return Ok(Some(Box::new(IndexHnsw::with_storage(
            IndexScalarQuantizer::new(d, qt, metric)?,
            m,
        )?)));
    }
    if let Some(r) = code.strip_prefix("PQ") {
        let (pm, r) = number(r).ok_or_else(unknown)?;
        // Graph search compares by ADC only, so (as Faiss's IndexHNSWPQ) the codes get no
        // polysemous training whether or not `np` is given.
        let (nbits, _np) = pq_bits_and_np(r).ok_or_else(unknown)?;
        let pq = IndexPq::new(d, pm, nbits, metric)?;
        return Ok(Some(Box::new(IndexHnsw::with_storage(pq, m)?)));
    }
    Err(unknown())
}

/// The storage index a token names, `None` when it names none.
fn storage_index(d: usize, tok: &str, metric: MetricType) -> Result<Option<Box<dyn Index>>> {
    if let Some(ix) = hnsw_index(d, tok, metric)? {
        return Ok(Some(ix));
    }
    if tok == "Flat" {
        return Ok(Some(Box::new(IndexFlat::new(d, metric)?)));
    }
    if let Some(rest) = tok.strip_prefix("SQ") {
        return Ok(match QuantizerType::parse(rest) {
            Some(qt)
                if !matches!(
                    qt,
                    QuantizerType::QT8bitUniform | QuantizerType::QT4bitUniform
                ) =>
            {
                Some(Box::new(IndexScalarQuantizer::new(d, qt, metric)?))
            }
            _ => None,
        });
    }
    if let Some(rest) = tok.strip_prefix("PQ") {
        let Some((m, rest)) = number(rest) else {
            return Ok(None);
        };
        if let Some(bbs) = rest.strip_prefix("x4fs").and_then(fast_scan_bbs) {
            let mut ix = IndexPqFastScan::new(d, m, metric)?;
            ix.set_bbs(bbs)?;
            return Ok(Some(Box::new(ix)));
        }
        let Some((nbits, np)) = pq_bits_and_np(rest) else {
            return Ok(None);
        };
        let mut ix = IndexPq::new(d, m, nbits, metric)?;
        ix.do_polysemous_training = !np;
        return Ok(Some(Box::new(ix)));
    }
    if let Some(rest) = tok.strip_prefix("LSH") {
        let (nbits, flags) = number(rest).unwrap_or((d, rest));
        let (rotate, train) = match flags {
            "" => (false, false),
            "r" => (true, false),
            "t" => (false, true),
            "rt" => (true, true),
            _ => return Ok(None),
        };
        if metric != MetricType::L2 {
            return Err(Error::Unsupported(format!(
                "{tok}: LSH ranks by Hamming distance and is built for L2 only, not {metric:?}"
            )));
        }
        return Ok(Some(Box::new(IndexLsh::new(d, nbits, rotate, train)?)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        for (s, want) in [
            ("Flat", "Flat"),
            ("IDMap,Flat", "IDMap,Flat"),
            ("Flat,IDMap2", "IDMap2,Flat"),
            (" IDMap2 , Flat ", "IDMap2,Flat"),
            ("PQ4", "PQ4"),
            ("PQ4np", "PQ4np"),
            ("PQ4x6", "PQ4x6"),
            ("PQ4x4fs", "PQ4x4fs"),
            ("SQ8", "SQ8"),
            ("SQfp16", "SQfp16"),
            ("SQ8_direct_signed", "SQ8_direct_signed"),
            ("LSH", "LSH"),
            ("LSH16rt", "LSH16rt"),
            ("PQ4,RFlat", "PQ4,RFlat"),
            ("PQ4x4fs,Refine(SQfp16)", "PQ4x4fs,Refine(SQfp16)"),
            ("IDMap,SQ4", "IDMap,SQ4"),
            ("IVF16,Flat", "IVF16,Flat"),
            ("IVF1k,SQ8", "IVF1024,SQ8"),
            ("IVF16,PQ4", "IVF16,PQ4"),
            ("IVF16,PQ4x4fs", "IVF16,PQ4x4fs"),
            ("IVF16,PQ4x4fsr", "IVF16,PQ4x4fsr"),
            ("IMI2x4,Flat", "IMI2x4,Flat"),
            ("IDMap2,IVF16,Flat", "IDMap2,IVF16,Flat"),
            ("IVF16,PQ4,RFlat", "IVF16,PQ4,RFlat"),
            ("IVF16,PQ4+8", "IVF16,PQ4+8"),
            ("HNSW32", "HNSW32"),
            ("HNSW", "HNSW32"),
            ("HNSW16,Flat", "HNSW16"),
            ("HNSW16_SQ8", "HNSW16,SQ8"),
            ("HNSW16,SQ8", "HNSW16,SQ8"),
            ("HNSW,PQ4", "HNSW32,PQ4"),
            ("HNSW32,PQ4x12np", "HNSW32,PQ4x12"),
            ("IDMap2,HNSW32", "IDMap2,HNSW32"),
            ("IVF16_HNSW32,Flat", "IVF16_HNSW32,Flat"),
            ("IVF1k_HNSW,PQ4", "IVF1024_HNSW32,PQ4"),
            ("IVF16(PQ2),Flat", "IVF16(PQ2),Flat"),
            ("IVF16(IVF4,SQ8,RFlat),PQ2", "IVF16(IVF4,SQ8,RFlat),PQ2"),
            ("PQ4x4fs_64", "PQ4x4fs_64"),
            ("IVF16,PQ4x4fsr_96", "IVF16,PQ4x4fsr_96"),
            ("L2Norm,Flat", "L2norm,Flat"),
            ("Flat,Refine(SQ8)", "Flat,Refine(SQ8)"),
            ("PCA4,Flat,Refine(PQ2)", "PCA4,Flat,Refine(PQ2)"),
        ] {
            let index = index_factory(8, s, MetricType::L2).unwrap();
            assert_eq!(index.description(), want);
            assert_eq!(reverse_index_factory(&*index).unwrap(), want);
        }
        for bad in [
            "",
            "IDMap",
            "Flat,Flat",
            "IDMap,IDMap2,Flat",
            "HNSW1",
            "HNSW32x,Flat",
            "HNSW32,LSH",
            "HNSW32_PQ4x4fs",
            "IVF16_NSG32,Flat",
            "IVF16_HNSW1,Flat",
            "PCA16,Flat",
            "PQ3",
            "PQ4x",
            "PQ4x17",
            "SQ7",
            "LSHq",
            "RFlat",
            "Flat,RFlat,RFlat",
            "PQ4,Refine(IVF)",
            "IVF16",
            "IVF,Flat",
            "IVF16x,Flat",
            "IVF16,LSH",
            "IVF16,IVF16,Flat",
            "IMI2,Flat",
            "IVF16(Flat,Flat",
            "IVF16k(Flat)x,Flat",
            "IVF0,Flat",
            "IVF16m,Flat",
            "PQ4x4fs_33",
        ] {
            assert!(index_factory(8, bad, MetricType::L2).is_err(), "{bad}");
        }
        assert!(index_factory(0, "Flat", MetricType::L2).is_err());
    }
}
