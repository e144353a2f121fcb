//! Secondary indexes, so that a filtered list walks only the postings of its
//! most selective filter field instead of every item.
//!
//! Each index maps a field value to the ordered set of primary keys holding
//! it. A list picks the smallest candidate set, walks it from the page
//! cursor, and checks the full filter on each candidate.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use chrono::Datelike;

use crate::domain::{
    Announcement, AnnouncementFilter, AnnouncementKind, CountryCode, TradeFilter, TradeKeyed,
};

/// Periods spanning more years than this are kept in one "long" posting
/// list that every period query scans, to bound the cost of an insert.
const MAX_INDEXED_YEARS: i32 = 20;
/// A period query spanning more years than this does not use the index.
const MAX_QUERY_YEARS: i32 = 50;

/// The keys holding one value, ascending, in one vector: 16 bytes a key
/// (about 18 with the spare capacity), against about 32 in a half-full
/// B-tree leaf; a record has 8 to 10 postings. New keys are always the
/// greatest (ids and sequences only grow), so an insert is a push; a
/// removal moves the keys after it.
#[derive(Debug)]
pub(super) struct Postings<K>(Vec<K>);

impl<K> Default for Postings<K> {
    fn default() -> Self {
        Postings(Vec::new())
    }
}

impl<K: Ord + Copy> Postings<K> {
    fn insert(&mut self, key: K) {
        if self.0.len() == self.0.capacity() {
            // Grow by an eighth: a large vector is grown in place (mremap),
            // and less capacity stands idle than with doubling.
            self.0.reserve_exact(self.0.len() / 8 + 4);
        }
        match self.0.last() {
            Some(last) if *last >= key => {
                if let Err(at) = self.0.binary_search(&key) {
                    self.0.insert(at, key);
                }
            }
            _ => self.0.push(key),
        }
    }

    fn remove(&mut self, key: &K) {
        if let Ok(at) = self.0.binary_search(key) {
            self.0.remove(at);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys after `cursor` (all of them without one), ascending.
    fn after(&self, cursor: Option<K>) -> std::iter::Copied<std::slice::Iter<'_, K>> {
        let from = cursor.map_or(0, |c| self.0.partition_point(|k| *k <= c));
        self.0[from..].iter().copied()
    }
}

fn add<V: Hash + Eq, K: Ord + Copy>(map: &mut HashMap<V, Postings<K>>, value: V, key: K) {
    map.entry(value).or_default().insert(key);
}

fn drop_key<V: Hash + Eq, K: Ord + Copy>(map: &mut HashMap<V, Postings<K>>, value: &V, key: &K) {
    if let Some(set) = map.get_mut(value) {
        set.remove(key);
        if set.is_empty() {
            map.remove(value);
        }
    }
}

/// The keys a list should examine, in key order, starting after a cursor.
pub(super) enum Candidates<'a, K: Ord + Copy> {
    /// No index applies: walk every item.
    All,
    /// A filter field has no postings at all: nothing matches.
    None,
    /// One posting list.
    One(&'a Postings<K>),
    /// The union of several posting lists (period years).
    Union(Vec<&'a Postings<K>>),
}

impl<'a, K: Ord + Copy + 'a> Candidates<'a, K> {
    fn size(&self) -> usize {
        match self {
            Candidates::All => usize::MAX,
            Candidates::None => 0,
            Candidates::One(set) => set.len(),
            Candidates::Union(sets) => sets.iter().map(|s| s.len()).sum(),
        }
    }

    fn narrower(self, other: Candidates<'a, K>) -> Candidates<'a, K> {
        if other.size() < self.size() {
            other
        } else {
            self
        }
    }

    /// The candidate keys after `cursor`, ascending; `all` is the primary
    /// key order, used when no index applies.
    pub(super) fn after(
        &self,
        cursor: Option<K>,
        all: impl Iterator<Item = K> + 'a,
    ) -> Box<dyn Iterator<Item = K> + '_> {
        match self {
            Candidates::All => Box::new(all),
            Candidates::None => Box::new(std::iter::empty()),
            Candidates::One(set) => Box::new(set.after(cursor)),
            Candidates::Union(sets) => Box::new(Merge {
                heads: sets
                    .iter()
                    .map(|set| set.after(cursor).peekable())
                    .collect(),
            }),
        }
    }
}

/// A lazy ascending union of ascending key streams, without duplicates.
struct Merge<I: Iterator> {
    heads: Vec<std::iter::Peekable<I>>,
}

impl<K: Ord + Copy, I: Iterator<Item = K>> Iterator for Merge<I> {
    type Item = K;

