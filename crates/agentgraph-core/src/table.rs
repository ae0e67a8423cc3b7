//! A table of values under ids it hands out itself: the engine's open calls and requests, looked
//! up several times per record.
//!
//! Why not a hash map: an id here names its slot, so a lookup is one bounds check and one
//! comparison, and touches only the value's memory (a hash map also reads its control bytes,
//! elsewhere in memory; with tens of thousands of calls open, both miss the cache). A freed slot
//! is reused first, while its memory is still cached. The table grows to the most values held at
//! once and keeps that size, as a hash map does.

use std::ops::Index;

/// An id: creation sequence number in the high 32 bits, slot in the low 32. Ids compare in
/// creation order (the engine breaks ties between calls by age), and an id whose value was
/// removed never finds the value that took its slot next. The sequence wraps after 2^32 ids:
/// a removed id could then find a new value again if a stale copy of it (a timer, a list of
/// candidates, the order of requests) outlived four billion insertions into the same slot. The
/// engine's stale copies expire with event time (timers within the response timeout, lists
/// when pruned, the order of requests as they are emitted), long before that. Order
/// comparisons across the wrap only reorder ties between values of the same time.
pub(crate) type Id = u64;

const SLOT_BITS: u32 = 32;

#[derive(Debug)]
struct Slot<T> {
    /// Id of the value held here, or of the last one held when `value` is `None`.
    id: Id,
    value: Option<T>,
}

#[derive(Debug)]
pub(crate) struct IdTable<T> {
    slots: Vec<Slot<T>>,
    /// Empty slots, the most recently emptied last.
    free: Vec<u32>,
    sequence: u32,
    len: usize,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        IdTable { slots: Vec::new(), free: Vec::new(), sequence: 0, len: 0 }
    }
}

impl<T> IdTable<T> {
    /// The id the next [`IdTable::insert`] gives.
    fn next_id(&self) -> Id {
        let slot = self.free.last().map_or(self.slots.len() as u64, |&s| u64::from(s));
        (u64::from(self.sequence) << SLOT_BITS) | slot
    }

    pub(crate) fn insert(&mut self, value: T) -> Id {
        // Unreachable in memory (2^32 slots of calls), but a slot must fit its bits.
        debug_assert!(self.slots.len() < u32::MAX as usize, "the id table is full");
        let id = self.next_id();
        self.sequence = self.sequence.wrapping_add(1);
        self.len += 1;
        match self.free.pop() {
            Some(slot) => self.slots[slot as usize] = Slot { id, value: Some(value) },
            None => self.slots.push(Slot { id, value: Some(value) }),
        }
        id
    }

    fn slot_of(id: Id) -> usize {
        (id & ((1 << SLOT_BITS) - 1)) as usize
    }

