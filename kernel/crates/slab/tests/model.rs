//! Model-based property test: random sequences of alloc / free / shrink / destroy / kmalloc /
//! CPU migration across several caches, checked against a simple model of what is live.
//!
//! Checked after every step: no object is handed out twice, live objects never overlap,
//! contents are preserved (each object is filled with its own pattern), and slab counts agree
//! with the model (`active_objs >= live`, and a destroy reports exactly the live objects).

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;

use proptest::prelude::*;
use slab::host::{CpuRegistration, HostConfig, HostPlatform};
use slab::{
    DestroyError, Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, SlabAllocator, SlabFlags,
};

/// The caches of the model: sizes and flags.
const CACHES: [(usize, SlabFlags); 4] = [
    (24, SlabFlags::SLAB_NO_MERGE),
    (
        200,
        SlabFlags::SLAB_HWCACHE_ALIGN.union(SlabFlags::SLAB_NO_MERGE),
    ),
    (1500, SlabFlags::SLAB_NO_MERGE),
    (72, SlabFlags::SLAB_RED_ZONE.union(SlabFlags::SLAB_POISON)),
];
const NAMES: [&str; 4] = ["m24", "m200", "m1500", "m72dbg"];
/// CPUs of the model's platform (on two nodes: CPU `i` is on node `i % 2`).
const CPUS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize),
    Free(usize),
    Shrink(usize),
    Destroy(usize),
    Kmalloc(usize),
    Zalloc(usize),
    /// The test thread moves to another CPU (possibly of the other node).
    Migrate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..CACHES.len()).prop_map(Op::Alloc),
        8 => any::<usize>().prop_map(Op::Free),
        1 => (0..CACHES.len()).prop_map(Op::Shrink),
        1 => (0..CACHES.len()).prop_map(Op::Destroy),
        4 => (1usize..20_000).prop_map(Op::Kmalloc),
        2 => (0..CACHES.len()).prop_map(Op::Zalloc),
        2 => (0..CPUS).prop_map(Op::Migrate),
    ]
}

/// Where a live object came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    /// Cache index and generation (bumped when the cache is destroyed and recreated).
    Cache(usize, u32),
    Kmalloc,
}

struct Live {
    src: Src,
    size: usize,
    fill: u8,
}

struct Model<'a> {
    p: &'a HostPlatform,
    cpu: Option<CpuRegistration>,
    a: &'a SlabAllocator<HostPlatform>,
    caches: Vec<Option<KmemCacheHandle<'a, HostPlatform>>>,
    generation: Vec<u32>,
    live: BTreeMap<usize, Live>,
    counter: u8,
}

impl<'a> Model<'a> {
    fn cache(&self, c: usize) -> &KmemCache<HostPlatform> {
        self.caches[c].as_deref().expect("cache")
    }

    fn insert(&mut self, o: NonNull<u8>, src: Src, size: usize, zeroed: bool) {
        let addr = o.as_ptr() as usize;
        // No overlap with the neighbours (and not handed out twice).
        if let Some((&prev, l)) = self.live.range(..=addr).next_back() {
            assert!(prev + l.size <= addr, "overlaps {prev:#x} (+{})", l.size);
        }
        if let Some((&next, _)) = self.live.range(addr..).next() {
            assert!(addr + size <= next, "overlaps {next:#x}");
        }
        if zeroed {
            // SAFETY: ours, `size` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(o.as_ptr(), size) };
            assert!(bytes.iter().all(|&b| b == 0));
        }
        self.counter = self.counter.wrapping_add(1);
        let fill = self.counter;
        // SAFETY: ours, `size` bytes.
        unsafe { o.as_ptr().write_bytes(fill, size) };
        self.live.insert(addr, Live { src, size, fill });
    }

    fn check_contents(&self, addr: usize) {
        let l = &self.live[&addr];
        // SAFETY: live object of `l.size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, l.size) };
        assert!(
            bytes.iter().all(|&b| b == l.fill),
            "contents of {addr:#x} changed"
        );
    }

    fn live_in(&self, c: usize) -> Vec<usize> {
        let g = self.generation[c];
        self.live
            .iter()
            .filter(|(_, l)| l.src == Src::Cache(c, g))
            .map(|(&a, _)| a)
            .collect()
    }

