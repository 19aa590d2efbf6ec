//! Unit tests of every conversion, flag and level prefix, and property tests: no input makes
//! the engine panic, the returned length is the text's, the lossy UTF-8 decoding matches
//! `String::from_utf8_lossy`, and integers follow C's rules (computed here independently).

use core::fmt;

use proptest::prelude::*;

use crate::engine::MAX_WIDTH;
use crate::sink::Sink;
use crate::{Args, Level, format, split_level};

/// One argument of a test call, at its C type.
#[derive(Clone, Debug)]
enum Arg {
    /// An `int` or `unsigned int`.
    Int(u32),
    /// A `long`, `long long`, `size_t`...
    Long(u64),
    /// A pointer for `%p`.
    Ptr(usize),
    /// A pointer to a NUL-terminated string for `%s`.
    Str(Vec<u8>),
    /// A NULL pointer.
    Null,
}

/// Where test strings "live": string `i` is at address `STR_BASE + i`.
const STR_BASE: usize = 0x1000;

/// [`Args`] over a list of [`Arg`]s, checking how the engine uses them.
struct TestArgs {
    /// The arguments, in order.
    args: Vec<Arg>,
    /// How many have been taken.
    taken: usize,
    /// The strings handed out by `next_ptr`, by address.
    strings: Vec<Vec<u8>>,
    /// `with_str` delivers strings in pieces of this many bytes.
    chunk: usize,
}

impl TestArgs {
    fn new(args: Vec<Arg>, chunk: usize) -> Self {
        Self {
            args,
            taken: 0,
            strings: Vec::new(),
            chunk,
        }
    }

    /// The next argument; past the end (only in property tests), `Int(0)`.
    fn take(&mut self) -> Arg {
        self.taken += 1;
        self.args
            .get(self.taken - 1)
            .cloned()
            .unwrap_or(Arg::Int(0))
    }
}

impl Args for TestArgs {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        match self.take() {
            Arg::Int(v) => u64::from(v),
            Arg::Long(v) => v,
            Arg::Ptr(p) => p as u64,
            Arg::Str(_) | Arg::Null => 0,
        }
    }

    fn next_ptr(&mut self) -> usize {
        match self.take() {
            Arg::Int(v) => v as usize,
            Arg::Long(v) => v as usize,
            Arg::Ptr(p) => p,
            Arg::Str(s) => {
                self.strings.push(s);
                STR_BASE + self.strings.len() - 1
            }
            Arg::Null => 0,
        }
    }

    fn with_str(&mut self, addr: usize, out: &mut dyn FnMut(&[u8])) {
        assert_ne!(addr, 0, "with_str called with NULL");
        let s: &[u8] = addr
            .checked_sub(STR_BASE)
            .and_then(|i| self.strings.get(i))
            .map_or(b"<bad address>", |s| s);
        // A C string ends at its NUL.
        let s = s.split(|&b| b == 0).next().unwrap_or(&[]);
        for piece in s.chunks(self.chunk) {
            out(piece);
        }
    }
}

/// Formats with `args` delivered whole and byte by byte; checks both agree, that the returned
/// length is the text's, and that every argument was taken exactly once.
fn run(fmt: &[u8], args: &[Arg]) -> String {
    let mut texts = Vec::new();
    for chunk in [1, 3, usize::MAX] {
        let mut test_args = TestArgs::new(args.to_vec(), chunk);
        let mut text = String::new();
        let len = format(fmt, &mut test_args, &mut text);
        assert_eq!(len, text.len(), "returned length of {fmt:?}");
        assert_eq!(test_args.taken, args.len(), "arguments taken by {fmt:?}");
        texts.push(text);
    }
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:?}");
    texts.pop().unwrap()
}

/// Asserts that `fmt` with `args` prints `expected`.
#[track_caller]
fn check(fmt: &str, args: &[Arg], expected: &str) {
    assert_eq!(run(fmt.as_bytes(), args), expected, "format {fmt:?}");
}

fn int(v: i32) -> Arg {
    Arg::Int(v as u32)
}

