//! An associated function that takes no `self` and never names `Self` looks like a free
//! function to the macro (it cannot see the `impl` block), so the call of its hidden
//! body misses `Self::`. The documented fix: name `Self`.
use cached_kit::cache_fn;

struct Prices;

impl Prices {
    #[cache_fn]
    fn of(id: u32) -> u32 {
        id * 100
    }

    // Naming `Self` anywhere tells the macro it is in an `impl` block.
    #[cache_fn]
    fn fixed(id: u32) -> u32 {
        Self::BASE + id
    }

    const BASE: u32 = 100;
}

fn main() {
    let _ = (Prices::of(1), Prices::fixed(1));
}
