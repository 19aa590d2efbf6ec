//! The barn: a per-node store of full and empty sheaves shared by the CPUs of the node.
//!
//! When a CPU's main and spare sheaves are both empty (on allocation) or both full (on free),
//! the CPU trades with the barn instead of going to the slabs: one lock acquisition moves a whole
//! sheaf of objects. The barn holds at most [`MAX_FULL_SHEAVES`] full and [`MAX_EMPTY_SHEAVES`]
//! empty sheaves, in fixed arrays, so it never allocates; when it refuses a sheaf the CPU falls
//! back to the slabs.

use core::ptr::NonNull;

use crate::sheaf::Sheaf;
use crate::sync::Mutex;

/// Most full sheaves a barn keeps.
pub const MAX_FULL_SHEAVES: usize = 10;
/// Most empty sheaves a barn keeps.
pub const MAX_EMPTY_SHEAVES: usize = 10;

/// A full sheaf taken from the barn, and the caller's empty sheaf if the barn had no room for it.
pub type FullAndLeftover = (NonNull<Sheaf>, Option<NonNull<Sheaf>>);

/// Why [`Barn::replace_full_sheaf`] gave the full sheaf back.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplaceFull {
    /// The barn already holds [`MAX_FULL_SHEAVES`] full sheaves.
    Refused(NonNull<Sheaf>),
    /// The barn would take it but has no empty sheaf to give in exchange.
    NoEmpty(NonNull<Sheaf>),
}

struct BarnLists {
    full: [Option<NonNull<Sheaf>>; MAX_FULL_SHEAVES],
    nr_full: usize,
    empty: [Option<NonNull<Sheaf>>; MAX_EMPTY_SHEAVES],
    nr_empty: usize,
}

// SAFETY: the barn owns the sheaves it stores; they are only touched by whoever takes them out
// under the lock.
unsafe impl Send for BarnLists {}

/// A node's barn (Linux's `struct node_barn`).
pub struct Barn {
    lock: Mutex<BarnLists>,
}

impl Default for Barn {
    fn default() -> Self {
        Self::new()
    }
}

impl Barn {
    /// An empty barn.
    pub fn new() -> Self {
        Self {
            lock: Mutex::new(BarnLists {
                full: [None; MAX_FULL_SHEAVES],
                nr_full: 0,
                empty: [None; MAX_EMPTY_SHEAVES],
                nr_empty: 0,
            }),
        }
    }

    /// Number of (full, empty) sheaves held.
    pub fn counts(&self) -> (usize, usize) {
        let b = self.lock.lock();
        (b.nr_full, b.nr_empty)
    }

    /// Allocation side: trades the caller's empty sheaf for a full one
    /// (`barn_replace_empty_sheaf`). Returns the full sheaf and, when the barn had no room for
    /// the empty one, gives that back too so the caller can keep or free it. `Err` hands the
    /// empty sheaf back when the barn has no full sheaf.
    pub fn replace_empty_sheaf(
        &self,
        empty: NonNull<Sheaf>,
    ) -> Result<FullAndLeftover, NonNull<Sheaf>> {
        let mut b = self.lock.lock();
        if b.nr_full == 0 {
            return Err(empty);
        }
        b.nr_full -= 1;
        let i = b.nr_full;
        let full = b.full[i].take().expect("counted full sheaf");
        if b.nr_empty < MAX_EMPTY_SHEAVES {
            let i = b.nr_empty;
            b.empty[i] = Some(empty);
            b.nr_empty += 1;
            Ok((full, None))
        } else {
            Ok((full, Some(empty)))
        }
    }

    /// Free side: trades the caller's full sheaf for an empty one (`barn_replace_full_sheaf`),
    /// under one lock. Refused when the barn already holds [`MAX_FULL_SHEAVES`]; when it has no
    /// empty sheaf to give, the full one is handed back too so the caller can allocate an
    /// empty sheaf and try [`Barn::put_full_sheaf`].
    pub fn replace_full_sheaf(&self, full: NonNull<Sheaf>) -> Result<NonNull<Sheaf>, ReplaceFull> {
        let mut b = self.lock.lock();
        if b.nr_full >= MAX_FULL_SHEAVES {
            return Err(ReplaceFull::Refused(full));
        }
        if b.nr_empty == 0 {
            return Err(ReplaceFull::NoEmpty(full));
        }
        b.nr_empty -= 1;
        let i = b.nr_empty;
        let empty = b.empty[i].take().expect("counted empty sheaf");
        let i = b.nr_full;
        b.full[i] = Some(full);
        b.nr_full += 1;
        Ok(empty)
    }

