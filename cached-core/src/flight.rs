//! Single-flight: concurrent callers of one missing key in one process share one computation.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

type Key = (String, TypeId);

/// In-flight computations of one cache, by stored key and value type.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<Key, Arc<dyn Any + Send + Sync>>>,
}

impl Flights {
    /// Joins the computation of `key` (creating it if none runs). Returns the shared cell
    /// and whether this caller created it.
    pub fn join<T: Send + Sync + 'static>(&self, key: &str) -> (Arc<OnceCell<T>>, bool) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (key.to_owned(), TypeId::of::<T>());
        if let Some(existing) = map.get(&slot) {
            // The TypeId in the key makes this downcast succeed; a failure would only
            // lose coalescing for this caller, never correctness.
            if let Ok(cell) = Arc::clone(existing).downcast::<OnceCell<T>>() {
                return (cell, false);
            }
        }
        let cell = Arc::new(OnceCell::new());
        map.insert(slot, Arc::clone(&cell) as Arc<dyn Any + Send + Sync>);
        (cell, true)
    }

    /// Removes `cell` from the map if it is still the computation registered for `key`.
    pub fn leave<T: Send + Sync + 'static>(&self, key: &str, cell: &Arc<OnceCell<T>>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (key.to_owned(), TypeId::of::<T>());
        let same = map.get(&slot).is_some_and(|registered| {
            std::ptr::eq(
                Arc::as_ptr(registered) as *const (),
                Arc::as_ptr(cell) as *const (),
            )
        });
        if same {
            map.remove(&slot);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
