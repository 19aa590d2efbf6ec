//! Unit tests of the page-owner word.

use super::*;

/// Descriptor addresses in the host's (user) half and in the kernel's (upper) half.
const SLABS: [usize; 4] = [
    0x1000,
    0x7fff_ffff_fff8,
    0xffff_8000_0000_0000,
    0xffff_ffff_ffff_fff8,
];

#[test]
fn owner_words_round_trip_in_both_halves() {
    assert_eq!(PageOwner::decode(0), PageOwner::None);
    assert_eq!(PageOwner::None.encode(), 0);
    for addr in SLABS {
        let owner = PageOwner::Slab(NonNull::new(addr as *mut Slab).unwrap());
        let word = owner.encode();
        assert!((word as isize) > 0, "a slab's word is positive: {addr:#x}");
        assert_eq!(PageOwner::decode(word), owner);
        assert_eq!(
            PageOwner::slab(word).map(|s| s.as_ptr() as usize),
            Some(addr)
        );
    }
    for head in [0x20_0000, 0x7fff_ffe0_0000, 0xffff_8000_0040_0000] {
        for order in [0, 1, 10, 31] {
            let owner = PageOwner::Large { head, order };
            let word = owner.encode();
            assert!((word as isize) < 0, "a large block's word is negative");
            assert_eq!(PageOwner::decode(word), owner);
            assert_eq!(PageOwner::slab(word), None);
        }
    }
    assert_eq!(PageOwner::slab(0), None);
}
