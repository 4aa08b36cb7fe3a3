//! Synthetic card transactions with fraud labels: the shape of a real card-fraud
//! table (entities = cards, a timeline with daily and weekly seasonality, lognormal
//! amounts per merchant category, merchants and countries, ~1% fraud) for feature
//! engineering, point-in-time joins and imbalanced classification.
//!
//! The output is plain columns (one `Vec` per column) so this crate stays free of
//! Arrow; `kernels::data::columns` turns them into a record batch.
//!
//! How it is made (all from one ChaCha8 stream, so a seed gives the same table everywhere):
//! - **Merchants** get a category (weighted), a country and a Zipf-like popularity.
//! - **Cards** get a home country, an activity level and a spend level (both lognormal),
//!   and a handful of regular merchants in their home country.
//! - **Legitimate transactions**: per card a Poisson-like count over the period; the day
//!   is drawn with weekly weights (busier Fridays and Saturdays), the hour from a diurnal
//!   curve (quiet 01:00–05:00, peaks at lunch and early evening); 85% go to the card's
//!   regular merchants; amount = lognormal of the category × the card's spend level.
//! - **Fraud** comes in bursts on compromised cards: a run of 1–8 transactions a few
//!   minutes apart, starting mostly at night, at merchants the card never used in
//!   high-risk categories (electronics, online retail, travel), often abroad, with
//!   amounts spiked ×e^(1.2±0.5), sometimes after a tiny "card test" charge. So fraud
//!   correlates with amount spikes, new merchants, foreign countries, night hours and
//!   velocity, but none of them alone decides it.
//!
//! Rows are sorted by time (ties by card); `transaction_id` is the row number.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Tier;

/// Merchant categories: `(name, μ, σ of ln(amount in dollars), share of merchants)`.
pub const CATEGORIES: [(&str, f64, f64, f64); 8] = [
    ("grocery", 3.4, 0.6, 0.25),
    ("restaurant", 3.1, 0.5, 0.18),
    ("fuel", 3.7, 0.3, 0.12),
    ("online_retail", 3.6, 0.9, 0.15),
    ("electronics", 4.8, 0.8, 0.05),
    ("travel", 5.3, 0.9, 0.05),
    ("pharmacy", 3.0, 0.6, 0.08),
    ("entertainment", 3.3, 0.7, 0.12),
];

/// Countries (ISO 3166 alpha-2) with their share of cards and merchants.
pub const COUNTRIES: [(&str, f64); 10] = [
    ("US", 0.40),
    ("GB", 0.12),
    ("DE", 0.10),
    ("FR", 0.09),
    ("CA", 0.07),
    ("ES", 0.06),
    ("NL", 0.05),
    ("IT", 0.05),
    ("BR", 0.03),
    ("IN", 0.03),
];

/// Relative activity by day of the week, Monday first.
const WEEKDAY: [f64; 7] = [0.90, 0.95, 1.00, 1.00, 1.15, 1.30, 1.05];

/// Relative activity of legitimate spending by hour of the day (UTC, taken as local).
const HOURS: [f64; 24] = [
    0.25, 0.12, 0.06, 0.04, 0.04, 0.08, 0.30, 0.70, 1.00, 1.05, 1.10, 1.30, 1.60, 1.50, 1.20, 1.15, 1.25, 1.50, 1.75,
    1.70, 1.40, 1.05, 0.75, 0.45,
];

/// Start hour of a fraud burst: night-heavy.
const FRAUD_HOURS: [f64; 24] = [
    1.6, 1.8, 2.0, 2.0, 1.8, 1.4, 1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.8, 0.9, 1.0, 1.2,
    1.4,
];

const HIGH_RISK: [usize; 3] = [3, 4, 5]; // online_retail, electronics, travel
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Shape of a generated transaction table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransactionsConfig {
    /// Number of cards (entities).
    pub cards: usize,
    /// Number of merchants.
    pub merchants: usize,
    /// Length of the period in days.
    pub days: u32,
    /// First instant of the period, microseconds since the Unix epoch (UTC).
    pub start_micros: i64,
    /// Mean legitimate transactions per card per day (cards vary around it).
    pub rate_per_card_day: f64,
    /// Target share of fraudulent transactions (the realised share is close to it).
    pub fraud_rate: f64,
    /// Seed of the stream.
    pub seed: u64,
}

