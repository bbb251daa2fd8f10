//! Reading gateway JSON field by field, for adapter authors.
//!
//! Adapters deserialise only the fields they use, each as a borrowed
//! [`RawValue`], then read each one here, so an error names the exact field
//! and never quotes the body (which may hold card or customer data).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::ports::ParseError;

/// A JSON string, borrowed from the body unless it has escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// A string field, or `None` for an absent or `null` one; `InvalidField`
/// naming `field` for any other JSON type.
pub fn text<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, ParseError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    serde_json::from_str::<Option<Text<'a>>>(raw.get())
        .map(|text| text.map(|Text(value)| value))
        .map_err(|_| invalid(field, "expected a string"))
}

/// A nested JSON object read into `T`. The raw value is already valid JSON,
/// so the only ways to fail are not being an object or repeating a key.
pub fn nested<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    field: &'static str,
) -> Result<T, ParseError> {
    if !starts_an_object(raw.get().as_bytes()) {
        return Err(invalid(field, "expected an object"));
    }
    serde_json::from_str(raw.get()).map_err(|_| invalid(field, "has a duplicate key"))
}

/// True when `json` is an object. Serde would also fill a struct from a
/// JSON array, field by field in order; no gateway means that, so callers
/// take only objects.
pub fn starts_an_object(json: &[u8]) -> bool {
    json.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
}

/// Drops empty values: an empty reference cannot match anything, so it is
/// not stored as if it meant something.
pub fn non_empty(value: Option<Cow<'_, str>>) -> Option<String> {
    value.filter(|value| !value.is_empty()).map(Cow::into_owned)
}

/// `ParseError::InvalidField` for `field`.
pub fn invalid(field: &'static str, reason: &str) -> ParseError {
    ParseError::InvalidField {
        field,
        reason: reason.to_owned(),
    }
}

/// Says what is wrong with a body and where, without serde's message, which
/// can quote parts of the body. `expected` names what the body should be,
/// e.g. `"an event object"`.
pub fn describe(error: &serde_json::Error, expected: &str) -> String {
    let what = match error.classify() {
        Category::Syntax => "invalid JSON".to_owned(),
        Category::Eof => "unexpected end of JSON".to_owned(),
        Category::Data => format!("not {expected} (or a repeated key)"),
        Category::Io => "unreadable body".to_owned(),
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Object<'a> {
        #[serde(borrow)]
        name: Option<&'a RawValue>,
    }

    #[test]
    fn fields_are_read_or_refused_by_name() {
        let object: Object<'_> = serde_json::from_str(r#"{"name":"a\"b"}"#).unwrap();
        assert_eq!(text(object.name, "name").unwrap().as_deref(), Some("a\"b"));
        let number: Object<'_> = serde_json::from_str(r#"{"name":5}"#).unwrap();
        assert_eq!(
            text(number.name, "name"),
            Err(invalid("name", "expected a string"))
        );
        let null: Object<'_> = serde_json::from_str(r#"{"name":null}"#).unwrap();
        assert_eq!(text(null.name, "name"), Ok(None));
        assert_eq!(non_empty(Some(Cow::Borrowed(""))), None);
    }

    #[test]
    fn nested_values_must_be_objects_without_repeated_keys() {
        let raw: &RawValue = serde_json::from_str("[1]").unwrap();
        assert!(nested::<Object<'_>>(raw, "x").is_err());
        let repeated: &RawValue = serde_json::from_str(r#"{"name":"a","name":"b"}"#).unwrap();
        assert_eq!(
            nested::<Object<'_>>(repeated, "x").err(),
            Some(invalid("x", "has a duplicate key"))
        );
    }

    #[test]
    fn descriptions_never_quote_the_body() {
        let error =
            serde_json::from_str::<Object<'_>>(r#"{"name": "4242424242424242""#).unwrap_err();
        let text = describe(&error, "an event object");
        assert!(!text.contains("4242"), "{text}");
        assert!(text.starts_with("unexpected end of JSON"), "{text}");
    }
}
