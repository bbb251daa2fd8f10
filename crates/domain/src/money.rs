//! Exact money: an integer count of minor units and an ISO 4217 currency.
//!
//! There is no floating point here on purpose: `150.00` USD is `15000` cents,
//! and the currency's exponent (from the ISO 4217 table of `iso_currency`)
//! decides how a decimal string maps to minor units. Parsing never rounds:
//! a value with more precision than the currency has is an error.

use std::fmt;
use std::str::FromStr;

/// Why an amount or a currency could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The code is not an ISO 4217 currency.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    /// The code is ISO 4217 but has no minor unit (gold, test codes, ...).
    #[error("currency {0} has no minor unit and cannot be used for payments")]
    UnsupportedCurrency(&'static str),
    /// The text is not a plain decimal number.
    #[error("invalid amount {0:?}: expected a decimal number such as 150.00")]
    InvalidAmount(String),
    /// The amount has more decimals than the currency allows, e.g. `150.001` USD.
    #[error("amount {amount:?} has more than {exponent} decimals allowed by {currency}")]
    TooPrecise {
        /// The text as received.
        amount: String,
        /// The currency's code.
        currency: &'static str,
        /// How many decimals the currency has.
        exponent: u8,
    },
    /// The amount does not fit in 64-bit minor units.
    #[error("amount {0:?} is out of range")]
    OutOfRange(String),
}

/// An ISO 4217 currency with a minor unit (USD, EUR, JPY, KWD, ...).
///
/// Parsing accepts any letter case because Stripe sends `usd`; the canonical
/// form, and what is stored and shown, is the upper-case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    iso: iso_currency::Currency,
    exponent: u8,
}

impl Currency {
    /// Reads a three-letter code in any case; refuses codes that are not
    /// ISO 4217 or that have no minor unit (`XAU`, `XXX`).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        let iso = iso_currency::Currency::from_code(&upper)
            .ok_or_else(|| MoneyError::UnknownCurrency(truncate_for_error(code)))?;
        let exponent = iso
            .exponent()
            .and_then(|e| u8::try_from(e).ok())
            .ok_or(MoneyError::UnsupportedCurrency(iso.code()))?;
        Ok(Self { iso, exponent })
    }

    /// The upper-case ISO code, e.g. `USD`.
    pub fn code(&self) -> &'static str {
        self.iso.code()
    }

    /// Number of decimals of the minor unit: 2 for USD, 0 for JPY, 3 for KWD.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An exact amount: `minor` units of `currency` (cents for USD, yen for JPY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount already in minor units, as Stripe sends it (`15000` = 150.00 USD).
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Reads a decimal text such as `150`, `150.5` or `150.00` exactly.
    ///
    /// Returns `TooPrecise` when the text has more significant decimals than
    /// the currency (`150.001` USD), never a rounded value. Trailing zeros
    /// past the exponent are accepted (`150.000` USD is 15000 cents) since
    /// the value is still exact. Exponent notation is refused.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let invalid = || MoneyError::InvalidAmount(truncate_for_error(amount));
        let (negative, unsigned) = match amount.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, amount),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (unsigned, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || (unsigned.contains('.') && fraction.is_empty())
        {
            return Err(invalid());
        }
        let exponent = usize::from(currency.exponent);
        let (kept, dropped) = fraction.split_at(fraction.len().min(exponent));
        if dropped.bytes().any(|b| b != b'0') {
            return Err(MoneyError::TooPrecise {
                amount: truncate_for_error(amount),
                currency: currency.code(),
                exponent: currency.exponent,
            });
        }
        let out_of_range = || MoneyError::OutOfRange(truncate_for_error(amount));
        // Accumulated in i128 so that i64::MIN, whose magnitude has no i64,
        // still reads back.
        let mut magnitude: i128 = 0;
        let padding = exponent - kept.len();
        for digit in whole
            .bytes()
            .chain(kept.bytes())
            .chain(std::iter::repeat_n(b'0', padding))
        {
            magnitude = magnitude * 10 + i128::from(digit - b'0');
            if magnitude > i128::from(i64::MAX) + 1 {
                return Err(out_of_range());
            }
        }
        let signed = if negative { -magnitude } else { magnitude };
        let minor = i64::try_from(signed).map_err(|_| out_of_range())?;
        Ok(Self { minor, currency })
    }

    /// The sum of two amounts of one currency; `None` when the currencies
    /// differ or the sum does not fit, so no caller ever adds dollars to
    /// euros or wraps around.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Self {
            minor: self.minor.checked_add(other.minor)?,
            currency: self.currency,
        })
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// The count of minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// True for amounts above zero; payments and orders must have one.
    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    /// The decimal text with exactly the currency's decimals: `150.00`,
    /// `1500` for JPY, `1.500` for KWD. `Money::parse` reads it back unchanged.
    pub fn amount_string(&self) -> String {
        let exponent = usize::from(self.currency.exponent);
        let digits = self.minor.unsigned_abs().to_string();
        let sign = if self.minor < 0 { "-" } else { "" };
        if exponent == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = exponent + 1);
        let (whole, fraction) = padded.split_at(padded.len() - exponent);
        format!("{sign}{whole}.{fraction}")
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_string(), self.currency)
    }
}

