//! Attribute value syntax: numbers and booleans.
//!
//! This is the lowest layer of the SDF front end. Every numeric attribute of every
//! element goes through [`parse_number`], so the accepted forms are the same
//! everywhere: decimal or `0x`/`0X` hexadecimal, with `_` separators ignored
//! (`0x20_0000`, `1_000`). Microkit 2.3 accepts these forms on most attributes but
//! reads irq numbers and channel/irq/vCPU ids as plain decimal; vcpos accepts both
//! forms on those too.

use std::fmt;

/// Why a number could not be read. The texts match Rust's own integer parse errors,
/// which is what Microkit prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// No digits at all (`""`, `"0x"`, `"_"`).
    Empty,
    /// A character that is not a digit of the base (`"12a"`, `"-1"`, `" 5"`).
    InvalidDigit,
    /// More than 64 bits.
    TooLarge,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberError::Empty => "cannot parse integer from empty string",
            NumberError::InvalidDigit => "invalid digit found in string",
            NumberError::TooLarge => "number too large to fit in target type",
        })
    }
}

/// Reads an unsigned 64-bit number: decimal, or hexadecimal after `0x`/`0X`.
/// Underscores are ignored anywhere. No sign and no surrounding spaces are allowed.
pub fn parse_number(text: &str) -> Result<u64, NumberError> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let mut value: u64 = 0;
    let mut seen_digit = false;
    for c in digits.chars().filter(|&c| c != '_') {
        let digit = c.to_digit(radix).ok_or(NumberError::InvalidDigit)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(NumberError::TooLarge)?;
        seen_digit = true;
    }
    if seen_digit {
        Ok(value)
    } else {
        Err(NumberError::Empty)
    }
}

/// Reads a boolean: exactly `true` or `false` (as Microkit does).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        assert_eq!(parse_number("0"), Ok(0));
        assert_eq!(parse_number("4096"), Ok(4096));
        assert_eq!(parse_number("007"), Ok(7));
        assert_eq!(parse_number("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn hexadecimal_either_prefix_case_and_digit_case() {
        assert_eq!(parse_number("0x1000"), Ok(0x1000));
        assert_eq!(parse_number("0X1000"), Ok(0x1000));
        assert_eq!(parse_number("0xdeadBEEF"), Ok(0xdead_beef));
        assert_eq!(parse_number("0xffffffffffffffff"), Ok(u64::MAX));
    }

    #[test]
    fn underscores_are_ignored_anywhere() {
        assert_eq!(parse_number("0x20_0000"), Ok(0x20_0000));
        assert_eq!(parse_number("1_000"), Ok(1000));
        assert_eq!(parse_number("_1__0_"), Ok(10));
        assert_eq!(parse_number("0x_ff"), Ok(0xff));
    }

    #[test]
    fn empty_forms() {
        assert_eq!(parse_number(""), Err(NumberError::Empty));
        assert_eq!(parse_number("0x"), Err(NumberError::Empty));
        assert_eq!(parse_number("___"), Err(NumberError::Empty));
        assert_eq!(parse_number("0x__"), Err(NumberError::Empty));
    }

    #[test]
    fn invalid_digits() {
        for bad in [
            "12a", "-1", "+1", " 5", "5 ", "0x1g", "0b101", "1.5", "x10", "0xx1", "١",
        ] {
            assert_eq!(parse_number(bad), Err(NumberError::InvalidDigit), "{bad:?}");
        }
        // Hex digits need the prefix.
        assert_eq!(parse_number("ff"), Err(NumberError::InvalidDigit));
    }

    #[test]
    fn overflow() {
        assert_eq!(parse_number("18446744073709551616"), Err(NumberError::TooLarge));
        assert_eq!(parse_number("0x1_0000_0000_0000_0000"), Err(NumberError::TooLarge));
        assert_eq!(parse_number("99999999999999999999999999"), Err(NumberError::TooLarge));
    }

    #[test]
    fn error_texts_match_rust() {
        assert_eq!(
            NumberError::Empty.to_string(),
            "".parse::<u64>().unwrap_err().to_string()
        );
        assert_eq!(
            NumberError::InvalidDigit.to_string(),
            "z".parse::<u64>().unwrap_err().to_string()
        );
        assert_eq!(
            NumberError::TooLarge.to_string(),
            "99999999999999999999".parse::<u64>().unwrap_err().to_string()
        );
    }

    #[test]
    fn booleans_are_exact() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        for bad in ["True", "FALSE", "1", "0", "yes", "", " true"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }
}
