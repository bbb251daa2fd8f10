//! Mangled requests for [`crate::Check::ArbitraryInputNeverPanics`]: random
//! bytes, near-misses of the valid request, JSON with hostile values in real
//! fields, hostile header values and extreme clocks, all from a fixed seed.
//!
//! It does not look at what `verify` and `parse` answer, only that they
//! answer: whether a mangled request is refused is the other checks' job.

use chrono::{DateTime, TimeDelta, Utc};
use payhook_domain::ports::GatewayAdapter;

use crate::{guarded, parse, verify, Conformance, HeaderList};

/// The seed of every run: a failure repeats on every run and machine.
const SEED: u64 = 0x7061_7968_6f6f_6b21;

/// JSON values that have broken parsers: overflowing and odd numbers,
/// wrong types, escapes, deep nesting, and amount-like text.
const HOSTILE_VALUES: [&str; 24] = [
    "null",
    "true",
    "0",
    "-0",
    "-1",
    "1e400",
    "-1e400",
    "1.5e-400",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "0.000000000000000000000000001",
    "\"\"",
    "\"9999999999999999999999.99\"",
    "\"-0.01\"",
    "\"1,50\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"XXX\"",
    "\"usd\"",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{\"a\":{\"b\":{\"c\":{\"d\":[1,2,{\"e\":null}]}}}}",
];

/// Fragments that make truncated or broken JSON.
const FRAGMENTS: [&str; 12] = [
    "{", "}", "[", "]", "\"", ":", ",", "\\", "\u{feff}", "\u{0}", "\"id\":", " ",
];

/// A SplitMix64 generator: tiny, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Modulo bias is irrelevant for test inputs.
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Calls `verify` and `parse` on `cases` mangled requests; `Err` describes
/// the first that panicked.
pub(crate) fn never_panics<C: Conformance + ?Sized>(
    suite: &C,
    adapter: &C::Adapter,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let mut rng = Rng(SEED);
    let valid_body = suite.valid_body();
    let valid_headers = suite.sign(&valid_body, now, 0);
    let mut bodies = vec![valid_body];
    if let Some(unhandled) = suite.unhandled_body() {
        bodies.push(unhandled);
    }
    let protected = suite.signature_headers();
    for case in 0..suite.arbitrary_inputs() {
        let body = body(&mut rng, &bodies);
        // A request signed for its mangled body reaches the parser through
        // a verified signature, as an attacker holding the key would.
        let signed_again = rng.one_in(8);
        let mut headers = if signed_again {
            suite.sign(&body, now, case)
        } else {
            valid_headers.clone()
        };
        mangle_headers(&mut rng, &mut headers, &protected);
        let at = clock(&mut rng, now);
        let described = || describe(case, &body, &headers, at);
        if let Err(panic) = verify(adapter, &headers, &body, at) {
            return Err(format!("verify {panic} on {}", described()));
        }
        if let Err(panic) = parse(adapter, &headers, &body) {
            return Err(format!("parse {panic} on {}", described()));
        }
        // The name is a constant, but a panicking one is still a panic.
        guarded(|| adapter.name()).map_err(|panic| format!("name {panic}"))?;
    }
    Ok(())
}

/// One body: random bytes, or one of `bases` mangled.
fn body(rng: &mut Rng, bases: &[Vec<u8>]) -> Vec<u8> {
    let base = rng.pick(bases).clone();
    match rng.below(8) {
        0 => {
            let len = rng.below(512);
            rng.bytes(len)
        }
        1 => {
            // A few bytes overwritten.
            let mut body = base;
            for _ in 0..=rng.below(8) {
                if body.is_empty() {
                    break;
                }
                let position = rng.below(body.len());
                body[position] = rng.byte();
            }
            body
        }
        2 => {
            // Cut short anywhere.
            let len = rng.below(base.len() + 1);
            base[..len].to_vec()
        }
        3 => {
            // A hostile value after a random `:`, in place of what was there.
            let colons: Vec<usize> = base
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b':')
                .map(|(position, _)| position)
                .collect();
            if colons.is_empty() {
                return base;
            }
            let start = *rng.pick(&colons) + 1;
            let end = base[start..]
                .iter()
                .position(|byte| matches!(byte, b',' | b'}' | b']'))
                .map_or(base.len(), |offset| start + offset);
            let mut body = base[..start].to_vec();
            body.extend_from_slice(rng.pick(&HOSTILE_VALUES).as_bytes());
            body.extend_from_slice(&base[end..]);
            body
        }
        4 => {
            // JSON fragments and hostile values strung together.
            let mut body = Vec::new();
            for _ in 0..=rng.below(12) {
                let piece = if rng.one_in(2) {
                    *rng.pick(&FRAGMENTS)
                } else {
                    *rng.pick(&HOSTILE_VALUES)
                };
                body.extend_from_slice(piece.as_bytes());
            }
            body
        }
        5 => {
            // A slice of the body repeated inside it.
            if base.is_empty() {
                return base;
            }
            let start = rng.below(base.len());
            let end = start + rng.below(base.len() - start + 1);
            let at = rng.below(base.len() + 1);
            let mut body = base[..at].to_vec();
            body.extend_from_slice(&base[start..end]);
            body.extend_from_slice(&base[at..]);
            body
        }
        6 => {
            // Deep nesting, past any recursion limit.
            let depth = 1 + rng.below(5_000);
            let open = if rng.one_in(2) { b'[' } else { b'{' };
            let mut body = vec![open; depth];
            if open == b'{' {
                body = b"{\"a\":".repeat(depth);
            }
            body
        }
        _ => base,
    }
}