/// An amount as the exact text it was written in, whether the JSON had a
/// number (`150.00`) or a string (`"150.00"`).
///
/// Deserialising a JSON number into `f64` would lose the difference between
/// `150.1` and `150.10000000000001`; keeping the text lets [`Money::parse`]
/// read it exactly with the currency's exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountText(pub String);

impl<'de> serde::Deserialize<'de> for AmountText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = <Box<serde_json::value::RawValue>>::deserialize(deserializer)?;
        let text = raw.get();
        if let Some(quoted) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            if quoted.contains('\\') {
                return Err(D::Error::custom("amount must be a plain decimal string"));
            }
            return Ok(Self(quoted.to_owned()));
        }
        if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Ok(Self(text.to_owned()));
        }
        Err(D::Error::custom(
            "amount must be a number or a decimal string",
        ))
    }
}

impl AmountText {
    /// Reads the text exactly in `currency`.
    pub fn to_money(&self, currency: Currency) -> Result<Money, MoneyError> {
        Money::parse(&self.0, currency)
    }
}

/// Error texts quote the input, so hostile input is cut to a bounded length.
fn truncate_for_error(text: &str) -> String {
    const LIMIT: usize = 40;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize)]
    struct Body {
        amount: AmountText,
    }

    #[test]
    fn json_numbers_and_strings_keep_their_exact_text() {
        let read = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.amount.0);
        assert_eq!(read(r#"{"amount": 150.00}"#).unwrap(), "150.00");
        assert_eq!(read(r#"{"amount": "150.00"}"#).unwrap(), "150.00");
        assert_eq!(read(r#"{"amount": 150}"#).unwrap(), "150");
        assert_eq!(read(r#"{"amount": 0.1}"#).unwrap(), "0.1");
        assert!(read(r#"{"amount": null}"#).is_err());
        assert!(read(r#"{"amount": true}"#).is_err());
        assert!(read(r#"{"amount": {"v": 1}}"#).is_err());
        assert!(read(r#"{"amount": "1\u0030"}"#).is_err());
    }

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn currencies_have_their_iso_exponent() {
        assert_eq!(Currency::parse("usd").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("eur").unwrap().code(), "EUR");
    }

    #[test]
    fn unknown_and_unit_less_currencies_are_refused() {
        assert_eq!(
            Currency::parse("ABC"),
            Err(MoneyError::UnknownCurrency("ABC".into()))
        );
        assert!(matches!(
            Currency::parse("XAU"),
            Err(MoneyError::UnsupportedCurrency("XAU"))
        ));
        assert!(matches!(
            Currency::parse(""),
            Err(MoneyError::UnknownCurrency(_))
        ));
    }

    #[test]
    fn decimal_text_is_read_exactly() {
        let cases = [
            ("150", "USD", 15000),
            ("150.00", "USD", 15000),
            ("150.5", "USD", 15050),
            ("150.000", "USD", 15000),
            ("0.01", "USD", 1),
            ("1500", "JPY", 1500),
            ("1.5", "KWD", 1500),
            ("-2.50", "EUR", -250),
        ];
        for (text, code, minor) in cases {
            let money = Money::parse(text, Currency::parse(code).unwrap()).unwrap();
            assert_eq!(money.minor(), minor, "{text} {code}");
        }
    }

    #[test]
    fn too_precise_amounts_are_errors_not_rounded() {
        assert!(matches!(
            Money::parse("150.001", usd()),
            Err(MoneyError::TooPrecise { exponent: 2, .. })
        ));
        let jpy = Currency::parse("JPY").unwrap();
        assert!(matches!(
            Money::parse("1500.5", jpy),
            Err(MoneyError::TooPrecise { exponent: 0, .. })
        ));
    }

    #[test]
    fn malformed_amounts_are_errors() {
        for text in [
            "", ".", "1.", ".5", "1e2", "1,50", " 1", "1 ", "+1", "--1", "0x10", "1.2.3", "NaN",
        ] {
            assert!(
                matches!(Money::parse(text, usd()), Err(MoneyError::InvalidAmount(_))),
                "{text:?} should be invalid"
            );
        }
        assert!(matches!(
            Money::parse("92233720368547758.08", usd()),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn amount_string_uses_the_currency_exponent() {
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::from_minor(15000, usd()).amount_string(), "150.00");
        assert_eq!(Money::from_minor(5, usd()).amount_string(), "0.05");
        assert_eq!(Money::from_minor(-5, usd()).amount_string(), "-0.05");
        assert_eq!(Money::from_minor(1500, jpy).amount_string(), "1500");
        assert_eq!(Money::from_minor(1500, kwd).amount_string(), "1.500");
        assert_eq!(Money::from_minor(15000, usd()).to_string(), "150.00 USD");
    }

    #[test]
    fn error_text_is_bounded() {
        let long = "9".repeat(10_000) + "x";
        let err = Money::parse(&long, usd()).unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec!["USD", "JPY", "KWD", "EUR", "CLF", "BHD"])
            .prop_map(|code| Currency::parse(code).unwrap())
    }

    proptest! {
        #[test]
        fn formatting_and_parsing_round_trip(minor in any::<i64>(), currency in any_currency()) {
            let money = Money::from_minor(minor, currency);
            prop_assert_eq!(Money::parse(&money.amount_string(), currency), Ok(money));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,30}", currency in any_currency()) {
            let _ = Money::parse(&text, currency);
        }
    }
}
