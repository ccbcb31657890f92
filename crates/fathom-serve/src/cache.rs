//! The result cache: answers of recent searches, least recently used first out, bounded in
//! bytes. Keys hold the collection's generation, which every write changes, so an answer
//! of an older state is never served again (it ages out).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;

struct Slot {
    value: Bytes,
    tick: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Vec<u8>, Slot>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
    tick: u64,
}

/// An LRU map from search keys to answer bodies, at most `capacity` bytes (keys and
/// values counted); capacity 0 keeps nothing.
///
/// ```
/// use fathom_serve::cache::ResultCache;
/// let cache = ResultCache::new(1 << 20);
/// cache.put(b"k".to_vec(), "answer".into());
/// assert_eq!(cache.get(b"k").as_deref(), Some(&b"answer"[..]));
/// assert_eq!((cache.hits(), cache.misses()), (1, 0));
/// ```
pub struct ResultCache {
    inner: Mutex<Inner>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Bytes an entry counts for besides its key and value (map and list bookkeeping).
const OVERHEAD: usize = 96;

impl ResultCache {
    /// An empty cache of at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        ResultCache {
            inner: Mutex::new(Inner::default()),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether the cache keeps anything.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The answer stored under `key`, counted as a hit or a miss.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let Some(slot) = inner.map.get_mut(key) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if let Some(k) = inner.order.remove(&slot.tick) {
            inner.order.insert(tick, k);
        }
        slot.tick = tick;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(slot.value.clone())
    }

    /// Stores `value` under `key`, evicting the least recently used entries beyond the
    /// capacity (an entry larger than the whole cache is not kept).
    pub fn put(&self, key: Vec<u8>, value: Bytes) {
        let size = key.len() + value.len() + OVERHEAD;
        if size > self.capacity {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.map.remove(&key) {
            inner.order.remove(&old.tick);
            inner.bytes -= key.len() + old.value.len() + OVERHEAD;
        }
        while inner.bytes + size > self.capacity {
            let Some((_, k)) = inner.order.pop_first() else {
                break;
            };
            if let Some(old) = inner.map.remove(&k) {
                inner.bytes -= k.len() + old.value.len() + OVERHEAD;
            }
        }
        inner.bytes += size;
        inner.order.insert(tick, key.clone());
        inner.map.insert(key, Slot { value, tick });
    }

    /// Lookups that found an answer.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that found none.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Bytes held now, and entries.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (g.bytes, g.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let entry = 10 + OVERHEAD + 1;
        let cache = ResultCache::new(3 * entry);
        for k in [b"a", b"b", b"c"] {
            cache.put(k.to_vec(), Bytes::from(vec![0u8; 10]));
        }
        assert!(cache.get(b"a").is_some()); // a is now the most recent
        cache.put(b"d".to_vec(), Bytes::from(vec![0u8; 10]));
        assert!(cache.get(b"b").is_none(), "b was the least recently used");
        for k in [b"a", b"c", b"d"] {
            assert!(cache.get(k).is_some());
        }
        let (bytes, n) = cache.usage();
        assert_eq!(n, 3);
        assert!(bytes <= 3 * entry);
        // Replacing a key does not grow the cache.
        cache.put(b"d".to_vec(), Bytes::from(vec![1u8; 10]));
        assert_eq!(cache.usage().1, 3);
        assert_eq!(cache.get(b"d").unwrap()[0], 1);
    }

    #[test]
    fn zero_capacity_keeps_nothing_and_large_entries_are_skipped() {
        let off = ResultCache::new(0);
        off.put(b"k".to_vec(), Bytes::from_static(b"v"));
        assert!(off.get(b"k").is_none());
        assert_eq!(off.misses(), 0, "a disabled cache counts nothing");
        let small = ResultCache::new(200);
        small.put(b"k".to_vec(), Bytes::from(vec![0u8; 500]));
        assert!(small.get(b"k").is_none());
        assert_eq!(small.usage(), (0, 0));
    }
}
