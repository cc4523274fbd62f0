//! The assignment strategy: which member should own which partition. Pure
//! functions, no I/O and no clock, so they are unit- and property-tested.
//!
//! Per topic, the partitions are spread evenly over the members subscribed to
//! it: each gets `partitions / members` or one more. The assignment is sticky:
//! a member keeps the partitions it had (up to its share), and only the
//! excess of over-full members and partitions without a (live) owner move.
//! Which members get the "one more" prefers those already holding that many
//! (fewer moves), then those with the least load across topics so far (so
//! many one-partition topics do not all land on the same member).
//!
//! Invariants (checked by the property tests): every partition of a topic
//! with at least one subscriber is assigned to exactly one subscriber of that
//! topic; per topic, member counts differ by at most one; a member never
//! loses a partition it had unless it held more than its share; assigning
//! the result again changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use skiff_protocol::messages::TopicPartition;

/// Computes the target assignment.
///
/// - `subscriptions`: member id → topics it consumes.
/// - `partition_counts`: topic → number of partitions (topics missing here
///   are skipped).
/// - `previous`: the previous target, for stickiness; entries for members no
///   longer present or partitions that no longer exist are ignored.
pub fn assign(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
    previous: &BTreeMap<TopicPartition, String>,
) -> BTreeMap<TopicPartition, String> {
    let mut target = BTreeMap::new();
    let mut load: BTreeMap<&str, usize> = subscriptions.keys().map(|m| (m.as_str(), 0)).collect();
    for (topic, &count) in partition_counts {
        let subscribers: Vec<&str> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m.as_str())
            .collect();
        if subscribers.is_empty() || count == 0 {
            continue;
        }
        // Current holdings per subscriber, in partition order.
        let mut held: BTreeMap<&str, Vec<u32>> =
            subscribers.iter().map(|m| (*m, Vec::new())).collect();
        for p in 0..count {
            let tp = TopicPartition::new(topic.as_str(), p);
            if let Some(owner) = previous.get(&tp) {
                if let Some(list) = held.get_mut(owner.as_str()) {
                    list.push(p);
                }
            }
        }
        let n = subscribers.len();
        let base = count as usize / n;
        let extra = count as usize % n;
        let mut order = subscribers.clone();
        order.sort_by(|a, b| {
            let held_a = held[a].len().min(base + 1);
            let held_b = held[b].len().min(base + 1);
            held_b
                .cmp(&held_a)
                .then(load[a].cmp(&load[b]))
                .then(a.cmp(b))
        });
        let quota: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, m)| (*m, base + usize::from(i < extra)))
            .collect();

        let mut owner_of: BTreeMap<u32, &str> = BTreeMap::new();
        for (m, partitions) in &held {
            for p in partitions.iter().take(quota[m]) {
                owner_of.insert(*p, m);
            }
        }
        let free: Vec<u32> = (0..count).filter(|p| !owner_of.contains_key(p)).collect();
        let mut free = free.into_iter();
        for m in &order {
            let have = owner_of.values().filter(|o| *o == m).count();
            for _ in have..quota[m] {
                // Quotas sum to `count` and `owner_of` holds at most each
                // member's quota, so `free` has one partition per missing slot.
                #[allow(clippy::expect_used)]
                let p = free
                    .next()
                    .expect("quotas sum to the partition count, so a free partition remains");
                owner_of.insert(p, m);
            }
        }
        for (p, m) in owner_of {
            // Every owner was taken from `order`, the subscribers `load` holds.
            #[allow(clippy::expect_used)]
            let owner_load = load.get_mut(m).expect("owners are subscribers");
            *owner_load += 1;
            target.insert(TopicPartition::new(topic.as_str(), p), m.to_owned());
        }
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|(m, topics)| {
                (
                    (*m).to_owned(),
                    topics.iter().map(|t| (*t).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
        topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    fn per_member(target: &BTreeMap<TopicPartition, String>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for m in target.values() {
            *out.entry(m.clone()).or_default() += 1;
        }
        out
    }

    #[test]
    fn two_then_three_members_on_six_partitions() {
        let topics = counts(&[("t", 6)]);
        let two = assign(
            &subs(&[("a", &["t"]), ("b", &["t"])]),
            &topics,
            &BTreeMap::new(),
        );
        assert_eq!(two.len(), 6);
        assert_eq!(
            per_member(&two).values().copied().collect::<Vec<_>>(),
            [3, 3]
        );

        let three = assign(
            &subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
            &topics,
            &two,
        );
        assert_eq!(
            per_member(&three).values().copied().collect::<Vec<_>>(),
            [2, 2, 2]
        );
        // Only two partitions moved, both to the new member.
        let moved: Vec<_> = three.iter().filter(|(tp, m)| two[*tp] != **m).collect();
        assert_eq!(moved.len(), 2);
        assert!(moved.iter().all(|(_, m)| m.as_str() == "c"));
    }

    #[test]
    fn a_departed_members_partitions_go_to_the_others() {
        let topics = counts(&[("t", 6)]);
        let all = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let before = assign(&all, &topics, &BTreeMap::new());
        let after = assign(&subs(&[("a", &["t"]), ("c", &["t"])]), &topics, &before);
        assert_eq!(
            per_member(&after).values().copied().collect::<Vec<_>>(),
            [3, 3]
        );
        for (tp, m) in &before {
            if m != "b" {
                assert_eq!(&after[tp], m, "{tp} moved needlessly");
            }
        }
    }

    #[test]
    fn members_only_get_topics_they_subscribe_to() {
        let target = assign(
            &subs(&[("a", &["x"]), ("b", &["x", "y"])]),
            &counts(&[("x", 2), ("y", 3), ("z", 4)]),
            &BTreeMap::new(),
        );
        assert!(target.keys().all(|tp| tp.topic != "z"));
        for (tp, m) in &target {
            if tp.topic == "y" {
                assert_eq!(m, "b");
            }
        }
        assert_eq!(target.len(), 5);
    }

    #[test]
    fn single_partition_topics_spread_across_members() {
        let target = assign(
            &subs(&[
                ("a", &["t1", "t2", "t3", "t4"]),
                ("b", &["t1", "t2", "t3", "t4"]),
            ]),
            &counts(&[("t1", 1), ("t2", 1), ("t3", 1), ("t4", 1)]),
            &BTreeMap::new(),
        );
        assert_eq!(
            per_member(&target).values().copied().collect::<Vec<_>>(),
            [2, 2]
        );
    }

    /// Subscriptions, partition counts and a previous assignment.
    type Scenario = (
        BTreeMap<String, BTreeSet<String>>,
        BTreeMap<String, u32>,
        BTreeMap<TopicPartition, String>,
    );

    fn scenario() -> impl Strategy<Value = Scenario> {
        let topics = prop::collection::btree_map("[a-c]", 0u32..12, 0..4);
        let members =
            prop::collection::btree_map("m[0-9]", prop::collection::btree_set("[a-c]", 0..4), 0..7);
        let previous = prop::collection::vec(("[a-c]", 0u32..12, "m[0-9]"), 0..30);
        (members, topics, previous).prop_map(|(members, topics, previous)| {
            let previous = previous
                .into_iter()
                .map(|(t, p, m)| (TopicPartition::new(t, p), m))
                .collect();
            (members, topics, previous)
        })
    }

    proptest! {
        #[test]
        fn assignment_is_complete_even_sticky_and_stable(
            (members, topics, previous) in scenario()
        ) {
            let target = assign(&members, &topics, &previous);
            for (topic, &count) in &topics {
                let subscribers: Vec<_> = members
                    .iter()
                    .filter(|(_, t)| t.contains(topic))
                    .map(|(m, _)| m.clone())
                    .collect();
                let mut per: BTreeMap<String, usize> =
                    subscribers.iter().map(|m| (m.clone(), 0)).collect();
                for p in 0..count {
                    let tp = TopicPartition::new(topic.as_str(), p);
                    match target.get(&tp) {
                        // Exactly one owner (a map key), and a subscriber.
                        Some(owner) => *per.get_mut(owner).expect("owner subscribes") += 1,
                        None => prop_assert!(subscribers.is_empty(), "{tp} unassigned"),
                    }
                }
                if !subscribers.is_empty() {
                    let min = per.values().min().copied().unwrap_or(0);
                    let max = per.values().max().copied().unwrap_or(0);
                    prop_assert!(max - min <= 1, "uneven on {topic}: {per:?}");
                    // Sticky: a member keeps min(held, its share) partitions.
                    for m in &subscribers {
                        let held = (0..count)
                            .filter(|p| {
                                previous.get(&TopicPartition::new(topic.as_str(), *p)) == Some(m)
                            })
                            .count();
                        let kept = (0..count)
                            .filter(|p| {
                                let tp = TopicPartition::new(topic.as_str(), *p);
                                previous.get(&tp) == Some(m) && target.get(&tp) == Some(m)
                            })
                            .count();
                        prop_assert_eq!(kept, held.min(per[m]), "{} lost partitions", m);
                    }
                }
            }
            prop_assert!(target.keys().all(|tp| topics.get(&tp.topic).is_some_and(|c| tp.partition < *c)));
            prop_assert_eq!(assign(&members, &topics, &target), target);
        }
    }
}
