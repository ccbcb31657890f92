//! [`IndexSpec`]: a factory description as a typed value. Parsing ([`str::parse`]) checks
//! the grammar, [`Display`](std::fmt::Display) writes the canonical string (the one
//! [`Index::description`](crate::Index::description) gives back), and
//! [`IndexSpec::build`] makes the index for a dimension and metric.

use std::fmt;

use fathom_core::Result;
use fathom_quant::QuantizerType;

/// A factory description, parsed: `[IDMap|IDMap2,][<transform>,…]<body>[,RFlat|,Refine(…)]`.
/// The id map wraps everything and the refinement re-ranks with the vectors as given
/// (outside the transforms), as in Faiss.
///
/// ```
/// use fathom_index::{IndexSpec, MetricType, StorageSpec, BodySpec};
/// let spec: IndexSpec = "IDMap, PCA16, IVF1k, PQ8".parse().unwrap();
/// assert_eq!(spec.to_string(), "IDMap,PCA16,IVF1024,PQ8");
/// assert_eq!(spec.transforms.len(), 1);
/// let index = spec.build(32, MetricType::L2).unwrap();
/// assert_eq!(index.description(), "IDMap,PCA16,IVF1024,PQ8");
/// let flat = IndexSpec::from(BodySpec::Storage(StorageSpec::Flat));
/// assert_eq!(flat.to_string(), "Flat");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    /// User-chosen ids around everything.
    pub id_map: Option<IdMapKind>,
    /// Vector transforms, applied first to last.
    pub transforms: Vec<TransformSpec>,
    /// What stores and searches the (transformed) vectors.
    pub body: BodySpec,
    /// Re-ranking of the results with another index over the original vectors.
    pub refine: Option<RefineSpec>,
}

/// `IDMap` or `IDMap2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMapKind {
    /// Ids only (`IndexIDMap`).
    IdMap,
    /// Ids and reconstruction by id (`IndexIDMap2`).
    IdMap2,
}

/// A transform prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformSpec {
    /// `PCA[W][R]<d_out>`: whitened (`W`), followed by a random rotation (`R`).
    Pca {
        /// Output dimension.
        d_out: usize,
        /// Whether components are scaled to unit variance.
        whiten: bool,
        /// Whether a random rotation follows.
        rotate: bool,
    },
    /// `OPQ<M>[_<d_out>]`.
    Opq {
        /// Sub-quantizers the rotation prepares for.
        m: usize,
        /// Output dimension (`None`: the input's).
        d_out: Option<usize>,
    },
    /// `RR<d_out>`: a random rotation.
    RandomRotation {
        /// Output dimension.
        d_out: usize,
    },
    /// `L2norm`.
    L2Norm,
    /// `Pad<d_out>`: zero-padding.
    Pad {
        /// Output dimension.
        d_out: usize,
    },
}

/// The part of a description that stores the vectors.
#[derive(Debug, Clone, PartialEq)]
pub enum BodySpec {
    /// One storage token.
    Storage(StorageSpec),
    /// An inverted file: a coarse quantizer and the codec of its lists.
    Ivf {
        /// How vectors are sent to lists.
        coarse: CoarseSpec,
        /// How the lists store them.
        codec: IvfCodecSpec,
    },
}

