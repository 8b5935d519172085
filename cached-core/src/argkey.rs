//! Default keys of `#[cache_fn]`: a stable, readable encoding of a call's arguments.
//!
//! A function with no `key = "..."` template is cached under
//! `{module_path}::{fn_name}` (or `{Self type}::{fn_name}` for a method), then the type
//! parameters and the arguments, written like a Rust call:
//!
//! ```text
//! shop::stats::expensive_query(7)
//! shop::search<u32>("lamp",Some(2),[1,2,3])
//! ```
//!
//! The encoding is a tiny serde serializer, so any `Serialize` argument can be part of a
//! key. It is deterministic: the same arguments give the same key in every process and
//! on every machine running the same build, which is what lets two instances sharing
//! Redis share entries. It never uses `std`'s randomly seeded hasher nor an address, and
//! it sorts map entries, so a `HashMap` argument gives the same key whatever its
//! iteration order. (A `HashSet` serializes as a plain sequence and cannot be told apart
//! from a `Vec`: pass a `BTreeSet`, or `skip` the argument.)
//!
//! Each value is written so that it cannot run into its neighbour: strings and chars are
//! quoted with `\` escapes, sequences are `[...]`, tuples and structs `(...)`, maps
//! `{k:v,...}`, enum variants by name. Two different argument lists of one function
//! therefore never share a key. Keys longer than 250 bytes (or holding whitespace) are
//! stored under a digest by the [`key`](crate::key) rule, like every other key.
//!
//! ```
//! use cached_core::__private::ArgKey;
//! let mut key = ArgKey::new("shop::search");
//! key.ty::<u32>();
//! key.arg(&"lamp");
//! key.arg(&Some(2u8));
//! key.arg(&vec![1, 2, 3]);
//! assert_eq!(key.finish().unwrap(), r#"shop::search<u32>("lamp",Some(2),[1,2,3])"#);
//! ```

use std::borrow::BorrowMut;
use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

// Integers are written by hand, the same digits `Display` writes (pinned by the tests
// here and by `tests/key_stability.rs`): default keys are rendered on every call.
use crate::key::{push_i64, push_u64};

/// A value that can be part of a default cache key: anything `Serialize`.
///
/// Implemented for every `Serialize` type; you never implement it by hand.
///
/// ```
/// fn assert_keyable<T: cached_core::__private::KeyArg + ?Sized>() {}
/// assert_keyable::<str>();
/// assert_keyable::<(u32, Vec<String>)>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a default cache key: key arguments must implement `serde::Serialize`",
    label = "this argument is part of the default key",
    note = "derive `serde::Serialize` on it, name it in `skip(...)` to leave it out of the key, or write the key yourself with `key = \"...\"`"
)]
pub trait KeyArg: Serialize {}

impl<T: Serialize + ?Sized> KeyArg for T {}

/// Why an argument could not be encoded: its `Serialize` implementation failed.
///
/// ```
/// use cached_core::__private::ArgKeyError;
/// let err = ArgKeyError::new("bad value");
/// assert!(err.to_string().contains("bad value"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgKeyError {
    message: String,
}

impl ArgKeyError {
    /// An error with `message`.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }
}

impl fmt::Display for ArgKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an argument could not be encoded into the cache key: {}",
            self.message
        )
    }
}

impl std::error::Error for ArgKeyError {}

impl ser::Error for ArgKeyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(msg)
    }
}

/// Builds a default key: a path, then type parameters, then arguments.
///
/// It writes into a `String` of its own ([`ArgKey::new`]) or appends to one given
/// ([`ArgKey::append_to`]: the hit path of `#[cache_fn]` renders the key straight after
/// the stored key's head, in a buffer it reuses).
///
/// ```
/// use cached_core::__private::ArgKey;
/// let mut key = ArgKey::new("app::report");
/// key.arg(&3u8);
/// key.arg(&"march");
/// assert_eq!(key.finish().unwrap(), r#"app::report(3,"march")"#);
/// assert_eq!(ArgKey::new("app::all").finish().unwrap(), "app::all()");
///
/// let mut out = String::from(":1:");
/// let mut key = ArgKey::append_to(&mut out, "app::report");
/// key.arg(&3u8);
/// key.finish().unwrap();
/// assert_eq!(out, ":1:app::report(3)");
/// ```
#[derive(Debug)]
pub struct ArgKey<O = String> {
    out: O,
    types: usize,
    args: usize,
    /// Whether everything written so far is printable ASCII without spaces.
    plain: bool,
    error: Option<ArgKeyError>,
}

