//! `ArrayInvertedLists` and `BlockInvertedLists` against a model (a vector of entries per
//! list), and their errors.

use std::sync::Arc;

use fathom_core::Idx;
use fathom_invlists::{ArrayInvertedLists, BlockInvertedLists, CodePacker, InvertedLists};
use proptest::prelude::*;

/// 3-byte codes interleaved byte-major in blocks of 4: byte `j` of entry `i` at `4j + i`.
#[derive(Debug)]
struct Interleaved;
impl CodePacker for Interleaved {
    fn code_size(&self) -> usize {
        3
    }
    fn nvec(&self) -> usize {
        4
    }
    fn block_size(&self) -> usize {
        12
    }
    fn pack_1(&self, code: &[u8], i: usize, block: &mut [u8]) {
        for (j, &b) in code.iter().enumerate() {
            block[4 * j + i] = b;
        }
    }
    fn unpack_1(&self, block: &[u8], i: usize, code: &mut [u8]) {
        for (j, c) in code.iter_mut().enumerate() {
            *c = block[4 * j + i];
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(usize, Vec<Idx>),
    Update(usize, usize, Idx),
    Resize(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4, proptest::collection::vec(0i64..1000, 0..5))
            .prop_map(|(l, ids)| Op::Add(l, ids)),
        (0usize..4, 0usize..8, 0i64..1000).prop_map(|(l, o, id)| Op::Update(l, o, id)),
        (0usize..4, 0usize..8).prop_map(|(l, s)| Op::Resize(l, s)),
    ]
}

/// The code of an id: its low bytes, so codes and ids stay paired in the model.
fn code_of(id: Idx) -> [u8; 3] {
    [id as u8, (id >> 8) as u8, 0xab]
}

proptest! {
    #[test]
    fn behaves_like_the_model(ops in proptest::collection::vec(op(), 0..40)) {
        let mut array = ArrayInvertedLists::new(4, 3);
        check_model(&mut array, &ops)?;
        let mut blocks = BlockInvertedLists::new(4, Arc::new(Interleaved));
        check_model(&mut blocks, &ops)?;
        for l in 0..4 {
            prop_assert_eq!(blocks.codes(l).len(), blocks.list_size(l).div_ceil(4) * 12);
        }
    }
}

fn check_model(lists: &mut dyn InvertedLists, ops: &[Op]) -> Result<(), TestCaseError> {
    {
        let mut model: Vec<Vec<Idx>> = vec![Vec::new(); 4];
        for op in ops.iter().cloned() {
            match op {
                Op::Add(l, ids) => {
                    let codes: Vec<u8> = ids.iter().flat_map(|&i| code_of(i)).collect();
                    let off = lists.add_entries(l, &ids, &codes).unwrap();
                    prop_assert_eq!(off, model[l].len());
                    model[l].extend(&ids);
                }
                Op::Update(l, o, id) => {
                    let r = lists.update_entries(l, o, &[id], &code_of(id));
                    if o < model[l].len() {
                        r.unwrap();
                        model[l][o] = id;
                    } else {
                        prop_assert!(r.is_err());
                    }
                }
                Op::Resize(l, s) => {
                    lists.resize(l, s).unwrap();
                    model[l].resize(s, -1);
                }
            }
        }
        for (l, want_ids) in model.iter().enumerate() {
            prop_assert_eq!(lists.ids(l), &want_ids[..]);
            for (o, &id) in want_ids.iter().enumerate() {
                let want = if id == -1 { [0, 0, 0] } else { code_of(id) };
                prop_assert_eq!(&*lists.code(l, o), &want[..]);
            }
        }
        prop_assert_eq!(
            lists.compute_ntotal(),
            model.iter().map(Vec::len).sum::<usize>()
        );
    }
    Ok(())
}

#[test]
fn errors_and_stats() {
    let mut lists = ArrayInvertedLists::new(3, 2);
    assert!(
        lists
            .add_entries(3, &[1], &[0, 0])
            .unwrap_err()
            .to_string()
            .contains("3 lists")
    );
    assert!(
        lists.add_entries(0, &[1, 2], &[0, 0]).is_err(),
        "codes for one id only"
    );
    assert!(lists.resize(9, 1).is_err());
    assert_eq!(lists.stats().imbalance_factor, 1.0);
    lists.add_entries(0, &[1, 2, 3], &[0; 6]).unwrap();
    lists.add_entries(1, &[4], &[0; 2]).unwrap();
    let st = lists.stats();
    assert_eq!((st.ntotal, st.empty_lists, st.max_size), (4, 1, 3));
    // 3 · (9 + 1) / 16
    assert!((st.imbalance_factor - 30.0 / 16.0).abs() < 1e-12);
    lists.reset().unwrap();
    assert_eq!(lists.compute_ntotal(), 0);
}