fn long(v: i64) -> Arg {
    Arg::Long(v as u64)
}

fn s(v: &str) -> Arg {
    Arg::Str(v.as_bytes().to_vec())
}

#[test]
fn plain_text_and_percent() {
    check("", &[], "");
    check("hello, world\n", &[], "hello, world\n");
    check("100%%", &[], "100%");
    check("%%d", &[], "%d");
    // `%%` takes no argument, even with a width.
    check("%5%|", &[], "%|");
}

#[test]
fn signed_decimal() {
    check("%d", &[int(42)], "42");
    check("%d", &[int(-42)], "-42");
    check("%d", &[int(0)], "0");
    check("%i", &[int(i32::MIN)], "-2147483648");
    check("%i", &[int(i32::MAX)], "2147483647");
    // Only the low 32 bits of an int argument count.
    check("%d", &[Arg::Long(0x1_0000_0005)], "5");
}

#[test]
fn unsigned_decimal() {
    check("%u", &[Arg::Int(u32::MAX)], "4294967295");
    check("%u", &[int(-1)], "4294967295");
    check("%lu", &[Arg::Long(u64::MAX)], "18446744073709551615");
    check("%llu", &[Arg::Long(u64::MAX)], "18446744073709551615");
    check("%zu", &[Arg::Long(4096)], "4096");
}

#[test]
fn long_signed() {
    check("%ld", &[long(-5_000_000_000)], "-5000000000");
    check("%li", &[long(i64::MAX)], "9223372036854775807");
    check("%lld", &[long(i64::MIN)], "-9223372036854775808");
    check("%lli", &[long(-1)], "-1");
    check("%zd", &[long(-1)], "-1");
    check("%jd", &[long(i64::MIN)], "-9223372036854775808");
    check("%td", &[long(-7)], "-7");
    // Linux's `L` and `Z` spellings.
    check("%Ld %Zu", &[long(-2), Arg::Long(3)], "-2 3");
}

#[test]
fn hex_and_octal() {
    check("%x", &[Arg::Int(255)], "ff");
    check("%X", &[Arg::Int(0xdead_beef)], "DEADBEEF");
    check("%x", &[int(-1)], "ffffffff");
    check(
        "%lx",
        &[Arg::Long(0xffff_8000_0000_0000)],
        "ffff800000000000",
    );
    check("%llx", &[Arg::Long(u64::MAX)], "ffffffffffffffff");
    check("%zx", &[Arg::Long(0x1000)], "1000");
    check("%o", &[Arg::Int(8)], "10");
    check("%o", &[Arg::Int(0o755)], "755");
    check("%lo", &[Arg::Long(u64::MAX)], "1777777777777777777777");
}

#[test]
fn short_and_char_lengths_truncate() {
    check("%hhd", &[Arg::Int(0x1ff)], "-1");
    check("%hhu", &[Arg::Int(0x1ff)], "255");
    check("%hhx", &[Arg::Int(0x1234)], "34");
    check("%hd", &[Arg::Int(0x1_8000)], "-32768");
    check("%hu", &[Arg::Int(0x1_2345)], "9029");
    check("%hx", &[Arg::Int(0x1_2345)], "2345");
    check("%hi", &[int(-1)], "-1");
}

#[test]
fn width_and_left_justify() {
    check("%5d|", &[int(42)], "   42|");
    check("%-5d|", &[int(42)], "42   |");
    check("%2d|", &[int(12345)], "12345|");
    check("%-8x|", &[Arg::Int(0xab)], "ab      |");
    check("%6lld|", &[long(-12)], "   -12|");
}

#[test]
fn zero_flag() {
    check("%05d", &[int(-42)], "-0042");
    check("%05d", &[int(42)], "00042");
    check("%08x", &[Arg::Int(0xbeef)], "0000beef");
    // Ignored with `-`...
    check("%-05d|", &[int(42)], "42   |");
    check("%0-5d|", &[int(42)], "42   |");
    // ...and with a precision.
    check("%08.3d|", &[int(42)], "     042|");
    check("%+06d", &[int(7)], "+00007");
}

