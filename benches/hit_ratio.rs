//! P6: the hit ratio of `#[cache_fn]` on a skewed workload.
//!
//! Zipf(0.9) over 100,000 keys, a memory cache bounded to 1,000 entries, 1,000,000
//! calls. Target ≥ 43% (SPEC §15; an LRU of the same size: 34%). An exact LRU of the
//! same capacity runs over the same key sequence beside it, as the anchor, and so do
//! the two memory engines that were measured for the backend, by hand: moka (TinyLFU)
//! and quick_cache (S3-FIFO, the one the memory backend uses).
//! Run: `cargo bench --bench hit_ratio`.

use std::collections::HashMap;
use std::time::Instant;

use cached_kit::{cache_fn, caches, Cache};

const KEYS: usize = 100_000;
const CAPACITY: u64 = 1_000;
const CALLS: usize = 1_000_000;
const EXPONENT: f64 = 0.9;

#[cache_fn(ttl = 3600, cache = "zipf")]
async fn lookup(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A deterministic Zipf sampler: the CDF over ranks, searched with a xorshift draw.
struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(n: usize, s: f64, seed: u64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf, state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

/// moka's sync cache (TinyLFU admission) over the same sequence, by hand.
fn moka_hit_ratio(keys: &[u64], capacity: u64) -> f64 {
    let cache: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(capacity);
    let mut hits = 0usize;
    for &k in keys {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k);
        }
    }
    hits as f64 / keys.len() as f64
}

/// quick_cache (S3-FIFO) over the same sequence, by hand, with `shards` shards
/// (`None`: its default, four per core).
fn quick_cache_hit_ratio(keys: &[u64], capacity: u64, shards: Option<usize>) -> f64 {
    let mut options = quick_cache::OptionsBuilder::new();
    options
        .estimated_items_capacity(capacity as usize)
        .weight_capacity(capacity);
    if let Some(n) = shards {
        options.shards(n);
    }
    let cache: quick_cache::sync::Cache<u64, u64> = quick_cache::sync::Cache::with_options(
        options.build().expect("valid options"),
        quick_cache::UnitWeighter,
        quick_cache::DefaultHashBuilder::default(),
        quick_cache::sync::DefaultLifecycle::default(),
    );
    let mut hits = 0usize;
    for &k in keys {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k);
        }
    }
    hits as f64 / keys.len() as f64
}

/// An exact LRU over the same sequence: the anchor a naive cache would reach.
fn lru_hit_ratio(keys: &[u64], capacity: usize) -> f64 {
    let mut last_use: HashMap<u64, usize> = HashMap::with_capacity(capacity * 2);
    let mut order = std::collections::BTreeMap::new();
    let mut hits = 0usize;
    for (t, &k) in keys.iter().enumerate() {
        if let Some(prev) = last_use.insert(k, t) {
            hits += 1;
            order.remove(&prev);
        } else if last_use.len() > capacity {
            if let Some((_, oldest)) = order.pop_first() {
                last_use.remove(&oldest);
            }
        }
        order.insert(t, k);
    }
    hits as f64 / keys.len() as f64
}

fn main() {
    // `cargo bench` passes flags such as `--bench`; this bench takes none.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut zipf = Zipf::new(KEYS, EXPONENT, 0x2545_F491_4F6C_DD1D);
    let keys: Vec<u64> = (0..CALLS).map(|_| zipf.next()).collect();

    let url = format!("memory://?max_entries={CAPACITY}");
    caches().insert(Cache::from_url_as("zipf", "hit_ratio bench", &url).expect("a valid URL"));
    let started = Instant::now();
    runtime.block_on(async {
        for &k in &keys {
            std::hint::black_box(lookup(k).await);
        }
    });
    let elapsed = started.elapsed();
    let stats = caches().get("zipf").expect("configured").stats();
    let ours = stats.hit_ratio();
    let lru = lru_hit_ratio(&keys, CAPACITY as usize);
    println!("P6 hit ratio, Zipf({EXPONENT}) over {KEYS} keys, capacity {CAPACITY}, {CALLS} calls");
    println!(
        "  #[cache_fn] (memory backend): {:.1}%  ({} hits, {} misses, {} evictions, {:.2?})",
        ours * 100.0,
        stats.hits,
        stats.misses,
        stats.evictions,
        elapsed
    );
    println!("  exact LRU, same sequence:    {:.1}%", lru * 100.0);
    println!("  the candidate engines by hand, same sequence and capacity:");
    println!(
        "    moka sync (TinyLFU):                  {:.1}%",
        moka_hit_ratio(&keys, CAPACITY) * 100.0
    );
    println!(
        "    quick_cache (S3-FIFO), default shards: {:.1}%",
        quick_cache_hit_ratio(&keys, CAPACITY, None) * 100.0
    );
    println!(
        "    quick_cache (S3-FIFO), one shard:      {:.1}%",
        quick_cache_hit_ratio(&keys, CAPACITY, Some(1)) * 100.0
    );
    println!(
        "  target: >= 43%  -> {}",
        if ours >= 0.43 { "met" } else { "NOT met" }
    );
}
