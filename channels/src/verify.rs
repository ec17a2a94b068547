//! What the inbound halves share: the platforms' signatures (HMAC-SHA256 in hex or base64, WeChat's
//! SHA-1), a constant-time comparison, and reading a JSON body field by field so that every
//! refusal names the path of the field at fault.

use crate::HookError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => Vec::new(),
    }
}

/// Whether `tag` is the HMAC-SHA256 of `data` under `key`, compared in constant time.
pub(crate) fn hmac_sha256_matches(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

/// How a platform writes the HMAC in its signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Hex,
    Base64,
}

/// Checks a signature header: `prefix` (e.g. `sha256=`, or nothing) then the HMAC-SHA256 of the
/// raw body under `key`. Missing, garbled or not matching: [`HookError::BadSignature`].
pub(crate) fn check_body_hmac(
    header: Option<&str>,
    prefix: &str,
    encoding: Encoding,
    key: &str,
    body: &[u8],
) -> Result<(), HookError> {
    let header = header.ok_or(HookError::BadSignature)?.trim();
    let encoded = header.strip_prefix(prefix).ok_or(HookError::BadSignature)?;
    let tag = match encoding {
        Encoding::Hex => hex_decode(encoded),
        Encoding::Base64 => base64_decode(encoded),
    }
    .ok_or(HookError::BadSignature)?;
    if hmac_sha256_matches(key.as_bytes(), body, &tag) {
        Ok(())
    } else {
        Err(HookError::BadSignature)
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Whether a token someone sent equals a secret, in time that depends on neither: both are
/// hashed first, so not even the secret's length shows.
pub(crate) fn secret_eq(sent: &str, secret: &str) -> bool {
    let sent = Sha256::digest(sent.as_bytes());
    let secret = Sha256::digest(secret.as_bytes());
    constant_time_eq(&sent, &secret)
}

/// WeChat's signature: SHA-1 of the parts sorted and joined, in lower-case hex.
pub(crate) fn wechat_signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex_encode(&hasher.finalize())
}

/// Whether a hex signature someone sent names the same bytes as `expected_hex`, compared in
/// constant time (either case of hex digits).
pub(crate) fn hex_signature_eq(sent: &str, expected_hex: &str) -> bool {
    match (hex_decode(sent.trim()), hex_decode(expected_hex)) {
        (Some(sent), Some(expected)) => constant_time_eq(&sent, &expected),
        _ => false,
    }
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Hex to bytes; `None` for an odd length or a character that is not a hex digit.
pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Some((nibble(*high)? << 4) | nibble(*low)?),
            _ => None,
        })
        .collect()
}

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Standard base64 (with padding) to bytes; `None` when it is not.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text.trim()).ok()
}

/// A refusal of a body: where, and what is wrong there.
pub(crate) fn malformed(path: &str, what: &str) -> HookError {
    if path.is_empty() {
        HookError::Malformed(what.to_owned())
    } else {
        HookError::Malformed(format!("{path}: {what}"))
    }
}

/// A JSON body, or [`HookError::Malformed`] saying where it stops being JSON.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, HookError> {
    serde_json::from_slice(body).map_err(|error| {
        HookError::Malformed(format!(
            "body: not JSON (line {}, column {}: {:?})",
            error.line(),
            error.column(),
            error.classify()
        ))
    })
}

/// The unit a platform counts time in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    Seconds,
    Millis,
}

/// A platform's timestamp in microseconds since the epoch; `None` when negative or out of range.
pub(crate) fn to_micros(value: i64, unit: TimeUnit) -> Option<i64> {
    if value < 0 {
        return None;
    }
    match unit {
        TimeUnit::Seconds => value.checked_mul(1_000_000),
        TimeUnit::Millis => value.checked_mul(1_000),
    }
}

/// A timestamp written as decimal digits (a JSON string or an XML element's text).
pub(crate) fn text_to_micros(text: &str, unit: TimeUnit, path: &str) -> Result<i64, HookError> {
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| malformed(path, "expected a whole number"))?;
    to_micros(value, unit).ok_or_else(|| malformed(path, "timestamp out of range"))
}