#[test]
fn sign_flags() {
    check("%+d", &[int(5)], "+5");
    check("%+d", &[int(-5)], "-5");
    check("% d", &[int(5)], " 5");
    check("% d", &[int(-5)], "-5");
    // `+` wins over space.
    check("%+ d", &[int(5)], "+5");
    check("% +d", &[int(5)], "+5");
    // Unsigned conversions have no sign.
    check(
        "%+u % u %+x",
        &[Arg::Int(5), Arg::Int(5), Arg::Int(5)],
        "5 5 5",
    );
}

#[test]
fn alternate_form() {
    check("%#x", &[Arg::Int(255)], "0xff");
    check("%#X", &[Arg::Int(255)], "0XFF");
    check("%#llx", &[Arg::Long(u64::MAX)], "0xffffffffffffffff");
    // C: no prefix for zero.
    check("%#x", &[Arg::Int(0)], "0");
    check("%#08x", &[Arg::Int(255)], "0x0000ff");
    check("%#8x|", &[Arg::Int(255)], "    0xff|");
    check("%#-8x|", &[Arg::Int(255)], "0xff    |");
    check("%#.4x", &[Arg::Int(255)], "0x00ff");
    check("%#o", &[Arg::Int(8)], "010");
    check("%#o", &[Arg::Int(0)], "0");
    check("%#.0o", &[Arg::Int(0)], "0");
    // The precision already gives a leading zero.
    check("%#.3o", &[Arg::Int(8)], "010");
    // `#` means nothing to decimal.
    check("%#d", &[int(10)], "10");
}

#[test]
fn integer_precision() {
    check("%.3d", &[int(5)], "005");
    check("%.3d", &[int(-5)], "-005");
    check("%+.3d", &[int(5)], "+005");
    check("%5.3d|", &[int(-5)], " -005|");
    check("%-6.3d|", &[int(5)], "005   |");
    check("%.2d", &[int(12345)], "12345");
    check("%.8x", &[Arg::Int(0xff)], "000000ff");
    // A precision of 0 prints no digits for 0, but keeps the field.
    check("%.0d|", &[int(0)], "|");
    check("%.d|", &[int(0)], "|");
    check("%5.0d|", &[int(0)], "     |");
    check("%+.0d|", &[int(0)], "+|");
    check("%.0x|", &[Arg::Int(0)], "|");
    check("%.0d", &[int(3)], "3");
}

#[test]
fn star_width_and_precision() {
    check("%*d|", &[int(5), int(42)], "   42|");
    // A negative width is `-` and the width.
    check("%*d|", &[int(-4), int(42)], "42  |");
    check("%0*d|", &[int(-4), int(42)], "42  |");
    check("%.*d", &[int(3), int(5)], "005");
    // A negative precision counts as not given.
    check("%.*d|", &[int(-1), int(0)], "0|");
    check("%0.*d|", &[int(-3), int(42)], "42|");
    check("%*.*d|", &[int(6), int(3), int(-5)], "  -005|");
    check("%.*s|", &[int(2), s("hello")], "he|");
    check("%.*s|", &[int(-2), s("hello")], "hello|");
    check("%*s|", &[int(-7), s("hi")], "hi     |");
    // The most negative int does not overflow: it is clamped.
    let text = run(b"%*d", &[int(i32::MIN), int(1)]);
    assert_eq!(text.len(), MAX_WIDTH);
    assert!(text.starts_with("1 "));
}

#[test]
fn characters() {
    check("%c", &[Arg::Int(u32::from(b'A'))], "A");
    check("[%3c]", &[Arg::Int(u32::from(b'x'))], "[  x]");
    check("[%-3c]", &[Arg::Int(u32::from(b'x'))], "[x  ]");
    check("[%03c]", &[Arg::Int(u32::from(b'x'))], "[  x]");
    // Only the low byte.
    check("%c", &[Arg::Int(0x141)], "A");
    // A byte that is not text on its own.
    check("%c", &[Arg::Int(0xff)], "\u{FFFD}");
    // ...but completes a character begun in the format: "é" is C3 A9.
    assert_eq!(run(b"caf\xc3%c!", &[Arg::Int(0xa9)]), "café!");
}

