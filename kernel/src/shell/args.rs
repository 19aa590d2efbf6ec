//! Arguments of the shell's commands: strict numbers with limits, as a Linux tool refuses
//! `-1` or `abc` instead of guessing.

use crate::println;

/// A numeric argument: what it is called in messages, its range and its value when absent.
#[derive(Clone, Copy)]
pub(super) struct Number {
    /// Its name in the usage line (`ROUNDS`, `N`, ...).
    pub name: &'static str,
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
    /// The value when the argument is left out.
    pub default: u64,
}

/// Why an argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumberError {
    /// Not a decimal number (a sign, letters, `0x`, an empty word).
    NotANumber,
    /// Below the minimum.
    TooSmall,
    /// Above the maximum (including numbers too large for 64 bits).
    TooLarge,
}

impl Number {
    /// Parses `word`: decimal digits only, within `min..=max`.
    pub(super) fn parse(&self, word: &str) -> Result<u64, NumberError> {
        if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NumberError::NotANumber);
        }
        // Only digits: the one failure left is overflow, which is above any maximum.
        let value: u64 = word.parse().map_err(|_| NumberError::TooLarge)?;
        if value < self.min {
            Err(NumberError::TooSmall)
        } else if value > self.max {
            Err(NumberError::TooLarge)
        } else {
            Ok(value)
        }
    }

    /// The value of the single optional argument of `command` (its default when `args` is
    /// empty), or `None` after printing why it was refused, naming the limits.
    pub(super) fn only_arg(&self, command: &str, args: &[&str]) -> Option<u64> {
        match args {
            [] => Some(self.default),
            [word] => match self.parse(word) {
                Ok(value) => Some(value),
                Err(e) => {
                    let why = match e {
                        NumberError::NotANumber => "is not a decimal number",
                        NumberError::TooSmall => "is too small",
                        NumberError::TooLarge => "is too large",
                    };
                    println!(
                        "{command}: {} `{word}` {why}: give a whole number from {} to {}",
                        self.name, self.min, self.max
                    );
                    None
                }
            },
            [_, extra, ..] => {
                println!(
                    "{command}: unexpected argument `{extra}` (usage: {command} [{}])",
                    self.name
                );
                None
            }
        }
    }
}

#[crate::ktest]
fn numbers_are_decimal_digits_within_their_limits() {
    let n = Number {
        name: "N",
        min: 1,
        max: 1000,
        default: 10,
    };
    assert_eq!(n.parse("1"), Ok(1));
    assert_eq!(n.parse("1000"), Ok(1000));
    assert_eq!(n.parse("0001"), Ok(1));
    for bad in ["", "-1", "+1", "abc", "0x10", "1e3", "1 ", "١"] {
        assert_eq!(n.parse(bad), Err(NumberError::NotANumber), "{bad:?}");
    }
    assert_eq!(n.parse("0"), Err(NumberError::TooSmall));
    assert_eq!(n.parse("1001"), Err(NumberError::TooLarge));
    assert_eq!(n.parse("18446744073709551615"), Err(NumberError::TooLarge));
    assert_eq!(n.parse("99999999999999999999"), Err(NumberError::TooLarge));
    assert_eq!(n.only_arg("t", &[]), Some(10));
    assert_eq!(n.only_arg("t", &["7"]), Some(7));
    assert_eq!(n.only_arg("t", &["7", "8"]), None);
}
