//! Which key a request uses: a key number drawn from a distribution (uniform, zipf,
//! sequential), written as a key name (`key:000000012345`, or with a hash tag
//! `key:{7}:000000012345` so that a group of keys shares one slot).

/// A small, fast generator (xorshift64*); each thread seeds its own.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that seeds 0, 1, 2... give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift (bias below 2^-32 for n < 2^32).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf's law over ranks 1..=n: P(k) proportional to 1 / k^s (s > 0).
///
/// Sampled by rejection-inversion (W. Hörmann and G. Derflinger, "Rejection-inversion
/// to generate variates from monotone discrete distributions", 1996): invert the
/// integral H of the continuous hat h(x) = x^-s over [k - 1/2, k + 1/2] and accept
/// most draws at once; constant time and memory whatever n is, unlike a table of
/// the cumulative distribution (8 MB per million keys).
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    threshold: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Result<Zipf, String> {
        if n == 0 {
            return Err("zipf needs at least one key".into());
        }
        if !(s.is_finite() && s > 0.0) {
            return Err(format!("zipf exponent must be > 0, got {s}"));
        }
        let mut z = Zipf { n: n as f64, s, h_integral_x1: 0.0, h_integral_n: 0.0, threshold: 0.0 };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.threshold = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        Ok(z)
    }

    /// A rank in 1..=n.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.threshold || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    /// h(x) = x^-s.
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// H(x) = (x^(1-s) - 1) / (1 - s), or ln x when s = 1: an antiderivative of h.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        expm1_over_x((1.0 - self.s) * log_x) * log_x
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (ln1p_over_x(t) * x).exp()
    }
}

/// (e^x - 1) / x, continuous at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + x * 0.25))
    }
}

/// ln(1 + x) / x, continuous at 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - x * 0.25))
    }
}

/// How key numbers are drawn.
#[derive(Clone, Debug)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Key number k-1 has Zipf rank k: key 0 is the hottest.
    Zipf(Zipf),
    /// Thread t of T takes keys t, t+T, t+2T, ... (wrapping): with as many requests as
    /// keys, every key once — for filling a dataset.
    Sequential { next: u64, step: u64 },
}

/// Draws key numbers and writes key names.
#[derive(Clone, Debug)]
pub struct KeyGen {
    pub keys: u64,
    pub dist: Distribution,
    /// 0: no hash tags; n: key i is in tag group i % n.
    pub hash_tags: u64,
    pub prefix: Vec<u8>,
}

impl KeyGen {
    pub fn next(&mut self, rng: &mut Rng) -> u64 {
        match &mut self.dist {
            Distribution::Uniform => rng.below(self.keys),
            Distribution::Zipf(z) => z.sample(rng) - 1,
            Distribution::Sequential { next, step } => {
                let k = *next % self.keys;
                *next = next.wrapping_add(*step);
                k
            }
        }
    }

    /// Appends the name of key `k` to `out`: `<prefix><12 digits>`, or
    /// `<prefix>{<k % tags>}:<12 digits>` with hash tags.
    pub fn name(&self, k: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        if self.hash_tags > 0 {
            out.push(b'{');
            push_decimal(out, k % self.hash_tags, 1);
            out.extend_from_slice(b"}:");
        }
        push_decimal(out, k, 12);
    }
}

/// Appends `v` in decimal, zero-padded to `width` digits.
pub fn push_decimal(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(len)));
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact probabilities of ranks 1..=n, summed directly.
    fn pmf(n: u64, s: f64) -> Vec<f64> {
        let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }

    /// Draws `samples` ranks and compares each rank's count with the exact law: every
    /// rank within 5 standard deviations, and Pearson's chi-square below a bound that
    /// a correct sampler exceeds with negligible probability (fixed seed: the test is
    /// deterministic).
    fn check(n: u64, s: f64, samples: u64) {
        let z = Zipf::new(n, s).unwrap();
        let mut rng = Rng::new(42);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k), "rank {k} out of 1..={n}");
            counts[(k - 1) as usize] += 1;
        }
        let p = pmf(n, s);
        let mut chi2 = 0.0;
        for (i, (&c, &p)) in counts.iter().zip(&p).enumerate() {
            let expected = p * samples as f64;
            let sd = (samples as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (c as f64 - expected).abs() <= 5.0 * sd + 1.0,
                "n={n} s={s} rank {}: {c} draws, expected {expected:.1}",
                i + 1
            );
            chi2 += (c as f64 - expected).powi(2) / expected;
        }
        // Degrees of freedom n-1; mean n-1, sd sqrt(2(n-1)): allow 6 sd.
        let df = (n - 1) as f64;
        assert!(chi2 <= df + 6.0 * (2.0 * df).sqrt(), "n={n} s={s}: chi-square {chi2:.1} for {df} degrees of freedom");
    }

    #[test]
    fn zipf_matches_the_exact_law() {
        check(100, 1.1, 400_000);
        check(50, 1.0, 200_000);
        check(50, 0.5, 200_000);
        check(20, 2.5, 200_000);
        check(1, 1.1, 1000);
    }

    #[test]
    fn zipf_over_a_million_keys_is_skewed_as_the_law_says() {
        // s = 1.1 over 1M keys: the hottest key's share is 1 / H(1M, 1.1).
        let n = 1_000_000u64;
        let harmonic: f64 = (1..=n).map(|k| (k as f64).powf(-1.1)).sum();
        let z = Zipf::new(n, 1.1).unwrap();
        let mut rng = Rng::new(7);
        let samples = 1_000_000;
        let (mut first, mut top100) = (0u64, 0u64);
        for _ in 0..samples {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k));
            first += u64::from(k == 1);
            top100 += u64::from(k <= 100);
        }
        let p1 = 1.0 / harmonic;
        let p100: f64 = (1..=100u64).map(|k| (k as f64).powf(-1.1)).sum::<f64>() / harmonic;
        for (got, p) in [(first, p1), (top100, p100)] {
            let expected = p * samples as f64;
            let sd = (samples as f64 * p * (1.0 - p)).sqrt();
            assert!((got as f64 - expected).abs() < 5.0 * sd, "{got} draws, expected {expected:.0}");
        }
    }

    #[test]
    fn zipf_rejects_bad_parameters() {
        assert!(Zipf::new(0, 1.1).is_err());
        assert!(Zipf::new(10, 0.0).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
    }

    #[test]
    fn uniform_and_sequential_keys() {
        let mut rng = Rng::new(1);
        let mut g = KeyGen { keys: 10, dist: Distribution::Uniform, hash_tags: 0, prefix: b"key:".to_vec() };
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[g.next(&mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");

        let mut a = KeyGen { dist: Distribution::Sequential { next: 0, step: 2 }, ..g.clone() };
        let mut b = KeyGen { dist: Distribution::Sequential { next: 1, step: 2 }, ..g.clone() };
        let mut all: Vec<u64> = (0..5).map(|_| a.next(&mut rng)).collect();
        all.extend((0..5).map(|_| b.next(&mut rng)));
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(a.next(&mut rng), 0, "wraps around");

        let mut name = Vec::new();
        g.name(12345, &mut name);
        assert_eq!(name, b"key:000000012345");
        g.hash_tags = 4;
        name.clear();
        g.name(12345, &mut name);
        assert_eq!(name, b"key:{1}:000000012345");
        name.clear();
        push_decimal(&mut name, u64::MAX, 3);
        assert_eq!(name, u64::MAX.to_string().as_bytes());
    }
}
