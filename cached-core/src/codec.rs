//! Codecs: how values cross a process boundary, and the header that guards them.
//!
//! Every encoded value starts with a 4-byte header: the magic bytes `0xCA 0x4B`, the
//! layout version ([`LAYOUT_VERSION`]) and the codec id. A value whose header does not
//! match the cache's codec (written by another codec, an older layout, or another
//! program) is a *decode error*: the cache treats it as a miss, overwrites it on the
//! next store and counts it in `decode_errors`. It never panics and never returns
//! garbage. The magic's first byte is not ASCII, so an encoded value can never be
//! mistaken for a plain-integer counter.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::CacheError;

/// The magic bytes that start every encoded value.
pub const MAGIC: [u8; 2] = [0xCA, 0x4B];
/// The version of the encoded layout; bumped when the layout changes.
pub const LAYOUT_VERSION: u8 = 1;
/// The header's length in bytes.
pub const HEADER_LEN: usize = 4;

/// A serde codec for values stored in remote (or byte-bounded) backends.
///
/// ```
/// use cached_core::Codec;
/// let codec = Codec::default();
/// let bytes = codec.encode("k", &vec![1u32, 2, 3]).unwrap();
/// assert_eq!(codec.decode::<Vec<u32>>(&bytes).unwrap(), vec![1, 2, 3]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// bincode 2 in serde mode (feature `bincode`, the default): compact and fast.
    /// Like every non-self-describing format it cannot decode `deserialize_any` types
    /// (`serde_json::Value`, untagged enums); use [`Codec::Json`] for those.
    Bincode,
    /// postcard (feature `postcard`): the most compact.
    Postcard,
    /// JSON (feature `json`): self-describing and readable with `redis-cli`.
    Json,
}

impl Default for Codec {
    /// The first enabled of bincode, postcard, json (bincode when none is enabled,
    /// which then reports the missing feature on first use).
    fn default() -> Self {
        if cfg!(feature = "bincode") {
            Codec::Bincode
        } else if cfg!(feature = "postcard") {
            Codec::Postcard
        } else if cfg!(feature = "json") {
            Codec::Json
        } else {
            Codec::Bincode
        }
    }
}

/// Why a stored value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes do not start with the cached-kit header (another program wrote them).
    NoHeader,
    /// The header is from another layout version.
    Layout(u8),
    /// The value was written by another codec.
    OtherCodec(u8),
    /// The header matches but the payload does not decode as the requested type.
    Payload(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NoHeader => f.write_str("not written by cached-kit (no header)"),
            DecodeError::Layout(v) => write!(f, "written with layout version {v}"),
            DecodeError::OtherCodec(id) => write!(f, "written by another codec (id {id})"),
            DecodeError::Payload(m) => write!(f, "payload does not decode: {m}"),
        }
    }
}

impl Codec {
    /// The id stored in the header.
    pub fn id(self) -> u8 {
        match self {
            Codec::Bincode => 1,
            Codec::Postcard => 2,
            Codec::Json => 3,
        }
    }

