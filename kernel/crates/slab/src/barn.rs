//! The barn: a per-node store of full and empty sheaves shared by the CPUs of the node.
//!
//! When a CPU's main and spare sheaves are both empty (on allocation) or both full (on free),
//! the CPU trades with the barn instead of going to the slabs: one lock acquisition moves a whole
//! sheaf of objects. The barn holds at most [`MAX_FULL_SHEAVES`] full and [`MAX_EMPTY_SHEAVES`]
//! empty sheaves, in fixed arrays, so it never allocates; when it refuses a sheaf the CPU falls
//! back to the slabs.
//!
//! Each sheaf in the barn is tagged with the CPU that handed it in, and a CPU takes back its
//! own sheaves first (the newest), before another CPU's (the oldest): on a node of several
//! CPUs, sheaves and the objects in them stay with the CPU whose cache and pages they are in
//! unless the balance of allocations and frees really moves objects between CPUs. Which sheaf
//! is handed out is all that changes: the limits, counts and statistics are Linux's.
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

/// Who handed a sheaf to the barn: a CPU id, or [`NO_OWNER`].
pub type Owner = u8;

/// The owner of a sheaf that no CPU handed in (an RCU callback's, a returned prefilled
/// sheaf's): every CPU takes it as another CPU's.
pub const NO_OWNER: Owner = Owner::MAX;

const _: () = assert!(crate::cache::MAX_CPUS < NO_OWNER as usize);

/// The owner tag of `cpu`.
pub fn owner(cpu: usize) -> Owner {
    debug_assert!(cpu < crate::cache::MAX_CPUS);
    cpu as Owner
}

/// One list of the barn: sheaves oldest first, each with the CPU that handed it in.
struct SheafStack<const N: usize> {
    sheaves: [Option<SheafBox>; N],
    owners: [Owner; N],
    nr: usize,
}

impl<const N: usize> SheafStack<N> {
    const fn new() -> Self {
        Self {
            sheaves: [const { None }; N],
            owners: [NO_OWNER; N],
            nr: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.nr >= N
    }

    /// Adds `s` as the newest sheaf; the caller checked there is room.
    fn push(&mut self, s: SheafBox, by: Owner) {
        self.sheaves[self.nr] = Some(s);
        self.owners[self.nr] = by;
        self.nr += 1;
    }

    /// Takes the newest sheaf `by` handed in, else the oldest of the others: a CPU gets back
    /// its own sheaves (their pointer arrays and objects are in its cache and on its pages)
    /// before another CPU's, and of another CPU's it takes the one that CPU is least likely to
    /// want back soon. With one CPU per node this is plain last-in first-out.
    fn take(&mut self, by: Owner) -> Option<SheafBox> {
        if self.nr == 0 {
            return None;
        }
        let i = (0..self.nr)
            .rev()
            .find(|&i| self.owners[i] == by)
            .unwrap_or(0);
        let s = self.sheaves[i].take();
        self.sheaves[i..self.nr].rotate_left(1);
        self.owners[i..self.nr].rotate_left(1);
        self.nr -= 1;
        s
    }
}

struct BarnLists {
    full: SheafStack<MAX_FULL_SHEAVES>,
    empty: SheafStack<MAX_EMPTY_SHEAVES>,
}

/// A node's barn (Linux's `struct node_barn`), on cache lines of its own: the CPUs of the node
/// write it at every trade, and nothing else should move with it.
#[repr(align(64))]
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
                full: SheafStack::new(),
                empty: SheafStack::new(),
            }),
        }
    }

    /// Number of (full, empty) sheaves held.
    pub fn counts(&self) -> (usize, usize) {
        let b = self.lock.lock();
        (b.full.nr, b.empty.nr)
    }

    /// Allocation side: trades the caller's empty sheaf for a full one
    /// (`barn_replace_empty_sheaf`); `by` is the calling CPU ([`owner`]). Returns the full
    /// sheaf and, when the barn had no room for the empty one, gives that back too so the
    /// caller can keep or free it. `Err` hands the empty sheaf back when the barn has no full
    /// sheaf.
    pub fn replace_empty_sheaf(
        &self,
        empty: SheafBox,
        by: Owner,
    ) -> Result<FullAndLeftover, SheafBox> {
        let mut b = self.lock.lock();
        let Some(full) = b.full.take(by) else {
            return Err(empty);
        };
        if b.empty.is_full() {
            Ok((full, Some(empty)))
        } else {
            b.empty.push(empty, by);
            Ok((full, None))
        }
    }

    /// Free side: trades the caller's full sheaf for an empty one (`barn_replace_full_sheaf`),
    /// under one lock. Refused when the barn already holds [`MAX_FULL_SHEAVES`]; when it has no
    /// empty sheaf to give, the full one is handed back too so the caller can allocate an
    /// empty sheaf and try [`Barn::put_full_sheaf`].
    pub fn replace_full_sheaf(&self, full: SheafBox, by: Owner) -> Result<SheafBox, ReplaceFull> {
        let mut b = self.lock.lock();
        if b.full.is_full() {
            return Err(ReplaceFull::Refused(full));
        }
        let Some(empty) = b.empty.take(by) else {
            return Err(ReplaceFull::NoEmpty(full));
        };
        b.full.push(full, by);
        Ok(empty)
    }

    /// Takes a full sheaf, if any (`barn_get_full_sheaf`).
    pub fn get_full_sheaf(&self, by: Owner) -> Option<SheafBox> {
        self.lock.lock().full.take(by)
    }

    /// Stores a full sheaf; `Err` gives it back when the barn already holds
    /// [`MAX_FULL_SHEAVES`] (`barn_put_full_sheaf`).
    pub fn put_full_sheaf(&self, full: SheafBox, by: Owner) -> Result<(), SheafBox> {
        let mut b = self.lock.lock();
        if b.full.is_full() {
            return Err(full);
        }
        b.full.push(full, by);
        Ok(())
    }

    /// Takes an empty sheaf, if any (`barn_get_empty_sheaf`).
    pub fn get_empty_sheaf(&self, by: Owner) -> Option<SheafBox> {
        self.lock.lock().empty.take(by)
    }

    /// Stores an empty sheaf; `Err` gives it back when the barn already holds
    /// [`MAX_EMPTY_SHEAVES`] (`barn_put_empty_sheaf`).
    pub fn put_empty_sheaf(&self, empty: SheafBox, by: Owner) -> Result<(), SheafBox> {
        let mut b = self.lock.lock();
        if b.empty.is_full() {
            return Err(empty);
        }
        b.empty.push(empty, by);
        Ok(())
    }

    /// Takes every sheaf out of the barn (`barn_shrink`): full ones then empty ones are passed
    /// to `f` after the lock is dropped.
    pub fn shrink(&self, mut f: impl FnMut(SheafBox)) {
        let (full, empty) = {
            let mut b = self.lock.lock();
            (
                core::mem::replace(&mut b.full, SheafStack::new()),
                core::mem::replace(&mut b.empty, SheafStack::new()),
            )
        };
        for s in full.sheaves.into_iter().chain(empty.sheaves).flatten() {
            f(s);
        }
    }
}
