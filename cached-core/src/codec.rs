//! Codecs: how values cross a process boundary, and the header that guards them.
//!
//! Every encoded value starts with a 12-byte header: the magic bytes `0xCA 0x4B`, the
//! layout version ([`LAYOUT_VERSION`]), the codec id, and the [`fingerprint`] of the
//! Rust type that was stored (8 bytes, little-endian). A value whose header does not
//! match (written by another codec, an older layout, another program, or for another
//! type) is a *decode error*: the cache treats it as a miss, overwrites it on the next
//! store and counts it in `decode_errors`. The magic's first byte is not ASCII, so an
//! encoded value can never be mistaken for a plain-integer counter.
//!
//! Decoding never aborts or panics, whatever the bytes. The fingerprint turns "another
//! type" into a cheap miss before any decoding; for what it cannot see (a struct that
//! kept its name but changed its fields between two builds of a rolling deploy, a
//! forged value) the decoder is bounded by the stored length: bincode is given an
//! allocation limit of 16 times the payload (no field claims more memory than 16 times
//! the bytes it is encoded in), so a forged length is an error, not an attempt to
//! allocate exabytes; postcard and JSON never allocate more than their input holds.
//! Property tests feed arbitrary bytes to every codec.
//!
//! An entry stored with freshness data (a stale window, tags: `cache/fresh.rs`) is an
//! *envelope* around the value: its layout byte has the [`ENVELOPE`] bit set (so a
//! reader tells it from a plain value by one byte, and a build that does not know
//! envelopes reads it as another layout: a counted miss) and its fingerprint is that
//! of the envelope type, which names the value's type.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::CacheError;

#[cfg(feature = "bincode")]
mod owned;

/// The magic bytes that start every encoded value.
pub const MAGIC: [u8; 2] = [0xCA, 0x4B];
/// The version of the encoded layout; bumped when the layout changes (2: the type
/// fingerprint joined the header).
pub const LAYOUT_VERSION: u8 = 2;
/// The header's length in bytes.
pub const HEADER_LEN: usize = 12;
/// The bit set in the layout byte of an envelope (an entry stored with freshness data).
///
/// ```
/// use cached_core::codec::{ENVELOPE, LAYOUT_VERSION};
/// // A plain value's layout byte never has it: a build that predates envelopes reads
/// // an envelope as another layout (a counted miss), never as garbage.
/// assert_eq!(LAYOUT_VERSION & ENVELOPE, 0);
/// ```
pub const ENVELOPE: u8 = 0x80;

/// Whether `bytes` start with the header of an envelope (any codec, any type).
pub(crate) fn is_envelope(bytes: &[u8]) -> bool {
    bytes.get(..2) == Some(&MAGIC[..]) && bytes.get(2) == Some(&(LAYOUT_VERSION | ENVELOPE))
}

