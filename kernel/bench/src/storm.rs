//! A checked kmalloc/kfree storm on every CPU: the shell's `kmalloc-test` and an on-target test.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use slab::Gfp;

use kcore::memory::kmalloc::slab;
use kcore::rand::Rng;
use kcore::sync::SpinLock;

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

fn check(obj: &Obj) -> Result<(), StormError> {
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
        Err(StormError::Overwritten {
            ptr: obj.ptr,
            size: obj.size,
            tag: obj.tag,
        })
    }
}

/// Checks `obj` and frees it.
///
/// # Safety
/// `obj` names a live kmalloc object that its holder gives up: freed once, not used again
/// (`Obj` is `Copy`: no other copy of it may be freed).
unsafe fn check_and_free(obj: Obj) -> Result<(), StormError> {
    let checked = check(&obj);
    // SAFETY: the caller's contract (an overwritten object too: its memory is still the
    // allocator's, only its contents are wrong).
    let freed = unsafe { slab().kfree(obj.ptr as *mut u8) };
    checked?;
    freed.map_err(StormError::BadFree)
}

/// What a storm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormReport {
    /// Objects allocated in all.
    pub allocs: u64,
    /// Objects freed on another CPU than the one that allocated them.
    pub cross_cpu_frees: u64,
}

/// Why a storm failed. Allocates nothing, so it can say "out of memory" when memory is out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StormError {
    /// Memory ran out (a kmalloc, a thread, the storm's own lists).
    OutOfMemory,
    /// Ctrl-C.
    Interrupted,
    /// An object did not hold what was written into it: handed out twice, or corrupted.
    Overwritten {
        /// Its address.
        ptr: usize,
        /// Its size.
        size: usize,
        /// The tag written into it.
        tag: u64,
    },
    /// The allocator refused a free of a live object.
    BadFree(slab::SlabReport),
}

impl core::fmt::Display for StormError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StormError::OutOfMemory => f.write_str("out of memory"),
            StormError::Interrupted => f.write_str("interrupted"),
            StormError::Overwritten { ptr, size, tag } => {
                write!(
                    f,
                    "object {ptr:#x} ({size} bytes, tag {tag}) was overwritten"
                )
            }
            StormError::BadFree(r) => write!(f, "{r}"),
        }
    }
}

/// Objects a storm thread keeps live at most (its list is reserved up front).
const LIVE: usize = 96 + 64;
/// Objects a mailbox may hold: what its sender passes in one round, at most (its list is
/// reserved up front, so passing an object allocates nothing); the sender frees the rest.
const MAILBOX: usize = 64;

