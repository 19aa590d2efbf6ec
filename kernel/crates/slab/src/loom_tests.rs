//! Loom model tests, all in this file: the barn alone ([`barn`]: every interleaving of CPUs
//! trading sheaves with one barn; no sheaf is lost or owned twice), and a whole cache: two CPUs
//! trading sheaves through the barn while objects cross between them. Loom runs every
//! interleaving (up to a preemption bound) of the lock operations of the barn and node lists,
//! and the test checks that no object is handed out twice and that every object and sheaf is
//! accounted for at the end.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p sheaf-slab --release loom`.

use std::alloc::{Layout, alloc, dealloc};
use std::boxed::Box;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use crate::base::{Gfp, PAGE_SHIFT, PAGE_SIZE};
use crate::cache::KmemCache;
use crate::flags::{KmemCacheArgs, SlabFlags};
use crate::platform::Platform;
use crate::slabs::Slab;
use crate::stats::Stat;

loom::thread_local! {
    static CPU: Cell<usize> = Cell::new(0);
}

#[derive(Default)]
struct Pages {
    blocks: HashMap<usize, u32>,
    owners: HashMap<usize, usize>,
    meta: HashMap<usize, Box<MaybeUninit<Slab>>>,
}

// SAFETY: the descriptor storage is plain memory handed to the allocator, which protects the
// descriptors with its own locks; `Pages` itself is only used behind its mutex.
unsafe impl Send for Pages {}

/// A platform for loom: pages from the host allocator, CPU ids in loom thread-locals (loom
/// runs its threads as coroutines of one OS thread, so std thread-locals would be shared).
#[derive(Clone)]
struct LoomPlatform(Arc<Mutex<Pages>>);

impl Drop for Pages {
    fn drop(&mut self) {
        for (&addr, &order) in &self.blocks {
            let layout = Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE << order).unwrap();
            // SAFETY: every block in the map was allocated with this layout and not freed.
            unsafe { dealloc(addr as *mut u8, layout) };
        }
    }
}

// SAFETY: CPU ids are per loom thread (each thread sets a distinct one); blocks come from the
// host allocator with natural alignment; owners are exact per page; descriptor storage is a
// separate box per block, stable until the block is freed.
unsafe impl Platform for LoomPlatform {
    type Guard = ();
    type FastGuard = ();
    fn nr_cpus(&self) -> usize {
        2
    }
    fn nr_nodes(&self) -> usize {
        1
    }
    fn cpu_to_node(&self, _cpu: usize) -> usize {
        0
    }
    fn pin(&self) -> ((), usize) {
        ((), CPU.with(|c| c.get()))
    }
    fn pin_fast(&self) -> ((), usize) {
        ((), crate::base::cpu_slot(CPU.with(|c| c.get())))
    }
    fn alloc_pages(&self, order: u32, _node: usize, _gfp: Gfp) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE << order).unwrap();
        // SAFETY: non-zero size.
        let p = NonNull::new(unsafe { alloc(layout) })?;
        self.0
            .lock()
            .unwrap()
            .blocks
            .insert(p.as_ptr() as usize, order);
        Some(p)
    }
    unsafe fn free_pages(&self, ptr: NonNull<u8>, order: u32) {
        let mut pages = self.0.lock().unwrap();
        pages.blocks.remove(&(ptr.as_ptr() as usize));
        pages.meta.remove(&(ptr.as_ptr() as usize));
        let layout = Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE << order).unwrap();
        // SAFETY: allocated by `alloc_pages` with this layout.
        unsafe { dealloc(ptr.as_ptr(), layout) };
    }
    fn page_node(&self, _addr: usize) -> usize {
        0
    }
    unsafe fn set_page_owner(&self, ptr: NonNull<u8>, order: u32, owner: usize) {
        let mut pages = self.0.lock().unwrap();
        for i in 0..1usize << order {
            let page = (ptr.as_ptr() as usize >> PAGE_SHIFT) + i;
            if owner == 0 {
                pages.owners.remove(&page);
            } else {
                pages.owners.insert(page, owner);
            }
        }
    }
    fn page_owner(&self, addr: usize) -> usize {
        self.0
            .lock()
            .unwrap()
            .owners
            .get(&(addr >> PAGE_SHIFT))
            .copied()
            .unwrap_or(0)
    }
    fn slab_meta(&self, page: NonNull<u8>) -> NonNull<Slab> {
        let mut pages = self.0.lock().unwrap();
        let b = pages
            .meta
            .entry(page.as_ptr() as usize)
            .or_insert_with(|| Box::new(MaybeUninit::uninit()));
        NonNull::from(&mut **b).cast()
    }
}

