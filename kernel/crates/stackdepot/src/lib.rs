//! A stack depot (Linux's `lib/stackdepot.c`): each distinct call stack is stored once, in a
//! fixed table, and named by a small [`Handle`], so that a record that wants a stack (a slab
//! object's allocation and free under `SLAB_STORE_USER`) keeps 4 bytes instead of a dozen
//! words, and the thousand objects allocated from the same place share one copy.
//!
//! Made for the allocator's own debug path, so it **never allocates and never locks**: the
//! table is a fixed array (a `static` in the kernel), and a slot is claimed with one
//! compare-and-swap and published with a release store. A slot, once published, never
//! changes, so a [`Handle`] stays valid for the depot's life and [`StackDepot::fetch`] needs
//! no lock either. When the table is full, [`StackDepot::save`] returns `None` (the record then
//! has no stack, as Linux's does when its pools run out); two CPUs saving the same new stack at
//! the same moment may store it twice, which costs a slot and nothing else.
//!
//! Lookup is open addressing with linear probing on a hash of the frames.
#![no_std]

use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Names a stored stack: its slot's index plus one (never 0, so a record can keep 0 for "no
/// stack", as Linux's `depot_stack_handle_t`).
pub type Handle = NonZeroU32;

/// Slot states.
const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const READY: u32 = 2;

/// One stored stack.
struct Slot<const DEPTH: usize> {
    /// `EMPTY`, `WRITING` (claimed, being filled) or `READY` (published, never changes again).
    state: AtomicU32,
    /// The hash of the frames and their number (low 8 bits), compared before the frames.
    key: AtomicU32,
    frames: [AtomicUsize; DEPTH],
}

impl<const DEPTH: usize> Slot<DEPTH> {
    const fn new() -> Self {
        Self {
            state: AtomicU32::new(EMPTY),
            key: AtomicU32::new(0),
            frames: [const { AtomicUsize::new(0) }; DEPTH],
        }
    }

    fn len(&self) -> usize {
        (self.key.load(Ordering::Relaxed) & 0xff) as usize
    }

    /// Whether this published slot holds exactly `frames` (`key` already matched).
    fn holds(&self, frames: &[usize]) -> bool {
        self.len() == frames.len()
            && self
                .frames
                .iter()
                .zip(frames)
                .all(|(a, &b)| a.load(Ordering::Relaxed) == b)
    }
}

/// A depot of `SLOTS` stacks of at most `DEPTH` frames each (longer stacks are cut to their
/// first `DEPTH` frames). `DEPTH` must be below 256.
pub struct StackDepot<const SLOTS: usize, const DEPTH: usize> {
    slots: [Slot<DEPTH>; SLOTS],
    /// Stacks stored (slots published).
    stored: AtomicUsize,
}

/// A stack fetched from the depot: a copy of its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack<const DEPTH: usize> {
    frames: [usize; DEPTH],
    len: usize,
}

impl<const DEPTH: usize> Stack<DEPTH> {
    /// The frames, innermost first.
    pub fn as_slice(&self) -> &[usize] {
        &self.frames[..self.len]
    }
}

impl<const SLOTS: usize, const DEPTH: usize> Default for StackDepot<SLOTS, DEPTH> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SLOTS: usize, const DEPTH: usize> StackDepot<SLOTS, DEPTH> {
    /// An empty depot (usable as a `static`).
    pub const fn new() -> Self {
        assert!(DEPTH < 256 && SLOTS > 0 && SLOTS < u32::MAX as usize);
        Self {
            slots: [const { Slot::new() }; SLOTS],
            stored: AtomicUsize::new(0),
        }
    }

    /// How many stacks are stored.
    pub fn len(&self) -> usize {
        self.stored.load(Ordering::Relaxed)
    }

    /// Whether no stack is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many stacks the depot can hold.
    pub const fn capacity(&self) -> usize {
        SLOTS
    }

    /// Stores `frames` (cut to `DEPTH`) unless an equal stack is there already, and returns
    /// its handle; `None` for an empty stack or when the table is full. Never blocks: a slot
    /// being written by another CPU is passed over.
    pub fn save(&self, frames: &[usize]) -> Option<Handle> {
        let frames = &frames[..frames.len().min(DEPTH)];
        if frames.is_empty() {
            return None;
        }
        let key = (hash(frames) & !0xff) | frames.len() as u32;
        let start = key as usize % SLOTS;
        for i in 0..SLOTS {
            let index = (start + i) % SLOTS;
            let slot = &self.slots[index];
            let mut state = slot.state.load(Ordering::Acquire);
            if state == EMPTY {
                match slot.state.compare_exchange(
                    EMPTY,
                    WRITING,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        for (to, &from) in slot.frames.iter().zip(frames) {
                            to.store(from, Ordering::Relaxed);
                        }
                        slot.key.store(key, Ordering::Relaxed);
                        // Publishes the frames and the key: a reader that sees READY
                        // (acquire) sees them.
                        slot.state.store(READY, Ordering::Release);
                        self.stored.fetch_add(1, Ordering::Relaxed);
                        return handle(index);
                    }
                    Err(now) => state = now,
                }
            }
            if state == READY && slot.key.load(Ordering::Relaxed) == key && slot.holds(frames) {
                return handle(index);
            }
        }
        None
    }

    /// The stack named by `handle`, if it names a stored one (a handle from another depot, or
    /// made up, gives `None` or another stack, never a fault).
    pub fn fetch(&self, handle: Handle) -> Option<Stack<DEPTH>> {
        let slot = self.slots.get(handle.get() as usize - 1)?;
        if slot.state.load(Ordering::Acquire) != READY {
            return None;
        }
        let len = slot.len().min(DEPTH);
        let mut frames = [0; DEPTH];
        for (to, from) in frames.iter_mut().zip(&slot.frames).take(len) {
            *to = from.load(Ordering::Relaxed);
        }
        Some(Stack { frames, len })
    }
}

/// The handle of slot `index`.
fn handle(index: usize) -> Option<Handle> {
    NonZeroU32::new(u32::try_from(index + 1).ok()?)
}

/// FNV-1a over the frames' bytes, folded to 32 bits.
fn hash(frames: &[usize]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &f in frames {
        for b in (f as u64).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests;
