//! How Rust values map to what backends store: objects in process, integers as
//! counters, everything else encoded by the cache's codec.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde::de::value::{Error as ValueError, I64Deserializer};

use super::{Cache, Cacheable, FOREVER};
use crate::backend::{Ttl, Value};
use crate::codec::DecodeError;
use crate::CacheError;

impl Cache {
    pub(super) fn encode_value<T: Cacheable>(
        &self,
        skey: &str,
        value: &T,
    ) -> Result<Value, CacheError> {
        if let Some(n) = as_counter(value) {
            Ok(Value::Int(n))
        } else if self.inner.objects {
            Ok(Value::Object(Arc::new(value.clone())))
        } else {
            Ok(Value::Bytes(self.inner.codec.encode(skey, value)?.into()))
        }
    }

    pub(super) fn decode_value<T: Cacheable>(&self, value: &Value) -> Result<T, DecodeError> {
        match value {
            // Another type (or an envelope, `fresh.rs`): no message to format here.
            Value::Object(obj) => obj
                .downcast_ref::<T>()
                .cloned()
                .ok_or(DecodeError::OtherType),
            Value::Int(n) => T::deserialize(I64Deserializer::<ValueError>::new(*n))
                .map_err(|e| DecodeError::Payload(e.to_string())),
            Value::Bytes(bytes) => self.inner.codec.decode(bytes),
            other => Err(DecodeError::Payload(format!(
                "a value of a kind this version does not know: {other:?}"
            ))),
        }
    }
}

pub(crate) fn backend_ttl(ttl: Duration) -> Ttl {
    if ttl >= FOREVER {
        None
    } else {
        Some(ttl)
    }
}

/// Integers are stored as counters, so `incr` works on them on every backend.
fn as_counter<T: Any>(value: &T) -> Option<i64> {
    let any = value as &dyn Any;
    macro_rules! int {
        ($($t:ty),*) => {$(
            if let Some(n) = any.downcast_ref::<$t>() {
                return i64::try_from(*n).ok();
            }
        )*};
    }
    int!(i64, i32, i16, i8, u64, u32, u16, u8, isize, usize);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::NO_EXPIRY;

    #[test]
    fn integers_become_counters() {
        assert_eq!(as_counter(&5u8), Some(5));
        assert_eq!(as_counter(&-5i64), Some(-5));
        assert_eq!(as_counter(&u64::MAX), None);
        assert_eq!(as_counter(&"5"), None);
    }

    #[test]
    fn huge_ttls_mean_no_expiry() {
        assert_eq!(backend_ttl(NO_EXPIRY), None);
        assert_eq!(
            backend_ttl(Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
    }
}
