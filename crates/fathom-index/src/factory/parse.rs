//! Parsing a description into an [`IndexSpec`], remembering where each part came from so
//! errors — also the constructors' at build time — name the token (position and text).

use std::str::FromStr;

use fathom_core::{Error, Result};
use fathom_quant::QuantizerType;

use super::spec::{
    AqShape, AqSpec, BodySpec, CoarseSpec, HnswStorageSpec, IdMapKind, IndexSpec, IvfCodecSpec,
    RefineSpec, StorageSpec, TransformSpec,
};

pub(super) const STORAGE_TOKENS: &str = "Flat, PQ<M>[x<nbits>][np], PQ<M>x4fs[_<bbs>], SQ4, SQ6, \
     SQ8, SQfp16, SQbf16, SQ8_direct, SQ8_direct_signed, LSH[<nbits>][r][t], HNSW[<M>][,<storage>], RaBitQ[<b>], RaBitQfs[<b>][_<bbs>], \
     RQ<M>x<b>[_…], LSQ<M>x<b>, PRQ<n>x<M>x<b>, PLSQ<n>x<M>x<b> (each [_N<norm>]), RCQ<M>x<b>[_…]";
const IVF_CODEC_TOKENS: &str = "Flat, PQ<M>[x<nbits>][np], PQ<M>+<M2>, PQ<M>x4fs[r][_<bbs>], SQ4, \
     SQ6, SQ8, SQfp16, SQbf16, SQ8_direct, SQ8_direct_signed";
const TRANSFORM_TOKENS: &str =
    "PCA<n>, PCAR<n>, PCAW<n>, PCAWR<n>, OPQ<M>[_<d_out>], RR<n>, L2norm, Pad<n>";
const HNSW_STORAGE_TOKENS: &str = "Flat, SQ4, SQ6, SQ8, SQfp16, SQbf16, SQ8_direct, \
     SQ8_direct_signed, PQ<M>[x<nbits>][np]";

/// Where each part of a parsed spec stands in the description: 1-based token positions
/// and the tokens' text, for error messages.
#[derive(Debug, Clone, Default)]
pub(super) struct Positions {
    pub(super) description: String,
    pub(super) transforms: Vec<(usize, String)>,
    /// The storage token, or the coarse quantizer's.
    pub(super) body: (usize, String),
    /// The IVF codec's token.
    pub(super) codec: (usize, String),
    pub(super) refine: (usize, String),
}

impl Positions {
    /// How errors name a token: the description, its position and its text.
    pub(super) fn at(&self, (pos, tok): &(usize, String)) -> String {
        token_at(&self.description, *pos, tok)
    }

    /// The positions of a spec made in code: its canonical tokens in order.
    pub(super) fn of(spec: &IndexSpec) -> Positions {
        let tokens = spec.tokens();
        let description = tokens.join(",");
        let mut it = tokens.into_iter().enumerate().map(|(i, t)| (i + 1, t));
        if spec.id_map.is_some() {
            it.next();
        }
        let transforms = it.by_ref().take(spec.transforms.len()).collect();
        let body = it.next().unwrap_or_default();
        let codec = match spec.body {
            BodySpec::Ivf { .. } => it.next().unwrap_or_default(),
            BodySpec::Storage(_) => body.clone(),
        };
        let refine = it.next().unwrap_or_default();
        Positions {
            description,
            transforms,
            body,
            codec,
            refine,
        }
    }
}

fn token_at(description: &str, pos: usize, tok: &str) -> String {
    format!("{description:?}, token {pos} ({tok:?})")
}

impl FromStr for IndexSpec {
    type Err = Error;

    fn from_str(description: &str) -> Result<Self> {
        parse(description).map(|(spec, _)| spec)
    }
}

