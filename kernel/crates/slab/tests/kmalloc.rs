//! Stage 3: kmalloc size classes, large allocations and cache merging.

mod common;

use common::*;
use slab::kmalloc::ZERO_SIZE_PTR;
use slab::layout::KMALLOC_SIZES;
use slab::{DestroyError, Gfp, KmemCacheArgs, KmemCacheHandle, SlabFlags};

#[test]
fn size_classes_and_natural_alignment() {
    let (_p, _cpu, a) = setup(2, 1);
    for size in 1..=8192usize {
        let o = a.kmalloc(size, Gfp::KERNEL).unwrap();
        let ks = a.ksize(o).expect("a kmalloc object");
        assert!(ks >= size);
        let class = *KMALLOC_SIZES.iter().find(|&&c| c >= size).unwrap();
        assert_eq!(ks, class, "size {size}");
        if class.is_power_of_two() {
            assert_eq!(
                o.as_ptr() as usize % class,
                0,
                "natural alignment for {class}"
            );
        }
        // SAFETY: from kmalloc.
        unsafe { a.kfree(o.as_ptr()).unwrap() };
    }
}

/// Linux's `tools/mm/slabinfo` reads `align`: a kmalloc cache is naturally aligned to the
/// largest power of two dividing its size (16 ... 8192, 32 for kmalloc-96, 64 for
/// kmalloc-192), and its objects really are, with and without debug padding.
#[test]
fn kmalloc_caches_show_and_keep_their_natural_alignment() {
    for debug in [SlabFlags::empty(), SlabFlags::SLAB_DEBUG_FLAGS] {
        let (_p, _cpu, a) = slub_debug(debug);
        for &size in KMALLOC_SIZES.iter() {
            let want = 1usize << size.trailing_zeros();
            let c = a.kmalloc_cache(size).unwrap();
            let file = format!("{}/align", c.name());
            assert_eq!(
                slab::sysfs::read(&a, &file).unwrap(),
                format!("{want}\n"),
                "{file} (debug {debug:?})"
            );
            let objs: Vec<_> = (0..3)
                .map(|_| a.kmalloc(size, Gfp::KERNEL).unwrap())
                .collect();
            for o in objs {
                assert_eq!(o.as_ptr() as usize % want, 0, "kmalloc-{size} object");
                // SAFETY: from kmalloc.
                unsafe { a.kfree(o.as_ptr()).unwrap() };
            }
        }
    }
}

#[test]
fn kmalloc_96_and_192_fill_4032_bytes() {
    let (_p, _cpu, a) = setup(2, 1);
    for (size, n) in [(96, 42), (192, 21)] {
        let c = a.kmalloc_cache(size).unwrap();
        assert_eq!((c.objs_per_slab(), c.slab_size()), (n, 4096));
        assert_eq!(c.objs_per_slab() * c.size(), 4032);
    }
    assert_eq!(a.kmalloc_cache(65).unwrap().name(), "kmalloc-96");
    assert_eq!(a.kmalloc_cache(8192).unwrap().name(), "kmalloc-8k");
    assert!(a.kmalloc_cache(8193).is_none());
}

#[test]
fn large_kmalloc_uses_pages() {
    let (p, _cpu, a) = setup(1, 1);
    let before = p.pages_in_use();
    let o = a.kmalloc(20_000, Gfp::ZERO).unwrap();
    assert_eq!(o.as_ptr() as usize % 4096, 0);
    assert_eq!(a.ksize(o), Ok(32768));
    assert_eq!(p.pages_in_use(), before + 8);
    // SAFETY: ours, zeroed, 20000 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(o.as_ptr(), 20_000) };
    assert!(bytes.iter().all(|&b| b == 0));
    // SAFETY: from kmalloc.
    unsafe { a.kfree(o.as_ptr()).unwrap() };
    assert_eq!(p.pages_in_use(), before);
}