#[test]
fn strings() {
    check("%s", &[s("hello")], "hello");
    check("%s", &[s("")], "");
    check("%s", &[Arg::Null], "(null)");
    check("%.2s", &[s("hello")], "he");
    check("%.10s", &[s("hello")], "hello");
    check("%.0s|", &[s("hello")], "|");
    check("%.3s", &[Arg::Null], "(nu");
    check("%8s|", &[s("hello")], "   hello|");
    check("%-8s|", &[s("hello")], "hello   |");
    // `0` pads a string with spaces.
    check("%08s|", &[s("hello")], "   hello|");
    check("%5.2s|", &[s("hello")], "   he|");
    check("%-5.2s|", &[s("hello")], "he   |");
    check("%8s|", &[Arg::Null], "  (null)|");
    check("%2s|", &[s("hello")], "hello|");
    check("<%s> <%s>", &[s("a"), s("bc")], "<a> <bc>");
    // The width counts bytes, as in C.
    check("%6s|", &[s("née")], "  née|");
    check("%s", &[Arg::Str(b"a\xffb".to_vec())], "a\u{FFFD}b");
    // A cut multi-byte character (precision in the middle of "é") is a replacement.
    check("%.2s|", &[s("né")], "n\u{FFFD}|");
    // A string ends at its NUL.
    check("%s|", &[Arg::Str(b"ab\0cd".to_vec())], "ab|");
}

#[test]
fn pointers() {
    check(
        "%p",
        &[Arg::Ptr(0xffff_8000_0000_1000)],
        "0xffff800000001000",
    );
    check("%p", &[Arg::Ptr(0x1000)], "0x0000000000001000");
    check("%p", &[Arg::Null], "0x0000000000000000");
    check("%px", &[Arg::Ptr(0xabc)], "0x0000000000000abc");
    check("%p!", &[Arg::Ptr(usize::MAX)], "0xffffffffffffffff!");
    // Other Linux extensions are not: the letter is text.
    check("%pS", &[Arg::Ptr(1)], "0x0000000000000001S");
    check("%pxx", &[Arg::Ptr(1)], "0x0000000000000001x");
    check("[%20p]", &[Arg::Ptr(1)], "[  0x0000000000000001]");
    check("[%-20p]", &[Arg::Ptr(1)], "[0x0000000000000001  ]");
    check("%.3p", &[Arg::Ptr(1)], "0x0000000000000001");
}

#[test]
fn unknown_conversions_are_text() {
    check("%q", &[], "%q");
    check("a %5q b", &[], "a %5q b");
    check("%-08.3lq|", &[], "%-08.3lq|");
    // `*` takes nothing for an unknown conversion.
    check("%*q %d", &[int(7)], "%*q 7");
    check("%n %f %lld", &[long(-1)], "%n %f -1");
    check("%lhd", &[], "%lhd");
    // `%` at the end, with or without a beginning of a specification.
    check("100%", &[], "100%");
    check("%", &[], "%");
    check("%-", &[], "%-");
    check("%5.", &[], "%5.");
    check("%ll", &[], "%ll");
    check("%.*", &[], "%.*");
    // An unknown "conversion" that is half a character is still decoded as text.
    check("%é", &[], "%é");
}

#[test]
fn nul_ends_the_format() {
    assert_eq!(run(b"ab\0%d", &[]), "ab");
    assert_eq!(run(b"%5\0d", &[]), "%5");
    assert_eq!(run(b"\0", &[]), "");
}

#[test]
fn widths_and_precisions_are_clamped() {
    assert_eq!(
        run(b"%99999999999999999999999d", &[int(1)]).len(),
        MAX_WIDTH
    );
    assert_eq!(run(b"%.99999d", &[int(1)]).len(), MAX_WIDTH);
    assert_eq!(run(b"%*d", &[int(i32::MAX), int(1)]).len(), MAX_WIDTH);
    assert_eq!(run(b"%.*x", &[int(i32::MAX), int(1)]).len(), MAX_WIDTH);
    assert_eq!(run(b"%-9999s|", &[s("a")]).len(), MAX_WIDTH + 1);
    // The precision limits a string; a huge one is no limit in practice.
    let long_text = "y".repeat(10_000);
    assert_eq!(run(b"%.99999s", &[s(&long_text)]).len(), MAX_WIDTH);
    assert_eq!(run(b"%s", &[s(&long_text)]).len(), 10_000);
}

