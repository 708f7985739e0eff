//! `nauti-ipam`: a CNI IPAM plugin (spec 1.1.0). Name it as the `ipam` of any main plugin.

use std::io::Write;
use std::process::ExitCode;

const HELP: &str =
    "nauti-ipam: CNI IPAM plugin (spec 0.1.0 to 1.1.0: ADD, DEL, CHECK, GC, STATUS, VERSION)

Run by a container runtime or a main CNI plugin, not by hand: the command and the attachment
come from CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH, the
network configuration from stdin, and the result or a CNI error object goes to stdout.

Configuration: host-local's ipam section (ranges, subnet/rangeStart/rangeEnd/gateway, routes,
dataDir, resolvConf), plus \"exclude\": [\"10.112.1.100\", \"10.112.1.128/28\"].
State: <dataDir>/<network name>/state.{0,1} (default dataDir /var/lib/cni/networks), kept
for the current boot only: reservations made before a reboot are dropped.
";

fn main() -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "--help" || arg == "-h" || arg == "help" {
            stdout.write_all(HELP.as_bytes())?;
            return Ok(ExitCode::SUCCESS);
        }
        if arg == "--version" || arg == "-V" {
            writeln!(stdout, "nauti-ipam {}", env!("CARGO_PKG_VERSION"))?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let env = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
    let reply = nauti_ipam::cni::handle(env, std::io::stdin().lock());
    if let Some(out) = &reply.stdout {
        serde_json::to_writer(&mut stdout, out)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    if reply.success {
        Ok(ExitCode::SUCCESS)
    } else {
        if std::env::var_os("CNI_COMMAND").is_none() {
            eprint!("{HELP}");
        }
        Ok(ExitCode::FAILURE)
    }
}