    fn next(&mut self) -> Option<K> {
        let least = self
            .heads
            .iter_mut()
            .filter_map(|h| h.peek().copied())
            .min()?;
        for head in &mut self.heads {
            if head.peek() == Some(&least) {
                head.next();
            }
        }
        Some(least)
    }
}

fn posting<'a, V: Hash + Eq, K: Ord + Copy>(
    map: &'a HashMap<V, Postings<K>>,
    value: &V,
) -> Candidates<'a, K> {
    map.get(value).map_or(Candidates::None, Candidates::One)
}

/// Indexes over anything with trade keys (records by id, reports by
/// sequence).
#[derive(Debug)]
pub(super) struct TradeIndex<K: Ord + Copy> {
    by_pair: HashMap<(CountryCode, CountryCode), Postings<K>>,
    by_exporter: HashMap<CountryCode, Postings<K>>,
    by_importer: HashMap<CountryCode, Postings<K>>,
    /// Every prefix of every code: "8708" is posted under 8, 87, 870, 8708.
    by_hs_prefix: HashMap<String, Postings<K>>,
    /// Every Gregorian year a period touches.
    by_year: BTreeMap<i32, Postings<K>>,
    long_periods: Postings<K>,
}

impl<K: Ord + Copy> Default for TradeIndex<K> {
    fn default() -> Self {
        TradeIndex {
            by_pair: HashMap::new(),
            by_exporter: HashMap::new(),
            by_importer: HashMap::new(),
            by_hs_prefix: HashMap::new(),
            by_year: BTreeMap::new(),
            long_periods: Postings::default(),
        }
    }
}

impl<K: Ord + Copy> TradeIndex<K> {
    fn years(item: &impl TradeKeyed) -> Option<std::ops::RangeInclusive<i32>> {
        let range = item.period().range;
        let (first, last) = (range.start.year(), range.end.year());
        (last - first < MAX_INDEXED_YEARS).then_some(first..=last)
    }

    pub(super) fn insert(&mut self, key: K, item: &impl TradeKeyed) {
        add(&mut self.by_pair, (item.exporter(), item.importer()), key);
        add(&mut self.by_exporter, item.exporter(), key);
        add(&mut self.by_importer, item.importer(), key);
        let code = item.hs_code().as_str();
        for len in 1..=code.len() {
            add(&mut self.by_hs_prefix, code[..len].to_owned(), key);
        }
        match Self::years(item) {
            Some(years) => {
                for year in years {
                    self.by_year.entry(year).or_default().insert(key);
                }
            }
            None => {
                self.long_periods.insert(key);
            }
        }
    }

    pub(super) fn remove(&mut self, key: K, item: &impl TradeKeyed) {
        drop_key(&mut self.by_pair, &(item.exporter(), item.importer()), &key);
        drop_key(&mut self.by_exporter, &item.exporter(), &key);
        drop_key(&mut self.by_importer, &item.importer(), &key);
        let code = item.hs_code().as_str();
        for len in 1..=code.len() {
            drop_key(&mut self.by_hs_prefix, &code[..len].to_owned(), &key);
        }
        match Self::years(item) {
            Some(years) => {
                for year in years {
                    if let Some(set) = self.by_year.get_mut(&year) {
                        set.remove(&key);
                        if set.is_empty() {
                            self.by_year.remove(&year);
                        }
                    }
                }
            }
            None => {
                self.long_periods.remove(&key);
            }
        }
    }

