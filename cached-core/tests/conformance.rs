//! The backend conformance suite against the in-process backends.

mod memory {
    use std::sync::Arc;

    use cached_core::backend::memory::MemoryBackend;
    use cached_core::Backend;

    cached_testing::backend_conformance!(storing, || async {
        Arc::new(MemoryBackend::default()) as Arc<dyn Backend>
    });
}

mod memory_bytes {
    use std::sync::Arc;

    use cached_core::backend::memory::{Bound, MemoryBackend};
    use cached_core::Backend;

    // The byte-bounded memory cache stores encoded values: the codec path in process.
    cached_testing::backend_conformance!(storing, || async {
        Arc::new(MemoryBackend::new(Bound::Bytes(64 << 20))) as Arc<dyn Backend>
    });
}

mod dummy {
    use std::sync::Arc;

    use cached_core::{Backend, DummyBackend};

    cached_testing::backend_conformance!(dummy, || async {
        Arc::new(DummyBackend::new()) as Arc<dyn Backend>
    });
}