impl TransactionsConfig {
    /// Midnight UTC, Monday 1 January 2024.
    pub const START_2024: i64 = 1_704_067_200 * MICROS_PER_SECOND;

    /// The standard shape at a size tier (1% fraud, from 2024-01-01):
    /// tiny ≈ 2.8 k rows (100 cards, 4 weeks), medium ≈ 540 k (5,000 cards, 90 days),
    /// full ≈ 4.3 M (20,000 cards, 180 days).
    pub fn tier(tier: Tier, seed: u64) -> TransactionsConfig {
        let (cards, merchants, days, rate) = match tier {
            Tier::Tiny => (100, 150, 28, 1.0),
            Tier::Medium => (5_000, 2_000, 90, 1.2),
            Tier::Full => (20_000, 8_000, 180, 1.2),
        };
        TransactionsConfig {
            cards,
            merchants,
            days,
            start_micros: Self::START_2024,
            rate_per_card_day: rate,
            fraud_rate: 0.01,
            seed,
        }
    }
}

/// A transaction table, one `Vec` per column, all of the same length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transactions {
    /// Row number after sorting by time (unique).
    pub transaction_id: Vec<u64>,
    /// The card (entity key).
    pub card_id: Vec<u64>,
    /// The merchant.
    pub merchant_id: Vec<u32>,
    /// When, in microseconds since the Unix epoch (UTC).
    pub timestamp_micros: Vec<i64>,
    /// Amount in dollars, rounded to cents.
    pub amount: Vec<f64>,
    /// The merchant's category (one of [`CATEGORIES`]).
    pub category: Vec<&'static str>,
    /// The merchant's country.
    pub merchant_country: Vec<&'static str>,
    /// The card's home (issuing) country.
    pub card_country: Vec<&'static str>,
    /// Fraud label.
    pub is_fraud: Vec<bool>,
}

impl Transactions {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.transaction_id.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.transaction_id.is_empty()
    }

    /// Share of rows labelled fraud.
    pub fn fraud_share(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.is_fraud.iter().filter(|&&f| f).count() as f64 / self.len() as f64 }
    }
}

struct Merchant {
    category: usize,
    country: usize,
}

struct Card {
    country: usize,
    activity: f64,
    spend: f64,
    regulars: Vec<u32>,
}

/// One row before sorting.
struct Row {
    time: i64,
    card: u64,
    merchant: u32,
    amount: f64,
    fraud: bool,
}

