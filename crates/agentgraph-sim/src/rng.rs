//! A small deterministic random number generator (xoshiro256**, seeded by SplitMix64), so a seed
//! gives the same simulated cluster on every machine and every version of dependencies.

#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    /// An independent stream derived from this one (for parts that must not shift each other).
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.next_u64() ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform integer in [lo, hi].
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Log-uniform in [lo, hi]: sizes and durations spread over orders of magnitude.
    pub fn log_uniform(&mut self, range: [f64; 2]) -> f64 {
        let (lo, hi) = (range[0].max(1e-9), range[1].max(range[0]).max(1e-9));
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    /// Exponential with the given mean (Poisson inter-arrival times).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// A bounded Pareto integer in [lo, hi] with shape `alpha`: mostly small, sometimes large.
    pub fn pareto_int(&mut self, lo: usize, hi: usize, alpha: f64) -> usize {
        if hi <= lo {
            return lo;
        }
        let (l, h) = (lo.max(1) as f64, hi as f64 + 1.0);
        let u = self.unit();
        let x = (-(u * h.powf(alpha) - u * l.powf(alpha) - h.powf(alpha)) / (h.powf(alpha) * l.powf(alpha)))
            .powf(-1.0 / alpha);
        (x.floor() as usize).clamp(lo, hi)
    }

    /// Lower-case letters and digits from Kubernetes' name alphabet.
    pub fn k8s_suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len).map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char).collect()
    }

    pub fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(digits);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        for _ in 0..1000 {
            let v = a.log_uniform([300.0, 5e6]);
            assert!((300.0..=5e6 * 1.0001).contains(&v));
            let n = a.pareto_int(2, 40, 1.3);
            assert!((2..=40).contains(&n));
        }
    }
}
