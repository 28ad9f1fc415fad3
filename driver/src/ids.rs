//! [`IdMap`]: a hash map keyed by connection id with a hash that costs one multiplication.
//! Connection ids are minted by the transport (never chosen by a peer), so the collision
//! resistance of std's default SipHash buys nothing on the hot path of a broadcast, where
//! every delivery looks its connection up.

use krmx_core::ConnectionId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from connection id to `V`.
///
/// ```
/// use krmx_core::ConnectionId;
/// use krmx_driver::IdMap;
/// let mut map: IdMap<&str> = IdMap::default();
/// map.insert(ConnectionId::new(7), "seven");
/// assert_eq!(map.get(&ConnectionId::new(7)), Some(&"seven"));
/// ```
pub type IdMap<V> = HashMap<ConnectionId, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of a `u64`: the id times 2^64 / φ, whose high bits (hashbrown's tag) and
/// low bits (its bucket, for ids counting up) are both well spread.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `ConnectionId` (it hashes one u64); kept correct for any key.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn sequential_ids_spread_over_buckets_and_tags() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..1024_u64)
            .map(|id| build.hash_one(ConnectionId::new(id)))
            .collect();
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(buckets.len(), 1024);
        assert_eq!(tags.len(), 128);
    }
}
