//! Finding a path's separators eight bytes at a time (SWAR: a `u64` word as eight lanes).
//! Path segments are short, which is where a vector search (`memchr`) loses to its own setup
//! on every call; a word at a time costs a few instructions per eight bytes and none to start.

const LANES_LOW: u64 = u64::from_ne_bytes([0x01; 8]);
const LANES_HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit of each lane of `word` that holds `byte` (`word` read little-endian). A
/// lane above a match may be marked too (a borrow), never one below it, so the lowest mark
/// is always the first match.
fn marks(word: u64, byte: u8) -> u64 {
    let lanes = word ^ (LANES_LOW * u64::from(byte));
    lanes.wrapping_sub(LANES_LOW) & !lanes & LANES_HIGH
}

/// The index of the first byte of `hay` that is `a` or `b`.
pub(crate) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let (words, rest) = hay.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        let found = marks(word, a) | marks(word, b);
        if found != 0 {
            return Some(i * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let tail = words.len() * 8;
    rest.iter()
        .position(|&byte| byte == a || byte == b)
        .map(|i| tail + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_first_of_either_byte() {
        assert_eq!(find2(b"", b'/', b'%'), None);
        assert_eq!(find2(b"abc", b'/', b'%'), None);
        assert_eq!(find2(b"/abc", b'/', b'%'), Some(0));
        assert_eq!(find2(b"abcdefgh%/", b'/', b'%'), Some(8));
        assert_eq!(find2(b"abcdefghijklmnop/", b'/', b'/'), Some(16));
        // A borrow from a match marks the lane above it ('.' is '/' ^ 1), never the one
        // below: the first mark is the first match.
        assert_eq!(find2(b"ab/.cdefgh", b'.', b'.'), Some(3));
        assert_eq!(find2(b"\x00\x01/abcde", b'/', b'\x00'), Some(0));
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_by_byte_search(
            hay in prop::collection::vec(any::<u8>(), 0..40),
            a in any::<u8>(),
            b in any::<u8>(),
        ) {
            let expected = hay.iter().position(|&byte| byte == a || byte == b);
            prop_assert_eq!(find2(&hay, a, b), expected);
        }

        #[test]
        fn agrees_on_path_like_text(hay in "[a-z0-9/%.$-]{0,40}") {
            let expected = hay.bytes().position(|byte| byte == b'/' || byte == b'%');
            prop_assert_eq!(find2(hay.as_bytes(), b'/', b'%'), expected);
        }
    }
}
