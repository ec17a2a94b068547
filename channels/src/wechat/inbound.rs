//! Reading WeChat Official Account webhooks: plain XML, or safe mode's AES-encrypted XML.

use crate::verify::{TimeUnit, hex_signature_eq, malformed, text_to_micros, wechat_signature};
use crate::{
    Account, Challenge, HookError, HookRequest, InboundMessage, Incoming, MediaRef, MediaSource,
    Profile, Secrets,
};
use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};

/// WeChat's base64: the `EncodingAESKey` is 43 random characters, so the last one may carry
/// bits a strict decoder refuses.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Safe mode pads to a multiple of 32 bytes (PKCS#7 values 1..=32), not AES's block of 16.
const PAD_BLOCK: u8 = 32;

/// Answers WeChat's subscription check: `GET ?signature&timestamp&nonce&echostr` is answered
/// with `echostr` when `signature` is the SHA-1 of the sorted token, timestamp and nonce.
pub fn verify_subscription(req: &HookRequest, secrets: &Secrets) -> Result<Challenge, HookError> {
    let mut params = Vec::with_capacity(4);
    for name in ["signature", "timestamp", "nonce", "echostr"] {
        params.push(req.query(name).ok_or_else(|| malformed(name, "missing"))?);
    }
    let [signature, timestamp, nonce, echostr] = params[..] else {
        return Err(malformed("query", "missing parameters"));
    };
    let token = secrets.require("token")?;
    if !hex_signature_eq(signature, &wechat_signature(&[token, timestamp, nonce])) {
        return Err(HookError::VerificationRefused);
    }
    Ok(Challenge {
        content_type: "text/plain",
        body: echostr.to_owned(),
    })
}

/// Checks a `POST`'s query: `signature` over the token, `timestamp` and `nonce`, and in safe
/// mode (`encrypt_type=aes`) also `msg_signature` over those and the body's `Encrypt`.
pub fn verify(req: &HookRequest, secrets: &Secrets) -> Result<(), HookError> {
    let token = secrets.require("token")?;
    let signature = req.query("signature").ok_or(HookError::BadSignature)?;
    let timestamp = req.query("timestamp").ok_or(HookError::BadSignature)?;
    let nonce = req.query("nonce").ok_or(HookError::BadSignature)?;
    if !hex_signature_eq(signature, &wechat_signature(&[token, timestamp, nonce])) {
        return Err(HookError::BadSignature);
    }
    if safe_mode(req) {
        let msg_signature = req.query("msg_signature").ok_or(HookError::BadSignature)?;
        let document = document(&req.body)?;
        let encrypted = Element::root(&document, "xml")?.required("Encrypt")?;
        let expected = wechat_signature(&[token, timestamp, nonce, encrypted]);
        if !hex_signature_eq(msg_signature, &expected) {
            return Err(HookError::BadSignature);
        }
    }
    Ok(())
}

/// What a webhook body says, decrypted first in safe mode. A body for another official account
/// (`ToUserName`) says nothing to this one; events other than (un)subscribing are left out.
pub fn parse(
    account: &Account,
    secrets: &Secrets,
    req: &HookRequest,
) -> Result<Vec<Incoming>, HookError> {
    if safe_mode(req) {
        let outer = document(&req.body)?;
        let encrypted = Element::root(&outer, "xml")?.required("Encrypt")?;
        let key = secrets.require("encoding_aes_key")?;
        let plain = decrypt(key, encrypted, account.id("app_id"))?;
        let inner = document(&plain)?;
        read(account, &Element::root(&inner, "Encrypt.xml")?)
    } else {
        let document = document(&req.body)?;
        read(account, &Element::root(&document, "xml")?)
    }
}

fn safe_mode(req: &HookRequest) -> bool {
    req.query("encrypt_type")
        .is_some_and(|kind| kind.eq_ignore_ascii_case("aes"))
}

