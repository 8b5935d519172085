//! Compile-time behaviour of the macros: what must compile (`tests/ui/pass`) and the
//! errors for each misuse (`tests/ui/fail`, with the expected messages in `.stderr`).
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui`, then
//! read every one of them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/cache_fn_*.rs");
    t.compile_fail("tests/ui/fail/cache_fn_*.rs");
    t.compile_fail("tests/ui/fail/cache_evict_*.rs");
    #[cfg(feature = "axum")]
    {
        t.pass("tests/ui/pass/cache_view_*.rs");
        t.compile_fail("tests/ui/fail/cache_view_*.rs");
        t.pass("tests/ui/pass/throttle_*.rs");
        t.compile_fail("tests/ui/fail/throttle_*.rs");
    }
}
