//! ADD+DEL per invocation of CNI IPAM binaries, exec'd exactly as a main plugin would (fresh
//! process, config on stdin, `CNI_*` environment), with the same configuration shape for each.
//!
//! `cargo run --release --example cni_bench -- <N> <host-local binary> <label>=<nauti-ipam binary>...`
//!
//! The plugins take turns: iteration i times one ADD+DEL pair of each (host-local, every
//! nauti-ipam build, then `/bin/true` as the cost of the harness itself), starting one further
//! along the list each time, so that changes in machine load hit every plugin alike. Prints per
//! plugin the mean and median wall time of a pair, and host-local's time divided by it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

struct Plugin {
    label: String,
    bin: PathBuf,
    conf: Vec<u8>,
    /// `/bin/true` exits without reading stdin or answering.
    harness: bool,
    samples: Vec<Duration>,
}

impl Plugin {
    fn new(label: String, bin: PathBuf, ty: &str, data: &Path, harness: bool) -> Self {
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","name":"bench","type":"bridge","ipam":{{"type":"{ty}","ranges":[[{{"subnet":"10.112.0.0/16","gateway":"10.112.0.1"}}]],"dataDir":"{}"}}}}"#,
            data.display()
        );
        Self {
            label,
            bin,
            conf: conf.into_bytes(),
            harness,
            samples: Vec::new(),
        }
    }

    fn invoke(&self, cmd: &str, cid: &str) -> anyhow::Result<()> {
        let mut child = Command::new(&self.bin)
            .env_clear()
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", cid)
            .env("CNI_NETNS", "/var/run/netns/bench")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin may exit without reading stdin (/bin/true does): not an error here.
            let _ = stdin.write_all(&self.conf);
        }
        let out = child.wait_with_output()?;
        if !out.status.success() && !self.harness {
            bail!(
                "{} {cmd} {cid} failed: {}",
                self.bin.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(())
    }

    fn pair(&self, cid: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        self.invoke("ADD", cid)?;
        self.invoke("DEL", cid)?;
        Ok(t.elapsed())
    }

    fn mean(&self) -> f64 {
        let total: Duration = self.samples.iter().sum();
        ms(total) / self.samples.len().max(1) as f64
    }

    fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_unstable();
        match s.len() {
            0 => 0.0,
            n if n % 2 == 1 => ms(s[n / 2]),
            n => (ms(s[n / 2 - 1]) + ms(s[n / 2])) / 2.0,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cni_bench <N> <host-local> <label>=<nauti-ipam>...";
    let n: usize = args.next().and_then(|s| s.parse().ok()).context(usage)?;
    let host_local = PathBuf::from(args.next().context(usage)?);
    let dir = std::env::temp_dir().join(format!("nauti-ipam-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let mut plugins = vec![Plugin::new(
        "host-local (Go)".into(),
        host_local,
        "host-local",
        &dir.join("host-local"),
        false,
    )];
    for (i, a) in args.enumerate() {
        let (label, bin) = match a.split_once('=') {
            Some((l, p)) => (l.to_owned(), PathBuf::from(p)),
            None => (format!("build{i}"), PathBuf::from(a)),
        };
        let data = dir.join(format!("nauti-ipam-{i}"));
        plugins.push(Plugin::new(
            format!("nauti-ipam {label}"),
            bin,
            "nauti-ipam",
            &data,
            false,
        ));
    }
    plugins.push(Plugin::new(
        "/bin/true, dynamic (cost of 2 spawns)".into(),
        PathBuf::from("/bin/true"),
        "true",
        &dir.join("true"),
        true,
    ));

    // Warm-up (page cache, dynamic loader, state folders) outside the measurement.
    for p in &plugins {
        p.pair("warmup")?;
    }
    let k = plugins.len();
    for i in 0..n {
        let cid = format!("bench{i:06}");
        for j in 0..k {
            let p = &mut plugins[(i + j) % k];
            let t = p.pair(&cid)?;
            p.samples.push(t);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    let (hl_mean, hl_median) = (plugins[0].mean(), plugins[0].median());
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "CNI ADD+DEL pairs: N={n} per plugin, interleaved, /16 range, dataDir under {}",
        dir.display()
    )?;
    writeln!(
        out,
        "{:<40} {:>9} {:>9} {:>13} {:>15}",
        "plugin", "mean ms", "median ms", "speed-up mean", "speed-up median"
    )?;
    for p in &plugins {
        let (mean, median) = (p.mean(), p.median());
        if p.harness {
            writeln!(
                out,
                "{:<40} {mean:>9.3} {median:>9.3} {:>13} {:>15}",
                p.label, "-", "-"
            )?;
        } else {
            writeln!(
                out,
                "{:<40} {mean:>9.3} {median:>9.3} {:>12.2}x {:>14.2}x",
                p.label,
                hl_mean / mean,
                hl_median / median
            )?;
        }
    }
    Ok(())
}