impl ArgKey {
    /// A key starting with `path` (`module_path!()::fn_name`).
    pub fn new(path: &str) -> Self {
        let mut out = String::with_capacity(path.len() + 32);
        out.push_str(path);
        Self::over(out)
    }

    /// A key starting with `{type}::{name}`, for methods (the type is `Self`).
    ///
    /// ```
    /// use cached_core::__private::ArgKey;
    /// struct Repo;
    /// let key = ArgKey::method::<Repo>("find").finish().unwrap();
    /// assert!(key.ends_with("Repo::find()"), "{key}");
    /// ```
    pub fn method<S: ?Sized>(name: &str) -> Self {
        let mut key = Self::new(std::any::type_name::<S>());
        key.out.push_str("::");
        key.out.push_str(name);
        key
    }
}

impl<'a> ArgKey<&'a mut String> {
    /// A key appended to `out`, starting with `path`.
    pub fn append_to(out: &'a mut String, path: &str) -> Self {
        out.push_str(path);
        Self::over(out)
    }

    /// A method's key appended to `out`: `{type}::{name}` (the type is `Self`).
    pub fn method_append_to<S: ?Sized>(out: &'a mut String, name: &str) -> Self {
        out.push_str(std::any::type_name::<S>());
        out.push_str("::");
        out.push_str(name);
        let mut key = Self::over(out);
        // A type's name may hold spaces (`(u8, char)`).
        key.plain = false;
        key
    }

    /// Finishes the key appended; `Ok(true)` when it is known to be printable ASCII
    /// without spaces (no text, character or type name in it), so that the key rule
    /// need not look at each character.
    pub fn end(self) -> Result<bool, ArgKeyError> {
        let plain = self.plain;
        self.finish().map(|_| plain)
    }
}

impl<O: BorrowMut<String>> ArgKey<O> {
    fn over(out: O) -> Self {
        Self {
            out,
            types: 0,
            args: 0,
            plain: true,
            error: None,
        }
    }

    fn out(&mut self) -> &mut String {
        self.out.borrow_mut()
    }

    /// Adds a type parameter (its `std::any::type_name`). Type parameters must all be
    /// added before the first argument.
    pub fn ty<T: ?Sized>(&mut self) {
        self.type_name(std::any::type_name::<T>());
    }

    /// Adds the type of `value` (for `impl Trait` arguments, whose type has no name).
    pub fn type_of<T: ?Sized>(&mut self, value: &T) {
        self.type_name(std::any::type_name_of_val(value));
    }

    fn type_name(&mut self, name: &str) {
        self.plain = false;
        let open = self.types == 0;
        let out = self.out();
        out.push(if open { '<' } else { ',' });
        out.push_str(name);
        self.types += 1;
    }

    /// Adds an argument.
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) {
        let (types, args) = (self.types, self.args);
        let out = self.out.borrow_mut();
        if types > 0 && args == 0 {
            out.push('>');
        }
        out.push(if args == 0 { '(' } else { ',' });
        self.args += 1;
        if self.error.is_some() {
            return;
        }
        let mut enc = Encoder { out, plain: true };
        if let Err(e) = value.serialize(&mut enc) {
            self.error = Some(e);
        }
        self.plain &= enc.plain;
    }

    /// The key (its output, now holding the key), or the error of an argument whose
    /// `Serialize` failed.
    pub fn finish(mut self) -> Result<O, ArgKeyError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let (types, args) = (self.types, self.args);
        let out = self.out();
        if types > 0 && args == 0 {
            out.push('>');
        }
        if args == 0 {
            out.push('(');
        }
        out.push(')');
        Ok(self.out)
    }
}