/// The spec of `description` and where its parts stand.
pub(super) fn parse(description: &str) -> Result<(IndexSpec, Positions)> {
    let mut tokens: Vec<(usize, String)> = split_top_level(description)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (i + 1, t))
        .collect();
    let mut pos = Positions {
        description: description.to_string(),
        ..Positions::default()
    };
    let here = |(p, t): &(usize, String)| token_at(description, *p, t);
    let id_map_of = |t: &str| match t {
        "IDMap" => Some(IdMapKind::IdMap),
        "IDMap2" => Some(IdMapKind::IdMap2),
        _ => None,
    };
    // As Faiss: an id map first or last wraps everything.
    let mut id_map = None;
    if tokens.len() > 1 {
        if let Some(k) = id_map_of(&tokens[0].1) {
            id_map = Some(k);
            tokens.remove(0);
        } else if let Some(k) = tokens.last().and_then(|t| id_map_of(&t.1)) {
            id_map = Some(k);
            tokens.pop();
        }
    }
    if let Some(t) = tokens.iter().find(|t| id_map_of(&t.1).is_some()) {
        return Err(Error::invalid(if id_map.is_some() {
            format!("{}: an id map appears twice", here(t))
        } else {
            format!("{}: an id map comes first or last", here(t))
        }));
    }
    // The refinement is peeled off the end: it re-ranks with the vectors as given.
    let mut refine = None;
    if tokens.len() > 1 {
        let last = tokens.last().expect("non-empty");
        if let Some(r) = parse_refine(&last.1).map_err(|e| e.context(here(last)))? {
            refine = Some(r);
            pos.refine = tokens.pop().expect("non-empty");
        }
    }
    let n_prefix = tokens.iter().take_while(|t| is_transform(&t.1)).count();
    let mut transforms = Vec::with_capacity(n_prefix);
    for t in tokens.drain(..n_prefix) {
        transforms.push(parse_transform(&t.1).map_err(|e| e.context(here(&t)))?);
        pos.transforms.push(t);
    }
    let tokens = merge_hnsw_storage(tokens);
    let mut rest = tokens.into_iter();
    let Some(first) = rest.next() else {
        return Err(Error::invalid(format!(
            "{description:?}: no storage given; expected one of {STORAGE_TOKENS}"
        )));
    };
    let body = if first.1.starts_with("IVF") || first.1.starts_with("IMI") {
        let coarse = parse_coarse(&first.1).map_err(|e| e.context(here(&first)))?;
        let Some(codec_tok) = rest.next() else {
            return Err(Error::invalid(format!(
                "{description:?}: an IVF quantizer needs a codec after it: {IVF_CODEC_TOKENS}"
            )));
        };
        let codec = parse_ivf_codec(&codec_tok.1)
            .map_err(|e| e.context(here(&codec_tok)))?
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: not understood after an IVF quantizer; expected {IVF_CODEC_TOKENS}",
                    here(&codec_tok)
                ))
            })?;
        pos.body = first;
        pos.codec = codec_tok;
        BodySpec::Ivf { coarse, codec }
    } else {
        let storage = parse_storage(&first.1)
            .map_err(|e| e.context(here(&first)))?
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: not understood; expected IDMap, IDMap2 or a storage: {STORAGE_TOKENS}",
                    here(&first)
                ))
            })?;
        pos.codec = first.clone();
        pos.body = first;
        BodySpec::Storage(storage)
    };
    if let Some(extra) = rest.next() {
        return Err(Error::invalid(format!(
            "{}: not understood after the storage; expected RFlat, Refine(<storage>), IDMap \
             or IDMap2",
            here(&extra)
        )));
    }
    let spec = IndexSpec {
        id_map,
        transforms,
        body,
        refine,
    };
    Ok((spec, pos))
}