    /// Takes a full sheaf, if any (`barn_get_full_sheaf`).
    pub fn get_full_sheaf(&self) -> Option<NonNull<Sheaf>> {
        let mut b = self.lock.lock();
        if b.nr_full == 0 {
            return None;
        }
        b.nr_full -= 1;
        let i = b.nr_full;
        b.full[i].take()
    }

    /// Stores a full sheaf; `Err` gives it back when the barn already holds
    /// [`MAX_FULL_SHEAVES`] (`barn_put_full_sheaf`).
    pub fn put_full_sheaf(&self, full: NonNull<Sheaf>) -> Result<(), NonNull<Sheaf>> {
        let mut b = self.lock.lock();
        if b.nr_full >= MAX_FULL_SHEAVES {
            return Err(full);
        }
        let i = b.nr_full;
        b.full[i] = Some(full);
        b.nr_full += 1;
        Ok(())
    }

    /// Takes an empty sheaf, if any (`barn_get_empty_sheaf`).
    pub fn get_empty_sheaf(&self) -> Option<NonNull<Sheaf>> {
        let mut b = self.lock.lock();
        if b.nr_empty == 0 {
            return None;
        }
        b.nr_empty -= 1;
        let i = b.nr_empty;
        b.empty[i].take()
    }

    /// Stores an empty sheaf; `Err` gives it back when the barn already holds
    /// [`MAX_EMPTY_SHEAVES`] (`barn_put_empty_sheaf`).
    pub fn put_empty_sheaf(&self, empty: NonNull<Sheaf>) -> Result<(), NonNull<Sheaf>> {
        let mut b = self.lock.lock();
        if b.nr_empty >= MAX_EMPTY_SHEAVES {
            return Err(empty);
        }
        let i = b.nr_empty;
        b.empty[i] = Some(empty);
        b.nr_empty += 1;
        Ok(())
    }

    /// Takes every sheaf out of the barn (`barn_shrink`): full ones then empty ones are passed
    /// to `f` after the lock is dropped.
    pub fn shrink(&self, mut f: impl FnMut(NonNull<Sheaf>)) {
        let (full, nr_full, empty, nr_empty) = {
            let mut b = self.lock.lock();
            let r = (b.full, b.nr_full, b.empty, b.nr_empty);
            b.full = [None; MAX_FULL_SHEAVES];
            b.empty = [None; MAX_EMPTY_SHEAVES];
            b.nr_full = 0;
            b.nr_empty = 0;
            r
        };
        for s in full[..nr_full].iter().chain(&empty[..nr_empty]).flatten() {
            f(*s);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom explores every interleaving of CPUs trading sheaves with one barn and checks that no
    //! sheaf is lost or owned twice. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test -p sheaf-slab --release loom`.
    use super::*;
    use loom::sync::Arc;
    use loom::thread;
    use std::boxed::Box;
    use std::vec::Vec;

    fn sheaf(size: u32) -> NonNull<Sheaf> {
        NonNull::from(Box::leak(Box::new(Sheaf::header(4, size))))
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
            let mine = [freeing.join().unwrap(), allocating.join().unwrap()];
            let mut all: Vec<NonNull<Sheaf>> = mine.to_vec();
            barn.shrink(|s| all.push(s));
            // Four sheaves existed; each is in exactly one place.
            assert_eq!(all.len(), 4);
            let mut addrs: Vec<usize> = all.iter().map(|p| p.as_ptr() as usize).collect();
            addrs.sort_unstable();
            addrs.dedup();
            assert_eq!(addrs.len(), 4);
            let full: u32 = all.iter().map(|s| unsafe_size(*s)).sum();
            assert_eq!(full, 8, "objects conserved: two full sheaves of 4");
            for s in all {
                // SAFETY: every sheaf was leaked from a Box above and is owned once.
                drop(unsafe { Box::from_raw(s.as_ptr()) });
            }
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
                    thread::spawn(move || b.put_full_sheaf(sheaf(4)).is_ok())
                })
                .collect();
            let ok: usize = handles
                .into_iter()
                .map(|h| h.join().unwrap() as usize)
                .sum();
            assert_eq!(ok, 1);
            assert_eq!(barn.counts(), (MAX_FULL_SHEAVES, 0));
            barn.shrink(|s| {
                // SAFETY: leaked from a Box above.
                drop(unsafe { Box::from_raw(s.as_ptr()) })
            });
        });
    }

    fn unsafe_size(s: NonNull<Sheaf>) -> u32 {
        // SAFETY: the sheaf is a live header owned by the test.
        unsafe { s.as_ref().size }
    }
}