#[test]
fn kzalloc_kcalloc_krealloc() {
    let (_p, _cpu, a) = setup(1, 1);
    let z = a.kzalloc(100, Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    let bytes = unsafe { std::slice::from_raw_parts(z.as_ptr(), 100) };
    assert!(bytes.iter().all(|&b| b == 0));
    assert!(a.kcalloc(usize::MAX, 2, Gfp::KERNEL).is_none());
    let arr = a.kcalloc(10, 8, Gfp::KERNEL).unwrap();
    assert_eq!(a.ksize(arr), Ok(96));
    // SAFETY: fill, grow, check, shrink back (same pointer while it fits).
    unsafe {
        for i in 0..100 {
            z.as_ptr().add(i).write(i as u8);
        }
        let same = a.krealloc(z.as_ptr(), 120, Gfp::KERNEL).unwrap();
        assert_eq!(same, z, "fits the 128-byte slot");
        let moved = a.krealloc(z.as_ptr(), 5000, Gfp::KERNEL).unwrap();
        assert_ne!(moved, z);
        for i in 0..100 {
            assert_eq!(moved.as_ptr().add(i).read(), i as u8);
        }
        let big = a.krealloc(moved.as_ptr(), 50_000, Gfp::KERNEL).unwrap();
        for i in 0..100 {
            assert_eq!(big.as_ptr().add(i).read(), i as u8);
        }
        assert_eq!(
            a.krealloc(big.as_ptr(), 0, Gfp::KERNEL),
            Some(ZERO_SIZE_PTR)
        );
        a.kfree(arr.as_ptr()).unwrap();
    }
    assert_eq!(a.kmalloc(0, Gfp::KERNEL), Some(ZERO_SIZE_PTR));
    // SAFETY: null and ZERO_SIZE_PTR are ignored.
    unsafe {
        a.kfree(std::ptr::null_mut()).unwrap();
        a.kfree(ZERO_SIZE_PTR.as_ptr()).unwrap();
    }
}

#[test]
fn merging_rules() {
    let (_p, _cpu, a) = setup(1, 1);
    let n0 = a.nr_caches();
    // 64 bytes: becomes an alias of kmalloc-64.
    let foo = a
        .kmem_cache_create("foo", 64, args(), SlabFlags::empty())
        .unwrap();
    assert_eq!(foo.name(), "foo", "an alias knows its own name");
    assert_eq!(foo.primary().name(), "kmalloc-64");
    assert_eq!(foo.primary().refcount(), 2);
    assert!(std::ptr::eq(a.find_cache("foo").unwrap(), &*foo));
    // 60 bytes round to 64: waste 0 < one word.
    let f60 = a
        .kmem_cache_create("f60", 60, args(), SlabFlags::empty())
        .unwrap();
    assert!(std::ptr::eq(f60.primary(), foo.primary()));
    // 56 bytes: 64 - 56 = 8 is not less than a word: a new cache...
    let c56 = a
        .kmem_cache_create("c56", 56, args(), SlabFlags::empty())
        .unwrap();
    assert_eq!(c56.primary().name(), "c56");
    // ...which the next 56-byte cache merges with (newest first).
    let d56 = a
        .kmem_cache_create("d56", 49, args(), SlabFlags::empty())
        .unwrap();
    assert!(std::ptr::eq(d56.primary(), &*c56));
    assert_eq!(a.cache_names(&c56), ["c56", "d56"]);
    assert_eq!(a.nr_caches(), n0 + 1);
    // Never merged.
    unsafe extern "C" fn ctor(_: *mut core::ffi::c_void) {}
    let never = [
        (KmemCacheArgs::default(), SlabFlags::SLAB_NO_MERGE),
        (KmemCacheArgs::default(), SlabFlags::SLAB_POISON),
        (KmemCacheArgs::default(), SlabFlags::SLAB_TYPESAFE_BY_RCU),
        (
            KmemCacheArgs {
                ctor: Some(ctor),
                ..args()
            },
            SlabFlags::empty(),
        ),
        (
            KmemCacheArgs {
                usersize: 8,
                ..args()
            },
            SlabFlags::empty(),
        ),
        (
            KmemCacheArgs {
                sheaf_capacity: 100,
                ..args()
            },
            SlabFlags::empty(),
        ),
    ];
    for (args, flags) in never {
        let c = a.kmem_cache_create("never", 64, args, flags).unwrap();
        assert_eq!(c.primary().name(), "never", "{flags:?}");
    }
    let explicit = a.find_cache("never").unwrap();
    assert!(explicit.sheaf_capacity() >= 100);
    // Flags that must match.
    let r = a
        .kmem_cache_create("rec", 64, args(), SlabFlags::SLAB_RECLAIM_ACCOUNT)
        .unwrap();
    assert_eq!(r.primary().name(), "rec");
    // Alignment: 96 bytes aligned to 64 need a 128-byte slot: kmalloc-128, not kmalloc-96.
    let al = a
        .kmem_cache_create(
            "al",
            96,
            KmemCacheArgs {
                align: 64,
                ..args()
            },
            SlabFlags::empty(),
        )
        .unwrap();
    assert_eq!(al.primary().name(), "kmalloc-128");
    // 320 bytes aligned to 64: kmalloc-512 would waste more than a word: a new cache.
    let al2 = a
        .kmem_cache_create(
            "al2",
            320,
            KmemCacheArgs {
                align: 64,
                ..args()
            },
            SlabFlags::empty(),
        )
        .unwrap();
    assert_eq!(al2.primary().name(), "al2");
    // Destroying an alias only drops a reference.
    // SAFETY: no one else uses these caches.
    unsafe {
        a.kmem_cache_destroy(d56).unwrap();
        assert_eq!(c56.refcount(), 1);
        a.kmem_cache_destroy(c56).unwrap();
        a.kmem_cache_destroy(foo).unwrap();
        a.kmem_cache_destroy(f60).unwrap();
        let k64 = a.kmalloc_cache(64).unwrap();
        assert_eq!(k64.refcount(), 1);
        assert_eq!(
            a.kmem_cache_destroy(KmemCacheHandle::from_ref(k64)),
            Err(DestroyError::Permanent {
                name: "kmalloc-64".into()
            })
        );
    }
}

#[test]
fn alias_widens_object_size() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("w0", 50, args(), SlabFlags::empty())
        .unwrap();
    assert_eq!((c.name(), c.object_size(), c.size()), ("w0", 50, 56));
    let w1 = a
        .kmem_cache_create("w1", 55, args(), SlabFlags::empty())
        .unwrap();
    assert!(std::ptr::eq(w1.primary(), &*c));
    assert_eq!(c.object_size(), 55, "the alias widened object_size");
    let c = a
        .kmem_cache_create("w2", 180, args(), SlabFlags::SLAB_HWCACHE_ALIGN)
        .unwrap();
    // 180 with cache-line alignment becomes 192: kmalloc-192 (a multiple of 64).
    assert_eq!(c.primary().name(), "kmalloc-192");
}

