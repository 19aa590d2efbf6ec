//! Cache names on target (issue #17 §4, `kstrdup_const`): a literal of the kernel image is
//! kept as it is (the same pointer), any other name is copied, so that a cache named from
//! memory that goes away (a module's) still reads right.

use alloc::string::String;

use slab::{Gfp, SlabFlags};

use crate::memory::kmalloc::{in_kernel_rodata, slab};

/// A name in the image's `.rodata`.
const LITERAL: &str = "ktest-rodata-name";

#[crate::ktest]
fn the_image_s_read_only_part_is_told_by_the_linker_symbols() {
    assert!(in_kernel_rodata(LITERAL.as_ptr(), LITERAL.len()));
    let code: fn() = the_image_s_read_only_part_is_told_by_the_linker_symbols;
    assert!(
        in_kernel_rodata(code as *const u8, 1),
        "code is never written"
    );
    let heap = String::from("on the heap");
    assert!(!in_kernel_rodata(heap.as_ptr(), heap.len()));
    static mut WRITABLE: [u8; 4] = *b"data";
    assert!(
        !in_kernel_rodata(&raw const WRITABLE as *const u8, 4),
        ".data is writable"
    );
    assert!(
        !in_kernel_rodata(LITERAL.as_ptr(), usize::MAX),
        "no overflow"
    );
}

#[crate::ktest]
fn a_literal_name_is_kept_and_a_heap_name_is_copied() {
    let c = slab()
        .kmem_cache_create(LITERAL, 72, Default::default(), SlabFlags::SLAB_NO_MERGE)
        .expect("memory");
    assert_eq!(c.name().as_ptr(), LITERAL.as_ptr(), "not copied");
    assert!(!c.cache_name().is_copy());
    // A module's name: heap memory, overwritten once the cache is made.
    let mut heap = String::from("ktest-heap-name");
    let d = slab()
        .kmem_cache_create(&heap, 72, Default::default(), SlabFlags::SLAB_NO_MERGE)
        .expect("memory");
    assert_ne!(d.name().as_ptr(), heap.as_ptr(), "copied");
    heap.clear();
    heap.push_str("XXXXXXXXXXXXXXX");
    drop(heap);
    assert_eq!(d.name(), "ktest-heap-name");
    assert_eq!(
        slab::sysfs::read(slab(), "ktest-heap-name/object_size").as_deref(),
        Ok("72\n")
    );
    let mut info = String::new();
    slab().slabinfo_show(&mut info).expect("formatted");
    assert!(info.lines().any(|l| l.starts_with("ktest-heap-name ")));
    // An object left: the error carries the name, the cache stays for the object.
    let o = d.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: the only handle; refused while the object remains.
    let err = unsafe { slab().kmem_cache_destroy(d) }.expect_err("an object remains");
    let slab::DestroyError::ObjectsRemaining { name, cache, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(name, "ktest-heap-name");
    // SAFETY: allocated from this cache, kept for it.
    unsafe { cache.free(o) }.expect("freed");
    // SAFETY: the only handle; nothing uses it afterwards.
    unsafe { slab().kmem_cache_destroy(c) }.expect("empty");
}
