//! `nautictl benchmark`'s pure parts: the commands the pods run, reading their output back, and
//! the table of the two paths (across the tunnel, and inside one cluster for reference).

use std::time::Duration;

/// The label every benchmark pod carries, to find (and clean) them.
pub const POD_LABEL: &str = "app.kubernetes.io/name";
/// The value of [`POD_LABEL`] on benchmark pods.
pub const POD_LABEL_VALUE: &str = "nauti-benchmark";
/// The TCP port the servers listen on.
pub const SERVER_PORT: u16 = 5201;
/// Debian's OpenBSD netcat in the tools image: called by path, as busybox's `nc` applet (a
/// different tool, without `-N`) would otherwise answer inside `sh -c`.
pub const NETCAT: &str = "/usr/bin/nc.openbsd";

/// What went wrong reading a pod's output.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BenchError {
    #[error("no round-trip summary in ping's output: {0:?}")]
    NoPingSummary(String),
    #[error("every ping was lost ({0} sent)")]
    AllPingsLost(u32),
    #[error("no start and end clock readings in the client's output: {0:?}")]
    NoClock(String),
    #[error("the end clock reading is before the start")]
    ClockBackwards,
    #[error("the transfer took less than the clock's resolution: send more data (--size-mib)")]
    TooFast,
}

/// The server: accepts one connection after another and throws the bytes away.
pub fn server_command(port: u16) -> Vec<String> {
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("while true; do {NETCAT} -l {port} </dev/null >/dev/null; done"),
    ]
}

/// Sends `bytes` zeros to `address:port` and prints the system clock (busybox `adjtimex`:
/// microseconds, as busybox's `date` has no `%N`) before and after. `-N` half-closes once the
/// input ends and nc waits for the server to close in turn: the end reading comes after the
/// server has read every byte.
pub fn throughput_script(address: &str, port: u16, bytes: u64, idle_timeout_secs: u64) -> String {
    format!(
        "echo start; busybox adjtimex; \
         head -c {bytes} /dev/zero | {NETCAT} -N -w {idle_timeout_secs} {address} {port} \
         || {{ echo \"nc to {address}:{port} failed\" >&2; exit 3; }}; \
         echo end; busybox adjtimex"
    )
}

/// `count` pings to `address`, a second apart.
pub fn ping_command(address: &str, count: u32) -> Vec<String> {
    [
        "busybox",
        "ping",
        "-c",
        &count.to_string(),
        "-W",
        "5",
        address,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The wall-clock time between the `start` and `end` readings of [`throughput_script`]'s output.
pub fn parse_elapsed(output: &str) -> Result<Duration, BenchError> {
    let no_clock = || BenchError::NoClock(output.to_owned());
    let (start, end) = output
        .split_once("\nend\n")
        .or_else(|| output.split_once("end\n"))
        .ok_or_else(no_clock)?;
    let start = clock_reading(start).ok_or_else(no_clock)?;
    let end = clock_reading(end).ok_or_else(no_clock)?;
    let elapsed = end.checked_sub(start).ok_or(BenchError::ClockBackwards)?;
    if elapsed.is_zero() {
        return Err(BenchError::TooFast);
    }
    Ok(elapsed)
}

/// The `time.tv_sec` and `time.tv_usec` lines of one `adjtimex` output.
fn clock_reading(text: &str) -> Option<Duration> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
    };
    let secs = field("time.tv_sec:")?;
    let micros = field("time.tv_usec:")?;
    Some(Duration::from_secs(secs) + Duration::from_micros(micros))
}

/// Mbit/s (10^6 bits a second) of `bytes` sent in `elapsed`.
pub fn mbit_per_s(bytes: u64, elapsed: Duration) -> f64 {
    // Precision: a benchmark's byte counts are far below f64's 2^53.
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6
}

/// The summary of a ping run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingSummary {
    pub transmitted: u32,
    pub received: u32,
    pub average_ms: f64,
}

/// Reads busybox's (`round-trip min/avg/max = a/b/c ms`) or iputils' (`rtt min/avg/max/mdev =
/// ...`) summary.
pub fn parse_ping(output: &str) -> Result<PingSummary, BenchError> {
    let mut transmitted = None;
    let mut received = None;
    let mut average_ms = None;
    for line in output.lines() {
        if line.contains("packets transmitted") {
            for part in line.split(',') {
                let number = part
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u32>().ok());
                if part.contains("transmitted") {
                    transmitted = number;
                } else if part.contains("received") {
                    received = number;
                }
            }
        }
        if let Some((names, values)) = line.split_once(" = ")
            && names.contains("min/avg/max")
        {
            average_ms = values
                .split('/')
                .nth(1)
                .and_then(|avg| avg.trim().parse::<f64>().ok());
        }
    }
    let transmitted = transmitted.ok_or_else(|| BenchError::NoPingSummary(output.to_owned()))?;
    let received = received.unwrap_or(0);
    if received == 0 {
        return Err(BenchError::AllPingsLost(transmitted));
    }
    let average_ms = average_ms.ok_or_else(|| BenchError::NoPingSummary(output.to_owned()))?;
    Ok(PingSummary {
        transmitted,
        received,
        average_ms,
    })
}

/// What one path measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PathResult {
    /// What the path is, e.g. `cross-cluster (east -> west)`.
    pub name: String,
    pub mbit_per_s: f64,
    pub ping: PingSummary,
}

