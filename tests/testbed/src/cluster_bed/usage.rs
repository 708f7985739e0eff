//! What a bed costs while it runs: resident memory and CPU time of its processes.

use super::sweep::{Record, processes};

/// Resident memory and CPU time summed over every process of a bed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub processes: usize,
    pub rss_bytes: u64,
    /// User + system CPU time, in clock ticks (`getconf CLK_TCK`, 100 on Linux).
    pub cpu_ticks: u64,
}

/// The usage of bed `id` now.
pub fn usage(id: &str, record: &Record) -> Usage {
    let page = 4096;
    let mut total = Usage::default();
    for pid in processes(id, record) {
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rss_pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        total.processes += 1;
        total.rss_bytes += rss_pages * page;
        total.cpu_ticks += cpu_ticks(&stat);
    }
    total
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line.
pub fn cpu_ticks(stat: &str) -> u64 {
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_user_plus_system() {
        let stat =
            "42 (kube apiserver) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 123 0 0";
        assert_eq!(cpu_ticks(stat), 300);
    }
}
