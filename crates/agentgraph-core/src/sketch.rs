//! A bounded quantile summary: exact for the first samples, then a log-bucketed histogram with
//! 1 % relative error, so per-edge and per-agent percentiles cost bounded memory on any input.

use std::collections::BTreeMap;

const EXACT_LIMIT: usize = 1024;
/// Bucket growth factor: a value is reported within ±1 % of its true value.
const GAMMA: f64 = 1.02;

/// Quantiles over non-negative values.
#[derive(Clone, Debug, Default)]
pub struct Sketch {
    exact: Vec<f64>,
    buckets: BTreeMap<i32, u64>,
    zeros: u64,
    count: u64,
    max: f64,
    min: f64,
}

impl Sketch {
    pub fn add(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        if self.count == 0 || v > self.max {
            self.max = v;
        }
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        self.count += 1;
        if self.buckets.is_empty() && self.zeros == 0 && self.exact.len() < EXACT_LIMIT {
            self.exact.push(v);
            return;
        }
        for x in std::mem::take(&mut self.exact) {
            self.bucket(x);
        }
        self.bucket(v);
    }

    fn bucket(&mut self, v: f64) {
        if v <= 0.0 {
            self.zeros += 1;
        } else {
            *self.buckets.entry((v.ln() / GAMMA.ln()).ceil() as i32).or_insert(0) += 1;
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> f64 {
        self.max
    }

    /// The nearest-rank quantile `q` in [0, 1]; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if !self.exact.is_empty() {
            let mut sorted = self.exact.clone();
            sorted.sort_by(f64::total_cmp);
            return sorted[(rank - 1) as usize];
        }
        let mut seen = self.zeros;
        if seen >= rank {
            return 0.0;
        }
        for (&idx, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                // The bucket (γ^(i-1), γ^i] is reported at its midpoint.
                let hi = GAMMA.powi(idx);
                let v = 2.0 * hi / (1.0 + GAMMA);
                return v.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_approximate() {
        let mut s = Sketch::default();
        for v in [5.0, 1.0, 3.0] {
            s.add(v);
        }
        assert_eq!(s.quantile(0.5), 3.0);
        assert_eq!(s.quantile(1.0), 5.0);
        let mut big = Sketch::default();
        for i in 1..=100_000 {
            big.add(i as f64);
        }
        let p50 = big.quantile(0.5);
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.02, "{p50}");
        assert_eq!(big.max(), 100_000.0);
        assert!(big.buckets.len() < 1000);
    }
}
