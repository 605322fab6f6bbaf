//! Fault injection (`forward --delay`, `--rate`, `--slice`, `--reset-after`,
//! `--loss`, ...): what each direction of a relayed connection or datagram
//! session suffers, parsed from the command line, and the seeded random
//! numbers that make a run repeat exactly. No I/O: [`super::pump`] (a
//! stage of its userspace copy) and the UDP relay apply it.
//!
//! Every option takes `up:` (client to target) or `down:` (target to
//! client) in front of its value; without one it applies both ways.
//! `--fault-share` picks connections (not bytes) to suffer the faults.

use std::fmt::Write as _;
use std::time::Duration;

/// A fault option, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOpt {
    /// `--delay DUR[:JITTER]`.
    Delay,
    /// `--rate BYTES` per second.
    Rate,
    /// `--slice MIN[:MAX]`.
    Slice,
    /// `--slice-delay DUR`.
    SliceDelay,
    /// `--reset-after BYTES`.
    ResetAfter,
    /// `--close-after BYTES`.
    CloseAfter,
    /// `--stall-after BYTES`.
    StallAfter,
    /// `--slow-close DUR`.
    SlowClose,
    /// `--loss PCT` (UDP).
    Loss,
    /// `--duplicate PCT` (UDP).
    Duplicate,
    /// `--reorder PCT` (UDP).
    Reorder,
}

impl FaultOpt {
    /// The flag's name.
    pub fn flag(self) -> &'static str {
        match self {
            FaultOpt::Delay => "--delay",
            FaultOpt::Rate => "--rate",
            FaultOpt::Slice => "--slice",
            FaultOpt::SliceDelay => "--slice-delay",
            FaultOpt::ResetAfter => "--reset-after",
            FaultOpt::CloseAfter => "--close-after",
            FaultOpt::StallAfter => "--stall-after",
            FaultOpt::SlowClose => "--slow-close",
            FaultOpt::Loss => "--loss",
            FaultOpt::Duplicate => "--duplicate",
            FaultOpt::Reorder => "--reorder",
        }
    }

    /// Whether the option applies to datagrams (the others to streams).
    pub fn for_datagrams(self) -> bool {
        matches!(
            self,
            FaultOpt::Loss | FaultOpt::Duplicate | FaultOpt::Reorder
        )
    }
}

/// What one direction suffers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirFaults {
    /// Latency before each chunk goes on, and the jitter around it.
    pub delay: Option<(Duration, Duration)>,
    /// Bytes per second.
    pub rate: Option<u64>,
    /// Each chunk is written in pieces of MIN to MAX bytes.
    pub slice: Option<(usize, usize)>,
    /// A pause between pieces.
    pub slice_delay: Option<Duration>,
    /// A reset once this many bytes went this way.
    pub reset_after: Option<u64>,
    /// A clean close once this many bytes went this way.
    pub close_after: Option<u64>,
    /// Nothing more moves once this many bytes went this way.
    pub stall_after: Option<u64>,
    /// The FIN is held back this long.
    pub slow_close: Option<Duration>,
    /// Fraction of datagrams dropped.
    pub loss: Option<f64>,
    /// Fraction of datagrams sent twice.
    pub duplicate: Option<f64>,
    /// Fraction of datagrams held back behind the next one.
    pub reorder: Option<f64>,
}

impl DirFaults {
    /// Nothing at all.
    pub const NONE: DirFaults = DirFaults {
        delay: None,
        rate: None,
        slice: None,
        slice_delay: None,
        reset_after: None,
        close_after: None,
        stall_after: None,
        slow_close: None,
        loss: None,
        duplicate: None,
        reorder: None,
    };

    /// Whether anything is set.
    pub fn any(&self) -> bool {
        *self != DirFaults::NONE
    }

