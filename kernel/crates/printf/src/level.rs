//! The log-level prefix of a printk format (`KERN_INFO` and friends).

/// A printk log level from the KERN_SOH (`"\x01"`) prefix.
///
/// Linux's `KERN_EMERG` is the two bytes `"\x010"`, `KERN_INFO` is `"\x016"`, and so on down to
/// `KERN_DEBUG` (`"\x017"`); `KERN_CONT` (`"\x01c"`) continues the previous line. A format
/// without a prefix gets the default level (`KERN_DEFAULT` is the empty string in Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `KERN_EMERG` (`"\x010"`): the system is unusable.
    Emerg,
    /// `KERN_ALERT` (`"\x011"`): action must be taken immediately.
    Alert,
    /// `KERN_CRIT` (`"\x012"`): critical conditions.
    Crit,
    /// `KERN_ERR` (`"\x013"`): error conditions.
    Err,
    /// `KERN_WARNING` (`"\x014"`): warning conditions.
    Warning,
    /// `KERN_NOTICE` (`"\x015"`): normal but significant condition.
    Notice,
    /// `KERN_INFO` (`"\x016"`): informational.
    Info,
    /// `KERN_DEBUG` (`"\x017"`): debug-level messages.
    Debug,
    /// No level prefix: the kernel's default message level.
    Default,
    /// `KERN_CONT` (`"\x01c"`): a continuation of the previous message.
    Cont,
}

impl Level {
    /// The level of a digit `'0'..='7'` after KERN_SOH.
    const fn from_digit(digit: u8) -> Option<Self> {
        Some(match digit {
            b'0' => Self::Emerg,
            b'1' => Self::Alert,
            b'2' => Self::Crit,
            b'3' => Self::Err,
            b'4' => Self::Warning,
            b'5' => Self::Notice,
            b'6' => Self::Info,
            b'7' => Self::Debug,
            _ => return None,
        })
    }
}

/// KERN_SOH, the "start of header" byte that introduces a level.
const SOH: u8 = 0x01;

/// Splits Linux's level prefix off a printk format: `"\x016hello"` gives
/// `(Level::Info, b"hello")`, `"\x01chello"` gives `(Level::Cont, b"hello")`, and a format with
/// no prefix comes back whole with [`Level::Default`].
///
/// This follows Linux's `printk_get_level`, `printk_skip_level` and `printk_parse_prefix`:
///
/// - only `"\x01"` followed by `'0'..='7'` or `'c'` is a prefix. KERN_SOH followed by anything
///   else (another letter, the end of the string) is not: the prefix scan stops there and those
///   bytes stay in the text, to be printed.
/// - several prefixes in a row are all skipped. The **first** digit sets the level (Linux only
///   takes a digit while the level is still `LOGLEVEL_DEFAULT`), and a `'c'` anywhere in the
///   run makes the message a continuation: the result is then [`Level::Cont`], which takes
///   precedence over a digit (Linux appends a continuation to the previous line, whose level
///   it already has).
/// - a NUL byte ends the format, as for a C string.
pub fn split_level(fmt: &[u8]) -> (Level, &[u8]) {
    let mut rest = fmt;
    let mut level = None;
    let mut cont = false;
    while let [SOH, kind, tail @ ..] = rest {
        match *kind {
            b'c' => cont = true,
            digit @ b'0'..=b'7' => {
                if level.is_none() {
                    level = Level::from_digit(digit);
                }
            }
            _ => break,
        }
        rest = tail;
    }
    let level = if cont {
        Level::Cont
    } else {
        level.unwrap_or(Level::Default)
    };
    (level, rest)
}
