//! Space figures: objects per slab of each kmalloc class, pages held by (c).

use slab::PAGE_SIZE;
use slab::layout::{KMALLOC_SIZES, kmalloc_size_roundup};

use crate::alloc::{Kmalloc, Sheaf};
use crate::charts::Figures;
use crate::churn::Live;
use crate::{LIVE_C, OPS_C, verdict};

/// Space figures of (c), measured on a first fill of [`LIVE_C`] objects.
pub(crate) struct SpaceC {
    /// (pages in use x page size, sum of num_slabs x slab_size, live class bytes) after filling.
    pub(crate) filled: (usize, usize, usize),
    /// The same after [`OPS_C`] churn ops.
    pub(crate) churned: (usize, usize, usize),
    /// Per kmalloc class after filling: (name, num_slabs x slab_size, live class bytes).
    pub(crate) per_class: Vec<(String, usize, usize)>,
}

pub(crate) fn slab_bytes(s: &Sheaf) -> usize {
    KMALLOC_SIZES
        .iter()
        .map(|&size| {
            let c = s.slab.kmalloc_cache(size).expect("kmalloc cache");
            c.slabinfo().num_slabs * c.slab_size()
        })
        .sum()
}

pub(crate) fn space_c(s: &Sheaf) -> SpaceC {
    let k = Kmalloc(s);
    let base = s.platform.pages_in_use();
    let mut l = Live::fill(&k, LIVE_C, 0x5eed_1234);
    let measure = |l: &Live| {
        (
            (s.platform.pages_in_use() - base) * PAGE_SIZE,
            slab_bytes(s),
            l.class_bytes(),
        )
    };
    let filled = measure(&l);
    let per_class = KMALLOC_SIZES
        .iter()
        .map(|&size| {
            let c = s.slab.kmalloc_cache(size).expect("kmalloc cache");
            let live = l
                .objs
                .iter()
                .filter(|&&(_, o)| kmalloc_size_roundup(o) == size)
                .count()
                * size;
            let held = c.slabinfo().num_slabs * c.slab_size();
            (c.name().to_string(), held, live)
        })
        .collect();
    l.churn(&k, OPS_C);
    let churned = measure(&l);
    l.free_all(&k);
    SpaceC {
        filled,
        churned,
        per_class,
    }
}

pub(crate) fn print_space(s: &Sheaf, space: &SpaceC, figs: &mut Figures) {
    println!("space: kmalloc size classes (objects per slab, bytes of each slab they use)");
    for &size in KMALLOC_SIZES.iter() {
        let c = s.slab.kmalloc_cache(size).expect("kmalloc cache");
        let used = c.objs_per_slab() * c.size();

        println!(
            "  {:<12} {:>3} objects, {:>5} of {:>5} bytes ({:.1}% used, order {})",
            format!("{}:", c.name()),
            c.objs_per_slab(),
            used,
            c.slab_size(),
            100.0 * used as f64 / c.slab_size() as f64,
            c.order()
        );
    }
    figs.space.clone_from(&space.per_class);
    println!("space: (c) with {LIVE_C} live objects");
    for (label, (pages, slabs, live)) in [
        ("after filling", space.filled),
        ("after churn", space.churned),
    ] {
        let over = |held: usize| 100.0 * (held as f64 - live as f64) / live as f64;
        println!(
            "  {label:<14} live class bytes {live:>13}, pages held {pages:>13} \
             (overhead {:.2}%), kmalloc slabs {slabs:>13} (overhead {:.2}%)",
            over(pages),
            over(slabs)
        );
    }
    let (pages, _, live) = space.filled;
    let o = 100.0 * (pages as f64 - live as f64) / live as f64;
    println!(
        "  overhead after filling {o:.2}% (target <= 5%: {})",
        verdict(o <= 5.0)
    );
    println!();
}
