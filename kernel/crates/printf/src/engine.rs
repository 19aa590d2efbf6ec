//! The format engine: parses each conversion specification and writes its field.

use crate::Args;
use crate::sink::Sink;

/// The largest field width or precision honoured: larger ones are clamped, so one conversion
/// writes at most about 4 KiB however hostile the format.
pub(crate) const MAX_WIDTH: usize = 4096;

/// Printed for a `%s` whose pointer is NULL (as Linux and glibc do).
const NULL_STR: &[u8] = b"(null)";

/// A field width or precision as written in the format.
#[derive(Clone, Copy)]
enum Count {
    /// Not given.
    None,
    /// Digits in the format (already clamped).
    Num(usize),
    /// `*`: taken from the next argument, if the conversion turns out to be valid.
    Star,
}

/// The length modifier: how wide the integer argument is.
#[derive(Clone, Copy)]
enum Length {
    /// `hh`: `char`, the `int` argument truncated to 8 bits.
    Char,
    /// `h`: `short`, the `int` argument truncated to 16 bits.
    Short,
    /// None: `int`.
    Int,
    /// `l`, `ll`, `L`, `z`, `Z`, `j`, `t`: 64 bits on x86_64.
    Long,
}

/// The flags of a conversion specification.
#[derive(Clone, Copy, Default)]
struct Flags {
    /// `-`: left-justify in the field.
    left: bool,
    /// `0`: pad numbers with zeros rather than spaces.
    zero: bool,
    /// `+`: always print a sign for signed conversions.
    plus: bool,
    /// ` `: a space where a `+` would go.
    space: bool,
    /// `#`: the alternate form (`0x` for `%x`, a leading `0` for `%o`).
    alt: bool,
}

/// A parsed conversion, its `*` arguments resolved.
struct Spec {
    /// The flags.
    flags: Flags,
    /// The minimum field width (0: none).
    width: usize,
    /// The precision, if given.
    precision: Option<usize>,
    /// The length modifier.
    length: Length,
}

/// Formats `fmt` into `sink`.
pub(crate) fn run(fmt: &[u8], args: &mut dyn Args, sink: &mut Sink<'_>) {
    // A C string ends at its NUL.
    let end = fmt.iter().position(|&b| b == 0).unwrap_or(fmt.len());
    let mut rest = fmt.get(..end).unwrap_or(fmt);
    while !rest.is_empty() {
        let text = rest.iter().position(|&b| b == b'%').unwrap_or(rest.len());
        let (literal, spec) = rest.split_at(text);
        sink.bytes(literal);
        if spec.is_empty() {
            break;
        }
        rest = conversion(spec, args, sink);
    }
}

/// Adds decimal digit `digit` to a count being parsed, clamping it to [`MAX_WIDTH`].
fn push_digit(count: usize, digit: u8) -> usize {
    count
        .saturating_mul(10)
        .saturating_add(usize::from(digit - b'0'))
        .min(MAX_WIDTH)
}

/// Parses digits at `spec[*i..]` into a count.
fn digits(spec: &[u8], i: &mut usize) -> usize {
    let mut n = 0;
    while let Some(&d @ b'0'..=b'9') = spec.get(*i) {
        n = push_digit(n, d);
        *i += 1;
    }
    n
}

