//! Which partner each call asks for: uniformly random (the default), skewed
//! like real traffic (Zipf), or always the same one (what h2load does).
//!
//! Zipf draws a popularity rank `1..=N` (rank k with probability
//! proportional to `1 / k^s`) by rejection from a continuous envelope, in
//! O(1) time and memory per draw whatever N (the method of `rand_distr`'s
//! `Zipf`): about 30 ns a draw, 3 % of draws rejected at N = 1 000 000,
//! s = 1 (see `--rpc sample`). The rank is then mapped to a partner id
//! through a fixed pseudo-random permutation of `1..=N`, so the popular
//! partners are spread over the whole id range: the cache warm-up, which
//! goes through ids in order, does not favour them.

use std::sync::Arc;

use crate::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    /// Every partner equally likely.
    Uniform,
    /// Zipf(--zipf-s) over popularity ranks, ranks permuted over the ids.
    Zipf,
    /// Always --partner (as h2load, which repeats one fixed request).
    One,
}

/// The seed of the rank-to-id permutation: fixed, so the popular partners
/// are the same in every run and every shape.
const PERMUTATION_SEED: u64 = 0x21bf_5eed;

/// Zipf(s) over `1..=n` by rejection-inversion from the envelope
/// `1` on `[0, 1)` and `u^-s` on `[1, n)`: draw `u` by inverting the
/// envelope's CDF, take `k = floor(u) + 1`, accept with probability
/// `k^-s / u^-s` (1 on the first interval).
#[derive(Clone, Copy, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    /// Total mass of the envelope.
    t: f64,
    /// `1 / (1 - s)` (unused when s = 1).
    q: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Result<Self, String> {
        if n == 0 || !(s > 0.0 && s.is_finite()) {
            return Err(format!(
                "Zipf needs n >= 1 and s > 0 (got n = {n}, s = {s})"
            ));
        }
        let n = n as f64;
        let (t, q) = if s == 1.0 {
            (1.0 + n.ln(), 0.0)
        } else {
            let q = 1.0 / (1.0 - s);
            ((n.powf(1.0 - s) - s) * q, q)
        };
        Ok(Self { n, s, t, q })
    }

    fn inv_cdf(&self, p: f64) -> f64 {
        let pt = p * self.t;
        if pt <= 1.0 {
            pt
        } else if self.s == 1.0 {
            (pt - 1.0).exp()
        } else {
            (pt * (1.0 - self.s) + self.s).powf(self.q)
        }
    }

    /// A rank in `1..=n`; rank 1 is the most popular.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.inv_cdf(rng.unit());
            let k = (u + 1.0).floor();
            let accept = if k > 1.0 {
                if self.s == 1.0 {
                    u / k
                } else {
                    (u / k).powf(self.s)
                }
            } else {
                1.0
            };
            if rng.unit() < accept {
                return (k as u64).clamp(1, self.n as u64);
            }
        }
    }

    /// The probability of the `k` most popular ranks together, H(k,s)/H(n,s)
    /// (summed: for the report only).
    pub fn head_share(&self, k: u64) -> f64 {
        let n = self.n as u64;
        let (mut head, mut all) = (0.0, 0.0);
        for i in 1..=n {
            let w = (i as f64).powf(-self.s);
            all += w;
            if i <= k {
                head += w;
            }
        }
        head / all
    }
}

/// Picks the partner of each call.
#[derive(Clone)]
pub enum Picker {
    Uniform(u64),
    Zipf(Zipf, Arc<Vec<u32>>),
    One(u64),
}

impl Picker {
    pub fn new(d: Distribution, n: u64, s: f64, one: u64) -> Result<Self, String> {
        Ok(match d {
            Distribution::Uniform => Self::Uniform(n),
            Distribution::One => {
                if one == 0 {
                    return Err("--partner must be at least 1".to_owned());
                }
                Self::One(one)
            }
            Distribution::Zipf => {
                let n32 = u32::try_from(n).map_err(|_| "Zipf: at most 2^32 - 1 partners")?;
                Self::Zipf(Zipf::new(n, s)?, Arc::new(permutation(n32)))
            }
        })
    }

    pub fn pick(&self, rng: &mut Rng) -> u64 {
        match self {
            Self::Uniform(n) => rng.partner(*n),
            Self::One(p) => *p,
            Self::Zipf(z, ids) => u64::from(ids[(z.sample(rng) - 1) as usize]),
        }
    }
}

/// `1..=n` shuffled (Fisher-Yates) with a fixed seed: rank k is partner
/// `ids[k - 1]`.
fn permutation(n: u32) -> Vec<u32> {
    let mut ids: Vec<u32> = (1..=n).collect();
    let mut rng = Rng(PERMUTATION_SEED);
    for i in (1..ids.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        ids.swap(i, j);
    }
    ids
}
