//! The input format shared by the fuzz targets: a webhook call written the
//! way it travels over HTTP/1.1, so that seeds are readable and libFuzzer's
//! text mutations make sense.
//!
//! ```text
//! Stripe-Signature: t=1700000000,v1=5257a869...
//! Content-Type: application/json
//!
//! {"id": "evt_...", ...}
//! ```
//!
//! - Everything before the first blank line (`\n\n`) is the header block;
//!   everything after it is the body, byte for byte (it may contain further
//!   blank lines, NULs, invalid UTF-8...).
//! - An input that starts with `\n` has no headers, and the body is the rest.
//! - An input without a blank line is all body and has no headers, so a
//!   bare JSON file is a valid input too.
//! - Each header line is split at its first `:` into name and value; one
//!   space after the colon is dropped, nothing else is trimmed, so values
//!   with surrounding whitespace stay reachable. Lines without a `:` are
//!   skipped. Names and values that are not UTF-8 are read lossily (the
//!   `Headers` port hands out `&str` only).
//! - At most [`MAX_HEADERS`] header lines are read.

/// Header lines read per input; the rest are ignored. Real calls carry a
/// dozen or so, and more only slows the linear header lookup down.
pub const MAX_HEADERS: usize = 64;

/// A webhook call decoded from fuzz input.
#[derive(Debug, Default)]
pub struct Input<'a> {
    /// The headers, in order, repeats included.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: &'a [u8],
}

/// Decodes fuzz input; see the module documentation for the format.
pub fn split(data: &[u8]) -> Input<'_> {
    if let Some(body) = data.strip_prefix(b"\n") {
        return Input {
            headers: Vec::new(),
            body,
        };
    }
    let Some(blank) = data.windows(2).position(|pair| pair == b"\n\n") else {
        return Input {
            headers: Vec::new(),
            body: data,
        };
    };
    let (block, body) = (&data[..blank], &data[blank + 2..]);
    let headers = block
        .split(|&byte| byte == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&byte| byte == b':')?;
            let name = &line[..colon];
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            Some((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ))
        })
        .take(MAX_HEADERS)
        .collect();
    Input { headers, body }
}
