use crate::{Error, Result};

/// How vectors are compared. The numeric codes are Faiss's (`faiss::MetricType`), so they
/// can be written to and read from Faiss index files unchanged.
///
/// Conventions follow Faiss: [`MetricType::L2`] is the *squared* Euclidean distance,
/// [`MetricType::Lp`] is `Σ|xᵢ−yᵢ|ᵖ` without the final root, and
/// [`MetricType::InnerProduct`] is a similarity (larger is better); every other metric is a
/// distance (smaller is better).
///
/// Two deliberate differences from Faiss, where Faiss returns NaN: a Canberra term with
/// `xᵢ = yᵢ = 0` counts as 0, and a Jensen–Shannon term with a zero probability counts as 0
/// (the usual `0·log 0 = 0` convention).
///
/// ```
/// use fathom_core::MetricType;
/// assert_eq!(MetricType::L2.code(), 1);
/// assert_eq!(MetricType::from_code(20, 0.0).unwrap(), MetricType::Canberra);
/// assert!(MetricType::InnerProduct.is_similarity());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum MetricType {
    /// Inner product, `Σ xᵢyᵢ` (code 0). A similarity.
    InnerProduct,
    /// Squared Euclidean distance, `Σ (xᵢ−yᵢ)²` (code 1).
    L2,
    /// Manhattan distance, `Σ |xᵢ−yᵢ|` (code 2).
    L1,
    /// Chebyshev distance, `max |xᵢ−yᵢ|` (code 3).
    Linf,
    /// `Σ |xᵢ−yᵢ|ᵖ` for the given `p` (code 4; Faiss stores `p` as `metric_arg`).
    Lp(f32),
    /// Canberra distance, `Σ |xᵢ−yᵢ| / (|xᵢ|+|yᵢ|)` (code 20).
    Canberra,
    /// Bray–Curtis dissimilarity, `Σ|xᵢ−yᵢ| / Σ|xᵢ+yᵢ|` (code 21).
    BrayCurtis,
    /// Jensen–Shannon divergence between two probability vectors (code 22).
    JensenShannon,
}

impl MetricType {
    /// Faiss's numeric code for this metric.
    pub fn code(self) -> u32 {
        match self {
            MetricType::InnerProduct => 0,
            MetricType::L2 => 1,
            MetricType::L1 => 2,
            MetricType::Linf => 3,
            MetricType::Lp(_) => 4,
            MetricType::Canberra => 20,
            MetricType::BrayCurtis => 21,
            MetricType::JensenShannon => 22,
        }
    }

    /// The extra argument Faiss stores beside the code (`metric_arg`): `p` for
    /// [`MetricType::Lp`], 0 otherwise.
    pub fn arg(self) -> f32 {
        match self {
            MetricType::Lp(p) => p,
            _ => 0.0,
        }
    }

    /// The metric for a Faiss code and `metric_arg`.
    pub fn from_code(code: u32, arg: f32) -> Result<Self> {
        Ok(match code {
            0 => MetricType::InnerProduct,
            1 => MetricType::L2,
            2 => MetricType::L1,
            3 => MetricType::Linf,
            4 => {
                if !(arg.is_finite() && arg > 0.0) {
                    return Err(Error::invalid(format!(
                        "metric Lp needs a finite p > 0, got {arg}"
                    )));
                }
                MetricType::Lp(arg)
            }
            20 => MetricType::Canberra,
            21 => MetricType::BrayCurtis,
            22 => MetricType::JensenShannon,
            other => {
                return Err(Error::invalid(format!(
                    "unknown metric code {other}; expected one of 0 (IP), 1 (L2), 2 (L1), \
                     3 (Linf), 4 (Lp), 20 (Canberra), 21 (BrayCurtis), 22 (JensenShannon)"
                )));
            }
        })
    }

