//! Where a user or a room lives in a cluster: rendezvous (highest random weight) hashing of
//! its bare JID over the live members, then the shard hash inside that node. Every node
//! computes the same answer from the same view, with nothing copied between nodes; when a
//! member leaves only its keys move, and a new member takes about 1/n of the keys, only
//! from the others.
//!
//! The hash is FNV-1a 64 with a splitmix64 finish, written out here so every node (every
//! build, every architecture) agrees; it is not a defence against chosen keys, which only
//! skew the load, never correctness.

use super::membership::Member;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The member that is `key`'s home (`None` without members).
pub fn home<'a>(key: &str, members: &'a [Member]) -> Option<&'a Member> {
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    home_of(key, &names).map(|i| &members[i])
}

/// The index of `key`'s home among the members named `names` (placement depends on the
/// names alone): for tools and tests that know a cluster by its nodes' names.
pub fn home_of<S: AsRef<str>>(key: &str, names: &[S]) -> Option<usize> {
    let k = fnv1a(key.as_bytes());
    (0..names.len()).max_by_key(|&i| {
        let n = names[i].as_ref();
        (mix(k ^ mix(fnv1a(n.as_bytes()))), n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<Member> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Member {
                name: n.to_string(),
                num: i as i32 + 1,
                incarnation: 1,
                shards: 1,
            })
            .collect()
    }

    fn keys() -> Vec<String> {
        (0..30_000)
            .map(|i| format!("user{i}@chat.example"))
            .collect()
    }

    #[test]
    fn spread_evenly_and_agreed_whatever_the_order() {
        let m = members(&["n1", "n2", "n3"]);
        let mut rev = m.clone();
        rev.reverse();
        let mut count = [0usize; 3];
        for k in keys() {
            let h = home(&k, &m).unwrap();
            assert_eq!(
                h,
                home(&k, &rev).unwrap(),
                "the order of the view does not matter"
            );
            count[(h.num - 1) as usize] += 1;
        }
        for c in count {
            assert!((9_000..11_000).contains(&c), "{count:?}");
        }
        assert!(home("x", &[]).is_none());
    }

    #[test]
    fn only_the_keys_of_a_leaving_member_move_and_a_new_one_takes_its_share() {
        let three = members(&["n1", "n2", "n3"]);
        let two = members(&["n1", "n3"]);
        let four = members(&["n1", "n2", "n3", "n4"]);
        let (mut moved_to_new, mut moved) = (0, 0);
        for k in keys() {
            let before = home(&k, &three).unwrap();
            let after = home(&k, &two).unwrap();
            if before.name != "n2" {
                assert_eq!(before.name, after.name, "{k} moved though its home stayed");
            }
            let grown = home(&k, &four).unwrap();
            if grown.name != before.name {
                moved += 1;
                assert_eq!(grown.name, "n4", "{k} moved between old members");
                moved_to_new += 1;
            }
        }
        assert_eq!(moved, moved_to_new);
        assert!(
            (6_000..9_000).contains(&moved),
            "about a quarter moves: {moved}"
        );
    }
}