    /// The byte limit that ends the direction first, and how.
    pub fn limit(&self) -> Option<(u64, Limit)> {
        [
            (self.reset_after, Limit::Reset),
            (self.close_after, Limit::Close),
            (self.stall_after, Limit::Stall),
        ]
        .into_iter()
        .filter_map(|(n, l)| n.map(|n| (n, l)))
        .min_by_key(|(n, _)| *n)
    }

    fn words(&self, out: &mut Vec<String>) {
        if let Some((d, j)) = self.delay {
            out.push(if j.is_zero() {
                format!("delay {}", show_dur(d))
            } else {
                format!("delay {}±{}", show_dur(d), show_dur(j))
            });
        }
        if let Some(r) = self.rate {
            out.push(format!("rate {r} B/s"));
        }
        if let Some((a, b)) = self.slice {
            out.push(if a == b {
                format!("slices of {a} B")
            } else {
                format!("slices of {a}-{b} B")
            });
        }
        if let Some(d) = self.slice_delay {
            out.push(format!("{} between slices", show_dur(d)));
        }
        for (n, what) in [
            (self.reset_after, "reset"),
            (self.close_after, "close"),
            (self.stall_after, "stall"),
        ] {
            if let Some(n) = n {
                out.push(format!("{what} after {n} B"));
            }
        }
        if let Some(d) = self.slow_close {
            out.push(format!("FIN held {}", show_dur(d)));
        }
        for (p, what) in [
            (self.loss, "loss"),
            (self.duplicate, "duplicate"),
            (self.reorder, "reorder"),
        ] {
            if let Some(p) = p {
                out.push(format!("{what} {}%", p * 100.0));
            }
        }
    }
}

/// How a byte limit ends a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Both sides are reset.
    Reset,
    /// Both sides get a FIN.
    Close,
    /// Nothing more moves; the connection stays open.
    Stall,
}

/// The faults of a relay, both ways, and which connections get them.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Client to target.
    pub up: DirFaults,
    /// Target to client.
    pub down: DirFaults,
    /// Fraction of connections (or UDP sessions) that suffer them.
    pub share: f64,
    /// The seed; `None` picks one per run (and `-v` shows it).
    pub seed: Option<u64>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            up: DirFaults::default(),
            down: DirFaults::default(),
            share: 1.0,
            seed: None,
        }
    }
}

impl Faults {
    /// Whether any fault is set.
    pub fn any(&self) -> bool {
        self.up.any() || self.down.any()
    }