/// Encodes one value with the key encoding.
///
/// ```
/// use std::collections::HashMap;
/// use cached_core::__private::encode;
/// assert_eq!(encode(&("a\"b", 'c', -1.5f64, ())).unwrap(), r#"("a\"b",'c',-1.5,())"#);
/// let map: HashMap<&str, u8> = [("b", 2), ("a", 1)].into();
/// assert_eq!(encode(&map).unwrap(), r#"{"a":1,"b":2}"#);
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, ArgKeyError> {
    let mut out = String::new();
    value.serialize(&mut Encoder {
        out: &mut out,
        plain: true,
    })?;
    Ok(out)
}

struct Encoder<'a> {
    out: &'a mut String,
    /// Cleared when text that may hold anything (a string, a character, a name) is
    /// written: digits, `true`, `None` and the encoding's punctuation are plain.
    plain: bool,
}

impl Encoder<'_> {
    fn display(&mut self, v: impl fmt::Display) -> Result<(), ArgKeyError> {
        write!(self.out, "{v}").map_err(ArgKeyError::new)
    }

    fn quoted(&mut self, s: &str, quote: char) {
        self.plain = false;
        // Nothing to escape (the usual case): one copy. `quote` is ASCII, so comparing
        // bytes finds exactly the characters the loop below escapes.
        if !s.bytes().any(|b| char::from(b) == quote || b == b'\\') {
            self.out.push(quote);
            self.out.push_str(s);
            self.out.push(quote);
            return;
        }
        self.out.push(quote);
        for c in s.chars() {
            if c == quote || c == '\\' {
                self.out.push('\\');
            }
            self.out.push(c);
        }
        self.out.push(quote);
    }
}

/// A sequence, tuple or struct being written: `open` is already out, `close` ends it.
struct Compound<'a, 'b> {
    enc: &'b mut Encoder<'a>,
    first: bool,
    close: char,
}

impl Compound<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ArgKeyError> {
        if !self.first {
            self.enc.out.push(',');
        }
        self.first = false;
        value.serialize(&mut *self.enc)
    }

    fn end(self) -> Result<(), ArgKeyError> {
        self.enc.out.push(self.close);
        Ok(())
    }
}

/// A map being written: entries are encoded apart, then sorted, so that the key does
/// not depend on the map's iteration order.
struct MapEncoder<'a, 'b> {
    enc: &'b mut Encoder<'a>,
    entries: Vec<String>,
    current: String,
}

impl<'a, 'b> Encoder<'a> {
    fn compound(&'b mut self, open: char, close: char) -> Compound<'a, 'b> {
        self.out.push(open);
        Compound {
            enc: self,
            first: true,
            close,
        }
    }
}

