//! trainyard-synth: a deterministic, seeded synthetic B2B purchase dataset.
//!
//! Customers (id, city, segment, revenue), products (id, category, price) and transactions
//! (timestamp, quantity, rating). Affinity is planted so that a trained two-tower model can
//! beat popularity:
//! - each segment favours a block of categories, each customer one extra category;
//! - each customer re-orders from a personal basket of products (B2B repeat purchases);
//! - ratings are higher for basket products and favoured categories.
//!
//! Same config (seed included) -> byte-identical files. No dependencies beyond std.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors of the generator.
#[derive(Debug, Error)]
pub enum SynthError {
    #[error("invalid synth config: {0}")]
    Config(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Segments of B2B buyers.
pub const SEGMENTS: [&str; 5] = ["horeca", "retail", "wholesale", "office", "industrial"];

/// Columns of the joined interactions CSV, in file order.
pub const INTERACTION_COLUMNS: [&str; 10] = [
    "customer_id",
    "city",
    "segment",
    "revenue",
    "timestamp",
    "product_id",
    "category",
    "price",
    "quantity",
    "rating",
];

/// Sizes and seed of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub seed: u64,
    pub n_customers: usize,
    pub n_products: usize,
    pub n_transactions: usize,
    pub n_categories: usize,
    pub n_cities: usize,
    /// Products in each customer's re-order basket.
    pub basket_size: usize,
    /// First transaction time (epoch seconds) and the span in days.
    pub start_ts: i64,
    pub days: i64,
}

impl SynthConfig {
    fn sized(n_customers: usize, n_products: usize, n_transactions: usize) -> Self {
        Self {
            seed: 42,
            n_customers,
            n_products,
            n_transactions,
            n_categories: 20,
            n_cities: 12,
            basket_size: 8,
            start_ts: 1_704_067_200, // 2024-01-01T00:00:00Z
            days: 365,
        }
    }

    /// Tests: a few thousand transactions.
    pub fn tiny() -> Self {
        Self::sized(300, 1_000, 12_000)
    }

    pub fn small() -> Self {
        Self::sized(2_000, 3_000, 100_000)
    }

    /// Benchmarks: ~1M transactions.
    pub fn large() -> Self {
        Self::sized(20_000, 10_000, 1_000_000)
    }