/// CPU 1 frees objects that CPU 0 allocated (filling its sheaves and handing a full one to the
/// barn) while CPU 0 keeps allocating (emptying its sheaves and taking full ones from the barn
/// or refilling from slabs).
#[test]
fn loom_cache_sheaf_barn_exchange() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = None;
    builder.check(|| {
        // The model runs on a loom thread with room for a `KmemCache` on its stack: the main
        // coroutine's stack is too small for building one (it is 5 KiB, more with loom's
        // atomics). The thread is CPU 0, as the main one would be.
        loom::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(exchange_model)
            .unwrap()
            .join()
            .unwrap();
    });
    std::eprintln!(
        "loom explored {} interleavings",
        ITERATIONS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Executions of [`exchange_model`] loom explored.
static ITERATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One execution of [`loom_cache_sheaf_barn_exchange`].
fn exchange_model() {
    {
        ITERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let platform = LoomPlatform(Arc::new(Mutex::new(Pages::default())));
        let cache: &'static KmemCache<LoomPlatform> = Box::leak(
            KmemCache::new(
                platform,
                crate::CacheName::from_static("loom"),
                4096,
                &KmemCacheArgs::default(),
                SlabFlags::empty(),
                true,
            )
            .unwrap(),
        );
        let cap = cache.sheaf_capacity();
        assert_eq!(cap, 4);
        let first: Vec<usize> = (0..3 * cap)
            .map(|_| cache.alloc(Gfp::KERNEL).unwrap().as_ptr() as usize)
            .collect();
        let remote = loom::thread::spawn(move || {
            CPU.with(|c| c.set(1));
            for &o in &first {
                // SAFETY: allocated by CPU 0, handed over, not used any more.
                unsafe { cache.free(NonNull::new(o as *mut u8).unwrap()).unwrap() };
            }
            // Then allocate: served from this CPU's own sheaves.
            let mine: Vec<usize> = (0..cap + 1)
                .map(|_| cache.alloc(Gfp::KERNEL).unwrap().as_ptr() as usize)
                .collect();
            (mine, cache.stat_cpu(Stat::BarnPut, 1))
        });
        let second: Vec<usize> = (0..2 * cap)
            .map(|_| cache.alloc(Gfp::KERNEL).unwrap().as_ptr() as usize)
            .collect();
        let (theirs, puts) = remote.join().unwrap();
        // CPU 1's frees fill its main, then (no spare) a second main, then find main and
        // spare full: the ninth free trades the full main at the barn, once, whatever CPU 0
        // does meanwhile (its own barn traffic is counted on CPU 0).
        assert_eq!(
            puts, 1,
            "CPU 1 freed 3 sheaves' worth: after filling main and spare it must put one full \
             sheaf in the barn (free_both_full)"
        );
        let distinct: HashSet<usize> = second.iter().chain(&theirs).copied().collect();
        assert_eq!(
            distinct.len(),
            second.len() + theirs.len(),
            "object handed out twice"
        );
        for &o in second.iter().chain(&theirs) {
            // SAFETY: ours (CPU 1's objects are freed remotely by CPU 0).
            unsafe { cache.free(NonNull::new(o as *mut u8).unwrap()).unwrap() };
        }
        // Everything was freed: shutting down finds no object left.
        // SAFETY: both CPUs are done with the cache.
        let exclusive = unsafe { cache.assume_exclusive() };
        assert_eq!(KmemCache::shutdown(&exclusive), Ok(()));
        // SAFETY: leaked above, unused from now on.
        drop(unsafe { Box::from_raw(cache as *const _ as *mut KmemCache<LoomPlatform>) });
    }
}