/// The two paths and their ratio, one row each.
pub fn render_benchmark(cross: &PathResult, same: &PathResult) -> String {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "-".to_owned()
        }
    };
    let row = |p: &PathResult| {
        [
            p.name.clone(),
            format!("{:.1} Mbit/s", p.mbit_per_s),
            format!("{:.3} ms", p.ping.average_ms),
            format!("{}/{}", p.ping.received, p.ping.transmitted),
        ]
    };
    let rows = [
        ["PATH", "THROUGHPUT", "LATENCY (AVG)", "PINGS"].map(str::to_owned),
        row(cross),
        row(same),
        [
            "ratio cross/same".to_owned(),
            ratio(cross.mbit_per_s, same.mbit_per_s),
            ratio(cross.ping.average_ms, same.ping.average_ms),
            String::new(),
        ],
    ];
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (cell, width) in r.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}   "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    const BUSYBOX_PING: &str = "PING 10.114.0.5 (10.114.0.5): 56 data bytes\n\
        64 bytes from 10.114.0.5: seq=0 ttl=62 time=1.234 ms\n\
        \n--- 10.114.0.5 ping statistics ---\n\
        10 packets transmitted, 9 packets received, 10% packet loss\n\
        round-trip min/avg/max = 0.512/0.873/1.234 ms\n";

    const IPUTILS_PING: &str = "--- 10.0.0.1 ping statistics ---\n\
        10 packets transmitted, 10 received, 0% packet loss, time 9012ms\n\
        rtt min/avg/max/mdev = 0.041/0.052/0.070/0.008 ms\n";

    #[test]
    fn ping_summaries_of_busybox_and_iputils() {
        assert_eq!(
            parse_ping(BUSYBOX_PING).unwrap(),
            PingSummary {
                transmitted: 10,
                received: 9,
                average_ms: 0.873
            }
        );
        assert_eq!(
            parse_ping(IPUTILS_PING).unwrap(),
            PingSummary {
                transmitted: 10,
                received: 10,
                average_ms: 0.052
            }
        );
    }

    #[test]
    fn lost_pings_and_garbage_are_errors() {
        let lost = "--- 10.114.0.5 ping statistics ---\n\
            10 packets transmitted, 0 packets received, 100% packet loss\n";
        assert_eq!(parse_ping(lost), Err(BenchError::AllPingsLost(10)));
        assert!(matches!(
            parse_ping("ping: sendto: Network unreachable\n"),
            Err(BenchError::NoPingSummary(_))
        ));
    }

    fn adjtimex(sec: u64, usec: u64) -> String {
        format!(
            "    mode:         0\n-o  offset:       0 us\n    precision:    1 us\n\
             -t  tick:         10000 us\n    time.tv_sec:  {sec}\n    time.tv_usec: {usec}\n\
             \x20   return value: 5 (clock not synchronized)\n"
        )
    }

    #[test]
    fn elapsed_time_between_the_clock_readings() {
        let out = format!(
            "start\n{}end\n{}",
            adjtimex(1_796_426_417, 985_418),
            adjtimex(1_796_426_418, 35_418)
        );
        assert_eq!(parse_elapsed(&out).unwrap(), Duration::from_millis(50));
        let same = format!("start\n{}end\n{}", adjtimex(5, 7), adjtimex(5, 7));
        assert_eq!(parse_elapsed(&same), Err(BenchError::TooFast));
        let backwards = format!("start\n{}end\n{}", adjtimex(6, 0), adjtimex(5, 0));
        assert_eq!(parse_elapsed(&backwards), Err(BenchError::ClockBackwards));
        assert!(matches!(
            parse_elapsed(&format!("start\n{}", adjtimex(5, 0))),
            Err(BenchError::NoClock(_))
        ));
    }

    #[test]
    fn throughput_in_megabits() {
        let mbit = mbit_per_s(4 * 1024 * 1024, Duration::from_millis(100));
        assert!((mbit - 335.544_32).abs() < 1e-6, "{mbit}");
    }

    #[test]
    fn commands_call_openbsd_netcat_by_path() {
        let script = throughput_script("10.114.0.5", SERVER_PORT, 4_194_304, 10);
        assert!(
            script.contains(
                "head -c 4194304 /dev/zero | /usr/bin/nc.openbsd -N -w 10 10.114.0.5 5201"
            ),
            "{script}"
        );
        assert!(server_command(SERVER_PORT)[2].contains("/usr/bin/nc.openbsd -l 5201"));
        assert_eq!(
            ping_command("10.0.0.1", 10),
            ["busybox", "ping", "-c", "10", "-W", "5", "10.0.0.1"]
        );
    }

    #[test]
    fn table_shows_both_paths_and_their_ratio() {
        let ping = |avg| PingSummary {
            transmitted: 10,
            received: 10,
            average_ms: avg,
        };
        let cross = PathResult {
            name: "cross-cluster (east -> west)".to_owned(),
            mbit_per_s: 250.0,
            ping: ping(1.5),
        };
        let same = PathResult {
            name: "same cluster (east)".to_owned(),
            mbit_per_s: 1000.0,
            ping: ping(0.25),
        };
        let table = render_benchmark(&cross, &same);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("PATH "), "{table}");
        assert!(
            lines[1].starts_with("cross-cluster (east -> west)   250.0 Mbit/s    1.500 ms"),
            "{table}"
        );
        assert!(lines[2].contains("1000.0 Mbit/s   0.250 ms"), "{table}");
        assert!(
            lines[3].contains("0.25") && lines[3].contains("6.00"),
            "{table}"
        );
    }
}