/// Handles the conversion specification at the start of `spec` (which begins with `%`) and
/// returns the format after it.
fn conversion<'f>(spec: &'f [u8], args: &mut dyn Args, sink: &mut Sink<'_>) -> &'f [u8] {
    let mut i = 1;
    let mut flags = Flags::default();
    loop {
        match spec.get(i) {
            Some(b'-') => flags.left = true,
            Some(b'0') => flags.zero = true,
            Some(b'+') => flags.plus = true,
            Some(b' ') => flags.space = true,
            Some(b'#') => flags.alt = true,
            _ => break,
        }
        i += 1;
    }
    let width = if spec.get(i) == Some(&b'*') {
        i += 1;
        Count::Star
    } else {
        match digits(spec, &mut i) {
            0 => Count::None,
            n => Count::Num(n),
        }
    };
    let precision = if spec.get(i) == Some(&b'.') {
        i += 1;
        if spec.get(i) == Some(&b'*') {
            i += 1;
            Count::Star
        } else {
            // "." alone is a precision of 0.
            Count::Num(digits(spec, &mut i))
        }
    } else {
        Count::None
    };
    let length = match (spec.get(i), spec.get(i + 1)) {
        (Some(b'h'), Some(b'h')) => {
            i += 2;
            Length::Char
        }
        (Some(b'h'), _) => {
            i += 1;
            Length::Short
        }
        (Some(b'l'), Some(b'l')) => {
            i += 2;
            Length::Long
        }
        (Some(b'l' | b'L' | b'z' | b'Z' | b'j' | b't'), _) => {
            i += 1;
            Length::Long
        }
        _ => Length::Int,
    };

    let Some(&conv) = spec.get(i) else {
        // The format ends inside the specification: print it as it is.
        sink.bytes(spec);
        return &[];
    };
    let mut rest = spec.get(i + 1..).unwrap_or(&[]);
    match conv {
        b'%' => sink.bytes(b"%"),
        b'd' | b'i' | b'u' | b'x' | b'X' | b'o' | b'c' | b's' | b'p' => {
            let spec = resolve(flags, width, precision, length, args);
            match conv {
                b'c' => {
                    // An int argument; its low byte is the character.
                    let c = args.next_u32().to_le_bytes()[0];
                    field(sink, &spec, &[c]);
                }
                b's' => string(sink, &spec, args),
                b'p' => {
                    // `%px` (Linux's "print the raw address") is the same as `%p` here.
                    if rest.first() == Some(&b'x') {
                        rest = rest.get(1..).unwrap_or(&[]);
                    }
                    pointer(sink, &spec, args.next_ptr());
                }
                _ => integer(sink, &spec, conv, args),
            }
        }
        // Unknown: printed literally, and no argument consumed.
        _ => sink.bytes(spec.get(..=i).unwrap_or(spec)),
    }
    rest
}

/// Takes the `*` width and precision from the arguments, in that order (as C does).
fn resolve(
    mut flags: Flags,
    width: Count,
    precision: Count,
    length: Length,
    args: &mut dyn Args,
) -> Spec {
    let width = match width {
        Count::None => 0,
        Count::Num(n) => n,
        Count::Star => {
            let w = args.next_u32().cast_signed();
            // A negative width is the `-` flag and a positive width.
            if w < 0 {
                flags.left = true;
            }
            usize::try_from(w.unsigned_abs())
                .unwrap_or(MAX_WIDTH)
                .min(MAX_WIDTH)
        }
    };
    let precision = match precision {
        Count::None => None,
        Count::Num(n) => Some(n),
        // A negative precision is taken as if it were omitted (C11 7.21.6.1).
        Count::Star => usize::try_from(args.next_u32().cast_signed())
            .ok()
            .map(|p| p.min(MAX_WIDTH)),
    };
    Spec {
        flags,
        width,
        precision,
        length,
    }
}

/// Writes `n` copies of `byte` (a space or `'0'`).
fn pad(sink: &mut Sink<'_>, byte: u8, mut n: usize) {
    const SPACES: [u8; 64] = [b' '; 64];
    const ZEROS: [u8; 64] = [b'0'; 64];
    let chunk: &[u8] = if byte == b'0' { &ZEROS } else { &SPACES };
    while n > 0 {
        let now = n.min(chunk.len());
        sink.bytes(chunk.get(..now).unwrap_or(chunk));
        n -= now;
    }
}

/// Writes `bytes` in a field of the spec's width, padded with spaces.
fn field(sink: &mut Sink<'_>, spec: &Spec, bytes: &[u8]) {
    let padding = spec.width.saturating_sub(bytes.len());
    if !spec.flags.left {
        pad(sink, b' ', padding);
    }
    sink.bytes(bytes);
    if spec.flags.left {
        pad(sink, b' ', padding);
    }
}

/// `%s`: the NUL-terminated string at the next pointer argument, at most `precision` bytes.
fn string(sink: &mut Sink<'_>, spec: &Spec, args: &mut dyn Args) {
    let addr = args.next_ptr();
    let limit = spec.precision.unwrap_or(usize::MAX);
    if addr == 0 {
        let shown = NULL_STR
            .get(..limit.min(NULL_STR.len()))
            .unwrap_or(NULL_STR);
        field(sink, spec, shown);
        return;
    }
    // Right-justified, the padding goes first, so the length must be known first: the string
    // is read twice (once to measure it, once to print it) rather than copied.
    if spec.width > 0 && !spec.flags.left {
        let mut len = 0usize;
        args.with_str(addr, &mut |bytes| len = len.saturating_add(bytes.len()));
        pad(sink, b' ', spec.width.saturating_sub(len.min(limit)));
    }
    let mut left = limit;
    args.with_str(addr, &mut |bytes| {
        let shown = bytes.get(..left.min(bytes.len())).unwrap_or(bytes);
        sink.bytes(shown);
        left -= shown.len();
    });
    if spec.flags.left {
        pad(sink, b' ', spec.width.saturating_sub(limit - left));
    }
}