/// A place in a JSON body: the value there (`null` when absent) and its path, for errors.
#[derive(Debug, Clone)]
pub(crate) struct Json<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Json<'a> {
    pub(crate) fn root(value: &'a Value) -> Json<'a> {
        Json {
            value,
            path: String::new(),
        }
    }

    pub(crate) fn value(&self) -> &'a Value {
        self.value
    }

    /// The member `key` (`null` when missing, or when this is not an object: reading it
    /// further then reports the member as missing).
    pub(crate) fn at(&self, key: &str) -> Json<'a> {
        const NULL: &Value = &Value::Null;
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        Json {
            value: self.value.get(key).unwrap_or(NULL),
            path,
        }
    }

    pub(crate) fn is_absent(&self) -> bool {
        self.value.is_null()
    }

    fn error(&self, what: &str) -> HookError {
        if self.path.is_empty() {
            malformed("body", what)
        } else {
            malformed(&self.path, what)
        }
    }

    /// A required string.
    pub(crate) fn str(&self) -> Result<&'a str, HookError> {
        match self.value {
            Value::String(text) => Ok(text),
            Value::Null => Err(self.error("missing")),
            _ => Err(self.error("expected a string")),
        }
    }

    /// A string that may be missing (`null` counts as missing).
    pub(crate) fn opt_str(&self) -> Result<Option<&'a str>, HookError> {
        match self.value {
            Value::Null => Ok(None),
            _ => self.str().map(Some),
        }
    }

    /// A required id the platform writes as a string or as a whole number.
    pub(crate) fn id(&self) -> Result<String, HookError> {
        match self.value {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
            Value::Null => Err(self.error("missing")),
            _ => Err(self.error("expected a string or a whole number")),
        }
    }

    pub(crate) fn opt_id(&self) -> Result<Option<String>, HookError> {
        match self.value {
            Value::Null => Ok(None),
            _ => self.id().map(Some),
        }
    }

    pub(crate) fn opt_bool(&self) -> Result<Option<bool>, HookError> {
        match self.value {
            Value::Null => Ok(None),
            Value::Bool(flag) => Ok(Some(*flag)),
            _ => Err(self.error("expected true or false")),
        }
    }

    /// A required number (also accepted as a decimal string).
    pub(crate) fn f64(&self) -> Result<f64, HookError> {
        let number = match self.value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().parse::<f64>().ok(),
            Value::Null => return Err(self.error("missing")),
            _ => None,
        };
        number
            .filter(|n| n.is_finite())
            .ok_or_else(|| self.error("expected a number"))
    }

    /// A required timestamp, as a whole number or a string of digits.
    pub(crate) fn micros(&self, unit: TimeUnit) -> Result<i64, HookError> {
        let value = match self.value {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => return text_to_micros(text, unit, &self.path),
            Value::Null => return Err(self.error("missing")),
            _ => None,
        };
        let value = value.ok_or_else(|| self.error("expected a whole number"))?;
        to_micros(value, unit).ok_or_else(|| self.error("timestamp out of range"))
    }

    /// A required object.
    pub(crate) fn object(&self) -> Result<Json<'a>, HookError> {
        match self.value {
            Value::Object(_) => Ok(self.clone()),
            Value::Null => Err(self.error("missing")),
            _ => Err(self.error("expected an object")),
        }
    }

    /// An object that may be missing.
    pub(crate) fn opt_object(&self) -> Result<Option<Json<'a>>, HookError> {
        match self.value {
            Value::Null => Ok(None),
            _ => self.object().map(Some),
        }
    }

    /// The elements of an array; a missing array has none.
    pub(crate) fn items(&self) -> Result<Vec<Json<'a>>, HookError> {
        match self.value {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(index, value)| Json {
                    value,
                    path: format!("{}[{index}]", self.path),
                })
                .collect()),
            _ => Err(self.error("expected an array")),
        }
    }

    /// The elements of an array that must be there.
    pub(crate) fn required_items(&self) -> Result<Vec<Json<'a>>, HookError> {
        if self.is_absent() {
            return Err(self.error("missing"));
        }
        self.items()
    }
}

/// A location (WhatsApp's, LINE's) as `📍 name, address, latitude, longitude`: its `names`
/// members that are there and not empty, in order, then its `latitude` and `longitude`.
pub(crate) fn location_text(location: &Json, names: [&str; 2]) -> Result<String, HookError> {
    let latitude = location.at("latitude").f64()?;
    let longitude = location.at("longitude").f64()?;
    let mut parts = Vec::new();
    for key in names {
        if let Some(part) = location.at(key).opt_str()?.filter(|part| !part.is_empty()) {
            parts.push(part.to_owned());
        }
    }
    parts.push(latitude.to_string());
    parts.push(longitude.to_string());
    Ok(format!("📍 {}", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(hex_encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(hex_decode("00ABff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("é1"), None);
    }

    #[test]
    fn constant_time_eq_compares_lengths_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(secret_eq("token", "token"));
        assert!(!secret_eq("token", "token2"));
    }

    #[test]
    fn timestamps_refuse_negative_and_overflowing_values() {
        assert_eq!(
            to_micros(1_700_000_000, TimeUnit::Seconds),
            Some(1_700_000_000_000_000)
        );
        assert_eq!(to_micros(-1, TimeUnit::Millis), None);
        assert_eq!(to_micros(i64::MAX, TimeUnit::Seconds), None);
    }

    #[test]
    fn json_paths_name_the_field_at_fault() {
        let value: Value = serde_json::json!({"a": [{"b": 1}]});
        let root = Json::root(&value);
        let items = root.at("a").items().unwrap_or_default();
        let error = items.first().map(|item| item.at("b").str());
        assert_eq!(
            error,
            Some(Err(HookError::Malformed(
                "a[0].b: expected a string".into()
            )))
        );
        assert_eq!(
            root.at("c").at("d").str(),
            Err(HookError::Malformed("c.d: missing".into()))
        );
    }
}