/// Generates the table `config` describes.
pub fn transactions(config: &TransactionsConfig) -> Transactions {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let n_merchants = config.merchants.max(1);
    let cat_w: Vec<f64> = CATEGORIES.iter().map(|c| c.3).collect();
    let country_w: Vec<f64> = COUNTRIES.iter().map(|c| c.1).collect();

    let merchants: Vec<Merchant> = (0..n_merchants)
        .map(|_| Merchant { category: pick(&mut rng, &cat_w), country: pick(&mut rng, &country_w) })
        .collect();
    // Zipf-like popularity: a few merchants get much of the traffic.
    let popularity: Vec<f64> = (0..n_merchants).map(|i| 1.0 / (i as f64 + 1.0).powf(0.8)).collect();
    let mut by_country: Vec<Vec<u32>> = vec![Vec::new(); COUNTRIES.len()];
    for (i, m) in merchants.iter().enumerate() {
        by_country[m.country].push(i as u32);
    }

    let cards: Vec<Card> = (0..config.cards)
        .map(|_| {
            let country = pick(&mut rng, &country_w);
            let activity = (0.5 * gaussian(&mut rng) - 0.125).exp();
            let spend = (0.3 * gaussian(&mut rng)).exp();
            let local = &by_country[country];
            let k = rng.random_range(3..=8);
            let regulars = (0..k)
                .map(|_| {
                    if local.is_empty() {
                        pick(&mut rng, &popularity) as u32
                    } else {
                        let w: Vec<f64> = local.iter().map(|&m| popularity[m as usize]).collect();
                        local[pick(&mut rng, &w)]
                    }
                })
                .collect();
            Card { country, activity, spend, regulars }
        })
        .collect();

    let days = config.days.max(1) as i64;
    let start_day = config.start_micros.div_euclid(MICROS_PER_DAY);
    let weekday_max = WEEKDAY.iter().copied().fold(0.0, f64::max);
    let draw_day = |rng: &mut ChaCha8Rng| loop {
        let d = rng.random_range(0..days);
        let weekday = ((start_day + d + 3).rem_euclid(7)) as usize; // 1970-01-01 was a Thursday
        if rng.random::<f64>() * weekday_max < WEEKDAY[weekday] {
            break d;
        }
    };
    let amount_of = |rng: &mut ChaCha8Rng, category: usize, scale: f64| {
        let (_, mu, sigma, _) = CATEGORIES[category];
        (((mu + sigma * gaussian(rng)).exp() * scale) * 100.0).round().max(1.0) / 100.0
    };

    let mut rows: Vec<Row> = Vec::new();
    for (c, card) in cards.iter().enumerate() {
        let lambda = config.rate_per_card_day * days as f64 * card.activity;
        let count = (lambda + lambda.sqrt() * gaussian(&mut rng)).round().max(0.0) as usize;
        for _ in 0..count {
            let day = draw_day(&mut rng);
            let hour = pick(&mut rng, &HOURS) as i64;
            let second = rng.random_range(0..3600i64);
            let time = config.start_micros + day * MICROS_PER_DAY + (hour * 3600 + second) * MICROS_PER_SECOND;
            let merchant = if rng.random::<f64>() < 0.85 {
                card.regulars[rng.random_range(0..card.regulars.len())]
            } else {
                pick(&mut rng, &popularity) as u32
            };
            let amount = amount_of(&mut rng, merchants[merchant as usize].category, card.spend);
            rows.push(Row { time, card: c as u64, merchant, amount, fraud: false });
        }
    }

    // Fraud bursts until the target share is reached.
    let legit = rows.len();
    let target = if config.fraud_rate > 0.0 && config.fraud_rate < 1.0 && !cards.is_empty() {
        (config.fraud_rate * legit as f64 / (1.0 - config.fraud_rate)).round() as usize
    } else {
        0
    };
    let risky: Vec<u32> =
        (0..n_merchants as u32).filter(|&m| HIGH_RISK.contains(&merchants[m as usize].category)).collect();
    let mut frauds = 0;
    while frauds < target {
        let c = rng.random_range(0..cards.len());
        let card = &cards[c];
        let burst = (1 + geometric(&mut rng, 0.4)).min(8).min(target - frauds);
        let day = rng.random_range(0..days);
        let hour = pick(&mut rng, &FRAUD_HOURS) as i64;
        let mut time = config.start_micros
            + day * MICROS_PER_DAY
            + (hour * 3600 + rng.random_range(0..3600i64)) * MICROS_PER_SECOND;
        let end = config.start_micros + days * MICROS_PER_DAY - 1;
        for k in 0..burst {
            let mut tries = 0;
            let merchant = loop {
                tries += 1;
                let m = if risky.is_empty() || rng.random::<f64>() < 0.2 {
                    rng.random_range(0..n_merchants as u32)
                } else {
                    risky[rng.random_range(0..risky.len())]
                };
                let abroad = merchants[m as usize].country != card.country;
                // Prefer foreign merchants half of the time; never a merchant the card uses.
                if tries > 100 || (!card.regulars.contains(&m) && (abroad || rng.random::<f64>() < 0.5)) {
                    break m;
                }
            };
            let amount = if k == 0 && rng.random::<f64>() < 0.3 {
                (rng.random_range(1.0..5.0f64) * 100.0).round() / 100.0 // a "card test"
            } else {
                let spike = (1.2 + 0.5 * gaussian(&mut rng)).exp();
                amount_of(&mut rng, merchants[merchant as usize].category, card.spend * spike)
            };
            rows.push(Row { time: time.min(end), card: c as u64, merchant, amount, fraud: true });
            // Next charge a few minutes later (exponential, mean 12 minutes).
            let gap = -(1.0 - rng.random::<f64>()).ln() * 720.0;
            time += (gap * MICROS_PER_SECOND as f64) as i64 + MICROS_PER_SECOND;
        }
        frauds += burst;
    }

    rows.sort_by(|a, b| a.time.cmp(&b.time).then(a.card.cmp(&b.card)));
    let mut t = Transactions::default();
    for (i, r) in rows.into_iter().enumerate() {
        let m = &merchants[r.merchant as usize];
        t.transaction_id.push(i as u64);
        t.card_id.push(r.card);
        t.merchant_id.push(r.merchant);
        t.timestamp_micros.push(r.time);
        t.amount.push(r.amount);
        t.category.push(CATEGORIES[m.category].0);
        t.merchant_country.push(COUNTRIES[m.country].0);
        t.card_country.push(COUNTRIES[cards[r.card as usize].country].0);
        t.is_fraud.push(r.fraud);
    }
    t
}

