//! Topics: named sets of members, so one publish reaches every subscriber
//! (uWebSockets' `subscribe` / `publish`, within one server).
//!
//! The table is generic over the member so it stays below the connection
//! layer; the server keeps one keyed by [`ConnId`](crate::ConnId). A
//! member with no subscription costs nothing, and a topic exists only while
//! it has a subscriber.

mod broker;

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use slab::Slab;

pub(crate) use broker::{Broker, Connected, Deliver};

/// The subscriptions of one server.
#[derive(Debug)]
pub(crate) struct Topics<K> {
    /// Topic name to its key in `topics`.
    by_name: HashMap<Box<str>, usize>,
    topics: Slab<Topic<K>>,
    /// Each subscribed member's topics, so that leaving is cheap.
    of_member: HashMap<K, Vec<usize>>,
}

#[derive(Debug)]
struct Topic<K> {
    name: Box<str>,
    /// Ordered: a fan-out walks the members in the order of `K` (for
    /// connections, their place in the connection table), so it touches
    /// memory in order rather than at random (measured: 19,000 subscribers
    /// in a hash set made a publish 1.33x the raw-TCP broadcast floor).
    members: BTreeSet<K>,
    /// Routes (by index) watching the topic: few, so a vector.
    watchers: Vec<u32>,
}

impl<K> Default for Topics<K> {
    fn default() -> Self {
        Topics {
            by_name: HashMap::new(),
            topics: Slab::new(),
            of_member: HashMap::new(),
        }
    }
}

impl<K: Copy + Ord + Hash> Topics<K> {
    /// Subscribes `member` to `name`; false if it already was.
    /// `on_first` runs when `name` gets its first subscriber.
    pub(crate) fn subscribe(&mut self, member: K, name: &str, on_first: impl FnOnce()) -> bool {
        let key = match self.by_name.get(name) {
            Some(&key) => key,
            None => {
                on_first();
                self.create(name)
            }
        };
        if !self.topics[key].members.insert(member) {
            return false;
        }
        self.of_member.entry(member).or_default().push(key);
        true
    }

    fn create(&mut self, name: &str) -> usize {
        let key = self.topics.insert(Topic {
            name: name.into(),
            members: BTreeSet::new(),
            watchers: Vec::new(),
        });
        self.by_name.insert(name.into(), key);
        key
    }

    /// Route `route` watches `name`; false if it already did. `on_first`
    /// runs when `name` gets its first subscriber or watcher.
    pub(crate) fn watch(&mut self, route: u32, name: &str, on_first: impl FnOnce()) -> bool {
        let key = match self.by_name.get(name) {
            Some(&key) => key,
            None => {
                on_first();
                self.create(name)
            }
        };
        let watchers = &mut self.topics[key].watchers;
        if watchers.contains(&route) {
            return false;
        }
        watchers.push(route);
        true
    }

    /// Route `route` stops watching `name`; false if it did not watch it.
    /// `on_last` runs when `name` has no subscriber or watcher left.
    pub(crate) fn unwatch(&mut self, route: u32, name: &str, on_last: impl FnMut(&str)) -> bool {
        let Some(&key) = self.by_name.get(name) else {
            return false;
        };
        let watchers = &mut self.topics[key].watchers;
        let before = watchers.len();
        watchers.retain(|&r| r != route);
        if watchers.len() == before {
            return false;
        }
        self.forget_if_empty(key, on_last);
        true
    }

    /// The routes watching `name`, appended to `out`.
    pub(crate) fn watchers_into(&self, name: &str, out: &mut Vec<u32>) {
        if let Some(&key) = self.by_name.get(name) {
            out.extend_from_slice(&self.topics[key].watchers);
        }
    }

    /// Unsubscribes `member` from `name`; false if it was not subscribed.
    /// `on_last` runs when `name` loses its last subscriber.
    pub(crate) fn unsubscribe(&mut self, member: K, name: &str, on_last: impl FnMut(&str)) -> bool {
        let Some(&key) = self.by_name.get(name) else {
            return false;
        };
        if !self.topics[key].members.remove(&member) {
            return false;
        }
        if let Some(keys) = self.of_member.get_mut(&member) {
            keys.retain(|&k| k != key);
            if keys.is_empty() {
                self.of_member.remove(&member);
            }
        }
        self.forget_if_empty(key, on_last);
        true
    }