    /// The narrowest candidate set for `filter`.
    pub(super) fn candidates(&self, filter: &TradeFilter) -> Candidates<'_, K> {
        let mut best = Candidates::All;
        match (filter.exporter, filter.importer) {
            (Some(e), Some(i)) => best = best.narrower(posting(&self.by_pair, &(e, i))),
            (Some(e), None) => best = best.narrower(posting(&self.by_exporter, &e)),
            (None, Some(i)) => best = best.narrower(posting(&self.by_importer, &i)),
            (None, None) => {}
        }
        if let Some(prefix) = &filter.hs_prefix {
            best = best.narrower(posting(&self.by_hs_prefix, &prefix.as_str().to_owned()));
        }
        if let Some(range) = filter.period_overlaps {
            let (first, last) = (range.start.year(), range.end.year());
            if last - first < MAX_QUERY_YEARS {
                let mut sets: Vec<&Postings<K>> =
                    self.by_year.range(first..=last).map(|(_, s)| s).collect();
                if !self.long_periods.is_empty() {
                    sets.push(&self.long_periods);
                }
                let union = if sets.is_empty() {
                    Candidates::None
                } else {
                    Candidates::Union(sets)
                };
                best = best.narrower(union);
            }
        }
        best
    }
}

/// Indexes over announcements by id.
#[derive(Debug)]
pub(super) struct AnnouncementIndex<K: Ord + Copy> {
    by_kind: HashMap<AnnouncementKind, Postings<K>>,
    by_country: HashMap<CountryCode, Postings<K>>,
    by_organization: HashMap<String, Postings<K>>,
    by_person: HashMap<String, Postings<K>>,
}

impl<K: Ord + Copy> Default for AnnouncementIndex<K> {
    fn default() -> Self {
        AnnouncementIndex {
            by_kind: HashMap::new(),
            by_country: HashMap::new(),
            by_organization: HashMap::new(),
            by_person: HashMap::new(),
        }
    }
}

impl<K: Ord + Copy> AnnouncementIndex<K> {
    pub(super) fn insert(&mut self, key: K, a: &Announcement) {
        add(&mut self.by_kind, a.kind, key);
        for c in &a.countries {
            add(&mut self.by_country, *c, key);
        }
        for o in a.organization_keys() {
            add(&mut self.by_organization, o, key);
        }
        for p in a.person_keys() {
            add(&mut self.by_person, p, key);
        }
    }

    pub(super) fn remove(&mut self, key: K, a: &Announcement) {
        drop_key(&mut self.by_kind, &a.kind, &key);
        for c in &a.countries {
            drop_key(&mut self.by_country, c, &key);
        }
        for o in a.organization_keys() {
            drop_key(&mut self.by_organization, &o, &key);
        }
        for p in a.person_keys() {
            drop_key(&mut self.by_person, &p, &key);
        }
    }

    pub(super) fn candidates(&self, filter: &AnnouncementFilter) -> Candidates<'_, K> {
        let mut best = Candidates::All;
        if let Some(kind) = filter.kind {
            best = best.narrower(posting(&self.by_kind, &kind));
        }
        if let Some(country) = filter.country {
            best = best.narrower(posting(&self.by_country, &country));
        }
        if let Some(org) = &filter.organization {
            best = best.narrower(posting(&self.by_organization, org));
        }
        if let Some(person) = &filter.person {
            best = best.narrower(posting(&self.by_person, person));
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::Postings;

    #[test]
    fn postings_stay_sorted_and_unique_whatever_the_order() {
        let mut postings = Postings::default();
        for key in [5u64, 9, 12, 7, 9, 1, 12, 20] {
            postings.insert(key);
        }
        assert_eq!(
            postings.after(None).collect::<Vec<_>>(),
            [1, 5, 7, 9, 12, 20]
        );
        assert_eq!(postings.after(Some(7)).collect::<Vec<_>>(), [9, 12, 20]);
        assert_eq!(postings.after(Some(8)).collect::<Vec<_>>(), [9, 12, 20]);
        assert_eq!(postings.after(Some(20)).count(), 0);
        postings.remove(&9);
        postings.remove(&100);
        assert_eq!(postings.after(Some(5)).collect::<Vec<_>>(), [7, 12, 20]);
        assert_eq!(postings.len(), 5);
        for key in [1, 5, 7, 12, 20] {
            postings.remove(&key);
        }
        assert!(postings.is_empty());
    }
}
