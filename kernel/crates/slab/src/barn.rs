//! The barn: a per-node store of full and empty sheaves shared by the CPUs of the node.
//!
//! When a CPU's main and spare sheaves are both empty (on allocation) or both full (on free),
//! the CPU trades with the barn instead of going to the slabs: one lock acquisition moves a whole
//! sheaf of objects. The barn holds at most [`MAX_FULL_SHEAVES`] full and [`MAX_EMPTY_SHEAVES`]
//! empty sheaves, in fixed arrays, so it never allocates; when it refuses a sheaf the CPU falls
//! back to the slabs.
//!
//! Safe code: the barn stores [`SheafBox`]es, whose ownership moves in and out with them.

use crate::sheaf::SheafBox;
use crate::sync::Mutex;

/// Most full sheaves a barn keeps.
pub const MAX_FULL_SHEAVES: usize = 10;
/// Most empty sheaves a barn keeps.
pub const MAX_EMPTY_SHEAVES: usize = 10;

/// A full sheaf taken from the barn, and the caller's empty sheaf if the barn had no room for it.
pub type FullAndLeftover = (SheafBox, Option<SheafBox>);

/// Why [`Barn::replace_full_sheaf`] gave the full sheaf back.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplaceFull {
    /// The barn already holds [`MAX_FULL_SHEAVES`] full sheaves.
    Refused(SheafBox),
    /// The barn would take it but has no empty sheaf to give in exchange.
    NoEmpty(SheafBox),
}

struct BarnLists {
    full: [Option<SheafBox>; MAX_FULL_SHEAVES],
    nr_full: usize,
    empty: [Option<SheafBox>; MAX_EMPTY_SHEAVES],
    nr_empty: usize,
}

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
                full: [const { None }; MAX_FULL_SHEAVES],
                nr_full: 0,
                empty: [const { None }; MAX_EMPTY_SHEAVES],
                nr_empty: 0,
            }),
        }
    }

    /// Whether the barn's lock is held right now (see [`crate::KmemCache::reclaim`], which
    /// leaves a barn alone when it is).
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
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
    pub fn replace_empty_sheaf(&self, empty: SheafBox) -> Result<FullAndLeftover, SheafBox> {
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
    pub fn replace_full_sheaf(&self, full: SheafBox) -> Result<SheafBox, ReplaceFull> {
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
    pub fn get_full_sheaf(&self) -> Option<SheafBox> {
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
    pub fn put_full_sheaf(&self, full: SheafBox) -> Result<(), SheafBox> {
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
    pub fn get_empty_sheaf(&self) -> Option<SheafBox> {
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
    pub fn put_empty_sheaf(&self, empty: SheafBox) -> Result<(), SheafBox> {
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
    pub fn shrink(&self, mut f: impl FnMut(SheafBox)) {
        let (full, empty) = {
            let mut b = self.lock.lock();
            b.nr_full = 0;
            b.nr_empty = 0;
            (
                core::mem::replace(&mut b.full, [const { None }; MAX_FULL_SHEAVES]),
                core::mem::replace(&mut b.empty, [const { None }; MAX_EMPTY_SHEAVES]),
            )
        };
        for s in full.into_iter().chain(empty).flatten() {
            f(s);
        }
    }
}