    /// Ends every subscription of `member` (it closed); `on_last` runs for
    /// each topic that loses its last subscriber.
    pub(crate) fn leave_all(&mut self, member: K, mut on_last: impl FnMut(&str)) {
        if self.of_member.is_empty() {
            return; // the common case, kept to one branch per close
        }
        for key in self.of_member.remove(&member).unwrap_or_default() {
            self.topics[key].members.remove(&member);
            self.forget_if_empty(key, &mut on_last);
        }
    }

    fn forget_if_empty(&mut self, key: usize, mut on_last: impl FnMut(&str)) {
        let topic = &self.topics[key];
        if topic.members.is_empty() && topic.watchers.is_empty() {
            let topic = self.topics.remove(key);
            self.by_name.remove(&topic.name);
            on_last(&topic.name);
        }
    }

    /// The subscribers of `name`, appended to `out`.
    pub(crate) fn members_into(&self, name: &str, out: &mut Vec<K>) {
        if let Some(&key) = self.by_name.get(name) {
            out.extend(self.topics[key].members.iter().copied());
        }
    }

    /// How many subscribe to `name`.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.by_name
            .get(name)
            .map_or(0, |&key| self.topics[key].members.len())
    }

    /// The topics `member` subscribes to.
    pub(crate) fn of(&self, member: K) -> impl Iterator<Item = &str> + '_ {
        self.of_member
            .get(&member)
            .into_iter()
            .flatten()
            .map(|&key| &*self.topics[key].name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(topics: &Topics<u32>, name: &str) -> Vec<u32> {
        let mut out = Vec::new();
        topics.members_into(name, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn subscriptions_come_and_go_and_empty_topics_are_forgotten() {
        let mut topics = Topics::default();
        let mut firsts = Vec::new();
        assert!(topics.subscribe(1, "a", || firsts.push("a")));
        assert!(
            !topics.subscribe(1, "a", || firsts.push("a?")),
            "already subscribed"
        );
        assert!(topics.subscribe(2, "a", || firsts.push("a?")));
        assert!(topics.subscribe(2, "b", || firsts.push("b")));
        assert_eq!(firsts, ["a", "b"], "only a topic's first subscriber");
        assert_eq!(members(&topics, "a"), [1, 2]);
        assert_eq!(topics.count("b"), 1);
        let mut of_two: Vec<&str> = topics.of(2).collect();
        of_two.sort_unstable();
        assert_eq!(of_two, ["a", "b"]);

        let mut lasts = Vec::new();
        assert!(topics.unsubscribe(1, "a", |t| lasts.push(t.to_owned())));
        assert!(!topics.unsubscribe(1, "a", |t| lasts.push(t.to_owned())));
        assert!(lasts.is_empty(), "a still has a subscriber");
        assert_eq!(members(&topics, "a"), [2]);
        assert_eq!(topics.of(1).count(), 0);

        topics.leave_all(2, |t| lasts.push(t.to_owned()));
        lasts.sort_unstable();
        assert_eq!(lasts, ["a", "b"]);
        assert_eq!(topics.count("a"), 0);
        assert_eq!(topics.count("b"), 0);
        assert!(topics.by_name.is_empty() && topics.topics.is_empty());
        assert!(topics.of_member.is_empty(), "nothing kept for members gone");
    }

    #[test]
    fn a_watched_topic_lives_until_its_last_watcher_and_subscriber_go() {
        let mut topics = Topics::default();
        let (mut firsts, mut lasts) = (0, Vec::new());
        assert!(topics.watch(0, "room", || firsts += 1));
        assert!(!topics.watch(0, "room", || firsts += 1), "already watching");
        assert!(topics.subscribe(7, "room", || firsts += 1));
        assert_eq!(firsts, 1, "one first for the watcher and the subscriber");
        assert_eq!(topics.count("room"), 1, "a watcher is no subscriber");
        let mut routes = Vec::new();
        topics.watchers_into("room", &mut routes);
        assert_eq!(routes, [0]);
        topics.leave_all(7, |t| lasts.push(t.to_owned()));
        assert!(lasts.is_empty(), "still watched");
        assert!(!topics.unwatch(1, "room", |t| lasts.push(t.to_owned())));
        assert!(topics.unwatch(0, "room", |t| lasts.push(t.to_owned())));
        assert_eq!(lasts, ["room"]);
        assert!(topics.by_name.is_empty() && topics.topics.is_empty());
    }
}