fn document(body: &[u8]) -> Result<roxmltree::Document<'_>, HookError> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("body", "not UTF-8"))?;
    roxmltree::Document::parse(text)
        .map_err(|error| HookError::Malformed(format!("body: not XML ({error})")))
}

/// The `<xml>` element of a message, read child by child.
struct Element<'a, 'input> {
    node: roxmltree::Node<'a, 'input>,
    path: &'static str,
}

impl<'a, 'input> Element<'a, 'input> {
    fn root(
        document: &'a roxmltree::Document<'input>,
        path: &'static str,
    ) -> Result<Element<'a, 'input>, HookError> {
        let node = document.root_element();
        if node.tag_name().name() != "xml" {
            return Err(malformed("body", "the root element is not <xml>"));
        }
        Ok(Element { node, path })
    }

    fn child(&self, name: &str) -> Option<roxmltree::Node<'a, 'input>> {
        self.node
            .children()
            .find(|child| child.is_element() && child.tag_name().name() == name)
    }

    /// The text of a child that may be missing or blank, as sent (`Encrypt` is signed as is).
    fn optional(&self, name: &str) -> Option<&'a str> {
        self.child(name)
            .and_then(|child| child.text())
            .filter(|text| !text.trim().is_empty())
    }

    /// The text of a child that must be there, not empty.
    fn required(&self, name: &str) -> Result<&'a str, HookError> {
        self.optional(name)
            .ok_or_else(|| malformed(&format!("{}.{name}", self.path), "missing"))
    }

    fn number(&self, name: &str) -> Result<f64, HookError> {
        self.required(name)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| malformed(&format!("{}.{name}", self.path), "expected a number"))
    }
}

fn read(account: &Account, xml: &Element) -> Result<Vec<Incoming>, HookError> {
    let to = xml.required("ToUserName")?;
    if to != account.id("original_id") {
        return Ok(Vec::new());
    }
    let from = xml.required("FromUserName")?;
    let created = xml.required("CreateTime")?;
    let at_micros = text_to_micros(
        created,
        TimeUnit::Seconds,
        &format!("{}.CreateTime", xml.path),
    )?;
    let kind = xml.required("MsgType")?;
    let profile = Profile {
        user_id: from.to_owned(),
        ..Profile::default()
    };
    if kind == "event" {
        let followed = match xml.required("Event")? {
            "subscribe" => true,
            "unsubscribe" => false,
            _ => return Ok(Vec::new()),
        };
        return Ok(vec![Incoming::Follow {
            user: profile,
            followed,
            at_micros,
            // Events have no MsgId: WeChat names the sender and the second as their identity.
            event_id: Some(format!("{from}{created}")),
        }]);
    }
    let media = |media_kind: &str, content_type: Option<String>| -> Result<MediaRef, HookError> {
        Ok(MediaRef {
            kind: media_kind.to_owned(),
            source: MediaSource::WechatMedia(xml.required("MediaId")?.to_owned()),
            name: None,
            content_type,
        })
    };
    let mut text = String::new();
    let mut files = Vec::new();
    let message_id = match kind {
        "text" => {
            text = xml.required("Content")?.to_owned();
            xml.required("MsgId")?.to_owned()
        }
        "image" => {
            // The media id outlives `PicUrl` and is fetched the same way as the other files.
            let source = match (xml.optional("MediaId"), xml.optional("PicUrl")) {
                (Some(id), _) => MediaSource::WechatMedia(id.to_owned()),
                (None, Some(url)) => MediaSource::Url(url.to_owned()),
                (None, None) => return Err(malformed(&format!("{}.MediaId", xml.path), "missing")),
            };
            files.push(MediaRef {
                kind: "image".to_owned(),
                source,
                name: None,
                content_type: None,
            });
            xml.required("MsgId")?.to_owned()
        }
        "voice" => {
            let content_type = xml.optional("Format").and_then(voice_content_type);
            files.push(media("audio", content_type)?);
            text = xml.optional("Recognition").unwrap_or_default().to_owned();
            xml.required("MsgId")?.to_owned()
        }
        "video" | "shortvideo" => {
            files.push(media("video", None)?);
            xml.required("MsgId")?.to_owned()
        }
        "location" => {
            let latitude = xml.number("Location_X")?;
            let longitude = xml.number("Location_Y")?;
            text = match xml.optional("Label") {
                Some(label) => format!("📍 {label}, {latitude}, {longitude}"),
                None => format!("📍 {latitude}, {longitude}"),
            };
            xml.required("MsgId")?.to_owned()
        }
        "link" => {
            let lines: Vec<&str> = ["Title", "Description", "Url"]
                .into_iter()
                .filter_map(|name| xml.optional(name))
                .collect();
            text = format!("🔗 {}", lines.join("\n"));
            xml.required("MsgId")?.to_owned()
        }
        other => {
            text = format!("[unsupported message type: {other}]");
            xml.optional("MsgId")
                .map_or_else(|| format!("{from}{created}"), str::to_owned)
        }
    };
    Ok(vec![Incoming::Message(InboundMessage {
        platform_message_id: message_id,
        from: profile,
        at_micros,
        text,
        media: files,
        reply_token: None,
        kind: kind.to_owned(),
    })])
}

