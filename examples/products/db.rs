//! The example's database: a real SQLite file, created and seeded on first start.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Product categories the seed spreads products over.
pub const CATEGORIES: [&str; 10] = [
    "lamps", "chairs", "tables", "rugs", "shelves", "beds", "sofas", "mirrors", "clocks", "vases",
];

/// Products per list page.
pub const PAGE_SIZE: i64 = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub price: f64,
}

/// The body of `PUT /products/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewProduct {
    pub name: String,
    pub price: f64,
}

/// One row of the expensive aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryStat {
    pub category: String,
    pub products: i64,
    pub avg_price: f64,
    pub min_price: f64,
    pub max_price: f64,
    pub distinct_names: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

/// A small pool of SQLite connections, used from blocking tasks.
#[derive(Clone)]
pub struct Db {
    conns: Arc<Vec<Mutex<Connection>>>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating and seeding with `seed` products if empty) the database at `path`.
    pub async fn open(path: impl AsRef<Path>, seed: i64) -> Result<Db, DbError> {
        let path = path.as_ref().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut first = Connection::open(&path)?;
            first.pragma_update(None, "journal_mode", "WAL")?;
            first.pragma_update(None, "synchronous", "NORMAL")?;
            first.execute_batch(
                "CREATE TABLE IF NOT EXISTS products (
                     id INTEGER PRIMARY KEY,
                     name TEXT NOT NULL,
                     category TEXT NOT NULL,
                     price REAL NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS products_category ON products (category, id);",
            )?;
            let count: i64 = first.query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))?;
            if count == 0 {
                seed_products(&mut first, seed)?;
            }
            let mut conns = vec![Mutex::new(first)];
            for _ in 1..4 {
                let conn = Connection::open(&path)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                conns.push(Mutex::new(conn));
            }
            Ok(Db {
                conns: Arc::new(conns),
                next: Arc::new(AtomicUsize::new(0)),
            })
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    async fn call<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let i = db.next.fetch_add(1, Ordering::Relaxed) % db.conns.len();
            let conn = db.conns[i].lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn).map_err(DbError::from)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    pub async fn product(&self, id: i64) -> Result<Option<Product>, DbError> {
        self.call(move |c| {
            c.query_row(
                "SELECT id, name, category, price FROM products WHERE id = ?1",
                [id],
                row_to_product,
            )
            .optional()
        })
        .await
    }

    pub async fn list(&self, category: Option<String>, page: i64) -> Result<Vec<Product>, DbError> {
        let offset = (page.max(1) - 1) * PAGE_SIZE;
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, category, price FROM products
                 WHERE (?1 IS NULL OR category = ?1) ORDER BY id LIMIT ?2 OFFSET ?3",
            )?;
            let rows = stmt.query_map(params![category, PAGE_SIZE, offset], row_to_product)?;
            rows.collect()
        })
        .await
    }

    /// Updates a product; returns it, or `None` if there is no such product.
    pub async fn update(&self, id: i64, p: NewProduct) -> Result<Option<Product>, DbError> {
        self.call(move |c| {
            let changed = c.execute(
                "UPDATE products SET name = ?1, price = ?2 WHERE id = ?3",
                params![p.name, p.price, id],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            c.query_row(
                "SELECT id, name, category, price FROM products WHERE id = ?1",
                [id],
                row_to_product,
            )
            .optional()
        })
        .await
    }

    /// An expensive aggregate over every row (a full scan, grouping and a distinct count).
    pub async fn category_stats(&self) -> Result<Vec<CategoryStat>, DbError> {
        self.call(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT category, COUNT(*), AVG(price), MIN(price), MAX(price),
                        COUNT(DISTINCT name)
                 FROM products GROUP BY category ORDER BY category",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CategoryStat {
                    category: r.get(0)?,
                    products: r.get(1)?,
                    avg_price: r.get(2)?,
                    min_price: r.get(3)?,
                    max_price: r.get(4)?,
                    distinct_names: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

fn row_to_product(r: &rusqlite::Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: r.get(0)?,
        name: r.get(1)?,
        category: r.get(2)?,
        price: r.get(3)?,
    })
}

/// Inserts `n` deterministic products in one transaction.
fn seed_products(conn: &mut Connection, n: i64) -> rusqlite::Result<()> {
    const ADJECTIVES: [&str; 8] = [
        "oak", "brass", "linen", "walnut", "steel", "glass", "wool", "cane",
    ];
    let tx = conn.transaction()?;
    {
        let mut insert =
            tx.prepare("INSERT INTO products (id, name, category, price) VALUES (?1, ?2, ?3, ?4)")?;
        for id in 1..=n {
            let category = CATEGORIES[(id as usize) % CATEGORIES.len()];
            let adjective = ADJECTIVES[(id as usize / CATEGORIES.len()) % ADJECTIVES.len()];
            let name = format!("{adjective} {} #{id}", category.trim_end_matches('s'));
            // A spread of prices from 5.00 to 504.99, deterministic per id.
            let price = 5.0 + ((id * 7919) % 50_000) as f64 / 100.0;
            insert.execute(params![id, name, category, price])?;
        }
    }
    tx.commit()
}