/// A storage token outside an inverted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageSpec {
    /// `Flat`.
    Flat,
    /// `PQ<M>[x<nbits>][np]`.
    Pq {
        /// Sub-quantizers.
        m: usize,
        /// Bits per sub-quantizer.
        nbits: usize,
        /// Whether the codes are trained for polysemous search (`np` turns it off).
        polysemous_training: bool,
    },
    /// `PQ<M>x4fs[_<bbs>]`.
    PqFastScan {
        /// Sub-quantizers.
        m: usize,
        /// Codes per block.
        bbs: usize,
    },
    /// `SQ<type>`.
    ScalarQuantizer(QuantizerType),
    /// `LSH[<nbits>][r][t]`.
    Lsh {
        /// Bits per code (`None`: the dimension).
        nbits: Option<usize>,
        /// Whether the vectors are rotated first.
        rotate: bool,
        /// Whether thresholds are trained.
        train_thresholds: bool,
    },
    /// `RaBitQ[<nb_bits>]`.
    RaBitQ {
        /// Bits per coordinate (1 to 9).
        nb_bits: usize,
    },
    /// `RaBitQfs[<nb_bits>][_<bbs>]`.
    RaBitQFastScan {
        /// Bits per coordinate (1 to 9).
        nb_bits: usize,
        /// Faiss's block size (32 by default).
        bbs: usize,
    },
    /// `RQ…`, `LSQ…`, `PRQ…`, `PLSQ…`.
    AdditiveQuantizer(AqSpec),
    /// `RQ<M>x4fs[_<bbs>][_N<norm>]` (and `LSQ…`, `PRQ…`, `PLSQ…`): 4-bit additive
    /// codes in fast-scan blocks.
    AqFastScan {
        /// The quantizer (its codebooks must have 4 bits).
        aq: AqSpec,
        /// Faiss's block size (32 by default).
        bbs: usize,
    },
    /// `RCQ<M>x<nbits>[_<M>x<nbits>…]`: a residual coarse quantizer.
    AdditiveCoarseQuantizer(AqSpec),
    /// `HNSW[<M>][,<storage>]` (or the older `HNSW<M>_<storage>`).
    Hnsw {
        /// Links per node.
        m: usize,
        /// What the graph links.
        storage: HnswStorageSpec,
    },
}

/// An additive quantizer's shape and norm (Faiss's `aq_def` / `paq_def` and
/// `aq_norm`): `RQ1x16_6x8_Nqint8`, `LSQ8x8`, `PRQ2x4x8_Nfloat`, `PLSQ2x4x8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AqSpec {
    /// Which quantizer and its codebooks.
    pub shape: AqShape,
    /// The search type (`Decompress` without a suffix).
    pub search_type: fathom_quant::additive::AqSearchType,
}

/// The quantizer an [`AqSpec`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AqShape {
    /// `RQ<M>x<nbits>[_<M>x<nbits>…]`: up to four `(M, nbits)` groups (`RQ1x16_6x8` is
    /// two), `len` of them used.
    Residual {
        /// The groups.
        groups: [(usize, usize); 4],
        /// Groups used.
        len: usize,
    },
    /// `LSQ<M>x<nbits>`.
    LocalSearch {
        /// Codebooks.
        m: usize,
        /// Bits per codebook.
        nbits: usize,
    },
    /// `PRQ<nsplits>x<Msub>x<nbits>` (`local_search`: `PLSQ`).
    Product {
        /// Parts the dimensions split into.
        nsplits: usize,
        /// Codebooks per part.
        msub: usize,
        /// Bits per codebook.
        nbits: usize,
        /// Whether the parts are local-search quantizers.
        local_search: bool,
    },
}

impl AqSpec {
    /// Bits of each residual-quantizer codebook, level by level (empty for other shapes).
    pub fn rq_nbits(&self) -> Vec<usize> {
        match self.shape {
            AqShape::Residual { groups, len } => groups[..len]
                .iter()
                .flat_map(|&(m, b)| std::iter::repeat_n(b, m))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The untrained quantizer of `d`-dimensional vectors, with `search_type`.
    pub fn build(
        &self,
        d: usize,
        search_type: fathom_quant::additive::AqSearchType,
    ) -> Result<fathom_quant::additive::AdditiveQuantizer> {
        use fathom_quant::additive::AdditiveQuantizer as Aq;
        match self.shape {
            AqShape::Residual { .. } => Aq::residual(d, self.rq_nbits(), search_type),
            AqShape::LocalSearch { m, nbits } => Aq::local_search(d, m, nbits, search_type),
            AqShape::Product {
                nsplits,
                msub,
                nbits,
                local_search: false,
            } => Aq::product_residual(d, nsplits, msub, nbits, search_type),
            AqShape::Product {
                nsplits,
                msub,
                nbits,
                ..
            } => Aq::product_local_search(d, nsplits, msub, nbits, search_type),
        }
    }

    /// The token without the norm suffix (`RCQ` tokens replace the leading `RQ`).
    fn body(&self) -> String {
        match self.shape {
            AqShape::Residual { groups, len } => {
                let g: Vec<String> = groups[..len]
                    .iter()
                    .map(|(m, b)| format!("{m}x{b}"))
                    .collect();
                format!("RQ{}", g.join("_"))
            }
            AqShape::LocalSearch { m, nbits } => format!("LSQ{m}x{nbits}"),
            AqShape::Product {
                nsplits,
                msub,
                nbits,
                local_search,
            } => format!(
                "{}{nsplits}x{msub}x{nbits}",
                if local_search { "PLSQ" } else { "PRQ" }
            ),
        }
    }
}

impl fmt::Display for AqSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.body(), self.search_type.factory_suffix())
    }
}