    pub(crate) fn get(&self, id: &Id) -> Option<&T> {
        match self.slots.get(Self::slot_of(*id)) {
            Some(s) if s.id == *id => s.value.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: &Id) -> Option<&mut T> {
        match self.slots.get_mut(Self::slot_of(*id)) {
            Some(s) if s.id == *id => s.value.as_mut(),
            _ => None,
        }
    }

    pub(crate) fn contains_key(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn remove(&mut self, id: &Id) -> Option<T> {
        self.vacate(id)?.take()
    }

    /// Drops the value under `id` where it lies, which [`IdTable::remove`] would move out first
    /// (the engine's calls are some 500 bytes). Returns whether there was one.
    pub(crate) fn discard(&mut self, id: &Id) -> bool {
        self.vacate(id).map(|value| *value = None).is_some()
    }

    /// The place of the value under `id`, its slot already counted free: the caller takes the
    /// value out or drops it there.
    fn vacate(&mut self, id: &Id) -> Option<&mut Option<T>> {
        let slot = Self::slot_of(*id);
        let s = self.slots.get_mut(slot).filter(|s| s.id == *id && s.value.is_some())?;
        self.free.push(slot as u32);
        self.len -= 1;
        Some(&mut s.value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Starts loading the value under `id` into the cache, for a loop about to visit many values
    /// that have not been touched for a while (a request's calls when it is emitted): their
    /// loads then overlap instead of waiting for memory one after another.
    pub(crate) fn prefetch(&self, id: &Id) {
        #[cfg(target_arch = "x86_64")]
        if let Some(slot) = self.slots.get(Self::slot_of(*id)) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            const LINE: usize = 64;
            let start = slot as *const Slot<T> as usize;
            let end = start + std::mem::size_of::<Slot<T>>();
            // Every cache line the slot touches, from the one holding its first byte.
            for line in (start & !(LINE - 1)..end).step_by(LINE) {
                // SAFETY: a prefetch only hints the cache: it never faults and reads nothing
                // into the program, whatever the address. SSE is part of the x86_64 baseline.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// The values held and their ids, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Id, &T)> {
        self.slots.iter().filter_map(|s| Some((s.id, s.value.as_ref()?)))
    }
}

impl<T> Index<&Id> for IdTable<T> {
    type Output = T;

    fn index(&self, id: &Id) -> &T {
        self.get(id).expect("id of a value the table holds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_id_never_finds_the_value_that_took_its_slot() {
        let mut t = IdTable::default();
        let a = t.insert("a");
        assert_eq!(t.remove(&a), Some("a"));
        assert_eq!(t.remove(&a), None);
        let b = t.insert("b");
        assert_eq!(IdTable::<&str>::slot_of(a), IdTable::<&str>::slot_of(b), "the slot is reused");
        assert_eq!(t.get(&a), None);
        assert!(!t.contains_key(&a));
        assert_eq!(t.get(&b), Some(&"b"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_discarded_value_is_gone_and_its_slot_reused() {
        let mut t = IdTable::default();
        let a = t.insert(String::from("a"));
        let b = t.insert(String::from("b"));
        assert!(t.discard(&a));
        assert!(!t.discard(&a), "only once");
        assert_eq!(t.get(&a), None);
        assert_eq!(t.len(), 1);
        let c = t.insert(String::from("c"));
        assert_eq!(IdTable::<String>::slot_of(a), IdTable::<String>::slot_of(c), "the slot is reused");
        assert!(!t.discard(&a), "a discarded id never finds the value that took its slot");
        assert_eq!((t.get(&b).map(String::as_str), t.get(&c).map(String::as_str)), (Some("b"), Some("c")));
    }

    #[test]
    fn ids_are_unique_and_ordered_by_creation_whatever_slot_they_get() {
        let mut t = IdTable::default();
        let mut ids = Vec::new();
        for i in 0..100u32 {
            let expected = t.next_id();
            let id = t.insert(i);
            assert_eq!(id, expected);
            ids.push(id);
            if i % 3 == 0 {
                // Free an older slot so the next value lands below the newest.
                let old = ids[(i / 2) as usize];
                t.remove(&old);
            }
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "creation order");
        let held: Vec<u32> = ids.iter().filter_map(|id| t.get(id).copied()).collect();
        assert_eq!(held.len(), t.len());
        let mut listed: Vec<(Id, u32)> = t.iter().map(|(id, v)| (id, *v)).collect();
        listed.sort_unstable();
        let expected: Vec<(Id, u32)> = ids.iter().filter_map(|id| Some((*id, *t.get(id)?))).collect();
        assert_eq!(listed, expected);
        assert!(t.slots.len() < 100, "freed slots were reused: {}", t.slots.len());
    }

    #[test]
    fn values_change_in_place_and_unknown_ids_are_absent() {
        let mut t = IdTable::default();
        let a = t.insert(1);
        *t.get_mut(&a).unwrap() += 41;
        assert_eq!(t[&a], 42);
        assert_eq!(t.get(&(a + (1 << SLOT_BITS))), None, "same slot, another id");
        assert_eq!(t.get(&12345), None, "slot never used");
        assert_eq!(t.get_mut(&12345), None);
        assert_eq!(t.remove(&12345), None);
    }
}