/// `%p`: `0x` and the address in 16 lowercase hex digits (no hashing: Sheaf is a teaching
/// kernel, and the address is what the reader wants to see).
fn pointer(sink: &mut Sink<'_>, spec: &Spec, addr: usize) {
    let mut buf = [0u8; 18];
    buf[0] = b'0';
    buf[1] = b'x';
    let addr = addr as u64;
    for (k, slot) in buf[2..].iter_mut().enumerate() {
        let nibble = (addr >> (60 - 4 * k)) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    field(sink, spec, &buf);
}

/// `%d %i %u %x %X %o` with C's rules for flags, width and precision.
fn integer(sink: &mut Sink<'_>, spec: &Spec, conv: u8, args: &mut dyn Args) {
    let signed = matches!(conv, b'd' | b'i');
    // Fetch the argument at its C type, then widen: truncation as C's conversions do.
    let (negative, magnitude) = if signed {
        let v: i64 = match spec.length {
            Length::Char => i64::from(args.next_u32() as u8 as i8),
            Length::Short => i64::from(args.next_u32() as u16 as i16),
            Length::Int => i64::from(args.next_u32().cast_signed()),
            Length::Long => args.next_u64().cast_signed(),
        };
        (v < 0, v.unsigned_abs())
    } else {
        let v: u64 = match spec.length {
            Length::Char => u64::from(args.next_u32() as u8),
            Length::Short => u64::from(args.next_u32() as u16),
            Length::Int => u64::from(args.next_u32()),
            Length::Long => args.next_u64(),
        };
        (false, v)
    };
    let (base, table): (u64, &[u8; 16]) = match conv {
        b'x' => (16, b"0123456789abcdef"),
        b'X' => (16, b"0123456789ABCDEF"),
        b'o' => (8, b"0123456789abcdef"),
        _ => (10, b"0123456789abcdef"),
    };

    // The digits, from the end of the buffer (u64::MAX has 22 octal digits).
    let mut buf = [0u8; 22];
    let mut start = buf.len();
    let mut v = magnitude;
    // C: a precision of 0 prints no digits at all for the value 0.
    if !(magnitude == 0 && spec.precision == Some(0)) {
        loop {
            start -= 1;
            buf[start] = table[(v % base) as usize];
            v /= base;
            if v == 0 {
                break;
            }
        }
    }
    let digits = &buf[start..];

    let sign: &[u8] = match (signed, negative) {
        (true, true) => b"-",
        (true, false) if spec.flags.plus => b"+",
        (true, false) if spec.flags.space => b" ",
        _ => b"",
    };
    let prefix: &[u8] = match conv {
        // C: the 0x prefix only for a nonzero value (Linux prints "0x0" for zero).
        b'x' if spec.flags.alt && magnitude != 0 => b"0x",
        b'X' if spec.flags.alt && magnitude != 0 => b"0X",
        _ => b"",
    };
    // The precision is a minimum number of digits.
    let mut zeros = spec.precision.map_or(0, |p| p.saturating_sub(digits.len()));
    // `%#o`: raise the precision just enough for the first digit to be 0.
    if conv == b'o' && spec.flags.alt && zeros == 0 && digits.first() != Some(&b'0') {
        zeros = 1;
    }
    let mut len = sign.len() + prefix.len() + zeros + digits.len();
    // `0` fills the field with zeros after the sign and prefix; ignored with `-` or a precision.
    if spec.flags.zero && !spec.flags.left && spec.precision.is_none() {
        zeros += spec.width.saturating_sub(len);
        len = len.max(spec.width);
    }
    let padding = spec.width.saturating_sub(len);
    if !spec.flags.left {
        pad(sink, b' ', padding);
    }
    sink.bytes(sign);
    sink.bytes(prefix);
    pad(sink, b'0', zeros);
    sink.bytes(digits);
    if spec.flags.left {
        pad(sink, b' ', padding);
    }
}