    /// The names [`SynthConfig::named`] knows, smallest first.
    pub const SIZES: [&'static str; 3] = ["tiny", "small", "large"];

    /// A named size (one of [`SynthConfig::SIZES`]).
    pub fn named(size: &str) -> Option<Self> {
        match size {
            "tiny" => Some(Self::tiny()),
            "small" => Some(Self::small()),
            "large" => Some(Self::large()),
            _ => None,
        }
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: &str| Err(SynthError::Config(m.to_string()));
        if self.n_customers == 0 || self.n_products == 0 || self.n_transactions == 0 {
            return bad("customers, products and transactions must be > 0");
        }
        if self.n_categories < SEGMENTS.len() || self.n_categories > self.n_products {
            return bad("need n_segments <= n_categories <= n_products");
        }
        if self.n_cities == 0 || self.days <= 0 {
            return bad("n_cities and days must be > 0");
        }
        if self.basket_size == 0 || self.basket_size > self.n_products {
            return bad("basket_size must be in 1..=n_products");
        }
        Ok(())
    }
}

/// SplitMix64: small, fast, and stable forever (no external RNG crate whose stream could change).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.f64() * n as f64) as usize % n.max(1)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Sampling from fixed weights by binary search over the cumulative sums.
#[derive(Debug, Clone)]
struct Weighted {
    cum: Vec<f64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let cum = weights
            .into_iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        Self { cum }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cum.last().unwrap_or(&0.0);
        let x = rng.f64() * total;
        self.cum
            .partition_point(|&c| c <= x)
            .min(self.cum.len() - 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: String,
    pub city: String,
    pub segment: String,
    pub revenue: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: String,
    pub category: String,
    pub price: f64,
}

/// One purchase; `customer` and `product` index the dataset's tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub customer: usize,
    pub product: usize,
    pub timestamp: i64,
    pub quantity: u32,
    pub rating: f64,
}

/// The generated tables; transactions are sorted by timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub customers: Vec<Customer>,
    pub products: Vec<Product>,
    pub transactions: Vec<Transaction>,
}

/// Generates the dataset of `cfg`.
pub fn generate(cfg: &SynthConfig) -> Result<Dataset, SynthError> {
    cfg.validate()?;
    let mut rng = Rng::new(cfg.seed);
    let n_seg = SEGMENTS.len();
    let per_seg = cfg.n_categories / n_seg;

    // Products: category round-robin, popularity rank shuffled, lognormal price by category.
    let mut products = Vec::with_capacity(cfg.n_products);
    let mut by_category: Vec<Vec<usize>> = vec![Vec::new(); cfg.n_categories];
    for p in 0..cfg.n_products {
        let cat = p % cfg.n_categories;
        let base = 5.0 + 10.0 * (cat % 7) as f64;
        let price = (base * (0.4 * rng.normal()).exp() * 100.0).round() / 100.0;
        products.push(Product {
            id: format!("P{:06}", 100_000 + p * 7 % 900_000),
            category: format!("cat_{cat:02}"),
            price,
        });
        by_category[cat].push(p);
    }
    // Zipf-like popularity over a shuffled order.
    let mut order: Vec<usize> = (0..cfg.n_products).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut popularity = vec![0.0; cfg.n_products];
    for (rank, &p) in order.iter().enumerate() {
        popularity[p] = 1.0 / ((rank + 1) as f64).powf(0.8);
    }
    let global = Weighted::new(popularity.iter().copied());
    let cat_sampler: Vec<Weighted> = by_category
        .iter()
        .map(|ps| Weighted::new(ps.iter().map(|&p| popularity[p])))
        .collect();

    // Customers: segment -> favoured category block; one personal category; a basket.
    let mut customers = Vec::with_capacity(cfg.n_customers);
    let mut favourites: Vec<Vec<usize>> = Vec::with_capacity(cfg.n_customers);
    let mut baskets: Vec<Vec<usize>> = Vec::with_capacity(cfg.n_customers);
    for c in 0..cfg.n_customers {
        let seg = rng.below(n_seg);
        let city = rng.below(cfg.n_cities);
        let revenue = (50_000.0 * (1.0 + seg as f64) * (0.8 * rng.normal()).exp()).round();
        let mut fav: Vec<usize> = (seg * per_seg..(seg + 1) * per_seg).collect();
        // city shifts which favoured category dominates a little: the city x segment cross matters
        fav.rotate_left(city % per_seg.max(1));
        fav.push(rng.below(cfg.n_categories));
        let mut basket = Vec::with_capacity(cfg.basket_size);
        let mut seen = HashSet::new();
        let mut tries = 0;
        while basket.len() < cfg.basket_size && tries < cfg.basket_size * 50 {
            tries += 1;
            let cat = fav[rng.below(fav.len())];
            if by_category[cat].is_empty() {
                continue;
            }
            let p = by_category[cat][cat_sampler[cat].sample(&mut rng)];
            if seen.insert(p) {
                basket.push(p);
            }
        }
        customers.push(Customer {
            id: format!("C{:05}", 10_000 + c),
            city: format!("city_{city:02}"),
            segment: SEGMENTS[seg].to_string(),
            revenue,
        });
        favourites.push(fav);
        baskets.push(basket);
    }
    // Bigger customers buy more often.
    let activity = Weighted::new(customers.iter().map(|c| c.revenue.sqrt()));

    let span = cfg.days * 86_400;
    let mut transactions = Vec::with_capacity(cfg.n_transactions);
    for _ in 0..cfg.n_transactions {
        let c = activity.sample(&mut rng);
        let fav = &favourites[c];
        let r = rng.f64();
        let (product, bonus) = if r < 0.5 && !baskets[c].is_empty() {
            (baskets[c][rng.below(baskets[c].len())], 1.2)
        } else if r < 0.9 {
            // favoured categories, the first (city-dependent) one twice as likely
            let i = if rng.f64() < 0.4 {
                0
            } else {
                rng.below(fav.len())
            };
            let cat = fav[i];
            (by_category[cat][cat_sampler[cat].sample(&mut rng)], 0.6)
        } else {
            (global.sample(&mut rng), -0.6)
        };
        let rating = (3.0 + bonus + 0.5 * rng.normal()).clamp(1.0, 5.0);
        let seg_scale = 1 + customers[c].revenue as u32 / 100_000;
        transactions.push(Transaction {
            customer: c,
            product,
            timestamp: cfg.start_ts + (rng.f64() * span as f64) as i64,
            quantity: 1 + rng.below(4 * seg_scale as usize) as u32,
            rating: (rating * 10.0).round() / 10.0,
        });
    }
    transactions.sort_by_key(|t| t.timestamp);
    Ok(Dataset {
        customers,
        products,
        transactions,
    })
}

/// A time-ordered split of the transactions: the last `eval` then `test` fractions held out.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    pub train: &'a [Transaction],
    pub eval: &'a [Transaction],
    pub test: &'a [Transaction],
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Dataset {
    /// Splits by time: train is the oldest part, then eval, then test (the newest).
    pub fn split(&self, eval_frac: f64, test_frac: f64) -> Split<'_> {
        let n = self.transactions.len();
        let n_test = ((n as f64) * test_frac).round() as usize;
        let n_eval = ((n as f64) * eval_frac).round() as usize;
        let n_train = n.saturating_sub(n_test + n_eval);
        let (train, rest) = self.transactions.split_at(n_train);
        let (eval, test) = rest.split_at(n_eval.min(rest.len()));
        Split { train, eval, test }
    }

