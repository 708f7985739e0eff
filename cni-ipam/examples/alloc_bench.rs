//! In-process allocator figures on a /12 (2^20 addresses): allocations per second and bytes of
//! state at 0%, 50% and 99% full. Run in release: `cargo run --release --example alloc_bench`.
//!
//! At each fill level the pool is filled to the level, then measured under churn: each step
//! releases one random live owner and allocates for a new one, so the fill level stays put and
//! the allocator has to find the freed address among a million bits.

use std::io::Write;
use std::time::Instant;

use nauti_ipam::core::{OwnerId, Pool, RangeSpec};

fn main() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let subnet = "10.112.0.0/12".parse()?;
    let spec = RangeSpec::new(subnet, None, None, Some("10.112.0.1".parse()?))?;
    let usable = Pool::new(spec.clone()).stats().free as usize;
    writeln!(
        out,
        "pool 10.112.0.0/12: {usable} usable addresses; {steps} churn steps per level"
    )?;
    writeln!(
        out,
        "{:>6} {:>10} {:>14} {:>14} {:>10} {:>14} {:>12} {:>10}",
        "fill",
        "allocated",
        "fill allocs/s",
        "churn ops/s",
        "bitmap B",
        "owner index B",
        "total B",
        "B/alloc"
    )?;
    for pct in [0usize, 50, 99] {
        let mut pool = Pool::new(spec.clone());
        let target = usable * pct / 100;
        let mut live: Vec<OwnerId> = Vec::with_capacity(target.max(1));
        let mut next = 1u64;
        let mut owner = || {
            next += 1;
            OwnerId::new(&format!("{next:064x}"), "eth-nauti")
        };
        let fill_owners: Vec<OwnerId> = (0..target).map(|_| owner()).collect();
        let t = Instant::now();
        for o in fill_owners {
            pool.allocate(o)?;
            live.push(o);
        }
        let fill_rate = if target == 0 {
            0.0
        } else {
            target as f64 / t.elapsed().as_secs_f64()
        };

        // Churn: release a pseudo-random live owner, allocate for a fresh one (one op = one of each).
        let fresh: Vec<OwnerId> = (0..steps).map(|_| owner()).collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let t = Instant::now();
        for o in fresh {
            if live.is_empty() {
                pool.allocate(o)?;
                pool.release(o);
                continue;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % live.len() as u64) as usize;
            pool.release(live[i]);
            pool.allocate(o)?;
            live[i] = o;
        }
        let churn_rate = steps as f64 / t.elapsed().as_secs_f64();
        let bytes = pool.state_bytes();
        let allocated = pool.stats().allocated;
        let per_alloc = if allocated == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", bytes.owner_index as f64 / f64::from(allocated))
        };
        writeln!(
            out,
            "{:>5}% {:>10} {:>14.0} {:>14.0} {:>10} {:>14} {:>12} {:>10}",
            pct,
            allocated,
            fill_rate,
            churn_rate,
            bytes.bitmap,
            bytes.owner_index,
            bytes.total(),
            per_alloc
        )?;
    }
    writeln!(
        out,
        "bitmap: 1 bit per address plus summary levels (fixed size); owner index: open addressing, 12-byte (owner digest, offset) slots, 64-80% full (grows with allocations); churn op = 1 release + 1 allocate"
    )?;
    Ok(())
}