/// `RFlat` or `Refine(<description>)`; `None` for other tokens.
fn parse_refine(tok: &str) -> Result<Option<RefineSpec>> {
    if tok == "RFlat" {
        return Ok(Some(RefineSpec::Flat));
    }
    let Some(inner) = tok.strip_prefix("Refine(") else {
        return Ok(None);
    };
    let inner = inner
        .strip_suffix(')')
        .ok_or_else(|| Error::invalid("expected RFlat or Refine(<index>)"))?;
    let spec = inner
        .parse::<IndexSpec>()
        .map_err(|e| e.context("inside Refine()"))?;
    Ok(Some(RefineSpec::Index(Box::new(spec))))
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

fn parse_transform(tok: &str) -> Result<TransformSpec> {
    let bad = || {
        Error::invalid(format!(
            "not understood as a transform; expected one of {TRANSFORM_TOKENS}"
        ))
    };
    if tok == "L2norm" || tok == "L2Norm" {
        return Ok(TransformSpec::L2Norm);
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
        let d_out = digits.parse().map_err(|_| bad())?;
        return Ok(TransformSpec::Pca {
            d_out,
            whiten,
            rotate,
        });
    }
    if let Some(rest) = tok.strip_prefix("OPQ") {
        let (m, d_out) = match rest.split_once('_') {
            Some((m, o)) => (
                m.parse().map_err(|_| bad())?,
                Some(o.parse().map_err(|_| bad())?),
            ),
            None => (rest.parse().map_err(|_| bad())?, None),
        };
        return Ok(TransformSpec::Opq { m, d_out });
    }
    if let Some(n) = tok.strip_prefix("RR") {
        let d_out = n.parse().map_err(|_| bad())?;
        return Ok(TransformSpec::RandomRotation { d_out });
    }
    if let Some(n) = tok.strip_prefix("Pad") {
        let d_out = n.parse().map_err(|_| bad())?;
        return Ok(TransformSpec::Pad { d_out });
    }
    Err(bad())
}

/// `IVF<n>[k|M]`, `IVF<n>_HNSW<M>`, `IVF<n>(<description>)` or `IMI<M>x<nbits>`. A
/// parenthesised flat or HNSW-flat quantizer is the same as the short forms, and written
/// as them.
fn parse_coarse(tok: &str) -> Result<CoarseSpec> {
    if let Some(rest) = tok.strip_prefix("IMI") {
        let parsed = number(rest).and_then(|(m, r)| {
            let (nbits, r) = number(r.strip_prefix('x')?)?;
            r.is_empty().then_some((m, nbits))
        });
        let Some((m, nbits)) = parsed else {
            return Err(Error::invalid("expected IMI<M>x<nbits>, e.g. IMI2x10"));
        };
        return Ok(CoarseSpec::MultiIndex { m, nbits });
    }
    let rest = tok.strip_prefix("IVF").unwrap_or(tok);
    if let Some((head, inner)) = rest.split_once('(') {
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
        let quantizer: IndexSpec = inner
            .parse()
            .map_err(|e: Error| e.context(format!("the quantizer ({inner:?}) in parentheses")))?;
        let plain = quantizer.id_map.is_none()
            && quantizer.transforms.is_empty()
            && quantizer.refine.is_none();
        return Ok(match quantizer.body {
            BodySpec::Storage(StorageSpec::Flat) if plain => CoarseSpec::Flat { nlist },
            BodySpec::Storage(StorageSpec::Hnsw {
                m,
                storage: HnswStorageSpec::Flat,
            }) if plain => CoarseSpec::Hnsw { nlist, m },
            _ => CoarseSpec::Index {
                nlist,
                quantizer: Box::new(quantizer),
            },
        });
    }
    let (nlist, suffix) = ivf_nlist(rest)?;
    if suffix.is_empty() {
        return Ok(CoarseSpec::Flat { nlist });
    }
    let q = suffix.strip_prefix('_').ok_or_else(|| {
        Error::invalid(format!(
            "unknown suffix {suffix:?} after the list count; expected nothing, k, M, \
             _HNSW<M> or (<quantizer>)"
        ))
    })?;
    match q.strip_prefix("HNSW").map(number_or_default(32)) {
        Some(Some(m)) => Ok(CoarseSpec::Hnsw { nlist, m }),
        _ => Err(Error::invalid(format!(
            "unknown quantizer {q:?} after IVF{nlist}_; expected HNSW[<M>], e.g. \
             IVF65536_HNSW32"
        ))),
    }
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

/// An IVF codec token; `None` when the token names none.
fn parse_ivf_codec(tok: &str) -> Result<Option<IvfCodecSpec>> {
    if tok == "Flat" {
        return Ok(Some(IvfCodecSpec::Flat));
    }
    if let Some(rest) = tok.strip_prefix("RaBitQ") {
        return Ok(
            rabitq_tail(rest).map(|(nb_bits, fast_scan)| match fast_scan {
                None => IvfCodecSpec::RaBitQ { nb_bits },
                Some(bbs) => IvfCodecSpec::RaBitQFastScan { nb_bits, bbs },
            }),
        );
    }
    if let Some((aq, bbs, by_residual)) = parse_aq_fast_scan(tok)? {
        return Ok(Some(IvfCodecSpec::AqFastScan {
            aq,
            bbs,
            by_residual,
        }));
    }
    if let Some(aq) = parse_aq(tok)? {
        return Ok(Some(IvfCodecSpec::AdditiveQuantizer(aq)));
    }
    if let Some(rest) = tok.strip_prefix("SQ") {
        return Ok(QuantizerType::parse(rest).map(IvfCodecSpec::ScalarQuantizer));
    }
    let Some((m, rest)) = tok.strip_prefix("PQ").and_then(number) else {
        return Ok(None);
    };
    if let Some(r) = rest.strip_prefix('+') {
        return Ok(match number(r) {
            Some((m2, "")) => Some(IvfCodecSpec::PqRefine { m, m2 }),
            _ => None,
        });
    }
    if let Some(r) = rest.strip_prefix("x4fs") {
        let (by_residual, r) = match r.strip_prefix('r') {
            Some(r) => (true, r),
            None => (false, r),
        };
        return Ok(fast_scan_bbs(r).map(|bbs| IvfCodecSpec::PqFastScan {
            m,
            by_residual,
            bbs,
        }));
    }
    Ok(pq_bits_and_np(rest).map(|(nbits, np)| IvfCodecSpec::Pq {
        m,
        nbits,
        polysemous_training: !np,
    }))
}

/// A storage token; `None` when the token names none.
fn parse_storage(tok: &str) -> Result<Option<StorageSpec>> {
    if tok.starts_with("HNSW") {
        return parse_hnsw(tok).map(Some);
    }
    if tok == "Flat" {
        return Ok(Some(StorageSpec::Flat));
    }
    if let Some(rest) = tok.strip_prefix("RaBitQ") {
        return Ok(
            rabitq_tail(rest).map(|(nb_bits, fast_scan)| match fast_scan {
                None => StorageSpec::RaBitQ { nb_bits },
                Some(bbs) => StorageSpec::RaBitQFastScan { nb_bits, bbs },
            }),
        );
    }
    if let Some(rest) = tok.strip_prefix("RCQ") {
        // Faiss accepts (and ignores) a norm suffix on a coarse quantizer.
        return Ok(parse_aq(&format!("RQ{rest}"))?
            .filter(|aq| matches!(aq.shape, AqShape::Residual { .. }))
            .map(StorageSpec::AdditiveCoarseQuantizer));
    }
    if let Some(rest) = tok.strip_prefix("LSCQ") {
        return Ok(parse_aq(&format!("LSQ{rest}"))?
            .filter(|aq| matches!(aq.shape, AqShape::LocalSearch { .. }))
            .map(StorageSpec::AdditiveCoarseQuantizer));
    }
    if let Some((aq, bbs, residual)) = parse_aq_fast_scan(tok)? {
        return Ok((!residual).then_some(StorageSpec::AqFastScan { aq, bbs }));
    }
    if let Some(aq) = parse_aq(tok)? {
        return Ok(Some(StorageSpec::AdditiveQuantizer(aq)));
    }
    if let Some(rest) = tok.strip_prefix("SQ") {
        return Ok(match QuantizerType::parse(rest) {
            // The uniform types exist only as IVF codecs.
            Some(QuantizerType::QT8bitUniform | QuantizerType::QT4bitUniform) | None => None,
            Some(qt) => Some(StorageSpec::ScalarQuantizer(qt)),
        });
    }
    if let Some(rest) = tok.strip_prefix("PQ") {
        let Some((m, rest)) = number(rest) else {
            return Ok(None);
        };
        if let Some(bbs) = rest.strip_prefix("x4fs").and_then(fast_scan_bbs) {
            return Ok(Some(StorageSpec::PqFastScan { m, bbs }));
        }
        return Ok(pq_bits_and_np(rest).map(|(nbits, np)| StorageSpec::Pq {
            m,
            nbits,
            polysemous_training: !np,
        }));
    }
    if let Some(rest) = tok.strip_prefix("LSH") {
        let (nbits, flags) = match number(rest) {
            Some((n, f)) => (Some(n), f),
            None => (None, rest),
        };
        let (rotate, train_thresholds) = match flags {
            "" => (false, false),
            "r" => (true, false),
            "t" => (false, true),
            "rt" => (true, true),
            _ => return Ok(None),
        };
        return Ok(Some(StorageSpec::Lsh {
            nbits,
            rotate,
            train_thresholds,
        }));
    }
    Ok(None)
}

/// `HNSW[<M>][_<storage>]` (the factory merges `HNSW32,SQ8` into `HNSW32_SQ8` first).
fn parse_hnsw(tok: &str) -> Result<StorageSpec> {
    let rest = tok.strip_prefix("HNSW").unwrap_or(tok);
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
    let storage = if code == "Flat" {
        HnswStorageSpec::Flat
    } else if let Some(q) = code.strip_prefix("SQ") {
        HnswStorageSpec::ScalarQuantizer(QuantizerType::parse(q).ok_or_else(unknown)?)
    } else if let Some(r) = code.strip_prefix("PQ") {
        let (pm, r) = number(r).ok_or_else(unknown)?;
        // Graph search compares by ADC only, so (as Faiss's IndexHNSWPQ) the codes get no
        // polysemous training whether or not `np` is given.
        let (nbits, _np) = pq_bits_and_np(r).ok_or_else(unknown)?;
        HnswStorageSpec::Pq { m: pm, nbits }
    } else {
        return Err(unknown());
    };
    Ok(StorageSpec::Hnsw { m, storage })
}

/// An additive-quantizer token: `RQ<M>x<b>[_<M>x<b>…]`, `LSQ<M>x<b>`,
/// `PRQ<n>x<M>x<b>` or `PLSQ<n>x<M>x<b>`, then an optional `_N<norm>` (Faiss's
/// `aq_def`, `paq_def` and `aq_norm`). `None` when the token names none.
fn parse_aq(tok: &str) -> Result<Option<AqSpec>> {
    use fathom_quant::additive::AqSearchType as St;
    let (kind, rest) = match ["PLSQ", "PRQ", "LSQ", "RQ"]
        .into_iter()
        .find_map(|p| tok.strip_prefix(p).map(|r| (p, r)))
    {
        Some(found) => found,
        None => return Ok(None),
    };
    let (def, st) = match rest.find("_N") {
        Some(at) => match St::from_factory_suffix(&rest[at..]) {
            Some(st) => (&rest[..at], st),
            None => return Ok(None),
        },
        None => (rest, St::Decompress),
    };
    let numbers: Option<Vec<Vec<usize>>> = def
        .split('_')
        .map(|g| {
            g.split('x')
                .map(|n| match number(n) {
                    Some((v, "")) => Some(v),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let Some(numbers) = numbers else {
        return Ok(None);
    };
    let shape = match (kind, numbers.as_slice()) {
        ("RQ", groups) if groups.iter().all(|g| g.len() == 2) => {
            if groups.len() > 4 {
                return Err(Error::invalid(format!(
                    "{tok:?}: at most 4 <M>x<nbits> groups"
                )));
            }
            let mut g = [(0, 0); 4];
            for (slot, v) in g.iter_mut().zip(groups) {
                *slot = (v[0], v[1]);
            }
            AqShape::Residual {
                groups: g,
                len: groups.len(),
            }
        }
        ("LSQ", [g]) if g.len() == 2 => AqShape::LocalSearch {
            m: g[0],
            nbits: g[1],
        },
        ("PRQ" | "PLSQ", [g]) if g.len() == 3 => AqShape::Product {
            nsplits: g[0],
            msub: g[1],
            nbits: g[2],
            local_search: kind == "PLSQ",
        },
        _ => return Ok(None),
    };
    Ok(Some(AqSpec {
        shape,
        search_type: st,
    }))
}

/// A fast-scan additive-quantizer token: `RQ<M>x4fs`, `LSQ<M>x4fs`, `PRQ<n>x<M>x4fs`,
/// `PLSQ<n>x<M>x4fs`, then (IVF only) `r` to code residuals, an optional `_<bbs>` and
/// norm (Faiss's patterns). Returns the quantizer, the block size and whether `r` was
/// given; `None` when the token names none.
fn parse_aq_fast_scan(tok: &str) -> Result<Option<(AqSpec, usize, bool)>> {
    let Some(at) = tok.find("x4fs") else {
        return Ok(None);
    };
    let (head, tail) = (&tok[..at + 2], &tok[at + 4..]);
    let (residual, tail) = match tail.strip_prefix('r') {
        Some(t) => (true, t),
        None => (false, tail),
    };
    let (bbs, norm) = match tail.strip_prefix('_').and_then(number) {
        Some((bbs, rest)) => (bbs, rest),
        None => (32, tail),
    };
    let Some(aq) = parse_aq(&format!("{head}{norm}"))? else {
        return Ok(None);
    };
    if matches!(aq.shape, AqShape::Residual { len, .. } if len != 1) {
        return Ok(None);
    }
    Ok(Some((aq, bbs, residual)))
}

/// The tail of a `RaBitQ` token → `(nb_bits, fast-scan block size)`: Faiss's
/// `RaBitQ([1-9])?` (bits, 1 by default) or `RaBitQfs([1-9])?(_<bbs>)?` (fast-scan).
fn rabitq_tail(rest: &str) -> Option<(usize, Option<usize>)> {
    let (fast_scan, rest) = match rest.strip_prefix("fs") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (nb_bits, rest) = match rest.chars().next() {
        Some(c @ '1'..='9') => (c as usize - '0' as usize, &rest[1..]),
        _ => (1, rest),
    };
    if !fast_scan {
        return rest.is_empty().then_some((nb_bits, None));
    }
    fast_scan_bbs(rest).map(|bbs| (nb_bits, Some(bbs)))
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
/// keeps its position.
fn merge_hnsw_storage(tokens: Vec<(usize, String)>) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::with_capacity(tokens.len());
    for (pos, t) in tokens {
        let is_code = t == "Flat" || t.starts_with("SQ") || t.starts_with("PQ");
        match out.last_mut() {
            Some((_, prev)) if is_code && prev.starts_with("HNSW") && !prev.contains('_') => {
                prev.push('_');
                prev.push_str(&t);
            }
            _ => out.push((pos, t)),
        }
    }
    out
}

/// Splits at commas outside parentheses, trimming each token.
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

/// `<M>` or nothing (then `default`); anything else is `None`.
fn number_or_default(default: usize) -> impl Fn(&str) -> Option<usize> {
    move |s: &str| match number(s) {
        Some((m, "")) => Some(m),
        None if s.is_empty() => Some(default),
        _ => None,
    }
}