    fn create(a: &'a SlabAllocator<HostPlatform>, c: usize) -> KmemCacheHandle<'a, HostPlatform> {
        let (size, flags) = CACHES[c];
        a.kmem_cache_create(NAMES[c], size, KmemCacheArgs::default(), flags)
            .unwrap()
    }

    fn step(&mut self, op: Op, leaked: &mut Vec<(&'a KmemCache<HostPlatform>, usize)>) {
        match op {
            Op::Alloc(c) | Op::Zalloc(c) => {
                let zero = matches!(op, Op::Zalloc(_));
                let gfp = if zero { Gfp::ZERO } else { Gfp::KERNEL };
                let o = self.cache(c).alloc(gfp).expect("arena is large enough");
                self.insert(o, Src::Cache(c, self.generation[c]), CACHES[c].0, zero);
            }
            Op::Kmalloc(size) => {
                let o = self.a.kmalloc(size, Gfp::KERNEL).unwrap();
                assert!(self.a.ksize(o).expect("a kmalloc object") >= size);
                self.insert(o, Src::Kmalloc, size, false);
            }
            Op::Free(i) => {
                if self.live.is_empty() {
                    return;
                }
                let addr = *self.live.keys().nth(i % self.live.len()).unwrap();
                self.check_contents(addr);
                let l = self.live.remove(&addr).unwrap();
                let p = NonNull::new(addr as *mut u8).unwrap();
                match l.src {
                    // SAFETY: a live object of that cache.
                    Src::Cache(c, g) if g == self.generation[c] => unsafe {
                        self.cache(c).free(p).unwrap()
                    },
                    Src::Cache(..) => {
                        // An object left over from a destroyed (kept-alive) cache.
                        let (cache, _) = *leaked.iter().find(|(_, o)| *o == addr).unwrap();
                        // SAFETY: the kept cache still owns the object.
                        unsafe { cache.free(p).unwrap() };
                    }
                    // SAFETY: from kmalloc.
                    Src::Kmalloc => unsafe { self.a.kfree(p.as_ptr()).unwrap() },
                }
            }
            Op::Shrink(c) => {
                self.cache(c).shrink();
                let info = self.cache(c).slabinfo();
                assert!(info.active_objs >= self.live_in(c).len());
                assert!(info.active_objs <= info.num_objs);
            }
            Op::Migrate(cpu) => {
                self.cpu = None;
                self.cpu = Some(self.p.register_cpu_as(cpu));
            }
            Op::Destroy(c) => {
                let mut want = self.live_in(c);
                let cache = self.caches[c].take().expect("cache");
                // SAFETY: single-threaded test; the cache is replaced below.
                match unsafe { self.a.kmem_cache_destroy(cache) } {
                    Ok(()) => assert!(want.is_empty(), "destroy succeeded with live objects"),
                    Err(DestroyError::ObjectsRemaining {
                        name,
                        mut objects,
                        cache,
                    }) => {
                        assert_eq!(name, NAMES[c]);
                        objects.sort_unstable();
                        want.sort_unstable();
                        assert_eq!(objects, want, "exactly the live objects are reported");
                        if std::env::var_os("MODEL_VERBOSE").is_some() {
                            eprintln!("destroy {} kept {} objects", name, want.len());
                        }
                        for o in want {
                            leaked.push((cache, o));
                        }
                    }
                    Err(e) => panic!("{e:?}"),
                }
                self.generation[c] += 1;
                self.caches[c] = Some(Self::create(self.a, c));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn model_alloc_free_shrink_destroy(ops in proptest::collection::vec(op(), 1..400)) {
        let p = HostPlatform::new(HostConfig { cpus: CPUS, nodes: 2, pages_per_node: 8192 });
        let cpu = p.register_cpu();
        let a = SlabAllocator::new(p.clone()).unwrap();
        let caches = (0..CACHES.len()).map(|c| Some(Model::create(&a, c))).collect();
        let mut m = Model {
            p: &p,
            cpu: Some(cpu),
            a: &a,
            caches,
            generation: vec![0; CACHES.len()],
            live: BTreeMap::new(),
            counter: 0,
        };
        let mut leaked = Vec::new();
        for op in ops {
            m.step(op, &mut leaked);
        }
        // Contents of everything still live are intact; free it all and destroy cleanly.
        while !m.live.is_empty() {
            m.step(Op::Free(0), &mut leaked);
        }
        for cache in std::mem::take(&mut m.caches).into_iter().flatten() {
            // SAFETY: single-threaded; nothing is live.
            let r = unsafe { a.kmem_cache_destroy(cache) };
            prop_assert!(r.is_ok());
        }
        for (c, _) in &leaked {
            prop_assert_eq!(c.slabinfo().active_objs, 0);
        }
    }
}