/// A stable fingerprint of the Rust type `T`: the 64-bit FNV-1a hash of
/// [`std::any::type_name`]. The same in every process of one build (the type name may
/// change with the compiler version: values written by another toolchain then miss
/// once and are overwritten).
///
/// ```
/// use cached_core::codec::fingerprint;
/// assert_eq!(fingerprint::<Vec<u32>>(), fingerprint::<Vec<u32>>());
/// assert_ne!(fingerprint::<Vec<u32>>(), fingerprint::<Vec<u64>>());
/// ```
pub fn fingerprint<T: ?Sized>() -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    std::any::type_name::<T>()
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

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
    /// The value was stored for another Rust type (its [`fingerprint`] differs).
    OtherType,
    /// The header matches but the payload does not decode as the requested type.
    Payload(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NoHeader => f.write_str("not written by cached-kit (no header)"),
            DecodeError::Layout(v) => write!(f, "written with layout version {v}"),
            DecodeError::OtherCodec(id) => write!(f, "written by another codec (id {id})"),
            DecodeError::OtherType => f.write_str("stored for another Rust type"),
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

    /// Encodes `value` (stored under `key`, for the error message) behind its header,
    /// which carries the [`fingerprint`] of `T`.
    pub fn encode<T: Serialize + ?Sized>(
        self,
        key: &str,
        value: &T,
    ) -> Result<Vec<u8>, CacheError> {
        self.encode_as(key, value, LAYOUT_VERSION, fingerprint::<T>())
    }

    /// [`encode`](Self::encode) with the layout byte and fingerprint given: an envelope
    /// serializes a borrowing twin of the type it is decoded as.
    pub(crate) fn encode_as<T: Serialize + ?Sized>(
        self,
        key: &str,
        value: &T,
        layout: u8,
        print: u64,
    ) -> Result<Vec<u8>, CacheError> {
        self.check_enabled()?;
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        out.push(layout);
        out.push(self.id());
        out.extend_from_slice(&print.to_le_bytes());
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

    /// Decodes a value written by [`Codec::encode`] with this codec for type `T`.
    /// Never panics and never allocates beyond a bound tied to `bytes.len()`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        self.decode_as(bytes, LAYOUT_VERSION)
    }

    /// [`decode`](Self::decode) of a value stored with the layout byte `layout`.
    pub(crate) fn decode_as<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        layout: u8,
    ) -> Result<T, DecodeError> {
        let payload = self.payload::<T>(bytes, layout)?;
        let fail = |m: String| DecodeError::Payload(m);
        match self {
            #[cfg(feature = "bincode")]
            Codec::Bincode => {
                let (value, read) = bincode_bounded::<T>(payload)?;
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

impl Codec {
    /// The payload after a header that matches `expected_layout`, this codec and `T`.
    fn payload<T>(self, bytes: &[u8], expected_layout: u8) -> Result<&[u8], DecodeError> {
        let (Some(magic), Some(&layout), Some(&codec), Some(print)) = (
            bytes.get(..2),
            bytes.get(2),
            bytes.get(3),
            bytes.get(4..HEADER_LEN),
        ) else {
            return Err(DecodeError::NoHeader);
        };
        if magic != MAGIC {
            return Err(DecodeError::NoHeader);
        }
        if layout != expected_layout {
            return Err(DecodeError::Layout(layout));
        }
        if codec != self.id() {
            return Err(DecodeError::OtherCodec(codec));
        }
        if print != fingerprint::<T>().to_le_bytes() {
            return Err(DecodeError::OtherType);
        }
        Ok(&bytes[HEADER_LEN..])
    }
}

/// bincode's decoder with an allocation limit of about 16 times `payload.len()`.
///
/// bincode checks every length it reads against its configured limit before it
/// allocates (strings, byte buffers, arrays), and counts each field at its in-memory
/// size, which is at most 16 times its encoded size (a `u128` in one varint byte). The
/// limit is a const generic, so the smallest of a few powers of two that covers the
/// payload is chosen; payloads over 4 GiB decode without a limit. Owned strings and byte
/// buffers are read borrowed and copied ([`owned`]: a plain allocation rather than a
/// zeroed one filled afterwards), each no larger than the bytes it copies from the
/// payload.
#[cfg(feature = "bincode")]
fn bincode_bounded<T: DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), DecodeError> {
    use bincode::config::standard;
    let needed = payload.len().saturating_mul(16).saturating_add(256);
    let fail = |e: bincode::error::DecodeError| DecodeError::Payload(e.to_string());
    macro_rules! bounded {
        ($($limit:expr),*) => {$(
            if needed <= $limit {
                return bincode::serde::decode_from_slice::<owned::Decoded<T>, _>(payload, standard().with_limit::<{ $limit }>())
                    .map(|(v, n)| (v.0, n))
                    .map_err(fail);
            }
        )*};
    }
    bounded!(1 << 12, 1 << 16, 1 << 20, 1 << 24, 1 << 28);
    #[cfg(target_pointer_width = "64")]
    bounded!(1 << 32, 1 << 36);
    bincode::serde::decode_from_slice::<owned::Decoded<T>, _>(payload, standard())
        .map(|(v, n)| (v.0, n))
        .map_err(fail)
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
            assert_eq!(codec.decode::<Product>(&text), Err(DecodeError::OtherType));
            // The same bytes relabelled as a `Product` reach the decoder, which refuses.
            assert!(matches!(
                codec.decode::<Product>(&relabel::<Product>(text)),
                Err(DecodeError::Payload(_))
            ));
        }
    }

    /// Everything that reads an owned string or buffer, nested every way serde nests,
    /// round trips through the borrowing path the bincode codec decodes with.
    #[test]
    fn owned_strings_and_buffers_round_trip_however_nested() {
        use std::collections::BTreeMap;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        enum Shape {
            Unit,
            Named(String),
            Pair(String, u8),
            Labelled { label: String, tags: Vec<String> },
        }
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Wrapper(String);
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Everything {
            name: String,
            empty: String,
            unicode: String,
            maybe: Option<String>,
            none: Option<String>,
            wrapped: Wrapper,
            tuple: (String, i32, char),
            shapes: Vec<Shape>,
            map: BTreeMap<String, Vec<String>>,
            raw: bytes::Bytes,
            boxed: Box<str>,
            flag: bool,
            n: u128,
        }
        let value = Everything {
            name: "desk lamp 42".into(),
            empty: String::new(),
            unicode: "lampe de bureau \u{1F4A1} \u{00E9}t\u{00E9}".into(),
            maybe: Some("here".into()),
            none: None,
            wrapped: Wrapper("inside".into()),
            tuple: ("t".into(), -3, '\u{00DF}'),
            shapes: vec![
                Shape::Unit,
                Shape::Named("n".into()),
                Shape::Pair("p".into(), 9),
                Shape::Labelled {
                    label: "l".into(),
                    tags: vec!["a".into(), String::new(), "c".into()],
                },
            ],
            map: [
                ("k".to_owned(), vec!["v".to_owned()]),
                (String::new(), vec![]),
            ]
            .into_iter()
            .collect(),
            raw: bytes::Bytes::from_static(b"\x00\xffbytes"),
            boxed: "boxed".into(),
            flag: true,
            n: u128::MAX,
        };
        for codec in enabled() {
            let bytes = codec.encode("k", &value).expect("encodes");
            assert_eq!(codec.decode::<Everything>(&bytes), Ok(value.clone()));
            // Truncated anywhere, it is an error, never a panic.
            for cut in HEADER_LEN..bytes.len() {
                assert!(codec.decode::<Everything>(&bytes[..cut]).is_err());
            }
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

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OldLayout {
        id: u64,
        checksum: u64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct NewLayout {
        id: u64,
        name: String,
    }

    /// `bytes` as if written for `T` (its fingerprint in the header): what an older
    /// build stored under the same type name.
    fn relabel<T>(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[4..HEADER_LEN].copy_from_slice(&fingerprint::<T>().to_le_bytes());
        bytes
    }

    #[test]
    fn another_type_is_a_miss_before_decoding() {
        for codec in enabled() {
            let bytes = codec.encode("k", &vec![1u32, 2]).expect("encodes");
            assert_eq!(
                codec.decode::<Vec<u64>>(&bytes),
                Err(DecodeError::OtherType)
            );
            assert_eq!(codec.decode::<Vec<u32>>(&bytes), Ok(vec![1, 2]));
        }
    }

    #[test]
    fn a_changed_struct_under_the_same_name_is_an_error_not_an_abort() {
        // A rolling deploy: the old build stored {id, checksum}; the new one reads
        // {id, name} under the same type name. The checksum is read as the length of
        // the name: 1311768467463790320 bytes (the process aborted here before).
        for codec in enabled() {
            let old = OldLayout {
                id: 7,
                checksum: 0x1234_5678_9abc_def0,
            };
            let bytes = relabel::<NewLayout>(codec.encode("k", &old).expect("encodes"));
            assert!(matches!(
                codec.decode::<NewLayout>(&bytes),
                Err(DecodeError::Payload(_))
            ));
        }
    }

    #[test]
    fn forged_lengths_are_errors_not_aborts() {
        for codec in enabled() {
            // A header for `String` followed by a maximal length (varint u64 marker
            // 0xFD + 8 bytes): 13 bytes that asked for 2^64 - 1 bytes.
            let mut forged = codec.encode("k", &String::new()).expect("encodes");
            forged.truncate(HEADER_LEN);
            forged.extend_from_slice(&[0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
            assert!(codec.decode::<String>(&forged).is_err());
            let mut vec = codec.encode("k", &Vec::<String>::new()).expect("encodes");
            vec.truncate(HEADER_LEN);
            vec.extend_from_slice(&[0xFC, 0xFF, 0xFF, 0xFF, 0x7F, 0x01, 0x41]);
            assert!(codec.decode::<Vec<String>>(&vec).is_err());
        }
    }

    mod arbitrary_bytes {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        #[derive(Debug, Serialize, Deserialize)]
        enum Shape {
            Point,
            Circle { r: f64 },
            Poly(Vec<(i32, i32)>),
        }

        #[derive(Debug, Serialize, Deserialize)]
        struct Everything {
            id: u64,
            name: String,
            tags: Vec<String>,
            scores: HashMap<String, u32>,
            shape: Option<Shape>,
            raw: Vec<u8>,
            wide: u128,
        }

        /// Decodes `payload` behind a valid header for `T` with every codec; only
        /// checks that it returns.
        fn feed<T: DeserializeOwned>(payload: &[u8]) {
            for codec in enabled() {
                let mut bytes = codec.encode("k", &()).expect("encodes");
                bytes.truncate(HEADER_LEN);
                let mut bytes = relabel::<T>(bytes);
                bytes.extend_from_slice(payload);
                let _ = codec.decode::<T>(&bytes);
                // Without a header, too.
                let _ = codec.decode::<T>(payload);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn never_panics_or_aborts(payload in proptest::collection::vec(any::<u8>(), 0..96)) {
                feed::<Everything>(&payload);
                feed::<Vec<String>>(&payload);
                feed::<HashMap<u64, Vec<u8>>>(&payload);
                feed::<String>(&payload);
                feed::<Shape>(&payload);
            }

            #[test]
            fn truncated_values_are_errors(cut in 0usize..64) {
                for codec in enabled() {
                    let value = Everything {
                        id: 1,
                        name: "lamp".into(),
                        tags: vec!["a".into(), "b".into()],
                        scores: HashMap::from([("x".into(), 3)]),
                        shape: Some(Shape::Poly(vec![(1, 2), (3, 4)])),
                        raw: vec![9; 10],
                        wide: u128::MAX,
                    };
                    let bytes = codec.encode("k", &value).expect("encodes");
                    let cut = cut.min(bytes.len() - 1);
                    prop_assert!(codec.decode::<Everything>(&bytes[..cut]).is_err());
                }
            }
        }
    }
}