    /// The joined CSV row of one transaction, in [`INTERACTION_COLUMNS`] order.
    pub fn joined_row(&self, t: &Transaction) -> String {
        let c = &self.customers[t.customer];
        let p = &self.products[t.product];
        format!(
            "{},{},{},{:.2},{},{},{},{:.2},{},{:.1}",
            c.id,
            c.city,
            c.segment,
            c.revenue,
            t.timestamp,
            p.id,
            p.category,
            p.price,
            t.quantity,
            t.rating
        )
    }

    /// Writes `rows` as a joined interactions CSV (header included).
    pub fn write_joined(&self, path: &Path, rows: &[Transaction]) -> Result<(), SynthError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let f = File::create(path).map_err(io_err(path))?;
        let mut w = BufWriter::new(f);
        let mut write = || -> std::io::Result<()> {
            writeln!(w, "{}", INTERACTION_COLUMNS.join(","))?;
            for t in rows {
                writeln!(w, "{}", self.joined_row(t))?;
            }
            w.flush()
        };
        write().map_err(io_err(path))
    }

    /// Writes the three tables (customers.csv, products.csv, transactions.csv) and the joined,
    /// time-split interactions (`train/`, `eval/`, `test/` each with `interactions.csv`) under
    /// `dir`. Eval and test are the newest 10% each.
    pub fn write_all(&self, dir: &Path) -> Result<(), SynthError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let table = |name: &str, header: &str, rows: Vec<String>| -> Result<(), SynthError> {
            let path = dir.join(name);
            let mut body = String::with_capacity(rows.len() * 40);
            body.push_str(header);
            body.push('\n');
            for r in rows {
                body.push_str(&r);
                body.push('\n');
            }
            fs::write(&path, body).map_err(io_err(&path))
        };
        table(
            "customers.csv",
            "customer_id,city,segment,revenue",
            self.customers
                .iter()
                .map(|c| format!("{},{},{},{:.2}", c.id, c.city, c.segment, c.revenue))
                .collect(),
        )?;
        table(
            "products.csv",
            "product_id,category,price",
            self.products
                .iter()
                .map(|p| format!("{},{},{:.2}", p.id, p.category, p.price))
                .collect(),
        )?;
        table(
            "transactions.csv",
            "customer_id,product_id,timestamp,quantity,rating",
            self.transactions
                .iter()
                .map(|t| {
                    format!(
                        "{},{},{},{},{:.1}",
                        self.customers[t.customer].id,
                        self.products[t.product].id,
                        t.timestamp,
                        t.quantity,
                        t.rating
                    )
                })
                .collect(),
        )?;
        let s = self.split(0.1, 0.1);
        for (name, rows) in [("train", s.train), ("eval", s.eval), ("test", s.test)] {
            self.write_joined(&dir.join(name).join("interactions.csv"), rows)?;
        }
        Ok(())
    }
}