/// Index drawn with probability proportional to `weights`.
fn pick(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// Failures before the first success with probability `p`.
fn geometric(rng: &mut ChaCha8Rng, p: f64) -> usize {
    let mut k = 0;
    while rng.random::<f64>() >= p && k < 64 {
        k += 1;
    }
    k
}

/// Standard normal by Box–Muller.
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Names of the columns of [`fraud_features`], in order.
pub const FRAUD_FEATURES: [&str; 9] = [
    "amount",
    "log_amount",
    "hour",
    "category",
    "foreign",
    "minutes_since_previous",
    "card_txns_last_hour",
    "amount_over_card_mean",
    "new_merchant",
];

/// The fraud features of the first `rows` transactions of `t` (all of them if fewer), row-major with
/// [`FRAUD_FEATURES`] columns, and the labels (1 for fraud). Each row sees only the card's past:
/// amount, its `ln(1 + amount)`, hour of day, category id (index in [`CATEGORIES`]), foreign merchant,
/// minutes since the card's previous transaction (30 days when none, and capped there), the card's
/// transactions in the previous hour, amount over the card's mean amount so far (1 for its first), and
/// first visit of the card to the merchant. The features of the c3w3 and c3w4 benchmarks.
pub fn fraud_features(t: &Transactions, rows: usize) -> (Vec<f32>, Vec<u8>) {
    use std::collections::{HashMap, HashSet};
    const MINUTE: i64 = 60_000_000;
    const CAP: i64 = 30 * 1440;
    let n = rows.min(t.len());
    let mut data = Vec::with_capacity(n * FRAUD_FEATURES.len());
    let mut y = Vec::with_capacity(n);
    let mut last: HashMap<u64, i64> = HashMap::new();
    let mut recent: HashMap<u64, Vec<i64>> = HashMap::new();
    let mut spend: HashMap<u64, (f64, f64)> = HashMap::new();
    let mut seen: HashSet<(u64, u32)> = HashSet::new();
    for i in 0..n {
        let (card, ts, amount) = (t.card_id[i], t.timestamp_micros[i], t.amount[i]);
        let hour = ((ts / (60 * MINUTE)) % 24) as f32;
        let category = CATEGORIES.iter().position(|c| c.0 == t.category[i]).unwrap_or(0) as f32;
        let foreign = f32::from(u8::from(t.merchant_country[i] != t.card_country[i]));
        let since = last.get(&card).map_or(CAP as f32, |&p| ((ts - p) / MINUTE).min(CAP) as f32);
        let window = recent.entry(card).or_default();
        window.retain(|&p| ts - p <= 60 * MINUTE);
        let in_hour = window.len() as f32;
        let (sum, count) = spend.get(&card).copied().unwrap_or((0.0, 0.0));
        let ratio = if count > 0.0 { (amount / (sum / count)) as f32 } else { 1.0 };
        let new_merchant = f32::from(u8::from(seen.insert((card, t.merchant_id[i]))));
        data.extend_from_slice(&[
            amount as f32,
            amount.ln_1p() as f32,
            hour,
            category,
            foreign,
            since,
            in_hour,
            ratio,
            new_merchant,
        ]);
        y.push(u8::from(t.is_fraud[i]));
        last.insert(card, ts);
        window.push(ts);
        let e = spend.entry(card).or_insert((0.0, 0.0));
        e.0 += amount;
        e.1 += 1.0;
    }
    (data, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(seed: u64) -> Transactions {
        transactions(&TransactionsConfig::tier(Tier::Tiny, seed))
    }

    fn mean(v: impl Iterator<Item = f64>) -> f64 {
        let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        s / n as f64
    }

    #[test]
    fn same_seed_same_table_other_seed_other_table() {
        let a = tiny(7);
        assert_eq!(a, tiny(7));
        assert_ne!(a, tiny(8));
        let n = a.len();
        assert!((2_000..4_000).contains(&n), "tiny tier has {n} rows");
        for len in [a.card_id.len(), a.merchant_id.len(), a.timestamp_micros.len(), a.amount.len(), a.category.len()] {
            assert_eq!(len, n);
        }
        for len in [a.merchant_country.len(), a.card_country.len(), a.is_fraud.len()] {
            assert_eq!(len, n);
        }
        assert_eq!(a.transaction_id, (0..n as u64).collect::<Vec<_>>());
    }

    #[test]
    fn rows_are_sorted_inside_the_period_with_valid_fields() {
        let cfg = TransactionsConfig::tier(Tier::Tiny, 3);
        let t = transactions(&cfg);
        assert!(t.timestamp_micros.windows(2).all(|w| w[0] <= w[1]));
        let end = cfg.start_micros + cfg.days as i64 * MICROS_PER_DAY;
        assert!(t.timestamp_micros.iter().all(|&ts| (cfg.start_micros..end).contains(&ts)));
        assert!(t.amount.iter().all(|&a| a >= 0.01 && a.is_finite() && (a * 100.0 - (a * 100.0).round()).abs() < 1e-6));
        assert!(t.card_id.iter().all(|&c| (c as usize) < cfg.cards));
        assert!(t.merchant_id.iter().all(|&m| (m as usize) < cfg.merchants));
    }

    #[test]
    fn fraud_is_rare_and_correlates_with_its_signals() {
        // Medium-sized shape, shorter period: enough fraud rows for stable shares.
        let cfg = TransactionsConfig { cards: 2_000, days: 30, ..TransactionsConfig::tier(Tier::Medium, 11) };
        let t = transactions(&cfg);
        let share = t.fraud_share();
        assert!((0.005..=0.02).contains(&share), "fraud share {share}");
        let hour = |ts: i64| ts.rem_euclid(MICROS_PER_DAY) / (3600 * MICROS_PER_SECOND);
        let night = |i: usize| (1..=5).contains(&hour(t.timestamp_micros[i]));
        let (fraud, legit): (Vec<usize>, Vec<usize>) = (0..t.len()).partition(|&i| t.is_fraud[i]);
        let night_f = mean(fraud.iter().map(|&i| night(i) as u8 as f64));
        let night_l = mean(legit.iter().map(|&i| night(i) as u8 as f64));
        assert!(night_f > 3.0 * night_l, "night share fraud {night_f} vs legit {night_l}");
        let abroad = |i: usize| (t.merchant_country[i] != t.card_country[i]) as u8 as f64;
        let abroad_f = mean(fraud.iter().map(|&i| abroad(i)));
        let abroad_l = mean(legit.iter().map(|&i| abroad(i)));
        assert!(abroad_f > 2.0 * abroad_l, "abroad share fraud {abroad_f} vs legit {abroad_l}");
        let ln_f = mean(fraud.iter().map(|&i| t.amount[i].ln()));
        let ln_l = mean(legit.iter().map(|&i| t.amount[i].ln()));
        assert!(ln_f > ln_l + 0.5, "mean ln(amount) fraud {ln_f} vs legit {ln_l}");
    }

    #[test]
    fn weekly_and_daily_seasonality_show() {
        let cfg = TransactionsConfig { cards: 1_000, days: 28, ..TransactionsConfig::tier(Tier::Medium, 5) };
        let t = transactions(&cfg);
        let mut by_weekday = [0usize; 7];
        let mut by_hour = [0usize; 24];
        for &ts in &t.timestamp_micros {
            let day = ts.div_euclid(MICROS_PER_DAY);
            by_weekday[((day + 3).rem_euclid(7)) as usize] += 1;
            by_hour[(ts.rem_euclid(MICROS_PER_DAY) / (3600 * MICROS_PER_SECOND)) as usize] += 1;
        }
        assert!(by_weekday[5] as f64 > 1.2 * by_weekday[0] as f64, "Saturday vs Monday: {by_weekday:?}");
        assert!(by_hour[18] > 10 * by_hour[3], "18:00 vs 03:00: {by_hour:?}");
    }
}
