//! Key → partition, exactly as the Java client's default partitioner does it
//! (`Utils.murmur2`, then `Utils.toPositive(h) % partitions`), so records
//! keyed by the same URL land on the same partition whichever client wrote
//! them.

/// Murmur2 (32-bit, seed 0x9747b28c) as in `org.apache.kafka.common.utils.Utils`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let len = data.len();
    // Java uses the length as an int; keys are far below 2^31 bytes.
    let mut h: u32 = SEED ^ (len as u32);

    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    // The Java switch falls through from 3 to 1.
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// `Utils.toPositive`: clears the sign bit (not `abs`, which differs for MIN).
pub fn to_positive(h: i32) -> i32 {
    h & 0x7fff_ffff
}

/// The partition for `key` among `partitions` (must be ≥ 1; 0 is treated as 1).
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the Java client's UtilsTest.testMurmur2.
    #[test]
    fn java_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (&[12, 42, 56, 24, 109, 111], 274_204_207),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (k, want) in cases {
            assert_eq!(murmur2(k), *want, "{:?}", String::from_utf8_lossy(k));
        }
    }

    #[test]
    fn partition_is_to_positive_mod_n() {
        assert_eq!(to_positive(-790_332_482), 1_357_151_166);
        assert_eq!(partition_for(b"foobar", 10), 6);
        assert_eq!(to_positive(i32::MIN), 0);
        for n in 1..20 {
            let p = partition_for(b"https://example.com/", n);
            assert!((0..n).contains(&p));
        }
        assert_eq!(partition_for(b"x", 0), 0);
    }
}