/// The barn alone: CPUs trading sheaves with one barn.
mod barn {
    use core::ptr::NonNull;

    use crate::barn::{Barn, MAX_FULL_SHEAVES, ReplaceFull};
    use crate::sheaf::{Sheaf, SheafBox};
    use crate::slabs::FreeObject;
    use loom::sync::Arc;
    use loom::thread;
    use std::boxed::Box;
    use std::vec::Vec;

    /// Memory of a sheaf of capacity 4: the 32-byte header and 4 pointers.
    type SheafMemory = [usize; 8];

    /// A sheaf of capacity 4 holding `size` (dangling, never dereferenced) objects.
    fn sheaf(size: u32) -> SheafBox {
        let mem = NonNull::from(Box::leak(Box::new([0usize; 8]))).cast::<u8>();
        // SAFETY: the memory is ours, word aligned and holds a header and 4 pointers.
        let mut s = unsafe { SheafBox::init(mem, Sheaf::header(4, 0)) };
        for _ in 0..size {
            // SAFETY: the barn never looks at the objects, and nothing dereferences them.
            let obj = unsafe { FreeObject::new(NonNull::dangling()) };
            s.push(obj).unwrap();
        }
        s
    }

    /// Frees the memory of a sheaf made by [`sheaf`].
    fn free(s: SheafBox) {
        // SAFETY: leaked from a Box of `SheafMemory` in `sheaf`, owned once.
        drop(unsafe { Box::from_raw(s.into_raw().as_ptr().cast::<SheafMemory>()) });
    }

    /// A CPU's free path: its main sheaf is full, so it hands it to the barn in exchange for an
    /// empty one, while another CPU's alloc path trades an empty sheaf for a full one.
    #[test]
    fn loom_barn_exchange_conserves_sheaves() {
        loom::model(|| {
            let barn = Arc::new(Barn::new());
            barn.put_full_sheaf(sheaf(4)).unwrap();
            barn.put_empty_sheaf(sheaf(0)).unwrap();
            let b1 = barn.clone();
            let freeing = thread::spawn(move || match b1.replace_full_sheaf(sheaf(4)) {
                Ok(empty) => empty,
                Err(ReplaceFull::Refused(f) | ReplaceFull::NoEmpty(f)) => f,
            });
            let b2 = barn.clone();
            let allocating = thread::spawn(move || match b2.replace_empty_sheaf(sheaf(0)) {
                Ok((full, extra)) => {
                    assert!(extra.is_none());
                    full
                }
                Err(e) => e,
            });
            let mut all: Vec<SheafBox> =
                Vec::from([freeing.join().unwrap(), allocating.join().unwrap()]);
            barn.shrink(|s| all.push(s));
            // Four sheaves existed; each is in exactly one place.
            assert_eq!(all.len(), 4);
            for (i, a) in all.iter().enumerate() {
                assert!(all[i + 1..].iter().all(|b| a != b), "a sheaf owned twice");
            }
            let full: usize = all.iter().map(SheafBox::len).sum();
            assert_eq!(full, 8, "objects conserved: two full sheaves of 4");
            all.into_iter().for_each(free);
        });
    }

    /// Two CPUs put full sheaves into a barn that has room for only one more.
    #[test]
    fn loom_barn_refuses_beyond_limit() {
        loom::model(|| {
            let barn = Arc::new(Barn::new());
            for _ in 0..MAX_FULL_SHEAVES - 1 {
                barn.put_full_sheaf(sheaf(4)).unwrap();
            }
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let b = barn.clone();
                    thread::spawn(move || match b.put_full_sheaf(sheaf(4)) {
                        Ok(()) => true,
                        Err(s) => {
                            free(s);
                            false
                        }
                    })
                })
                .collect();
            let ok: usize = handles
                .into_iter()
                .map(|h| h.join().unwrap() as usize)
                .sum();
            assert_eq!(ok, 1);
            assert_eq!(barn.counts(), (MAX_FULL_SHEAVES, 0));
            barn.shrink(free);
        });
    }
}
