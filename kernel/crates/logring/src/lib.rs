//! The kernel log's ring buffer (Linux's printk ring, which `dmesg` reads): records of
//! (sequence number, level, timestamp, text) packed in a fixed array of bytes, no allocation.
//!
//! A record is a [`HEADER`]-byte header (text length, level, timestamp) followed by its text;
//! records follow each other around the array and may straddle its end. When a new record does
//! not fit, the oldest records go, whole, until it does: the newest records always survive.
//! Each record has a sequence number (0 for the first ever pushed); a reader walks the ring with
//! a [`Cursor`], which stays valid while the ring changes (a reader overtaken by the writer
//! resumes at the oldest record left, as Linux's `syslog` readers do).
//!
//! The ring has no lock of its own: the kernel keeps it in a static behind an interrupt-safe
//! spin lock (`kcore::console`).

#![no_std]

#[cfg(test)]
mod tests;

/// Bytes of a record's header: text length (2 bytes), level (1), unused (1), timestamp in
/// microseconds (8), all little-endian.
pub const HEADER: usize = 12;

/// One record as read back ([`LogRing::read`]); its text was copied into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number.
    pub seq: u64,
    /// Its level, Linux's: 0 `KERN_EMERG` to 7 `KERN_DEBUG`.
    pub level: u8,
    /// When it was logged, microseconds since boot.
    pub timestamp_us: u64,
    /// Bytes of its text copied into the buffer (all of it, or the buffer's length).
    pub len: usize,
    /// Bytes of its text in the ring (more than `len` if the buffer was too short).
    pub full_len: usize,
}

/// Where a reader is: the next record's sequence number and, while that record is in the ring,
/// its offset in the array. [`Cursor::START`] reads from the oldest record kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    seq: u64,
    offset: usize,
}

impl Cursor {
    /// A cursor at the beginning: the oldest record the ring still holds.
    pub const START: Cursor = Cursor { seq: 0, offset: 0 };

    /// The sequence number of the next record this cursor reads.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// A ring of `N` bytes of records.
pub struct LogRing<const N: usize> {
    bytes: [u8; N],
    /// Offset of the oldest record.
    head: usize,
    /// Bytes in use, from `head` on (wrapping).
    used: usize,
    /// Sequence number of the oldest record (equal to `next_seq` when the ring is empty).
    first_seq: u64,
    /// Sequence number the next record pushed gets.
    next_seq: u64,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    /// The longest text a record keeps; a longer one is cut to this.
    pub const MAX_TEXT: usize = {
        assert!(N > HEADER, "the ring must hold at least a header");
        let room = N - HEADER;
        if room < u16::MAX as usize {
            room
        } else {
            u16::MAX as usize
        }
    };

    /// An empty ring.
    pub const fn new() -> Self {
        LogRing {
            bytes: [0; N],
            head: 0,
            used: 0,
            first_seq: 0,
            next_seq: 0,
        }
    }

    /// Sequence number of the oldest record kept.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Sequence number the next record will get (the number of records ever pushed).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records kept.
    pub fn len(&self) -> usize {
        (self.next_seq - self.first_seq) as usize
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Bytes in use (headers included).
    pub fn bytes_used(&self) -> usize {
        self.used
    }

    /// Appends a record (its text cut to [`Self::MAX_TEXT`] bytes), dropping the oldest records
    /// until it fits. Returns its sequence number.
    pub fn push(&mut self, level: u8, timestamp_us: u64, text: &[u8]) -> u64 {
        let text = &text[..text.len().min(Self::MAX_TEXT)];
        let need = HEADER + text.len();
        while N - self.used < need {
            self.drop_oldest();
        }
        let mut header = [0u8; HEADER];
        header[0..2].copy_from_slice(&(text.len() as u16).to_le_bytes());
        header[2] = level;
        header[4..12].copy_from_slice(&timestamp_us.to_le_bytes());
        let at = self.wrap(self.head + self.used);
        self.write_at(at, &header);
        self.write_at(self.wrap(at + HEADER), text);
        self.used += need;
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Forgets every record (`dmesg -C`); sequence numbers go on from where they were.
    pub fn clear(&mut self) {
        self.head = self.wrap(self.head + self.used);
        self.used = 0;
        self.first_seq = self.next_seq;
    }

    /// Reads the record at `cursor` (or the oldest one kept, if the cursor's record is gone),
    /// copying its text into `buf` as far as it goes. Returns the record and the cursor of the
    /// next one, or `None` once the cursor is past the newest record.
    pub fn read(&self, cursor: Cursor, buf: &mut [u8]) -> Option<(Entry, Cursor)> {
        let cursor = if cursor.seq < self.first_seq {
            Cursor {
                seq: self.first_seq,
                offset: self.head,
            }
        } else {
            cursor
        };
        if cursor.seq >= self.next_seq {
            return None;
        }
        let mut header = [0u8; HEADER];
        self.read_at(cursor.offset, &mut header);
        let full_len = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&header[4..12]);
        let len = full_len.min(buf.len());
        self.read_at(self.wrap(cursor.offset + HEADER), &mut buf[..len]);
        let entry = Entry {
            seq: cursor.seq,
            level: header[2],
            timestamp_us: u64::from_le_bytes(ts),
            len,
            full_len,
        };
        let next = Cursor {
            seq: cursor.seq + 1,
            offset: self.wrap(cursor.offset + HEADER + full_len),
        };
        Some((entry, next))
    }

    /// A cursor after the newest record: it reads only records pushed from now on.
    pub fn end(&self) -> Cursor {
        Cursor {
            seq: self.next_seq,
            offset: self.wrap(self.head + self.used),
        }
    }

    fn drop_oldest(&mut self) {
        let mut len = [0u8; 2];
        self.read_at(self.head, &mut len);
        let size = HEADER + usize::from(u16::from_le_bytes(len));
        if size > self.used {
            // Only a ring broken by a writer that never finished (a panic's forced unlock)
            // gets here: start over rather than fail.
            self.clear();
            return;
        }
        self.head = self.wrap(self.head + size);
        self.used -= size;
        self.first_seq += 1;
    }

    fn wrap(&self, at: usize) -> usize {
        at % N
    }

    /// Copies `src` into the array from `at` on, wrapping at its end.
    fn write_at(&mut self, at: usize, src: &[u8]) {
        let first = src.len().min(N - at);
        self.bytes[at..at + first].copy_from_slice(&src[..first]);
        self.bytes[..src.len() - first].copy_from_slice(&src[first..]);
    }

    /// Fills `dst` from the array from `at` on, wrapping at its end.
    fn read_at(&self, at: usize, dst: &mut [u8]) {
        let first = dst.len().min(N - at);
        dst[..first].copy_from_slice(&self.bytes[at..at + first]);
        let rest = dst.len() - first;
        dst[first..].copy_from_slice(&self.bytes[..rest]);
    }
}

/// Linux's level names as `dmesg --level` takes them (0 `emerg` to 7 `debug`).
pub const LEVEL_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];

/// The level named `name` (`err`, `warn`, ...), as `dmesg --level` takes it.
pub fn level_by_name(name: &str) -> Option<u8> {
    LEVEL_NAMES.iter().position(|&n| n == name).map(|l| l as u8)
}

/// The levels of a comma-separated list of names (`err,warn`) as a bit mask (bit `level`), or
/// the first name that is not a level.
pub fn parse_levels(list: &str) -> Result<u8, &str> {
    let mut mask = 0u8;
    for name in list.split(',') {
        match level_by_name(name) {
            Some(level) => mask |= 1 << level,
            None => return Err(name),
        }
    }
    Ok(mask)
}