/// Recall@k of recommending the k most purchased training products to everyone: the share of
/// held-out transactions whose product is among them.
pub fn popularity_recall_at_k(train: &[Transaction], held_out: &[Transaction], k: usize) -> f64 {
    if held_out.is_empty() {
        return 0.0;
    }
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for t in train {
        *counts.entry(t.product).or_default() += 1;
    }
    let mut ranked: Vec<(usize, usize)> = counts.into_iter().collect();
    // most purchased first; ties by product index for determinism
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: HashSet<usize> = ranked.into_iter().take(k).map(|(p, _)| p).collect();
    let hits = held_out.iter().filter(|t| top.contains(&t.product)).count();
    hits as f64 / held_out.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_name_is_known_and_sizes_grow() {
        let sizes: Vec<SynthConfig> = SynthConfig::SIZES
            .iter()
            .map(|n| SynthConfig::named(n).unwrap_or_else(|| panic!("{n} unknown")))
            .collect();
        assert_eq!(sizes[0], SynthConfig::tiny());
        assert!(sizes
            .windows(2)
            .all(|w| w[0].n_transactions < w[1].n_transactions));
        assert!(SynthConfig::named("huge").is_none());
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = generate(&SynthConfig::tiny()).unwrap();
        let b = generate(&SynthConfig::tiny()).unwrap();
        assert_eq!(a, b);
        let c = generate(&SynthConfig::tiny().with_seed(7)).unwrap();
        assert_ne!(a.transactions, c.transactions);
    }

    #[test]
    fn sizes_ids_and_ranges() {
        let cfg = SynthConfig::tiny();
        let d = generate(&cfg).unwrap();
        assert_eq!(d.customers.len(), cfg.n_customers);
        assert_eq!(d.products.len(), cfg.n_products);
        assert_eq!(d.transactions.len(), cfg.n_transactions);
        let ids: HashSet<_> = d.products.iter().map(|p| &p.id).collect();
        assert_eq!(ids.len(), cfg.n_products, "product ids must be unique");
        assert!(d
            .products
            .iter()
            .all(|p| p.id.starts_with('P') && p.price > 0.0));
        assert!(d
            .transactions
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp));
        assert!(d
            .transactions
            .iter()
            .all(|t| (1.0..=5.0).contains(&t.rating) && t.quantity >= 1));
    }

    #[test]
    fn affinity_is_planted() {
        // customers of one segment concentrate on a few categories; popularity alone does not
        let d = generate(&SynthConfig::tiny()).unwrap();
        let mut per_seg: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        for t in &d.transactions {
            let seg = d.customers[t.customer].segment.as_str();
            let cat = d.products[t.product].category.as_str();
            *per_seg.entry(seg).or_default().entry(cat).or_default() += 1;
        }
        for (seg, cats) in per_seg {
            let total: usize = cats.values().sum();
            let mut v: Vec<usize> = cats.values().copied().collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            let top4: usize = v.iter().take(4).sum();
            assert!(
                top4 as f64 / total as f64 > 0.6,
                "segment {seg}: top-4 categories hold only {top4}/{total}"
            );
        }
        // ratings are higher for basket re-orders than for random purchases on average
        let s = d.split(0.1, 0.1);
        let pop = popularity_recall_at_k(s.train, s.test, 100);
        assert!(pop > 0.05 && pop < 0.9, "popularity recall@100 = {pop}");
    }

    #[test]
    fn popularity_recall_counts_hits() {
        let t = |p| Transaction {
            customer: 0,
            product: p,
            timestamp: 0,
            quantity: 1,
            rating: 3.0,
        };
        let train = vec![t(1), t(1), t(2), t(3)];
        let test = vec![t(1), t(2), t(4), t(1)];
        assert_eq!(popularity_recall_at_k(&train, &test, 1), 0.5);
        assert_eq!(popularity_recall_at_k(&train, &test, 2), 0.75);
        assert_eq!(popularity_recall_at_k(&train, &[], 2), 0.0);
    }

    #[test]
    fn writes_deterministic_files() {
        let d = generate(&SynthConfig::tiny()).unwrap();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        d.write_all(a.path()).unwrap();
        d.write_all(b.path()).unwrap();
        for f in [
            "customers.csv",
            "products.csv",
            "transactions.csv",
            "train/interactions.csv",
            "test/interactions.csv",
        ] {
            let x = fs::read(a.path().join(f)).unwrap();
            assert_eq!(x, fs::read(b.path().join(f)).unwrap(), "{f}");
        }
        let train = fs::read_to_string(a.path().join("train/interactions.csv")).unwrap();
        let mut lines = train.lines();
        assert_eq!(lines.next().unwrap(), INTERACTION_COLUMNS.join(","));
        assert_eq!(
            lines.next().unwrap().split(',').count(),
            INTERACTION_COLUMNS.len()
        );
        assert_eq!(train.lines().count(), 1 + 9_600);
    }
}
