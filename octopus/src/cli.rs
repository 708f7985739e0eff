//! The `octopus` command line: flags (with environment twins) and what each subcommand runs.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use nauti_api::core::wgkey::parse_wireguard_key;
use nauti_api::daemon::{LogArgs, shutdown_on_signals};

use crate::wg::userspace::{Device, DeviceConfig, uapi};

/// Hub and member tunnels (WireGuard) for Nauti.
#[derive(Debug, Parser)]
#[command(name = "octopus", version)]
pub struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

/// What octopus runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the userspace WireGuard device in this network namespace until SIGTERM; configure
    /// its peers with `wg set` over its UAPI socket.
    WgDevice(WgDeviceArgs),
}

/// Flags of `octopus wg-device`.
#[derive(Debug, clap::Args)]
pub struct WgDeviceArgs {
    /// Interface name; also names the UAPI socket `/var/run/wireguard/<name>.sock`, which is
    /// machine-wide, so it must be unique on the machine.
    #[arg(long, env = "OCTOPUS_WG_INTERFACE")]
    interface: String,
    /// File holding the private key as `wg genkey` prints it.
    #[arg(long, env = "OCTOPUS_WG_PRIVATE_KEY_FILE")]
    private_key_file: PathBuf,
    /// UDP port to listen on.
    #[arg(long, env = "OCTOPUS_WG_LISTEN_PORT", default_value_t = nauti_api::peer::DEFAULT_WIREGUARD_PORT)]
    listen_port: u16,
    /// MTU of the interface (underlay minus WireGuard's 60 bytes over IPv4).
    #[arg(long, env = "OCTOPUS_WG_MTU", default_value_t = 1440)]
    mtu: u16,
}

/// Runs the chosen subcommand.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _sink = args.log.init().context("set up logging")?;
    match args.command {
        Command::WgDevice(wg) => wg_device(wg).await,
    }
}

async fn wg_device(args: WgDeviceArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.private_key_file).with_context(|| {
        format!(
            "read the private key file {}",
            args.private_key_file.display()
        )
    })?;
    let private_key = parse_wireguard_key(text.trim()).with_context(|| {
        format!(
            "the private key in {} is not a WireGuard key",
            args.private_key_file.display()
        )
    })?;
    let shutdown = shutdown_on_signals().context("install signal handlers")?;
    let device = Device::start(&DeviceConfig {
        ifname: args.interface.clone(),
        private_key,
        listen_port: args.listen_port,
        mtu: args.mtu,
    })?;
    device.serve_uapi(&args.interface)?;
    tracing::info!(public_key = %device.public_key(), "serving UAPI on {}", uapi::socket_path(&args.interface).display());
    shutdown.cancelled().await;
    let _ = std::fs::remove_file(uapi::socket_path(&args.interface));
    Ok(())
}