/// A header value an attacker could send.
fn hostile_value(rng: &mut Rng, original: &str) -> String {
    match rng.below(9) {
        0 => String::new(),
        1 => {
            // Printable ASCII noise.
            let len = rng.below(200);
            (0..len)
                .map(|_| char::from(b' ' + rng.byte() % 95))
                .collect()
        }
        2 => {
            // Any characters at all, control and non-ASCII included.
            let len = rng.below(64);
            (0..len)
                .map(|_| {
                    let code = u32::try_from(rng.next() % 0x11_0000).unwrap_or(0);
                    char::from_u32(code).unwrap_or('\u{fffd}')
                })
                .collect()
        }
        3 => {
            // Far longer than any real header.
            let unit = rng.pick(&["a", "0", "=", ",", "v1=", " ", "t=1,"]);
            unit.repeat(1 + rng.below(70_000))
        }
        4 => {
            // The original cut short.
            let mut cut = rng.below(original.len() + 1);
            while !original.is_char_boundary(cut) {
                cut -= 1;
            }
            original[..cut].to_owned()
        }
        5 => format!("{original},{original}"),
        6 => {
            // Digits where digits are expected, at their limits.
            rng.pick(&[
                "0",
                "-1",
                "9223372036854775807",
                "-9223372036854775808",
                "99999999999999999999999",
                "t=9223372036854775807,v1=00",
                "t=-9223372036854775808,v1=00",
                "+262143-12-31T23:59:59Z",
                "-262144-01-01T00:00:00Z",
                "9999-12-31T23:59:60Z",
                "1970-01-01T00:00:00+23:59",
            ])
            .to_string()
        }
        7 => {
            // The original with a few ASCII characters replaced.
            let mut bytes = original.as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let position = rng.below(bytes.len());
                if bytes[position].is_ascii() {
                    bytes[position] = b' ' + rng.byte() % 95;
                }
            }
            String::from_utf8(bytes).unwrap_or_default()
        }
        _ => format!(" {original} "),
    }
}

/// Replaces, removes, repeats or adds headers of a signed request.
fn mangle_headers(rng: &mut Rng, headers: &mut HeaderList, protected: &[&'static str]) {
    for (_, value) in headers.iter_mut() {
        if rng.one_in(3) {
            *value = hostile_value(rng, value);
        }
    }
    if !headers.is_empty() && rng.one_in(8) {
        let index = rng.below(headers.len());
        headers.remove(index);
    }
    if !headers.is_empty() && rng.one_in(8) {
        // The same header twice: an adapter may read either one.
        let index = rng.below(headers.len());
        let (name, value) = headers[index].clone();
        let value = hostile_value(rng, &value);
        headers.insert(rng.below(headers.len() + 1), (name, value));
    }
    if rng.one_in(8) {
        // A signature header the request did not have, in any case.
        if let Some(name) = protected.get(rng.below(protected.len().max(1))) {
            let name = if rng.one_in(2) {
                name.to_ascii_lowercase()
            } else {
                name.to_ascii_uppercase()
            };
            let value = hostile_value(rng, "");
            headers.push((name, value));
        }
    }
}

/// The clock of one call: mostly now, sometimes the ends of time.
fn clock(rng: &mut Rng, now: DateTime<Utc>) -> DateTime<Utc> {
    match rng.below(10) {
        0 => DateTime::<Utc>::MIN_UTC,
        1 => DateTime::<Utc>::MAX_UTC,
        2 => DateTime::UNIX_EPOCH,
        3 => now + TimeDelta::days(365 * 200),
        _ => now,
    }
}

/// A short description of one input for a failure message.
fn describe(case: u32, body: &[u8], headers: &HeaderList, at: DateTime<Utc>) -> String {
    const SHOWN: usize = 120;
    let shown_body = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let shown_headers: Vec<String> = headers
        .iter()
        .map(|(name, value)| {
            let mut cut = value.len().min(SHOWN);
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{name}: {:?} ({} bytes)", &value[..cut], value.len())
        })
        .collect();
    format!(
        "arbitrary input {case}: now {at:?}, headers [{}], body of {} bytes starting {shown_body:?}",
        shown_headers.join(", "),
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic() {
        let mut first = Rng(SEED);
        let mut second = Rng(SEED);
        let a: Vec<u64> = (0..8).map(|_| first.next()).collect();
        let b: Vec<u64> = (0..8).map(|_| second.next()).collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|pair| pair[0] != pair[1]));
    }

    #[test]
    fn mangled_bodies_cover_empty_and_nested_inputs() {
        let mut rng = Rng(SEED);
        let bases = vec![br#"{"id":"evt_1","amount":1500}"#.to_vec()];
        let bodies: Vec<Vec<u8>> = (0..400).map(|_| body(&mut rng, &bases)).collect();
        assert!(bodies.iter().any(Vec::is_empty));
        assert!(bodies.iter().any(|b| b.len() > 1_000));
        assert!(bodies.iter().any(|b| b == &bases[0]));
    }

    #[test]
    fn hostile_values_are_text_of_every_shape() {
        let mut rng = Rng(SEED);
        let values: Vec<String> = (0..400)
            .map(|_| hostile_value(&mut rng, "t=1700000000,v1=abcdef"))
            .collect();
        assert!(values.iter().any(String::is_empty));
        assert!(values.iter().any(|v| v.len() > 10_000));
        assert!(values.iter().any(|v| !v.is_ascii()));
    }
}