    /// The first option set that does not fit a stream (`datagrams`
    /// false) or a datagram relay.
    pub fn misfit(&self, datagrams: bool) -> Option<&'static str> {
        let d = |f: &DirFaults| {
            [
                (f.delay.is_some(), FaultOpt::Delay),
                (f.rate.is_some(), FaultOpt::Rate),
                (f.slice.is_some(), FaultOpt::Slice),
                (f.slice_delay.is_some(), FaultOpt::SliceDelay),
                (f.reset_after.is_some(), FaultOpt::ResetAfter),
                (f.close_after.is_some(), FaultOpt::CloseAfter),
                (f.stall_after.is_some(), FaultOpt::StallAfter),
                (f.slow_close.is_some(), FaultOpt::SlowClose),
                (f.loss.is_some(), FaultOpt::Loss),
                (f.duplicate.is_some(), FaultOpt::Duplicate),
                (f.reorder.is_some(), FaultOpt::Reorder),
            ]
            .into_iter()
            .find(|(set, o)| *set && o.for_datagrams() != datagrams)
            .map(|(_, o)| o.flag())
        };
        d(&self.up).or_else(|| d(&self.down))
    }

    /// Sets one option from its command-line value, `[up:|down:]VALUE`.
    ///
    /// # Errors
    /// A sentence naming the flag and what a value looks like.
    pub fn set(&mut self, opt: FaultOpt, value: &str) -> Result<(), String> {
        let (up, down, v) = if let Some(v) = value.strip_prefix("up:") {
            (true, false, v)
        } else if let Some(v) = value.strip_prefix("down:") {
            (false, true, v)
        } else {
            (true, true, value)
        };
        let flag = opt.flag();
        if let Some((word, _)) = v.split_once(':') {
            if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(format!(
                    "{flag} {value:?}: {word:?} is not a direction; write up: or down: (or neither, for both)"
                ));
            }
        }
        let apply = |f: &mut DirFaults| -> Result<(), String> {
            match opt {
                FaultOpt::Delay => {
                    let (d, j) = match v.split_once(':') {
                        Some((d, j)) => (parse_dur(d)?, parse_dur(j)?),
                        None => (parse_dur(v)?, Duration::ZERO),
                    };
                    f.delay = Some((d, j));
                }
                FaultOpt::Rate => {
                    let r = parse_count(v, 1000)?;
                    if r == 0 {
                        return Err("a rate of 0 moves nothing; use --stall-after 0".into());
                    }
                    f.rate = Some(r);
                }
                FaultOpt::Slice => {
                    let (a, b) = match v.split_once(':') {
                        Some((a, b)) => (parse_count(a, 1024)?, parse_count(b, 1024)?),
                        None => {
                            let a = parse_count(v, 1024)?;
                            (a, a)
                        }
                    };
                    if a == 0 || a > b || b > 1 << 20 {
                        return Err("slices are MIN[:MAX] bytes, 1 <= MIN <= MAX <= 1M".into());
                    }
                    f.slice = Some((a as usize, b as usize));
                }
                FaultOpt::SliceDelay => f.slice_delay = Some(parse_dur(v)?),
                FaultOpt::ResetAfter => f.reset_after = Some(parse_count(v, 1024)?),
                FaultOpt::CloseAfter => f.close_after = Some(parse_count(v, 1024)?),
                FaultOpt::StallAfter => f.stall_after = Some(parse_count(v, 1024)?),
                FaultOpt::SlowClose => f.slow_close = Some(parse_dur(v)?),
                FaultOpt::Loss => f.loss = Some(parse_pct(v)?),
                FaultOpt::Duplicate => f.duplicate = Some(parse_pct(v)?),
                FaultOpt::Reorder => f.reorder = Some(parse_pct(v)?),
            }
            Ok(())
        };
        for (chosen, f) in [(up, &mut self.up), (down, &mut self.down)] {
            if chosen {
                apply(f).map_err(|e| format!("{flag} {value:?}: {e}"))?;
            }
        }
        Ok(())
    }

    /// `--fault-share FRACTION`: 0 to 1, or a percentage.
    ///
    /// # Errors
    /// A value outside 0..=1 (or 0%..=100%).
    pub fn set_share(&mut self, v: &str) -> Result<(), String> {
        let share = if v.ends_with('%') {
            parse_pct(v)
        } else {
            match v.parse::<f64>() {
                Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
                _ => Err("must be a fraction of connections from 0 to 1, or 0% to 100%".into()),
            }
        };
        self.share = share.map_err(|e| format!("--fault-share {v:?}: {e}"))?;
        Ok(())
    }

    /// The faults connection (or session) number `id` suffers, if it is
    /// one of the share, with random numbers of its own: the same seed
    /// gives the same connections the same faults.
    pub fn for_conn(&self, seed: u64, id: u64) -> Option<Box<ConnFaults>> {
        if !self.any() {
            return None;
        }
        let mut rng = fastrand::Rng::with_seed(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if rng.f64() >= self.share {
            return None;
        }
        let up = Rand(rng.fork());
        let down = Rand(rng.fork());
        // Boxed: a relay's task holds it, and most relays have none.
        Some(Box::new(ConnFaults {
            up: (self.up.clone(), up),
            down: (self.down.clone(), down),
        }))
    }

    /// The faults in words, for `-v`: `up: delay 50 ms; down: ...`.
    pub fn describe(&self) -> String {
        let (mut u, mut d) = (Vec::new(), Vec::new());
        self.up.words(&mut u);
        self.down.words(&mut d);
        let mut s = String::new();
        if u == d {
            let _ = write!(s, "{}", u.join(", "));
        } else {
            if !u.is_empty() {
                let _ = write!(s, "up: {}", u.join(", "));
            }
            if !d.is_empty() {
                if !s.is_empty() {
                    s.push_str("; ");
                }
                let _ = write!(s, "down: {}", d.join(", "));
            }
        }
        s
    }
}

