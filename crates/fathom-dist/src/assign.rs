//! Which searchers hold which shard: rendezvous (highest-random-weight) hashing with
//! bounded loads. Every searcher and router computes the same assignment from the same
//! member list, with no coordination. Each shard ranks the members by a hash of (shard,
//! member) and takes the best-ranked ones; then over-full members (more than
//! ⌈shards × R ÷ members⌉) hand shards to the next-ranked members with room — plain
//! rendezvous hashing alone can give one member all of a few shards (4 shards over 4
//! members: one time in 64). A member leaving moves its own shards and, rarely, one a
//! repair shifts: at 10M vectors a moved shard is a 1.3 GB download, so moves are what
//! the assignment minimises after balance.

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

/// The members holding each shard of `0..shards`: `replication` of them (all, when
/// fewer), distinct.
///
/// Each shard starts with its best-ranked members (plain rendezvous hashing: a member
/// leaving moves only its own shards). Then no member keeps more than
/// ⌈shards × R ÷ members⌉: an over-full member gives up the shards it ranks lowest for, each
/// to that shard's best-ranked member with room — so the repair, too, moves few shards, and
/// every caller computes the same result.
///
/// ```
/// use fathom_dist::assign::assignment;
/// let members = ["r0", "r1", "r2", "r3"];
/// let a = assignment("cluster", 4, &members, 1);
/// // Four shards over four members: one each.
/// let mut held: Vec<&str> = a.iter().map(|o| o[0]).collect();
/// held.sort();
/// assert_eq!(held, members);
/// ```
pub fn assignment<'a, S: AsRef<str>>(
    name: &str,
    shards: u32,
    members: &'a [S],
    replication: usize,
) -> Vec<Vec<&'a str>> {
    let r = replication.min(members.len());
    if r == 0 {
        return vec![Vec::new(); shards as usize];
    }
    let cap = (shards as usize * r).div_ceil(members.len());
    let ranked: Vec<Vec<&str>> = (0..shards)
        .map(|s| owners(name, s, members, members.len()))
        .collect();
    let mut chosen: Vec<Vec<&str>> = ranked.iter().map(|o| o[..r].to_vec()).collect();
    let mut load: std::collections::BTreeMap<&str, usize> =
        members.iter().map(|m| (m.as_ref(), 0)).collect();
    for o in &chosen {
        for m in o {
            *load.entry(m).or_default() += 1;
        }
    }
    // Repair over-full members, the most loaded (then by name) first; each move takes a
    // shard from a member over the cap to one under it, so this ends.
    while let Some((&over, _)) = load
        .iter()
        .filter(|(_, l)| **l > cap)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
    {
        // The shards it holds, the one it ranks lowest for first, each offered to the
        // best-ranked member with room that does not hold it yet.
        let mut held: Vec<(usize, u32)> = (0..shards)
            .filter(|&s| chosen[s as usize].contains(&over))
            .map(|s| {
                let rank = ranked[s as usize].iter().position(|m| *m == over);
                (rank.unwrap_or(0), s)
            })
            .collect();
        held.sort_by(|a, b| b.cmp(a));
        let moved = held.iter().find_map(|&(_, s)| {
            let to = ranked[s as usize]
                .iter()
                .copied()
                .find(|m| load[m] < cap && !chosen[s as usize].contains(m))?;
            Some((s, to))
        });
        let Some((s, to)) = moved else { break };
        let slot = chosen[s as usize]
            .iter()
            .position(|m| *m == over)
            .expect("held");
        chosen[s as usize][slot] = to;
        *load.get_mut(over).expect("member") -= 1;
        *load.get_mut(to).expect("member") += 1;
    }
    chosen
}

/// The shards of `0..shards` that `member` holds under [`assignment`].
pub fn shards_of<S: AsRef<str>>(
    name: &str,
    shards: u32,
    members: &[S],
    replication: usize,
    member: &str,
) -> Vec<u32> {
    assignment(name, shards, members, replication)
        .iter()
        .enumerate()
        .filter(|(_, o)| o.contains(&member))
        .map(|(s, _)| s as u32)
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
            assignment("x", 16, &m, 2),
            assignment("x", 16, &shuffled, 2)
        );
    }

    #[test]
    fn assignments_are_balanced_and_move_little() {
        for (shards, n, r) in [
            (4u32, 4usize, 1usize),
            (4, 4, 2),
            (4, 3, 2),
            (16, 5, 3),
            (3, 3, 2),
            (64, 10, 2),
        ] {
            let m = members(n);
            let a = assignment("c", shards, &m, r);
            let cap = (shards as usize * r).div_ceil(n);
            for (s, o) in a.iter().enumerate() {
                assert_eq!(o.len(), r.min(n), "shard {s}");
                let mut d = o.clone();
                d.sort();
                d.dedup();
                assert_eq!(d.len(), o.len(), "shard {s}: {o:?}");
            }
            let mut load = std::collections::HashMap::new();
            for o in &a {
                for w in o {
                    *load.entry(*w).or_insert(0) += 1;
                }
            }
            assert!(
                load.values().all(|&l| l <= cap),
                "{shards}/{n}/{r}: {load:?}"
            );
            for member in &m {
                assert_eq!(
                    shards_of("c", shards, &m, r, member).len(),
                    load.get(member.as_str()).copied().unwrap_or(0)
                );
            }
        }
        // One member of ten leaving: its shards move, and only a few others.
        let m = members(10);
        let before = assignment("c", 64, &m, 2);
        let rest: Vec<String> = m[1..].to_vec();
        let after = assignment("c", 64, &rest, 2);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| {
                let mut b: Vec<&str> = b.iter().copied().filter(|x| *x != m[0]).collect();
                let mut a = (*a).clone();
                b.sort();
                a.sort();
                !b.iter().all(|x| a.contains(x))
            })
            .count();
        assert!(moved <= 6, "{moved} shards lost a surviving owner");
        // Four shards, four members, R = 2, one member killed: its two shards move, and at
        // most one more copy where the repair must rebalance.
        for name in ["cluster", "vecs", "docs", "x"] {
            let m = members(4);
            let before = assignment(name, 4, &m, 2);
            for gone in &m {
                let rest: Vec<String> = m.iter().filter(|x| *x != gone).cloned().collect();
                let after = assignment(name, 4, &rest, 2);
                let new_copies: usize = before
                    .iter()
                    .zip(&after)
                    .map(|(b, a)| a.iter().filter(|x| !b.contains(x)).count())
                    .sum();
                let lost = before.iter().filter(|b| b.contains(&gone.as_str())).count();
                assert!(
                    new_copies <= lost + 1,
                    "{name} without {gone}: {before:?} → {after:?}"
                );
            }
        }
    }
}