/// `<body>fs[r][_<bbs>][_N<norm>]`; inner product searches without a norm whether or not
/// `_Nnone` says so.
fn fast_scan_aq_token(f: &mut fmt::Formatter<'_>, aq: AqSpec, bbs: usize, r: &str) -> fmt::Result {
    write!(f, "{}fs{r}", aq.body())?;
    if bbs != 32 {
        write!(f, "_{bbs}")?;
    }
    match aq.search_type {
        fathom_quant::additive::AqSearchType::LutNonorm => Ok(()),
        st => f.write_str(st.factory_suffix()),
    }
}

/// What an HNSW graph is built over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HnswStorageSpec {
    /// Full vectors.
    Flat,
    /// Scalar-quantizer codes.
    ScalarQuantizer(QuantizerType),
    /// Product-quantizer codes (searched by ADC, so never trained polysemously).
    Pq {
        /// Sub-quantizers.
        m: usize,
        /// Bits per sub-quantizer.
        nbits: usize,
    },
}

/// The coarse quantizer of an inverted file.
#[derive(Debug, Clone, PartialEq)]
pub enum CoarseSpec {
    /// `IVF<nlist>`: exact assignment to k-means centroids.
    Flat {
        /// Number of lists.
        nlist: usize,
    },
    /// `IVF<nlist>_HNSW<M>`: centroids in an HNSW graph.
    Hnsw {
        /// Number of lists.
        nlist: usize,
        /// Links per node of the graph.
        m: usize,
    },
    /// `IVF<nlist>(<description>)`: any index as the quantizer.
    Index {
        /// Number of lists.
        nlist: usize,
        /// The quantizer.
        quantizer: Box<IndexSpec>,
    },
    /// `IMI<M>x<nbits>`: the inverted multi-index, `2^(M·nbits)` lists.
    MultiIndex {
        /// Sub-quantizers.
        m: usize,
        /// Bits per sub-quantizer.
        nbits: usize,
    },
}

/// The codec of an inverted file's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvfCodecSpec {
    /// `Flat`.
    Flat,
    /// `PQ<M>[x<nbits>][np]`.
    Pq {
        /// Sub-quantizers.
        m: usize,
        /// Bits per sub-quantizer.
        nbits: usize,
        /// Whether the codes are trained for polysemous search (`np` turns it off).
        polysemous_training: bool,
    },
    /// `RaBitQ[<nb_bits>]`.
    RaBitQ {
        /// Bits per coordinate (1 to 9).
        nb_bits: usize,
    },
    /// `RaBitQfs[<nb_bits>][_<bbs>]`.
    RaBitQFastScan {
        /// Bits per coordinate (1 to 9).
        nb_bits: usize,
        /// Faiss's block size (32 by default).
        bbs: usize,
    },
    /// `RQ<M>x4fs[r][_<bbs>][_N<norm>]` (and `LSQ…`, `PRQ…`, `PLSQ…`): 4-bit additive
    /// codes in fast-scan blocks.
    AqFastScan {
        /// The quantizer (4-bit codebooks).
        aq: AqSpec,
        /// Faiss's block size (32 by default).
        bbs: usize,
        /// Whether residuals are coded (`r`).
        by_residual: bool,
    },
    /// `RQ…`, `LSQ…`, `PRQ…`, `PLSQ…`.
    AdditiveQuantizer(AqSpec),
    /// `PQ<M>+<M2>`: IVF-PQ re-ranked by a second PQ of the residual error.
    PqRefine {
        /// Sub-quantizers of the first PQ.
        m: usize,
        /// Sub-quantizers of the second.
        m2: usize,
    },
    /// `PQ<M>x4fs[r][_<bbs>]`.
    PqFastScan {
        /// Sub-quantizers.
        m: usize,
        /// Whether residuals are encoded (`r`).
        by_residual: bool,
        /// Codes per block.
        bbs: usize,
    },
    /// `SQ<type>`.
    ScalarQuantizer(QuantizerType),
}

