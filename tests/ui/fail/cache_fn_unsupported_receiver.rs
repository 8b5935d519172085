use cached_kit::cache_fn;

struct Counter {
    n: u32,
}

impl Counter {
    #[cache_fn]
    fn bump(&mut self, by: u32) -> u32 {
        self.n += by;
        self.n
    }
}

fn main() {}