/// The storm of one CPU's thread: `rounds` rounds; every object it still holds when it stops
/// (done, failed or interrupted) is freed.
fn storm_thread(
    slot: usize,
    cpu: usize,
    rounds: usize,
    mailboxes: &[SpinLock<Vec<Obj>>],
    next_tag: &AtomicU64,
    cross: &AtomicU64,
    stop: &AtomicBool,
) -> Result<u64, StormError> {
    let n = mailboxes.len();
    let mut live: Vec<Obj> = Vec::new();
    live.try_reserve_exact(LIVE)
        .map_err(|_| StormError::OutOfMemory)?;
    let mut allocs = 0;
    let result = (|| {
        let mut rng = Rng::new(0x5eaf + cpu as u64);
        for _ in 0..rounds {
            if kcore::console::interrupted() {
                return Err(StormError::Interrupted);
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            for _ in 0..64 {
                let size = if rng.range(0, 15) == 0 {
                    rng.range(2049, 16384)
                } else {
                    rng.range(1, 2048)
                };
                let ptr = slab()
                    .kmalloc(size, Gfp::KERNEL)
                    .ok_or(StormError::OutOfMemory)?;
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
                let passed = rng.range(0, 3) == 0 && n > 1 && {
                    let mut mailbox = mailboxes[(slot + 1) % n].lock();
                    // Within the reserved capacity: no allocation.
                    let room = mailbox.len() < mailbox.capacity();
                    if room {
                        mailbox.push(obj);
                    }
                    room
                };
                if !passed {
                    // SAFETY: taken out of `live`, this thread's; no copy remains.
                    unsafe { check_and_free(obj) }?;
                }
            }
            loop {
                let obj = mailboxes[slot].lock().pop();
                let Some(obj) = obj else { break };
                // SAFETY: handed over by another CPU through the mailbox, which no longer
                // holds it.
                unsafe { check_and_free(obj) }?;
                cross.fetch_add(1, Ordering::Relaxed);
            }
            for obj in &live {
                check(obj)?;
            }
        }
        Ok(())
    })();
    // Whatever happened, the thread's objects go back.
    let mut freed = Ok(());
    for obj in live.drain(..) {
        // SAFETY: drained out of `live`, this thread's.
        let r = unsafe { check_and_free(obj) };
        freed = freed.and(r);
    }
    result.and(freed).map(|()| allocs)
}

/// Runs `rounds` rounds of mixed-size kmalloc/kfree on every online CPU at once. Every object
/// is filled with a tag and checked before it is freed: an object handed out twice or
/// corrupted is reported. About a quarter of the objects are passed to another CPU and freed
/// there. Out of memory or Ctrl-C stop it with an error, every object freed.
pub fn storm(rounds: usize) -> Result<StormReport, StormError> {
    let oom = |_| StormError::OutOfMemory;
    let n = kcore::cpu::online().count();
    let mut cpus: Vec<usize> = Vec::new();
    cpus.try_reserve_exact(n).map_err(oom)?;
    cpus.extend(kcore::cpu::online().map(|c| c.id).take(n));
    let mut boxes: Vec<SpinLock<Vec<Obj>>> = Vec::new();
    boxes.try_reserve_exact(cpus.len()).map_err(oom)?;
    for _ in &cpus {
        let mut mailbox = Vec::new();
        mailbox.try_reserve_exact(MAILBOX).map_err(oom)?;
        boxes.push(SpinLock::new(mailbox));
    }
    let mailboxes = Arc::try_new(boxes).map_err(|_| StormError::OutOfMemory)?;
    let next_tag = Arc::try_new(AtomicU64::new(1)).map_err(|_| StormError::OutOfMemory)?;
    let cross = Arc::try_new(AtomicU64::new(0)).map_err(|_| StormError::OutOfMemory)?;
    let stop = Arc::try_new(AtomicBool::new(false)).map_err(|_| StormError::OutOfMemory)?;
    let mut handles = Vec::new();
    handles.try_reserve_exact(cpus.len()).map_err(oom)?;
    let mut first_error = None;
    for (slot, &cpu) in cpus.iter().enumerate() {
        let (mailboxes, next_tag, cross, stopped) = (
            mailboxes.clone(),
            next_tag.clone(),
            cross.clone(),
            stop.clone(),
        );
        let spawned = kcore::sched::spawn_on(cpu, "kmalloc-storm", move || {
            storm_thread(slot, cpu, rounds, &mailboxes, &next_tag, &cross, &stopped)
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(_) => {
                // The threads started stop at their next round; nothing is left behind.
                stop.store(true, Ordering::Relaxed);
                first_error = Some(StormError::OutOfMemory);
                break;
            }
        }
    }
    let mut allocs = 0;
    for handle in handles {
        match handle.join() {
            Ok(n) => allocs += n,
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    // Objects still in mailboxes (sent after their receiver finished).
    for mailbox in mailboxes.iter() {
        loop {
            let obj = mailbox.lock().pop();
            let Some(obj) = obj else { break };
            // SAFETY: popped from a mailbox; every storm thread has finished.
            if let Err(e) = unsafe { check_and_free(obj) } {
                first_error = first_error.or(Some(e));
            }
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

#[kcore::ktest]
fn kmalloc_storm_on_every_cpu_keeps_every_object_intact() {
    let report = storm(20).expect("no object handed out twice or corrupted");
    assert_eq!(report.allocs, 20 * 64 * kcore::cpu::online().count() as u64);
    assert!(
        report.cross_cpu_frees > 0,
        "objects were freed on other CPUs"
    );
}