    /// The codec's name, as in `?codec=` of a cache URL.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::Postcard => "postcard",
            Codec::Json => "json",
        }
    }

    /// The codec named `name` (`bincode`, `postcard`, `json`).
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "bincode" => Some(Codec::Bincode),
            "postcard" => Some(Codec::Postcard),
            "json" => Some(Codec::Json),
            _ => None,
        }
    }

    /// An error if this codec's cargo feature is off.
    pub fn check_enabled(self) -> Result<(), CacheError> {
        let enabled = match self {
            Codec::Bincode => cfg!(feature = "bincode"),
            Codec::Postcard => cfg!(feature = "postcard"),
            Codec::Json => cfg!(feature = "json"),
        };
        if enabled {
            Ok(())
        } else {
            Err(CacheError::FeatureDisabled {
                what: format!("the {} codec", self.name()),
                feature: self.name(),
            })
        }
    }

    /// Encodes `value` (stored under `key`, for the error message) with its header.
    pub fn encode<T: Serialize + ?Sized>(
        self,
        key: &str,
        value: &T,
    ) -> Result<Vec<u8>, CacheError> {
        self.check_enabled()?;
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        out.push(LAYOUT_VERSION);
        out.push(self.id());
        let err = |message: String| CacheError::Encode {
            key: key.to_owned(),
            codec: self.name(),
            message,
        };
        match self {
            #[cfg(feature = "bincode")]
            Codec::Bincode => {
                bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
                    .map_err(|e| err(e.to_string()))?;
            }
            #[cfg(feature = "postcard")]
            Codec::Postcard => {
                out = postcard::to_extend(value, out).map_err(|e| err(e.to_string()))?;
            }
            #[cfg(feature = "json")]
            Codec::Json => {
                serde_json::to_writer(&mut out, value).map_err(|e| err(e.to_string()))?;
            }
            #[allow(unreachable_patterns)]
            _ => return Err(err("codec feature disabled".into())),
        }
        Ok(out)
    }

    /// Decodes a value written by [`Codec::encode`] with this codec.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
            return Err(DecodeError::NoHeader);
        }
        if bytes[2] != LAYOUT_VERSION {
            return Err(DecodeError::Layout(bytes[2]));
        }
        if bytes[3] != self.id() {
            return Err(DecodeError::OtherCodec(bytes[3]));
        }
        let payload = &bytes[HEADER_LEN..];
        let fail = |m: String| DecodeError::Payload(m);
        match self {
            #[cfg(feature = "bincode")]
            Codec::Bincode => {
                let (value, read) =
                    bincode::serde::decode_from_slice(payload, bincode::config::standard())
                        .map_err(|e| fail(e.to_string()))?;
                if read != payload.len() {
                    return Err(fail(format!("{} trailing bytes", payload.len() - read)));
                }
                Ok(value)
            }
            #[cfg(feature = "postcard")]
            Codec::Postcard => {
                let (value, rest) =
                    postcard::take_from_bytes(payload).map_err(|e| fail(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(fail(format!("{} trailing bytes", rest.len())));
                }
                Ok(value)
            }
            #[cfg(feature = "json")]
            Codec::Json => serde_json::from_slice(payload).map_err(|e| fail(e.to_string())),
            #[allow(unreachable_patterns)]
            _ => Err(fail(format!(
                "the {} codec's feature is disabled",
                self.name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Product {
        id: i64,
        name: String,
        price: Option<f64>,
    }

    fn enabled() -> Vec<Codec> {
        [Codec::Bincode, Codec::Postcard, Codec::Json]
            .into_iter()
            .filter(|c| c.check_enabled().is_ok())
            .collect()
    }

    #[test]
    fn every_enabled_codec_round_trips_with_a_header() {
        let p = Product {
            id: 7,
            name: "lamp".into(),
            price: Some(9.5),
        };
        for codec in enabled() {
            let bytes = codec.encode("k", &p).expect("encodes");
            assert_eq!(&bytes[..4], &[0xCA, 0x4B, LAYOUT_VERSION, codec.id()]);
            assert_eq!(codec.decode::<Product>(&bytes), Ok(p.clone_for_test()));
        }
    }

    #[test]
    fn foreign_bytes_are_decode_errors() {
        for codec in enabled() {
            assert_eq!(codec.decode::<u32>(b"42"), Err(DecodeError::NoHeader));
            assert_eq!(codec.decode::<u32>(b""), Err(DecodeError::NoHeader));
            let mut old = codec.encode("k", &1u32).expect("encodes");
            old[2] = 0;
            assert_eq!(codec.decode::<u32>(&old), Err(DecodeError::Layout(0)));
            let mut other = codec.encode("k", &1u32).expect("encodes");
            other[3] = 99;
            assert_eq!(
                codec.decode::<u32>(&other),
                Err(DecodeError::OtherCodec(99))
            );
            let text = codec.encode("k", &"not a product").expect("encodes");
            assert!(matches!(
                codec.decode::<Product>(&text),
                Err(DecodeError::Payload(_))
            ));
        }
    }

    impl Product {
        fn clone_for_test(&self) -> Product {
            Product {
                id: self.id,
                name: self.name.clone(),
                price: self.price,
            }
        }
    }
}
