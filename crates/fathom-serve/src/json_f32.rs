//! f32 fields of request bodies, read as JSON doubles and narrowed (`#[serde(deserialize_with
//! = …)]`). serde_json's exact (`float_roundtrip`) parser fails a whole body when a number
//! is outside f32, as "malformed JSON"; narrowing instead turns it into ±inf, which the
//! vector checks then refuse with 422 naming the value — the status the API promises for
//! a value outside f32.

use std::fmt;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// One vector, its numbers narrowed to f32.
struct Row(Vec<f32>);

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Numbers;
        impl<'de> Visitor<'de> for Numbers {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(x) = seq.next_element::<f64>()? {
                    v.push(x as f32);
                }
                Ok(Row(v))
            }
        }
        d.deserialize_seq(Numbers)
    }
}

/// `"vector": [...]` (or null / absent).
pub(crate) fn vector<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f32>>, D::Error> {
    Ok(Option::<Row>::deserialize(d)?.map(|r| r.0))
}

/// `"vectors": [[...], ...]` (or null / absent).
pub(crate) fn vectors<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Vec<f32>>>, D::Error> {
    Ok(Option::<Vec<Row>>::deserialize(d)?.map(|rows| rows.into_iter().map(|r| r.0).collect()))
}

/// A single optional f32 (`min_score`, `max_distance`).
pub(crate) fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|x| x as f32))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::vector")]
        vector: Option<Vec<f32>>,
        #[serde(default, deserialize_with = "super::vectors")]
        vectors: Option<Vec<Vec<f32>>>,
        #[serde(default, deserialize_with = "super::scalar")]
        min_score: Option<f32>,
    }

    #[test]
    fn out_of_range_numbers_narrow_to_infinity_and_the_rest_stays_exact() {
        let b: Body =
            serde_json::from_str(r#"{"vector": [1, 0.1, 1e40, -1e40], "min_score": 1e39}"#)
                .unwrap();
        assert_eq!(
            b.vector.unwrap(),
            vec![1.0, 0.1, f32::INFINITY, f32::NEG_INFINITY]
        );
        assert_eq!(b.min_score, Some(f32::INFINITY));
        assert!(b.vectors.is_none());
        let b: Body = serde_json::from_str(r#"{"vectors": [[1], []], "vector": null}"#).unwrap();
        assert_eq!(b.vectors.unwrap(), vec![vec![1.0], vec![]]);
        assert!(b.vector.is_none());
        assert!(serde_json::from_str::<Body>(r#"{"vector": [1, "a"]}"#).is_err());
        assert!(serde_json::from_str::<Body>(r#"{"vector": 3}"#).is_err());
    }
}
