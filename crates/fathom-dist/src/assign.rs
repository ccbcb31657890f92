//! Which searchers hold which shard: rendezvous (highest-random-weight) hashing. Every
//! searcher and router computes the same owners from the same member list, with no
//! coordination, and a member joining or leaving moves only the shards it gains or held
//! (each shard's ranking of the other members is unchanged).

use sha2::{Digest, Sha256};

/// The weight of `member` for `shard` of collection `name`: stable across processes,
/// machines and Rust versions (the first 8 bytes of a SHA-256).
fn weight(name: &str, shard: u32, member: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(shard.to_le_bytes());
    h.update([0]);
    h.update(member.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The `replication` members (or all, when fewer) that hold `shard`, best first.
///
/// ```
/// use fathom_dist::assign::owners;
/// let members = ["a", "b", "c", "d"];
/// let two = owners("docs", 0, &members, 2);
/// assert_eq!(two.len(), 2);
/// // Without one of its owners, a shard keeps its other owner and gains one more.
/// let rest: Vec<&str> = members.iter().copied().filter(|m| *m != two[0]).collect();
/// let after = owners("docs", 0, &rest, 2);
/// assert_eq!(after[0], two[1]);
/// ```
pub fn owners<'a, S: AsRef<str>>(
    name: &str,
    shard: u32,
    members: &'a [S],
    replication: usize,
) -> Vec<&'a str> {
    let mut ranked: Vec<(u64, &str)> = members
        .iter()
        .map(|m| (weight(name, shard, m.as_ref()), m.as_ref()))
        .collect();
    // Ties (astronomically unlikely) broken by name, so every caller agrees.
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ranked
        .into_iter()
        .take(replication)
        .map(|(_, m)| m)
        .collect()
}

/// The shards of `0..shards` that `member` holds.
pub fn shards_of<S: AsRef<str>>(
    name: &str,
    shards: u32,
    members: &[S],
    replication: usize,
    member: &str,
) -> Vec<u32> {
    (0..shards)
        .filter(|&s| owners(name, s, members, replication).contains(&member))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("searcher-{i}")).collect()
    }

    #[test]
    fn every_shard_gets_r_distinct_owners_and_load_is_spread() {
        let m = members(8);
        let mut load = vec![0; 8];
        for s in 0..400 {
            let o = owners("x", s, &m, 3);
            assert_eq!(o.len(), 3);
            assert!(o[0] != o[1] && o[1] != o[2] && o[0] != o[2]);
            for w in o {
                load[m.iter().position(|x| x == w).unwrap()] += 1;
            }
        }
        // 1200 placements over 8 members: 150 each on average.
        assert!(load.iter().all(|&l| (100..200).contains(&l)), "{load:?}");
        // Fewer members than replicas: all of them.
        assert_eq!(owners("x", 0, &m[..2], 3).len(), 2);
        assert!(owners::<String>("x", 0, &[], 2).is_empty());
    }

    #[test]
    fn a_member_leaving_moves_only_its_shards() {
        let m = members(5);
        let gone = &m[2];
        let rest: Vec<String> = m.iter().filter(|x| *x != gone).cloned().collect();
        for s in 0..200 {
            let before = owners("x", s, &m, 2);
            let after = owners("x", s, &rest, 2);
            if !before.contains(&gone.as_str()) {
                assert_eq!(before, after, "shard {s} moved though its owners stayed");
            } else {
                // The surviving owner stays.
                let kept: Vec<&str> = before.into_iter().filter(|o| o != gone).collect();
                assert!(after.contains(&kept[0]));
            }
        }
        // Order of the member list does not matter.
        let mut shuffled = m.clone();
        shuffled.reverse();
        assert_eq!(owners("x", 7, &m, 2), owners("x", 7, &shuffled, 2));
        assert_eq!(
            shards_of("x", 16, &m, 2, &m[0]).len(),
            (0..16)
                .filter(|&s| owners("x", s, &m, 2).contains(&m[0].as_str()))
                .count()
        );
    }
}