/// One connection's faults, each direction with its own random numbers.
#[derive(Debug)]
pub struct ConnFaults {
    /// Client to target.
    pub up: (DirFaults, Rand),
    /// Target to client.
    pub down: (DirFaults, Rand),
}

/// One direction of a datagram session: loss, duplicates and reordering.
#[derive(Debug)]
pub struct Chaos {
    faults: DirFaults,
    rng: Rand,
    /// A datagram held back to go after the next one.
    held: Option<Vec<u8>>,
    /// Datagrams dropped so far.
    pub dropped: u64,
}

impl Chaos {
    /// A direction with these faults.
    pub fn new(faults: DirFaults, rng: Rand) -> Chaos {
        Chaos {
            faults,
            rng,
            held: None,
            dropped: 0,
        }
    }

    /// Passes one datagram on through `send`: dropped, sent once or twice,
    /// or held back behind the next one (which then goes first).
    pub fn pass(&mut self, data: &[u8], mut send: impl FnMut(&[u8])) {
        let f = &self.faults;
        if f.loss.is_some_and(|p| self.rng.chance(p)) {
            self.dropped += 1;
            return;
        }
        if self.held.is_none() && f.reorder.is_some_and(|p| self.rng.chance(p)) {
            self.held = Some(data.to_vec());
            return;
        }
        send(data);
        if f.duplicate.is_some_and(|p| self.rng.chance(p)) {
            send(data);
        }
        if let Some(h) = self.held.take() {
            send(&h);
        }
    }
}

/// Seeded random numbers.
#[derive(Debug)]
pub struct Rand(fastrand::Rng);

impl Rand {
    /// A generator that repeats for the same seed.
    pub fn new(seed: u64) -> Rand {
        Rand(fastrand::Rng::with_seed(seed))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.f64() < p
    }

    /// A size from `lo` to `hi`, both included.
    pub fn size(&mut self, lo: usize, hi: usize) -> usize {
        self.0.usize(lo..=hi)
    }

    /// `base` give or take up to `jitter`, never below zero.
    pub fn jittered(&mut self, base: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return base;
        }
        let j = jitter.as_secs_f64() * (self.0.f64() * 2.0 - 1.0);
        Duration::from_secs_f64((base.as_secs_f64() + j).max(0.0))
    }
}

impl Faults {
    /// This run's seed (`--seed`, or a fresh one), announced at `-v` with
    /// the faults when there are any; `unit` is "connections" or
    /// "sessions".
    pub fn run_seed(&self, unit: &str) -> u64 {
        let seed = self.seed.unwrap_or_else(|| fastrand::u64(..));
        if self.any() {
            tracing::info!(
                "faults: {} on {}% of {unit}; seed {seed} (--seed {seed} repeats this run)",
                self.describe(),
                self.share * 100.0
            );
        }
        seed
    }
}

/// `50ms`, `1.5s`, `200us`, or a bare number of milliseconds.
fn parse_dur(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1e-3)
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * unit < 86_400.0 => {
            Ok(Duration::from_secs_f64(v * unit))
        }
        _ => Err(format!(
            "{s:?} is not a duration like 50ms, 1.5s or 200us (at most a day)"
        )),
    }
}

/// A count with a K/M/G suffix in powers of `base`.
fn parse_count(s: &str, base: u64) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], base),
        Some('m' | 'M') => (&t[..t.len() - 1], base * base),
        Some('g' | 'G') => (&t[..t.len() - 1], base * base * base),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a number of bytes like 512, 64K or 10M"))
}

/// `5%`, `5` or `0.5%`: a percentage from 0 to 100, as a fraction.
fn parse_pct(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t);
    match t.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v / 100.0),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}