#[test]
fn invalid_utf8_in_the_format() {
    assert_eq!(run(b"a\xffb", &[]), "a\u{FFFD}b");
    assert_eq!(run(b"\xc3", &[]), "\u{FFFD}");
    assert_eq!(run(b"\xe2\x82%d", &[int(1)]), "\u{FFFD}1");
    assert_eq!(run(b"\xe2\x82", &[]), "\u{FFFD}");
    assert_eq!(run("✓ %s ✓".as_bytes(), &[s("ok")]), "✓ ok ✓");
}

#[test]
fn mixed_format() {
    check(
        "%s: %d pages at %#lx (%u%%)\n",
        &[
            s("slab"),
            int(12),
            Arg::Long(0xffff_8880_0000_0000),
            Arg::Int(75),
        ],
        "slab: 12 pages at 0xffff888000000000 (75%)\n",
    );
}

/// A `fmt::Write` that fails once it holds `cap` bytes.
struct Bounded {
    text: String,
    cap: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.text.len() + s.len() > self.cap {
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

#[test]
fn failing_output_still_counts_everything() {
    let mut out = Bounded {
        text: String::new(),
        cap: 8,
    };
    let mut args = TestArgs::new(vec![s("abcdef"), int(12345)], usize::MAX);
    let len = format(b"%s %d", &mut args, &mut out);
    assert_eq!(len, "abcdef 12345".len());
    assert_eq!(args.taken, 2);
    // Nothing is written after the first failure.
    assert_eq!(out.text, "abcdef ");
}

#[test]
fn level_prefixes() {
    let levels = [
        Level::Emerg,
        Level::Alert,
        Level::Crit,
        Level::Err,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];
    for (digit, level) in (b'0'..).zip(levels) {
        let fmt = [1, digit, b'h', b'i'];
        assert_eq!(split_level(&fmt), (level, &b"hi"[..]));
    }
    assert_eq!(split_level(b"\x016hello"), (Level::Info, &b"hello"[..]));
    assert_eq!(split_level(b"\x01cmore"), (Level::Cont, &b"more"[..]));
    assert_eq!(split_level(b"\x013"), (Level::Err, &b""[..]));
}

#[test]
fn no_level_prefix() {
    assert_eq!(split_level(b"hello"), (Level::Default, &b"hello"[..]));
    assert_eq!(split_level(b""), (Level::Default, &b""[..]));
    // KERN_SOH followed by something else is no prefix: it stays in the text
    // (Linux's printk_get_level returns 0, printk_skip_level skips nothing).
    assert_eq!(split_level(b"\x01xhi"), (Level::Default, &b"\x01xhi"[..]));
    assert_eq!(split_level(b"\x018hi"), (Level::Default, &b"\x018hi"[..]));
    // KERN_DEFAULT used to be "\x01d"; Linux no longer knows it.
    assert_eq!(split_level(b"\x01dhi"), (Level::Default, &b"\x01dhi"[..]));
    assert_eq!(split_level(b"\x01"), (Level::Default, &b"\x01"[..]));
    assert_eq!(split_level(b"\x01\0"), (Level::Default, &b"\x01\0"[..]));
    assert_eq!(split_level(b"hi\x016"), (Level::Default, &b"hi\x016"[..]));
}

#[test]
fn several_level_prefixes() {
    // Linux's printk_parse_prefix takes a digit only while the level is still the default:
    // the first one wins.
    assert_eq!(split_level(b"\x016\x013hi"), (Level::Info, &b"hi"[..]));
    // A 'c' anywhere makes it a continuation.
    assert_eq!(split_level(b"\x01c\x016hi"), (Level::Cont, &b"hi"[..]));
    assert_eq!(split_level(b"\x016\x01chi"), (Level::Cont, &b"hi"[..]));
    assert_eq!(split_level(b"\x01c\x01chi"), (Level::Cont, &b"hi"[..]));
    // The scan stops at the first byte pair that is not a prefix.
    assert_eq!(split_level(b"\x016\x01xhi"), (Level::Info, &b"\x01xhi"[..]));
    assert_eq!(split_level(b"\x016 \x013"), (Level::Info, &b" \x013"[..]));
}

/// Format-ish bytes: mostly the characters specifications are made of.
fn format_bytes() -> impl Strategy<Value = Vec<u8>> {
    let special =
        prop::sample::select(b"%%%%-+ #0123456789.**hhllzjtLZdiuxXocsp%qn\0\x01".to_vec());
    prop::collection::vec(prop_oneof![3 => special, 1 => any::<u8>()], 0..48)
}

fn arg() -> impl Strategy<Value = Arg> {
    prop_oneof![
        any::<u32>().prop_map(Arg::Int),
        (-5000i32..5000).prop_map(int),
        any::<u64>().prop_map(Arg::Long),
        any::<usize>().prop_map(Arg::Ptr),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(Arg::Str),
        Just(Arg::Null),
    ]
}

/// The flags, width and precision of a generated integer conversion.
#[derive(Clone, Debug)]
struct IntSpec {
    flags: Vec<u8>,
    /// `None`: no width; `Some(Ok(n))`: digits; `Some(Err(n))`: `*` with argument `n`.
    width: Option<Result<usize, i32>>,
    /// As `width`, for the precision.
    precision: Option<Result<usize, i32>>,
    /// The conversion with its length modifier.
    conv: &'static str,
    value: u64,
}

fn int_spec() -> impl Strategy<Value = IntSpec> {
    let count = || {
        prop::option::of(prop_oneof![
            (0usize..30).prop_map(Ok),
            (-30i32..30).prop_map(Err),
        ])
    };
    let value = prop_oneof![
        any::<u64>(),
        0u64..20,
        Just(0),
        Just(u64::MAX),
        Just(1 << 63),
        Just(1 << 31),
    ];
    (
        prop::collection::vec(prop::sample::select(b"-0+ #".to_vec()), 0..5),
        count(),
        count(),
        prop::sample::select(vec!["d", "i", "u", "x", "X", "o", "lld", "llx", "lu", "lo"]),
        value,
    )
        .prop_map(|(flags, width, precision, conv, value)| IntSpec {
            flags,
            width,
            precision,
            conv,
            value,
        })
}

/// What C prints for `spec`, computed from C11 7.21.6.1 with Rust's formatting.
fn c_expected(spec: &IntSpec) -> String {
    let has = |f: u8| spec.flags.contains(&f);
    let mut left = has(b'-');
    let width = match spec.width {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(n)) => {
            left |= n < 0;
            n.unsigned_abs() as usize
        }
    };
    let precision = match spec.precision {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(n)) => usize::try_from(n).ok(),
    };
    let long = spec.conv.starts_with('l');
    let int = spec.value as u32;
    let (negative, digits) = match spec.conv.trim_start_matches('l') {
        "d" | "i" if long => (
            (spec.value as i64) < 0,
            (spec.value as i64).unsigned_abs().to_string(),
        ),
        "d" | "i" => ((int as i32) < 0, (int as i32).unsigned_abs().to_string()),
        "u" if long => (false, spec.value.to_string()),
        "u" => (false, int.to_string()),
        "x" if long => (false, format!("{:x}", spec.value)),
        "x" => (false, format!("{int:x}")),
        "X" => (false, format!("{int:X}")),
        "o" if long => (false, format!("{:o}", spec.value)),
        "o" => (false, format!("{int:o}")),
        other => unreachable!("{other}"),
    };
    let kind = spec.conv.chars().last().unwrap();
    let zero = digits == "0";
    let mut digits = match precision {
        Some(0) if zero => String::new(),
        Some(p) => format!("{digits:0>p$}"),
        None => digits,
    };
    if kind == 'o' && has(b'#') && !digits.starts_with('0') {
        digits.insert(0, '0');
    }
    let prefix = match kind {
        'x' if has(b'#') && !zero => "0x",
        'X' if has(b'#') && !zero => "0X",
        _ => "",
    };
    let sign = match kind {
        'd' | 'i' if negative => "-",
        'd' | 'i' if has(b'+') => "+",
        'd' | 'i' if has(b' ') => " ",
        _ => "",
    };
    if left {
        format!("{:<width$}", format!("{sign}{prefix}{digits}"))
    } else if has(b'0') && precision.is_none() {
        let fill = width.saturating_sub(sign.len() + prefix.len() + digits.len());
        format!("{sign}{prefix}{}{digits}", "0".repeat(fill))
    } else {
        format!("{:>width$}", format!("{sign}{prefix}{digits}"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes as a format, any arguments: no panic, the length returned is the text's, and
    /// `with_str` is never asked for NULL (TestArgs asserts it).
    #[test]
    fn never_panics(fmt in format_bytes(), args in prop::collection::vec(arg(), 0..8)) {
        let mut test_args = TestArgs::new(args, 3);
        let mut text = String::new();
        let len = format(&fmt, &mut test_args, &mut text);
        prop_assert_eq!(len, text.len());
        // Each specification prints at most a clamped field (plus its own text).
        prop_assert!(len <= fmt.len() * (MAX_WIDTH + 30) * 3);
    }

    /// Fully random bytes too, against a failing output.
    #[test]
    fn never_panics_on_random_bytes(
        fmt in prop::collection::vec(any::<u8>(), 0..64),
        args in prop::collection::vec(arg(), 0..8),
        cap in 0usize..64,
    ) {
        let mut text = String::new();
        let len = format(&fmt, &mut TestArgs::new(args.clone(), 1), &mut text);
        prop_assert_eq!(len, text.len());
        let mut bounded = Bounded { text: String::new(), cap };
        let bounded_len = format(&fmt, &mut TestArgs::new(args, 1), &mut bounded);
        prop_assert_eq!(bounded_len, len);
        prop_assert!(text.starts_with(&bounded.text));
    }

    /// The lossy decoding of a stream cut anywhere is that of the whole.
    #[test]
    fn sink_matches_from_utf8_lossy(
        pieces in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![any::<u8>(), prop::sample::select(vec![0xc3u8, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x80, 0x80, 0xed, 0xa0])],
                0..8,
            ),
            0..8,
        ),
    ) {
        let mut text = String::new();
        let mut sink = Sink::new(&mut text);
        for piece in &pieces {
            sink.bytes(piece);
        }
        let len = sink.finish();
        let whole = pieces.concat();
        prop_assert_eq!(&text, &String::from_utf8_lossy(&whole));
        prop_assert_eq!(len, text.len());
    }

    /// Integers with random flags, widths and precisions print what C prints.
    #[test]
    fn integers_follow_c(spec in int_spec()) {
        let mut fmt = String::from("%");
        let mut args = Vec::new();
        fmt.push_str(core::str::from_utf8(&spec.flags).unwrap());
        match spec.width {
            None => {}
            // A width of 0 would read as the `0` flag: C has no width 0 in digits either.
            Some(Ok(0)) => {}
            Some(Ok(n)) => fmt.push_str(&n.to_string()),
            Some(Err(n)) => {
                fmt.push('*');
                args.push(int(n));
            }
        }
        match spec.precision {
            None => {}
            Some(Ok(n)) => fmt.push_str(&format!(".{n}")),
            Some(Err(n)) => {
                fmt.push_str(".*");
                args.push(int(n));
            }
        }
        fmt.push_str(spec.conv);
        args.push(if spec.conv.starts_with('l') {
            Arg::Long(spec.value)
        } else {
            Arg::Int(spec.value as u32)
        });
        prop_assert_eq!(run(fmt.as_bytes(), &args), c_expected(&spec), "format {}", fmt);
    }
}