#[test]
#[should_panic(expected = "kmem_cache_create(bad) failed")]
fn slab_panic_panics() {
    let (_p, _cpu, a) = setup(1, 1);
    let _ = a.kmem_cache_create("bad", 0, args(), SlabFlags::SLAB_PANIC);
}

#[test]
fn slabinfo_lists_every_cache() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("dentry", 192, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    let mut out = String::new();
    a.slabinfo_show(&mut out).unwrap();
    assert!(out.starts_with("slabinfo - version: 2.1\n"));
    let line = out.lines().find(|l| l.starts_with("dentry ")).unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    // name active num objsize objperslab pagesperslab
    assert_eq!(cols[3..6], ["192", "21", "1"]);
    assert!(cols[1].parse::<usize>().unwrap() >= 1);
    assert!(out.lines().any(|l| l.starts_with("kmalloc-96 ")));
    // SAFETY: ours.
    unsafe { c.free(o).unwrap() };
}

#[test]
fn creation_errors_are_values() {
    use slab::SlabError;
    use slab::layout::LayoutError;
    let (_p, _cpu, a) = setup(1, 1);
    let e = |size, args| {
        a.kmem_cache_create("e", size, args, SlabFlags::SLAB_NO_MERGE)
            .err()
    };
    assert_eq!(e(0, args()), Some(SlabError::Layout(LayoutError::ZeroSize)));
    assert_eq!(
        e(
            64,
            KmemCacheArgs {
                align: 24,
                ..args()
            }
        ),
        Some(SlabError::Layout(LayoutError::BadAlign))
    );
    let bad_user = KmemCacheArgs {
        useroffset: 60,
        usersize: 8,
        ..args()
    };
    assert_eq!(
        e(64, bad_user),
        Some(SlabError::Layout(LayoutError::BadUsercopy))
    );
    let bad_fp = KmemCacheArgs {
        freeptr_offset: Some(3),
        ..args()
    };
    assert_eq!(
        e(64, bad_fp),
        Some(SlabError::Layout(LayoutError::BadFreeptrOffset))
    );
    assert_eq!(
        e(1 << 40, args()),
        Some(SlabError::Layout(LayoutError::TooLarge))
    );
}

