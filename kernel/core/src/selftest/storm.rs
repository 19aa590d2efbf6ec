//! A checked kmalloc/kfree storm on every CPU: the shell's `kmalloc-test` and an on-target test.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use slab::Gfp;

use super::Rng;
use crate::memory::kmalloc::slab;
use crate::sync::SpinLock;

/// A live object: where, how big, and the tag written into every byte.
#[derive(Clone, Copy)]
struct Obj {
    ptr: usize,
    size: usize,
    tag: u64,
}

// SAFETY: an `Obj` is exclusively owned by whoever holds it; the memory it names is not shared.
unsafe impl Send for Obj {}

fn fill(obj: &Obj) {
    // SAFETY: `obj` is a live kmalloc object of `size` bytes owned by the caller.
    let bytes = unsafe { core::slice::from_raw_parts_mut(obj.ptr as *mut u8, obj.size) };
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (obj.tag as u8) ^ (i as u8);
    }
    if obj.size >= 8 {
        bytes[..8].copy_from_slice(&obj.tag.to_le_bytes());
    }
}

fn check(obj: &Obj) -> Result<(), String> {
    // SAFETY: as in `fill`.
    let bytes = unsafe { core::slice::from_raw_parts(obj.ptr as *const u8, obj.size) };
    let head = obj.size.min(8);
    let tag_ok = obj.size < 8 || bytes[..8] == obj.tag.to_le_bytes();
    let body_ok = bytes[head..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (obj.tag as u8) ^ ((i + head) as u8));
    if tag_ok && body_ok {
        Ok(())
    } else {
        Err(alloc::format!(
            "object {:#x} ({} bytes, tag {}) was overwritten",
            obj.ptr,
            obj.size,
            obj.tag
        ))
    }
}

/// What a storm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormReport {
    /// Objects allocated in all.
    pub allocs: u64,
    /// Objects freed on another CPU than the one that allocated them.
    pub cross_cpu_frees: u64,
}

/// Runs `rounds` rounds of mixed-size kmalloc/kfree on every online CPU at once. Every object
/// is filled with a tag and checked before it is freed: an object handed out twice or
/// corrupted is reported. About a quarter of the objects are passed to another CPU and freed
/// there.
pub fn storm(rounds: usize) -> Result<StormReport, String> {
    let cpus: Vec<usize> = crate::cpu::online().map(|c| c.id).collect();
    let mailboxes: Arc<Vec<SpinLock<Vec<Obj>>>> =
        Arc::new(cpus.iter().map(|_| SpinLock::new(Vec::new())).collect());
    let next_tag = Arc::new(AtomicU64::new(1));
    let cross = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(slot, &cpu)| {
            let (mailboxes, next_tag, cross) = (mailboxes.clone(), next_tag.clone(), cross.clone());
            let n = cpus.len();
            crate::sched::spawn_on(cpu, "kmalloc-storm", move || -> Result<u64, String> {
                let mut rng = Rng::new(0x5eaf + cpu as u64);
                let mut live: Vec<Obj> = Vec::with_capacity(256);
                let mut allocs = 0;
                for _ in 0..rounds {
                    for _ in 0..64 {
                        let size = if rng.range(0, 15) == 0 {
                            rng.range(2049, 16384)
                        } else {
                            rng.range(1, 2048)
                        };
                        let ptr = slab().kmalloc(size, Gfp::KERNEL).ok_or("kmalloc failed")?;
                        let obj = Obj {
                            ptr: ptr.as_ptr() as usize,
                            size,
                            tag: next_tag.fetch_add(1, Ordering::Relaxed),
                        };
                        fill(&obj);
                        live.push(obj);
                        allocs += 1;
                    }
                    // Free about half; pass a quarter of those to the next CPU.
                    while live.len() > 96 {
                        let obj = live.swap_remove(rng.range(0, live.len() - 1));
                        check(&obj)?;
                        if rng.range(0, 3) == 0 && n > 1 {
                            mailboxes[(slot + 1) % n].lock().push(obj);
                        } else {
                            // SAFETY: a live kmalloc object this thread owns.
                            unsafe { slab().kfree(obj.ptr as *mut u8) }
                                .map_err(|r| alloc::format!("{r}"))?;
                        }
                    }
                    let passed: Vec<Obj> = core::mem::take(&mut *mailboxes[slot].lock());
                    for obj in passed {
                        check(&obj)?;
                        // SAFETY: handed over by another CPU, which no longer touches it.
                        unsafe { slab().kfree(obj.ptr as *mut u8) }
                            .map_err(|r| alloc::format!("{r}"))?;
                        cross.fetch_add(1, Ordering::Relaxed);
                    }
                    for obj in &live {
                        check(obj)?;
                    }
                }
                for obj in live {
                    check(&obj)?;
                    // SAFETY: as above.
                    unsafe { slab().kfree(obj.ptr as *mut u8) }
                        .map_err(|r| alloc::format!("{r}"))?;
                }
                Ok(allocs)
            })
            .map_err(|e| alloc::format!("spawn: {e:?}"))
        })
        .collect::<Result<_, _>>()?;
    let mut allocs = 0;
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(n) => allocs += n,
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    // Objects still in mailboxes (sent after their receiver finished).
    for mailbox in mailboxes.iter() {
        for obj in core::mem::take(&mut *mailbox.lock()) {
            check(&obj)?;
            // SAFETY: nobody else holds these objects any more.
            unsafe { slab().kfree(obj.ptr as *mut u8) }.map_err(|r| alloc::format!("{r}"))?;
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(StormReport {
            allocs,
            cross_cpu_frees: cross.load(Ordering::Relaxed),
        }),
    }
}

#[crate::ktest]
fn kmalloc_storm_on_every_cpu_keeps_every_object_intact() {
    let report = storm(20).expect("no object handed out twice or corrupted");
    assert_eq!(report.allocs, 20 * 64 * crate::cpu::online().count() as u64);
    assert!(
        report.cross_cpu_frees > 0,
        "objects were freed on other CPUs"
    );
}
