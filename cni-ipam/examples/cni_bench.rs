//! ADD+DEL per invocation of CNI IPAM binaries, exec'd exactly as a main plugin would (fresh
//! process, config on stdin, `CNI_*` environment), with the same configuration shape for each.
//!
//! `cargo run --release --example cni_bench -- <N> <host-local binary> <label>=<nauti-ipam binary>...`
//!
//! Prints, per plugin build and mode, the mean wall time of one ADD+DEL pair, and the ratio to
//! host-local. `/bin/true` run the same way is printed as the cost of the harness itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

fn invoke(bin: &Path, cmd: &str, cid: &str, conf: &[u8]) -> anyhow::Result<()> {
    let mut child = Command::new(bin)
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
        .with_context(|| format!("spawn {}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin may exit without reading stdin (/bin/true does): not an error here.
        let _ = stdin.write_all(conf);
    }
    let out = child.wait_with_output()?;
    if !out.status.success() && !bin.ends_with("true") {
        bail!(
            "{} {cmd} {cid} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(())
}

fn run(bin: &Path, ty: &str, n: usize, extra: &str, dir: &Path) -> anyhow::Result<Duration> {
    let data = dir.join(format!("{ty}{}", extra.len()));
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"bench","type":"bridge","ipam":{{"type":"{ty}","ranges":[[{{"subnet":"10.112.0.0/16","gateway":"10.112.0.1"}}]],"dataDir":"{}"{extra}}}}}"#,
        data.display()
    );
    // Warm-up (page cache, dynamic loader) outside the measurement.
    invoke(bin, "ADD", "warmup", conf.as_bytes())?;
    invoke(bin, "DEL", "warmup", conf.as_bytes())?;
    let t = Instant::now();
    for i in 0..n {
        let cid = format!("bench{i:06}");
        invoke(bin, "ADD", &cid, conf.as_bytes())?;
        invoke(bin, "DEL", &cid, conf.as_bytes())?;
    }
    Ok(t.elapsed() / n as u32)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cni_bench <N> <host-local> <label>=<nauti-ipam>...";
    let n: usize = args.next().and_then(|s| s.parse().ok()).context(usage)?;
    let host_local = PathBuf::from(args.next().context(usage)?);
    let builds: Vec<(String, PathBuf)> = args
        .map(|a| match a.split_once('=') {
            Some((l, p)) => (l.to_owned(), PathBuf::from(p)),
            None => ("nauti-ipam".to_owned(), PathBuf::from(a)),
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("nauti-ipam-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "CNI ADD+DEL pairs: N={n} per row, /16 range, dataDir under {}",
        dir.display()
    )?;
    let harness = run(Path::new("/bin/true"), "true", n, "", &dir)?;
    let hl = run(&host_local, "host-local", n, "", &dir)?;
    writeln!(out, "{:<58} {:>9} {:>10}", "plugin", "ms/pair", "speed-up")?;
    writeln!(
        out,
        "{:<58} {:>9.3} {:>10}",
        "/bin/true, dynamic (cost of 2 spawns)",
        ms(harness),
        "-"
    )?;
    writeln!(
        out,
        "{:<58} {:>9.3} {:>9.2}x",
        "host-local (Go, never fsyncs)",
        ms(hl),
        1.0
    )?;
    for (label, bin) in &builds {
        for (mode, extra) in [
            ("fsync=true (default)", ""),
            ("fsync=false", r#","fsync":false"#),
        ] {
            let t = run(bin, "nauti-ipam", n, extra, &dir)?;
            let name = format!("nauti-ipam {label}, {mode}");
            writeln!(out, "{name:<58} {:>9.3} {:>9.2}x", ms(t), ms(hl) / ms(t))?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