#[test]
fn default_sheaf_capacities_by_size() {
    let (_p, _cpu, a) = setup(1, 1);
    for (size, cap) in [
        (8, 60),
        (192, 60),
        (256, 28),
        (1024, 12),
        (4096, 4),
        (8192, 4),
    ] {
        assert_eq!(
            a.kmalloc_cache(size).unwrap().sheaf_capacity(),
            cap,
            "kmalloc-{size}"
        );
    }
    let c = a
        .kmem_cache_create("dbg", 64, args(), SlabFlags::SLAB_RED_ZONE)
        .unwrap();
    assert_eq!(c.sheaf_capacity(), 0);
}

#[test]
fn slab_nomerge_boot_option_keeps_every_cache_apart() {
    let (_p, _cpu, a) = with_options(slab::SlabOptions {
        nomerge: true,
        ..Default::default()
    });
    let foo = a
        .kmem_cache_create("foo", 64, args(), SlabFlags::empty())
        .unwrap();
    assert_eq!(
        foo.name(),
        "foo",
        "with slab_nomerge a 64-byte cache is not kmalloc-64"
    );
    assert_eq!(foo.refcount(), 1);
}

#[test]
fn destroying_an_alias_drops_that_alias_name() {
    let (_p, _cpu, a) = setup(1, 1);
    let x = a
        .kmem_cache_create("x100", 100, args(), SlabFlags::empty())
        .unwrap();
    let y = a
        .kmem_cache_create("y100", 100, args(), SlabFlags::empty())
        .unwrap();
    assert!(std::ptr::eq(y.primary(), &*x), "y100 merged into x100");
    let z = a
        .kmem_cache_create("z100", 100, args(), SlabFlags::empty())
        .unwrap();
    assert_eq!(a.cache_names(&x), ["x100", "y100", "z100"]);
    // SAFETY: no one else uses these caches.
    unsafe { a.kmem_cache_destroy(y) }.unwrap();
    assert_eq!(a.cache_names(&x), ["x100", "z100"], "the middle alias went");
    // SAFETY: as above.
    unsafe { a.kmem_cache_destroy(x) }.unwrap();
    assert!(a.find_cache("x100").is_none(), "the destroyed name is gone");
    assert!(a.find_cache("y100").is_none());
    let still = a.find_cache("z100").expect("the other alias stays");
    assert!(std::ptr::eq(still, &*z));
    assert_eq!(
        still.primary().name(),
        "x100",
        "the cache keeps its first name"
    );
    assert_eq!(still.primary().refcount(), 1);
    // The cache still works for the alias left.
    let o = z.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { z.free(o).unwrap() };
    let n = a.nr_caches();
    // SAFETY: as above.
    unsafe { a.kmem_cache_destroy(z) }.unwrap();
    assert_eq!(a.nr_caches(), n - 1, "the last name took the cache with it");
}

#[test]
fn destroying_the_first_name_keeps_the_alias() {
    let (_p, _cpu, a) = setup(1, 1);
    let x = a
        .kmem_cache_create("x100", 100, args(), SlabFlags::empty())
        .unwrap();
    let y = a
        .kmem_cache_create("y100", 100, args(), SlabFlags::empty())
        .unwrap();
    // SAFETY: no one else uses these caches.
    unsafe { a.kmem_cache_destroy(x) }.unwrap();
    assert!(a.find_cache("y100").is_some());
    assert!(a.find_cache("x100").is_none());
    // SAFETY: as above.
    unsafe { a.kmem_cache_destroy(y) }.unwrap();
    assert!(a.find_cache("y100").is_none());
}
