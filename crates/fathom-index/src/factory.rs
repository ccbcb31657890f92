//! Building an index from a description in Faiss's factory grammar. So far the grammar
//! covers the exact indexes (`Flat`, with `IDMap` / `IDMap2` in front); every other Faiss
//! token is recognised as such and rejected with a message that says what is available.

use fathom_core::{Error, MetricType, Result};

use crate::{Index, IndexFlat, IndexIdMap, IndexIdMap2};

/// The index a description names, for vectors of dimension `d` compared with `metric`,
/// as Faiss's `index_factory(d, description, metric)`.
///
/// Accepted so far: `Flat`, `IDMap,Flat`, `IDMap2,Flat` (and `Flat,IDMap` / `Flat,IDMap2`,
/// the order Faiss also accepts).
///
/// ```
/// use fathom_index::{index_factory, Index, MetricType};
/// let index = index_factory(64, "IDMap2,Flat", MetricType::InnerProduct).unwrap();
/// assert_eq!(index.description(), "IDMap2,Flat");
/// let err = index_factory(64, "IVF100,Flat", MetricType::L2).unwrap_err().to_string();
/// assert!(err.contains("IVF100"), "{err}");
/// ```
pub fn index_factory(d: usize, description: &str, metric: MetricType) -> Result<Box<dyn Index>> {
    let tokens: Vec<&str> = description.split(',').map(str::trim).collect();
    let mut wrapper = None;
    let mut codec = None;
    for (pos, &tok) in tokens.iter().enumerate() {
        let here = || format!("{description:?}, token {} ({tok:?})", pos + 1);
        match tok {
            "IDMap" | "IDMap2" if wrapper.is_none() => wrapper = Some(tok),
            "Flat" if codec.is_none() => codec = Some(tok),
            "IDMap" | "IDMap2" | "Flat" => {
                return Err(Error::invalid(format!("{}: {tok} appears twice", here())));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "{}: not understood; fathom supports Flat, optionally with IDMap or \
                     IDMap2 (e.g. \"IDMap2,Flat\")",
                    here()
                )));
            }
        }
    }
    if codec.is_none() {
        return Err(Error::invalid(format!(
            "{description:?}: no storage given; expected Flat"
        )));
    }
    let flat = IndexFlat::new(d, metric)?;
    Ok(match wrapper {
        Some("IDMap") => Box::new(IndexIdMap::new(flat)),
        Some(_) => Box::new(IndexIdMap2::new(flat)),
        None => Box::new(flat),
    })
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
        ] {
            assert_eq!(
                index_factory(8, s, MetricType::L2).unwrap().description(),
                want
            );
        }
        for bad in [
            "",
            "IDMap",
            "Flat,Flat",
            "IDMap,IDMap2,Flat",
            "HNSW32",
            "PCA16,Flat",
        ] {
            assert!(index_factory(8, bad, MetricType::L2).is_err(), "{bad}");
        }
        assert!(index_factory(0, "Flat", MetricType::L2).is_err());
    }
}
