use proptest::prelude::*;

use super::*;
use fathom_quant::QuantizerType;

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
        ("RaBitQ", "RaBitQ"),
        ("RaBitQ4", "RaBitQ4"),
        ("IVF16,RaBitQ", "IVF16,RaBitQ"),
        ("IVF16,RaBitQ3", "IVF16,RaBitQ3"),
        ("RaBitQfs", "RaBitQfs"),
        ("RaBitQfs1", "RaBitQfs"),
        ("RaBitQfs4_64", "RaBitQfs4_64"),
        ("IVF16,RaBitQfs", "IVF16,RaBitQfs"),
        ("IVF16,RaBitQfs2_96", "IVF16,RaBitQfs2_96"),
        ("RQ4x6", "RQ4x6"),
        ("RQ1x8_2x5_Nqint8", "RQ1x8_2x5_Nqint8"),
        ("IVF16,RQ3x5_Nfloat", "IVF16,RQ3x5_Nfloat"),
        ("RQ4x6_Ncqint8", "RQ4x6_Ncqint8"),
        ("LSQ4x5_Nrq2x4", "LSQ4x5_Nrq2x4"),
        ("PRQ2x2x5", "PRQ2x2x5"),
        ("IVF16,PLSQ2x2x4_Nfloat", "IVF16,PLSQ2x2x4_Nfloat"),
        ("RCQ2x4", "RCQ2x4"),
        ("IVF256(RCQ2x4),Flat", "IVF256(RCQ2x4),Flat"),
        ("RQ4x4fs_Nrq2x4", "RQ4x4fs_Nrq2x4"),
        ("PLSQ2x2x4fs_64_Nlsq2x4", "PLSQ2x2x4fs_64_Nlsq2x4"),
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
        ("IVF16(Flat),Flat", "IVF16,Flat"),
        ("PQ4x4fs_64", "PQ4x4fs_64"),
        ("IVF16,PQ4x4fsr_96", "IVF16,PQ4x4fsr_96"),
        ("L2Norm,Flat", "L2norm,Flat"),
        ("Flat,Refine(SQ8)", "Flat,Refine(SQ8)"),
        ("PCA4,Flat,Refine(PQ2)", "PCA4,Flat,Refine(PQ2)"),
        ("PCA4,Flat,IDMap", "IDMap,PCA4,Flat"),
        ("Pad12,Flat", "Pad12,Flat"),
    ] {
        let index = index_factory(8, s, MetricType::L2).unwrap();
        assert_eq!(index.description(), want);
        assert_eq!(reverse_index_factory(&*index).unwrap(), want);
        assert_eq!(s.parse::<IndexSpec>().unwrap().to_string(), want, "{s}");
    }
    for bad in [
        "",
        "IDMap",
        "Flat,Flat",
        "IDMap,IDMap2,Flat",
        "Flat,IDMap,RFlat",
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
        "IMI40x40,Flat",
        "Pad4,Flat",
    ] {
        assert!(index_factory(8, bad, MetricType::L2).is_err(), "{bad}");
    }
    assert!(index_factory(0, "Flat", MetricType::L2).is_err());
}

#[test]
fn specs_made_in_code_build_and_name_their_parts_in_errors() {
    let spec = IndexSpec {
        id_map: Some(IdMapKind::IdMap2),
        transforms: vec![TransformSpec::Pca {
            d_out: 16,
            whiten: false,
            rotate: false,
        }],
        body: BodySpec::Ivf {
            coarse: CoarseSpec::Flat { nlist: 64 },
            codec: IvfCodecSpec::Pq {
                m: 5,
                nbits: 8,
                polysemous_training: true,
            },
        },
        refine: Some(RefineSpec::Flat),
    };
    assert_eq!(spec.to_string(), "IDMap2,PCA16,IVF64,PQ5,RFlat");
    let e = spec.build(32, MetricType::L2).unwrap_err().to_string();
    assert!(e.contains("token 4 (\"PQ5\")"), "{e}");
    let e = index_factory(32, "IDMap2,PCA16,IVF64,PQ5,RFlat", MetricType::L2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("token 4 (\"PQ5\")"), "{e}");
}

fn qtype() -> impl Strategy<Value = QuantizerType> {
    prop::sample::select(vec![
        QuantizerType::QT8bit,
        QuantizerType::QT4bit,
        QuantizerType::QT6bit,
        QuantizerType::Fp16,
        QuantizerType::Bf16,
        QuantizerType::QT8bitDirect,
        QuantizerType::QT8bitDirectSigned,
    ])
}

fn transform() -> impl Strategy<Value = TransformSpec> {
    // Each keeps the dimension at 32 or halves it once (PCA16), so every PQ below divides it.
    prop_oneof![
        Just(TransformSpec::L2Norm),
        Just(TransformSpec::RandomRotation { d_out: 32 }),
        Just(TransformSpec::Opq { m: 8, d_out: None }),
        (any::<bool>(), any::<bool>()).prop_map(|(whiten, rotate)| TransformSpec::Pca {
            d_out: 16,
            whiten,
            rotate,
        }),
    ]
}