fn show_dur(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{} s", ms / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_directions_and_refusals() {
        let mut f = Faults::default();
        f.set(FaultOpt::Delay, "down:50ms:10ms").unwrap();
        f.set(FaultOpt::Slice, "1:512").unwrap();
        f.set(FaultOpt::ResetAfter, "up:10M").unwrap();
        f.set(FaultOpt::Rate, "10M").unwrap();
        assert_eq!(f.up.delay, None);
        assert_eq!(
            f.down.delay,
            Some((Duration::from_millis(50), Duration::from_millis(10)))
        );
        assert_eq!(f.up.slice, Some((1, 512)));
        assert_eq!(f.down.slice, Some((1, 512)));
        assert_eq!(f.up.reset_after, Some(10 << 20));
        assert_eq!(f.down.reset_after, None);
        assert_eq!(f.up.rate, Some(10_000_000));
        assert_eq!(f.misfit(false), None);
        assert_eq!(f.misfit(true), Some("--rate"));
        for (o, bad) in [
            (FaultOpt::Delay, "sideways:5ms"),
            (FaultOpt::Delay, "up:"),
            (FaultOpt::Delay, "-5ms"),
            (FaultOpt::Slice, "5:2"),
            (FaultOpt::Slice, "0"),
            (FaultOpt::Rate, "0"),
            (FaultOpt::Loss, "101%"),
            (FaultOpt::ResetAfter, "lots"),
        ] {
            let e = f.set(o, bad).unwrap_err();
            assert!(e.starts_with(o.flag()), "{e}");
        }
        assert!(f.set_share("1.5").is_err());
        f.set_share("25%").unwrap();
        assert_eq!(f.share, 0.25);
    }

    #[test]
    fn the_same_seed_picks_the_same_connections() {
        let mut f = Faults::default();
        f.set(FaultOpt::Delay, "5ms").unwrap();
        f.set_share("0.5").unwrap();
        let pick = |f: &Faults, seed| -> Vec<bool> {
            (0..200).map(|i| f.for_conn(seed, i).is_some()).collect()
        };
        assert_eq!(pick(&f, 7), pick(&f, 7));
        assert_ne!(pick(&f, 7), pick(&f, 8));
        let n = pick(&f, 7).iter().filter(|b| **b).count();
        assert!((60..=140).contains(&n), "{n} of 200");
        f.set_share("0").unwrap();
        assert!(pick(&f, 7).iter().all(|b| !b));
    }

    #[test]
    fn datagrams_are_lost_duplicated_and_reordered_as_asked() {
        let run = |opt, pct: &str| {
            let mut f = Faults::default();
            f.set(opt, pct).unwrap();
            let mut c = Chaos::new(f.up.clone(), Rand::new(3));
            let mut out = Vec::new();
            for i in 0..10_000u32 {
                c.pass(&i.to_be_bytes(), |d| {
                    out.push(u32::from_be_bytes(d.try_into().unwrap()))
                });
            }
            (out, c.dropped)
        };
        let (out, dropped) = run(FaultOpt::Loss, "5%");
        assert_eq!(out.len() as u64 + dropped, 10_000);
        assert!((350..=650).contains(&dropped), "{dropped}");
        let (out, _) = run(FaultOpt::Duplicate, "100%");
        assert_eq!(out.len(), 20_000);
        let (out, _) = run(FaultOpt::Reorder, "10%");
        let late = out.windows(2).filter(|w| w[0] > w[1]).count();
        assert!((500..=1500).contains(&late), "{late}");
        let mut sorted = out.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_limit_wins() {
        let mut f = Faults::default();
        f.set(FaultOpt::StallAfter, "100").unwrap();
        f.set(FaultOpt::ResetAfter, "50").unwrap();
        assert_eq!(f.up.limit(), Some((50, Limit::Reset)));
        assert_eq!(f.describe(), "reset after 50 B, stall after 100 B");
    }
}