impl<'a, 'b> ser::Serializer for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = ArgKeyError;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = MapEncoder<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), ArgKeyError> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), ArgKeyError> {
        push_i64(self.out, i64::from(v));
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), ArgKeyError> {
        push_i64(self.out, i64::from(v));
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), ArgKeyError> {
        push_i64(self.out, i64::from(v));
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), ArgKeyError> {
        push_i64(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), ArgKeyError> {
        self.display(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), ArgKeyError> {
        push_u64(self.out, u64::from(v));
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), ArgKeyError> {
        push_u64(self.out, u64::from(v));
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), ArgKeyError> {
        push_u64(self.out, u64::from(v));
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), ArgKeyError> {
        push_u64(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), ArgKeyError> {
        self.display(v)
    }
    // `Display` of floats is the shortest text that reads back as the same value, so
    // distinct floats give distinct keys (and `-0` differs from `0`).
    fn serialize_f32(self, v: f32) -> Result<(), ArgKeyError> {
        self.display(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), ArgKeyError> {
        self.display(v)
    }
    fn serialize_char(self, v: char) -> Result<(), ArgKeyError> {
        let mut buf = [0u8; 4];
        self.quoted(v.encode_utf8(&mut buf), '\'');
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), ArgKeyError> {
        self.quoted(v, '"');
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), ArgKeyError> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.push_str("x\"");
        for b in v {
            self.out.push(HEX[usize::from(b >> 4)] as char);
            self.out.push(HEX[usize::from(b & 0xf)] as char);
        }
        self.out.push('"');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), ArgKeyError> {
        self.out.push_str("None");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), ArgKeyError> {
        self.out.push_str("Some(");
        value.serialize(&mut *self)?;
        self.out.push(')');
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), ArgKeyError> {
        self.out.push_str("()");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), ArgKeyError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), ArgKeyError> {
        // Serde may rename a variant to anything.
        self.plain = false;
        self.out.push_str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), ArgKeyError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), ArgKeyError> {
        self.plain = false;
        self.out.push_str(variant);
        self.out.push('(');
        value.serialize(&mut *self)?;
        self.out.push(')');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, ArgKeyError> {
        Ok(self.compound('[', ']'))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a, 'b>, ArgKeyError> {
        Ok(self.compound('(', ')'))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, ArgKeyError> {
        Ok(self.compound('(', ')'))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, ArgKeyError> {
        self.plain = false;
        self.out.push_str(variant);
        Ok(self.compound('(', ')'))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapEncoder<'a, 'b>, ArgKeyError> {
        Ok(MapEncoder {
            enc: self,
            entries: Vec::new(),
            current: String::new(),
        })
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, ArgKeyError> {
        Ok(self.compound('(', ')'))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, ArgKeyError> {
        self.plain = false;
        self.out.push_str(variant);
        Ok(self.compound('(', ')'))
    }
}

// Sequences, tuples, tuple structs and tuple variants: each element in turn.
macro_rules! positional_compound {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = ArgKeyError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ArgKeyError> {
                self.element(value)
            }
            fn end(self) -> Result<(), ArgKeyError> {
                Compound::end(self)
            }
        }
    )*};
}

positional_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

// Struct fields are written by position: the type is fixed by the function's
// signature, so names would only make keys longer.
macro_rules! struct_compound {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = ArgKeyError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), ArgKeyError> {
                self.element(value)
            }
            fn skip_field(&mut self, _key: &'static str) -> Result<(), ArgKeyError> {
                // A skipped field still takes its position, so that fields cannot shift.
                self.element(&())
            }
            fn end(self) -> Result<(), ArgKeyError> {
                Compound::end(self)
            }
        }
    )*};
}

