//! Indenting a stored webhook body for reading, without changing a byte of
//! what it says.
//!
//! Parsing and serialising again would rewrite numbers (`150.00` becomes
//! `150.0`) and escapes, and an operator comparing the body with the
//! gateway's dashboard must see what the gateway sent. So a body that is
//! valid JSON is re-indented token by token: whitespace between tokens is
//! replaced, everything else is copied as it is.

/// `body` indented by two spaces per level when it is valid JSON; `None`
/// otherwise (the caller shows it as it is).
pub fn pretty_json(body: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(body).ok()?;
    let mut out = String::with_capacity(body.len() + body.len() / 4);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = body.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|next| next.is_ascii_whitespace()) {
                    chars.next();
                }
                if chars
                    .peek()
                    .is_some_and(|next| *next == '}' || *next == ']')
                {
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                if !(out.ends_with('{') || out.ends_with('[')) {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::pretty_json;

    #[test]
    fn json_is_indented_with_numbers_and_escapes_untouched() {
        let body = r#"{"amount":150.00,"big":12345678901234567890123,"s":"a, b: {c}\" [d]","e":{},"f":[ ],"g":[1,{"h":null}]}"#;
        let pretty = pretty_json(body).expect("valid JSON");
        assert_eq!(
            pretty,
            r#"{
  "amount": 150.00,
  "big": 12345678901234567890123,
  "s": "a, b: {c}\" [d]",
  "e": {},
  "f": [],
  "g": [
    1,
    {
      "h": null
    }
  ]
}"#
        );
        // Re-parsed, it says the same as the body.
        let original: serde_json::Value = serde_json::from_str(body).unwrap();
        let again: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(original, again);
    }

    #[test]
    fn whitespace_is_replaced_and_non_json_is_left_alone() {
        assert_eq!(
            pretty_json("  {\n\"a\" :\t1 }  ").as_deref(),
            Some("{\n  \"a\": 1\n}")
        );
        assert_eq!(pretty_json("\"x\"").as_deref(), Some("\"x\""));
        for body in [
            "",
            "{",
            "not json",
            "{\"a\":1}}",
            "<script>alert(1)</script>",
        ] {
            assert_eq!(pretty_json(body), None, "{body}");
        }
    }
}