/// The re-ranking index.
#[derive(Debug, Clone, PartialEq)]
pub enum RefineSpec {
    /// `RFlat`: exact distances.
    Flat,
    /// `Refine(<description>)`: any index.
    Index(Box<IndexSpec>),
}

impl From<BodySpec> for IndexSpec {
    fn from(body: BodySpec) -> Self {
        IndexSpec {
            id_map: None,
            transforms: Vec::new(),
            body,
            refine: None,
        }
    }
}

impl IndexSpec {
    /// The canonical top-level tokens, in order (what `Display` joins with commas).
    pub(crate) fn tokens(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = self.id_map {
            out.push(k.to_string());
        }
        out.extend(self.transforms.iter().map(ToString::to_string));
        match &self.body {
            BodySpec::Storage(s) => out.push(s.to_string()),
            BodySpec::Ivf { coarse, codec } => {
                out.push(coarse.to_string());
                out.push(codec.to_string());
            }
        }
        if let Some(r) = &self.refine {
            out.push(r.to_string());
        }
        out
    }
}

impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tokens().join(","))
    }
}

impl fmt::Display for IdMapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdMapKind::IdMap => "IDMap",
            IdMapKind::IdMap2 => "IDMap2",
        })
    }
}

impl fmt::Display for TransformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransformSpec::Pca {
                d_out,
                whiten,
                rotate,
            } => write!(
                f,
                "PCA{}{}{d_out}",
                if whiten { "W" } else { "" },
                if rotate { "R" } else { "" }
            ),
            TransformSpec::Opq { m, d_out: None } => write!(f, "OPQ{m}"),
            TransformSpec::Opq { m, d_out: Some(d) } => write!(f, "OPQ{m}_{d}"),
            TransformSpec::RandomRotation { d_out } => write!(f, "RR{d_out}"),
            TransformSpec::L2Norm => f.write_str("L2norm"),
            TransformSpec::Pad { d_out } => write!(f, "Pad{d_out}"),
        }
    }
}

/// `PQ<m>[x<nbits>][np]`: the bits shown when not 8, `np` when polysemous training is off.
fn pq_token(f: &mut fmt::Formatter<'_>, m: usize, nbits: usize, polysemous: bool) -> fmt::Result {
    write!(f, "PQ{m}")?;
    if nbits != 8 {
        write!(f, "x{nbits}")?;
    }
    if !polysemous {
        f.write_str("np")?;
    }
    Ok(())
}

/// `RaBitQfs[<nb_bits>][_<bbs>]`.
fn rabitq_fast_scan_token(f: &mut fmt::Formatter<'_>, nb_bits: usize, bbs: usize) -> fmt::Result {
    f.write_str(&crate::rabitq_fastscan::fast_scan_description(nb_bits, bbs))
}

/// `RaBitQ[<nb_bits>]`: the bits shown when not 1.
fn rabitq_token(f: &mut fmt::Formatter<'_>, nb_bits: usize) -> fmt::Result {
    f.write_str("RaBitQ")?;
    if nb_bits != 1 {
        write!(f, "{nb_bits}")?;
    }
    Ok(())
}

/// `_<bbs>` when the block size is not Faiss's default 32.
fn bbs_suffix(f: &mut fmt::Formatter<'_>, bbs: usize) -> fmt::Result {
    if bbs != 32 {
        write!(f, "_{bbs}")?;
    }
    Ok(())
}

