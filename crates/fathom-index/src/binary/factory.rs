//! Faiss's `index_binary_factory` grammar: `BFlat`, `BIVF<nlist>`,
//! `BIVF<nlist>_HNSW<M>`, `BHNSW<M>`, `BHash<b>`, `BHash<nhash>x<b>`, each optionally
//! wrapped by `IDMap` or `IDMap2` (as a prefix `IDMap,…` or a suffix `…,IDMap`).

use fathom_core::{Error, Result};

use super::{
    IndexBinary, IndexBinaryFlat, IndexBinaryHash, IndexBinaryHnsw, IndexBinaryIdMap,
    IndexBinaryIvf, IndexBinaryMultiHash,
};

/// The body of a binary description, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinarySpec {
    Flat,
    Ivf { nlist: usize, hnsw_m: Option<usize> },
    Hnsw { m: usize },
    Hash { b: usize },
    MultiHash { nhash: usize, b: usize },
}

/// A decimal number taking the whole of `s`.
fn number(s: &str) -> Option<usize> {
    (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn parse_body(body: &str) -> Option<BinarySpec> {
    if body == "BFlat" {
        return Some(BinarySpec::Flat);
    }
    if let Some(rest) = body.strip_prefix("BIVF") {
        return match rest.split_once("_HNSW") {
            Some((nlist, m)) => Some(BinarySpec::Ivf {
                nlist: number(nlist)?,
                hnsw_m: Some(number(m)?),
            }),
            None => Some(BinarySpec::Ivf {
                nlist: number(rest)?,
                hnsw_m: None,
            }),
        };
    }
    if let Some(m) = body.strip_prefix("BHNSW") {
        return Some(BinarySpec::Hnsw { m: number(m)? });
    }
    if let Some(rest) = body.strip_prefix("BHash") {
        return match rest.split_once('x') {
            Some((nhash, b)) => Some(BinarySpec::MultiHash {
                nhash: number(nhash)?,
                b: number(b)?,
            }),
            None => Some(BinarySpec::Hash { b: number(rest)? }),
        };
    }
    None
}

fn build(d: usize, spec: BinarySpec) -> Result<Box<dyn IndexBinary>> {
    Ok(match spec {
        BinarySpec::Flat => Box::new(IndexBinaryFlat::new(d)?),
        BinarySpec::Ivf { nlist, hnsw_m } => {
            let quantizer: Box<dyn IndexBinary> = match hnsw_m {
                Some(m) => Box::new(IndexBinaryHnsw::new(d, m)?),
                None => Box::new(IndexBinaryFlat::new(d)?),
            };
            Box::new(IndexBinaryIvf::new(quantizer, nlist)?)
        }
        BinarySpec::Hnsw { m } => Box::new(IndexBinaryHnsw::new(d, m)?),
        BinarySpec::Hash { b } => Box::new(IndexBinaryHash::new(d, b)?),
        BinarySpec::MultiHash { nhash, b } => Box::new(IndexBinaryMultiHash::new(d, nhash, b)?),
    })
}

/// The binary index a description names, for `d`-bit vectors (Faiss's
/// `index_binary_factory`).
///
/// ```
/// use fathom_index::binary::{index_binary_factory, IndexBinary};
/// let index = index_binary_factory(64, "IDMap2,BFlat").unwrap();
/// assert_eq!(index.description(), "IDMap2,BFlat");
/// for s in ["BIVF16", "BIVF16_HNSW8", "BHNSW32", "BHash16", "BHash4x16"] {
///     assert_eq!(index_binary_factory(64, s).unwrap().description(), s);
/// }
/// assert!(index_binary_factory(64, "BPQ8").is_err());
/// assert!(index_binary_factory(64, "BHash8x16").is_err()); // 8 × 16 bits > 64
/// ```
pub fn index_binary_factory(d: usize, description: &str) -> Result<Box<dyn IndexBinary>> {
    let tokens: Vec<&str> = description.split(',').map(str::trim).collect();
    let (wrapper, body) = match tokens.as_slice() {
        [w @ ("IDMap" | "IDMap2"), body] | [body, w @ ("IDMap" | "IDMap2")] => (Some(*w), *body),
        [body] => (None, *body),
        _ => {
            return Err(Error::invalid(format!(
                "{description:?}: expected one binary index, optionally with IDMap or IDMap2"
            )));
        }
    };
    let spec = parse_body(body).ok_or_else(|| {
        Error::invalid(format!(
            "{description:?}: binary index {body:?} is not known; expected BFlat, \
             BIVF<nlist>, BIVF<nlist>_HNSW<M>, BHNSW<M>, BHash<b> or BHash<nhash>x<b>"
        ))
    })?;
    let index = build(d, spec)?;
    Ok(match wrapper {
        None => index,
        Some(w) => Box::new(IndexBinaryIdMap::new(index, w == "IDMap2")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_parse_and_round_trip() {
        assert_eq!(parse_body("BIVF0x"), None);
        assert_eq!(parse_body("BIVF"), None);
        assert_eq!(parse_body("BHash-3"), None);
        assert_eq!(
            parse_body("BIVF1024_HNSW32"),
            Some(BinarySpec::Ivf {
                nlist: 1024,
                hnsw_m: Some(32)
            })
        );
        for s in [
            "BFlat",
            "BIVF8",
            "BIVF8_HNSW4",
            "BHNSW16",
            "BHash20",
            "BHash2x20",
        ] {
            for w in ["", "IDMap,", "IDMap2,"] {
                let full = format!("{w}{s}");
                let index = index_binary_factory(128, &full).unwrap();
                assert_eq!(index.description(), full);
            }
        }
        assert!(index_binary_factory(128, "IDMap,IDMap2,BFlat").is_err());
        assert!(index_binary_factory(12, "BFlat").is_err());
        assert!(index_binary_factory(64, "BIVF0").is_err());
        assert!(index_binary_factory(64, "BHash0").is_err());
        assert!(index_binary_factory(64, "BHash65").is_err());
    }
}