fn voice_content_type(format: &str) -> Option<String> {
    match format.to_ascii_lowercase().as_str() {
        "amr" => Some("audio/amr".to_owned()),
        "speex" => Some("audio/speex".to_owned()),
        "mp3" => Some("audio/mpeg".to_owned()),
        _ => None,
    }
}

/// Safe mode's `Encrypt`: AES-256-CBC under `base64(EncodingAESKey + "=")`, the key's first 16
/// bytes as the IV, padded to 32 bytes; inside, 16 random bytes, the message's length (4 bytes,
/// big-endian), the message, and the AppID it is for.
fn decrypt(encoding_aes_key: &str, encrypted: &str, app_id: &str) -> Result<Vec<u8>, HookError> {
    let not_configured = HookError::NotConfigured("encoding_aes_key");
    let key = LENIENT_BASE64
        .decode(format!("{}=", encoding_aes_key.trim()))
        .map_err(|_| not_configured.clone())?;
    if key.len() != 32 {
        return Err(not_configured);
    }
    let iv = key.get(..16).ok_or_else(|| not_configured.clone())?;
    let decryptor =
        cbc::Decryptor::<Aes256>::new_from_slices(&key, iv).map_err(|_| not_configured.clone())?;
    let ciphertext = LENIENT_BASE64
        .decode(encrypted)
        .map_err(|_| malformed("Encrypt", "not base64"))?;
    if ciphertext.is_empty() {
        return Err(malformed("Encrypt", "empty"));
    }
    let plain = decryptor
        .decrypt_padded_vec_mut::<NoPadding>(&ciphertext)
        .map_err(|_| malformed("Encrypt", "not a whole number of AES blocks"))?;
    let pad = plain.last().copied().unwrap_or_default();
    if pad == 0 || pad > PAD_BLOCK || usize::from(pad) > plain.len() {
        return Err(malformed("Encrypt", "bad padding"));
    }
    let (content, padding) = plain.split_at(plain.len() - usize::from(pad));
    if padding.iter().any(|byte| *byte != pad) {
        return Err(malformed("Encrypt", "bad padding"));
    }
    let length = content
        .get(16..20)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| malformed("Encrypt", "too short"))?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| length.checked_add(20))
        .filter(|end| *end <= content.len())
        .ok_or_else(|| malformed("Encrypt", "the length is past the end"))?;
    let (message, sent_app_id) = (content.get(20..end), content.get(end..));
    if sent_app_id != Some(app_id.as_bytes()) {
        return Err(malformed("Encrypt", "the AppID is not this account's"));
    }
    message
        .map(<[u8]>::to_vec)
        .ok_or_else(|| malformed("Encrypt", "too short"))
}