struct_compound!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for MapEncoder<'_, '_> {
    type Ok = ();
    type Error = ArgKeyError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ArgKeyError> {
        self.current.clear();
        let mut enc = Encoder {
            out: &mut self.current,
            plain: true,
        };
        key.serialize(&mut enc)?;
        self.enc.plain &= enc.plain;
        self.current.push(':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ArgKeyError> {
        let mut entry = std::mem::take(&mut self.current);
        let mut enc = Encoder {
            out: &mut entry,
            plain: true,
        };
        value.serialize(&mut enc)?;
        self.enc.plain &= enc.plain;
        self.entries.push(entry);
        Ok(())
    }
    fn end(mut self) -> Result<(), ArgKeyError> {
        // Keys are self-delimiting, so sorting the encoded entries orders them by key.
        self.entries.sort_unstable();
        self.enc.out.push('{');
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                self.enc.out.push(',');
            }
            self.enc.out.push_str(entry);
        }
        self.enc.out.push('}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Filter {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
        tags: Vec<&'static str>,
    }

    #[derive(Serialize)]
    enum Sort {
        Asc,
        By(String),
        Range(u8, u8),
        Window { from: i32, to: i32 },
    }

    #[test]
    fn scalars_read_like_rust() {
        assert_eq!(encode(&42u64).unwrap(), "42");
        assert_eq!(encode(&-7i8).unwrap(), "-7");
        assert_eq!(encode(&true).unwrap(), "true");
        assert_eq!(encode(&0.1f64).unwrap(), "0.1");
        assert_eq!(encode(&-0.0f64).unwrap(), "-0");
        assert_eq!(encode(&f64::NAN).unwrap(), "NaN");
        assert_eq!(encode(&u128::MAX).unwrap(), u128::MAX.to_string());
        assert_eq!(encode(&Some(())).unwrap(), "Some(())");
        assert_eq!(encode(&Option::<u8>::None).unwrap(), "None");
        assert_eq!(encode(&'\'').unwrap(), r"'\''");
        assert_eq!(encode(&Bytes(&[0, 255])).unwrap(), "x\"00ff\"");
    }

    /// Serializes as bytes, like `serde_bytes`.
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    #[test]
    fn structs_and_enums_are_positional() {
        let f = Filter {
            name: "lamp".into(),
            page: None,
            tags: vec!["a", "b"],
        };
        assert_eq!(encode(&f).unwrap(), r#"("lamp",(),["a","b"])"#);
        assert_eq!(encode(&Sort::Asc).unwrap(), "Asc");
        assert_eq!(encode(&Sort::By("x".into())).unwrap(), r#"By("x")"#);
        assert_eq!(encode(&Sort::Range(1, 2)).unwrap(), "Range(1,2)");
        assert_eq!(
            encode(&Sort::Window { from: -1, to: 1 }).unwrap(),
            "Window(-1,1)"
        );
    }

    #[test]
    fn maps_are_sorted_whatever_their_iteration_order() {
        let mut a: HashMap<String, u32> = HashMap::new();
        let mut b: HashMap<String, u32> = HashMap::with_capacity(64);
        for i in 0..50 {
            a.insert(format!("k{i}"), i);
        }
        for i in (0..50).rev() {
            b.insert(format!("k{i}"), i);
        }
        let sorted: BTreeMap<String, u32> = a.clone().into_iter().collect();
        assert_eq!(encode(&a).unwrap(), encode(&b).unwrap());
        assert_eq!(encode(&a).unwrap(), encode(&sorted).unwrap());
    }

    #[test]
    fn strings_cannot_run_into_their_neighbours() {
        let key = |args: &[&str]| {
            let mut k = ArgKey::new("f");
            for a in args {
                k.arg(a);
            }
            k.finish().unwrap()
        };
        assert_ne!(key(&["a,b"]), key(&["a", "b"]));
        assert_ne!(key(&["a\",\"b"]), key(&["a", "b"]));
        assert_ne!(key(&["a\\", "b"]), key(&["a\\\",\"b"]));
        assert_ne!(
            encode(&vec!["a", "b"]).unwrap(),
            encode(&vec!["a,b"]).unwrap()
        );
        assert_ne!(
            encode(&(Some("1"), 2)).unwrap(),
            encode(&(Some("1,2"),)).unwrap()
        );
    }

    #[test]
    fn type_parameters_come_before_arguments() {
        let mut k = ArgKey::new("m::f");
        k.ty::<u32>();
        k.ty::<String>();
        k.arg(&1u8);
        assert_eq!(k.finish().unwrap(), "m::f<u32,alloc::string::String>(1)");
        let mut k = ArgKey::new("m::g");
        k.ty::<i8>();
        assert_eq!(k.finish().unwrap(), "m::g<i8>()");
        let mut k = ArgKey::new("m::h");
        k.type_of(&1.5f32);
        k.arg(&1.5f32);
        assert_eq!(k.finish().unwrap(), "m::h<f32>(1.5)");
    }

    #[test]
    fn the_fast_paths_write_what_display_and_the_escaping_loop_write() {
        for n in [0i64, -1, 7, -128, 127, i64::MIN, i64::MAX, 1_000_000] {
            assert_eq!(encode(&n).unwrap(), n.to_string());
            if let Ok(small) = i8::try_from(n) {
                assert_eq!(encode(&small).unwrap(), n.to_string());
            }
        }
        for n in [0u64, 9, 10, 255, 65_535, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(encode(&n).unwrap(), n.to_string());
        }
        assert_eq!(encode(&u8::MAX).unwrap(), "255");
        assert_eq!(encode(&i16::MIN).unwrap(), "-32768");
        assert_eq!(encode(&"plain").unwrap(), r#""plain""#);
        assert_eq!(encode(&"é \\ \"q\" '").unwrap(), r#""é \\ \"q\" '""#);
        assert_eq!(encode(&'"').unwrap(), r#"'"'"#);
        assert_eq!(encode(&'\\').unwrap(), r"'\\'");
    }

    #[test]
    fn only_keys_without_text_or_names_are_plain() {
        let plain = |f: &dyn Fn(&mut ArgKey<&mut String>)| {
            let mut out = String::new();
            let mut key = ArgKey::append_to(&mut out, "m::f");
            f(&mut key);
            key.end().unwrap()
        };
        assert!(plain(&|k| k.arg(&42u64)));
        assert!(plain(&|k| k.arg(&(
            1i8,
            -2.5f64,
            true,
            None::<u8>,
            vec![1u8, 2]
        ))));
        assert!(plain(&|k| {
            let map: BTreeMap<u8, u8> = [(1, 2)].into();
            k.arg(&map);
        }));
        assert!(!plain(&|k| k.arg(&"a b")));
        assert!(!plain(&|k| k.arg(&'x')));
        assert!(!plain(&|k| k.arg(&Sort::Asc)));
        assert!(!plain(&|k| {
            let map: BTreeMap<&str, u8> = [("a b", 2)].into();
            k.arg(&map);
        }));
        assert!(!plain(&|k| k.ty::<(u8, char)>()));
        let mut out = String::new();
        let key = ArgKey::method_append_to::<(u8, char)>(&mut out, "f");
        assert!(!key.end().unwrap());
    }

    #[test]
    fn a_key_appended_to_a_buffer_is_the_key_it_would_own() {
        let mut owned = ArgKey::new("m::f");
        owned.ty::<u8>();
        owned.arg(&"x");
        owned.arg(&-3i32);
        let mut out = String::from(":1:");
        let mut appended = ArgKey::append_to(&mut out, "m::f");
        appended.ty::<u8>();
        appended.arg(&"x");
        appended.arg(&-3i32);
        appended.finish().unwrap();
        assert_eq!(format!(":1:{}", owned.finish().unwrap()), out);
    }

    #[test]
    fn a_failing_serialize_is_an_error_not_a_panic() {
        struct Bad;
        impl Serialize for Bad {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("refused"))
            }
        }
        let mut k = ArgKey::new("f");
        k.arg(&1);
        k.arg(&Bad);
        k.arg(&2);
        let err = k.finish().unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
    }

    /// An argument list as the default key sees it: a string, an option, a list and a
    /// map, drawn from characters that the encoding must quote or escape.
    type Args = (String, Option<i64>, Vec<String>, BTreeMap<String, u8>);

    fn args_key(args: &Args) -> String {
        let mut k = ArgKey::new("m::f");
        k.arg(&args.0);
        k.arg(&args.1);
        k.arg(&args.2);
        k.arg(&args.3);
        k.finish().unwrap()
    }

    fn arg_strategy() -> impl proptest::strategy::Strategy<Value = Args> {
        use proptest::prelude::*;
        let text = "[a\\\",()\\[\\]{}:#' ]{0,6}";
        (
            text,
            proptest::option::of(any::<i64>()),
            proptest::collection::vec(text, 0..3),
            proptest::collection::btree_map(text, any::<u8>(), 0..3),
        )
    }

    proptest::proptest! {
        /// Two different argument lists of one function never share a key, however
        /// their strings are made to look like the encoding's own punctuation.
        #[test]
        fn different_arguments_never_share_a_key(a in arg_strategy(), b in arg_strategy()) {
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(args_key(&a), args_key(&b));
        }

        /// The same arguments always give the same key.
        #[test]
        fn keys_are_deterministic(a in arg_strategy()) {
            proptest::prop_assert_eq!(args_key(&a), args_key(&a.clone()));
        }
    }
}