fn storage() -> impl Strategy<Value = StorageSpec> {
    let m = prop::sample::select(vec![4usize, 8]);
    prop_oneof![
        Just(StorageSpec::Flat),
        (
            m.clone(),
            prop::sample::select(vec![4usize, 6, 8]),
            any::<bool>()
        )
            .prop_map(|(m, nbits, polysemous_training)| StorageSpec::Pq {
                m,
                nbits,
                polysemous_training,
            }),
        (m.clone(), prop::sample::select(vec![32usize, 64]))
            .prop_map(|(m, bbs)| { StorageSpec::PqFastScan { m, bbs } }),
        qtype().prop_map(StorageSpec::ScalarQuantizer),
        (1usize..=9).prop_map(|nb_bits| StorageSpec::RaBitQ { nb_bits }),
        (1usize..=9, 1usize..4).prop_map(|(nb_bits, b)| StorageSpec::RaBitQFastScan {
            nb_bits,
            bbs: 32 * b
        }),
        (
            // Fewer bits than either dimension (32, or 16 after PCA16), and neither of them.
            prop::option::of(Just(12usize)),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(nbits, rotate, train_thresholds)| StorageSpec::Lsh {
                nbits,
                rotate,
                train_thresholds,
            }),
        (
            prop::sample::select(vec![8usize, 16, 32]),
            prop_oneof![
                Just(HnswStorageSpec::Flat),
                qtype().prop_map(HnswStorageSpec::ScalarQuantizer),
                m.prop_map(|m| HnswStorageSpec::Pq { m, nbits: 8 }),
            ]
        )
            .prop_map(|(m, storage)| StorageSpec::Hnsw { m, storage }),
    ]
}

fn ivf_codec() -> impl Strategy<Value = IvfCodecSpec> {
    let m = prop::sample::select(vec![4usize, 8]);
    prop_oneof![
        Just(IvfCodecSpec::Flat),
        (1usize..=9).prop_map(|nb_bits| IvfCodecSpec::RaBitQ { nb_bits }),
        (1usize..=9, 1usize..4).prop_map(|(nb_bits, b)| IvfCodecSpec::RaBitQFastScan {
            nb_bits,
            bbs: 32 * b
        }),
        // IVF-PQ descriptions do not record `np` (nor do Faiss's files), so only the
        // default round-trips.
        m.clone().prop_map(|m| IvfCodecSpec::Pq {
            m,
            nbits: 8,
            polysemous_training: true,
        }),
        m.clone().prop_map(|m| IvfCodecSpec::PqRefine { m, m2: 8 }),
        (m, any::<bool>(), prop::sample::select(vec![32usize, 64])).prop_map(
            |(m, by_residual, bbs)| IvfCodecSpec::PqFastScan {
                m,
                by_residual,
                bbs,
            }
        ),
        qtype().prop_map(IvfCodecSpec::ScalarQuantizer),
    ]
}

fn coarse() -> impl Strategy<Value = CoarseSpec> {
    let nlist = prop::sample::select(vec![4usize, 16, 1024]);
    prop_oneof![
        nlist.clone().prop_map(|nlist| CoarseSpec::Flat { nlist }),
        nlist
            .clone()
            .prop_map(|nlist| CoarseSpec::Hnsw { nlist, m: 8 }),
        (
            nlist,
            storage().prop_filter("a short form", |s| !matches!(
                s,
                StorageSpec::Flat
                    | StorageSpec::Hnsw {
                        storage: HnswStorageSpec::Flat,
                        ..
                    }
            ))
        )
            .prop_map(|(nlist, s)| CoarseSpec::Index {
                nlist,
                quantizer: Box::new(IndexSpec::from(BodySpec::Storage(s))),
            }),
        Just(CoarseSpec::MultiIndex { m: 2, nbits: 4 }),
    ]
}

fn spec() -> impl Strategy<Value = IndexSpec> {
    let body = prop_oneof![
        storage().prop_map(BodySpec::Storage),
        (coarse(), ivf_codec()).prop_map(|(coarse, codec)| BodySpec::Ivf { coarse, codec }),
    ];
    (
        prop::option::of(prop::sample::select(vec![
            IdMapKind::IdMap,
            IdMapKind::IdMap2,
        ])),
        prop::collection::vec(transform(), 0..3),
        body,
        prop::option::of(prop_oneof![
            Just(RefineSpec::Flat),
            qtype().prop_map(
                |q| RefineSpec::Index(Box::new(IndexSpec::from(BodySpec::Storage(
                    StorageSpec::ScalarQuantizer(q)
                ))))
            ),
        ]),
    )
        .prop_map(|(id_map, mut transforms, body, refine)| {
            // At most one PCA16, so the dimension is 32 or 16 and every PQ divides it.
            let mut halved = false;
            transforms.retain(|t| {
                let pca = matches!(t, TransformSpec::Pca { .. });
                let keep = !(pca && halved);
                halved |= pca;
                keep
            });
            IndexSpec {
                id_map,
                transforms,
                body,
                refine,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// spec → Display → parse is the identity, and spec → build → description →
    /// reverse_index_factory gives the spec's string back.
    #[test]
    fn specs_round_trip(spec in spec()) {
        let text = spec.to_string();
        prop_assert_eq!(&text.parse::<IndexSpec>().unwrap(), &spec);
        let index = spec.build(32, MetricType::L2).unwrap();
        prop_assert_eq!(index.description(), text.clone());
        prop_assert_eq!(reverse_index_factory(&*index).unwrap(), text);
    }
}