    /// The metric as Faiss's index constructors take it: `METRIC_Lp` may come without its
    /// `p` (`metric_arg` 0, Faiss's default), for code that sets `index.metric_arg`
    /// next. Such an index ([`MetricType::is_ready`] false) can be made and filled, but
    /// searching it is an error until `p` is set (`set_param("metric_arg", p)`).
    pub fn from_code_p_later(code: u32, arg: f32) -> Result<Self> {
        if code == 4 && arg == 0.0 {
            return Ok(MetricType::Lp(0.0));
        }
        Self::from_code(code, arg)
    }

    /// False only for [`MetricType::Lp`] whose `p` is not set yet (0; see
    /// [`MetricType::from_code_p_later`]): distances need it.
    pub fn is_ready(self) -> bool {
        !matches!(self, MetricType::Lp(p) if p == 0.0)
    }

    /// Parses a metric name as the CLI and configuration files write it:
    /// `l2`, `ip` (or `inner_product`), `l1`, `linf`, `lp:P`, `canberra`, `braycurtis`,
    /// `jensenshannon`.
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "l2" => MetricType::L2,
            "ip" | "inner_product" | "innerproduct" => MetricType::InnerProduct,
            "l1" => MetricType::L1,
            "linf" => MetricType::Linf,
            "canberra" => MetricType::Canberra,
            "braycurtis" => MetricType::BrayCurtis,
            "jensenshannon" => MetricType::JensenShannon,
            s if s.starts_with("lp:") => {
                let p: f32 = s[3..].parse().map_err(|_| {
                    Error::invalid(format!("metric {name:?}: expected lp:P with P a number"))
                })?;
                MetricType::from_code(4, p)?
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unknown metric {name:?}; expected l2, ip, l1, linf, lp:P, canberra, \
                     braycurtis or jensenshannon"
                )));
            }
        })
    }

    /// True when larger values are better (inner product).
    pub fn is_similarity(self) -> bool {
        matches!(self, MetricType::InnerProduct)
    }

    /// The value Faiss reports for a missing result: `+∞` for distances, `−∞` for
    /// similarities.
    pub fn worst_value(self) -> f32 {
        if self.is_similarity() {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        }
    }

    /// True when `a` is a strictly better score than `b` under this metric.
    pub fn is_better(self, a: f32, b: f32) -> bool {
        if self.is_similarity() { a > b } else { a < b }
    }
}

impl std::fmt::Display for MetricType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricType::InnerProduct => f.write_str("ip"),
            MetricType::L2 => f.write_str("l2"),
            MetricType::L1 => f.write_str("l1"),
            MetricType::Linf => f.write_str("linf"),
            MetricType::Lp(p) => write!(f, "lp:{p}"),
            MetricType::Canberra => f.write_str("canberra"),
            MetricType::BrayCurtis => f.write_str("braycurtis"),
            MetricType::JensenShannon => f.write_str("jensenshannon"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for m in [
            MetricType::InnerProduct,
            MetricType::L2,
            MetricType::L1,
            MetricType::Linf,
            MetricType::Lp(3.0),
            MetricType::Canberra,
            MetricType::BrayCurtis,
            MetricType::JensenShannon,
        ] {
            assert_eq!(MetricType::from_code(m.code(), m.arg()).unwrap(), m);
            assert_eq!(MetricType::parse(&m.to_string()).unwrap(), m);
        }
    }

    #[test]
    fn bad_codes_and_names_are_errors() {
        assert!(MetricType::from_code(5, 0.0).is_err());
        assert!(MetricType::from_code(4, -1.0).is_err());
        assert!(MetricType::from_code(4, f32::NAN).is_err());
        let e = MetricType::parse("cosine").unwrap_err().to_string();
        assert!(e.contains("cosine") && e.contains("l2"), "{e}");
        assert!(MetricType::parse("lp:x").is_err());
    }

    #[test]
    fn worst_values() {
        assert_eq!(MetricType::L2.worst_value(), f32::INFINITY);
        assert_eq!(MetricType::InnerProduct.worst_value(), f32::NEG_INFINITY);
        assert!(MetricType::L2.is_better(1.0, 2.0));
        assert!(MetricType::InnerProduct.is_better(2.0, 1.0));
    }
}