impl fmt::Display for StorageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StorageSpec::Flat => f.write_str("Flat"),
            StorageSpec::Pq {
                m,
                nbits,
                polysemous_training,
            } => pq_token(f, m, nbits, polysemous_training),
            StorageSpec::PqFastScan { m, bbs } => {
                write!(f, "PQ{m}x4fs")?;
                bbs_suffix(f, bbs)
            }
            StorageSpec::ScalarQuantizer(qt) => write!(f, "SQ{}", qt.factory_name()),
            StorageSpec::Lsh {
                nbits,
                rotate,
                train_thresholds,
            } => {
                f.write_str("LSH")?;
                if let Some(n) = nbits {
                    write!(f, "{n}")?;
                }
                if rotate {
                    f.write_str("r")?;
                }
                if train_thresholds {
                    f.write_str("t")?;
                }
                Ok(())
            }
            StorageSpec::RaBitQ { nb_bits } => rabitq_token(f, nb_bits),
            StorageSpec::RaBitQFastScan { nb_bits, bbs } => rabitq_fast_scan_token(f, nb_bits, bbs),
            StorageSpec::AdditiveQuantizer(aq) => write!(f, "{aq}"),
            StorageSpec::AqFastScan { aq, bbs } => fast_scan_aq_token(f, aq, bbs, ""),
            StorageSpec::AdditiveCoarseQuantizer(aq) => match aq.body().strip_prefix("LSQ") {
                Some(rest) => write!(f, "LSCQ{rest}"),
                None => write!(f, "RCQ{}", aq.body().trim_start_matches("RQ")),
            },
            StorageSpec::Hnsw { m, storage } => {
                write!(f, "HNSW{m}")?;
                match storage {
                    HnswStorageSpec::Flat => Ok(()),
                    HnswStorageSpec::ScalarQuantizer(qt) => write!(f, ",SQ{}", qt.factory_name()),
                    // Graph search compares by ADC only: no polysemous training, no `np`.
                    HnswStorageSpec::Pq { m, nbits } => {
                        f.write_str(",")?;
                        pq_token(f, m, nbits, true)
                    }
                }
            }
        }
    }
}

impl fmt::Display for CoarseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoarseSpec::Flat { nlist } => write!(f, "IVF{nlist}"),
            CoarseSpec::Hnsw { nlist, m } => write!(f, "IVF{nlist}_HNSW{m}"),
            CoarseSpec::Index { nlist, quantizer } => write!(f, "IVF{nlist}({quantizer})"),
            CoarseSpec::MultiIndex { m, nbits } => write!(f, "IMI{m}x{nbits}"),
        }
    }
}

impl fmt::Display for IvfCodecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IvfCodecSpec::Flat => f.write_str("Flat"),
            IvfCodecSpec::Pq {
                m,
                nbits,
                polysemous_training,
            } => pq_token(f, m, nbits, polysemous_training),
            IvfCodecSpec::PqRefine { m, m2 } => write!(f, "PQ{m}+{m2}"),
            IvfCodecSpec::PqFastScan {
                m,
                by_residual,
                bbs,
            } => {
                write!(f, "PQ{m}x4fs{}", if by_residual { "r" } else { "" })?;
                bbs_suffix(f, bbs)
            }
            IvfCodecSpec::ScalarQuantizer(qt) => write!(f, "SQ{}", qt.factory_name()),
            IvfCodecSpec::RaBitQ { nb_bits } => rabitq_token(f, nb_bits),
            IvfCodecSpec::RaBitQFastScan { nb_bits, bbs } => {
                rabitq_fast_scan_token(f, nb_bits, bbs)
            }
            IvfCodecSpec::AdditiveQuantizer(aq) => write!(f, "{aq}"),
            IvfCodecSpec::AqFastScan {
                aq,
                bbs,
                by_residual,
            } => fast_scan_aq_token(f, aq, bbs, if by_residual { "r" } else { "" }),
        }
    }
}

impl fmt::Display for RefineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefineSpec::Flat => f.write_str("RFlat"),
            RefineSpec::Index(spec) => write!(f, "Refine({spec})"),
        }
    }
}
