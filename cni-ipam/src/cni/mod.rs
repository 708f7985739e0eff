//! The CNI protocol edge: environment and stdin in, a result or an error object out.
//!
//! [`handle`] is the whole plugin minus the process plumbing, so tests drive it in-process and the
//! binary stays a few lines long. Decisions are made by [`crate::core`]; state lives in
//! [`crate::store::FileStore`], locked for the whole read-modify-write of one invocation.

pub mod config;
pub mod env;
pub mod error;
pub mod result;
pub mod version;

use std::collections::HashSet;
use std::io::Read;
use std::net::IpAddr;

use serde_json::Value;

pub use config::NetConf;
pub use env::{Attachment, CniEnv, Command};
pub use error::CniError;
pub use version::CniVersion;

use crate::core::{AllocError, Lease, OwnerId, RangeSetPool};
use crate::store::{DEFAULT_LOCK_TIMEOUT, FileStore, Record, StoreState, host_local};
use result::Dns;

/// Largest stdin accepted; network configurations are a few KiB.
const MAX_STDIN: u64 = 16 << 20;

/// What the binary writes to stdout and whether it exits with success.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The result, VERSION answer or error object; `None` for DEL, GC, STATUS and CHECK success.
    pub stdout: Option<Value>,
    /// Exit status zero?
    pub success: bool,
}

impl Reply {
    fn ok(v: Option<Value>) -> Self {
        Self {
            stdout: v,
            success: true,
        }
    }

    fn err(e: &CniError, version: &str) -> Self {
        Self {
            stdout: Some(e.to_json(version)),
            success: false,
        }
    }
}

/// Runs one plugin invocation.
pub fn handle(get_env: impl Fn(&str) -> Option<String>, stdin: impl Read) -> Reply {
    let latest = CniVersion::LATEST.as_str();
    // The environment first: a plugin started by hand with no CNI_COMMAND must not wait on stdin.
    let env = match CniEnv::from_vars(get_env) {
        Ok(env) => env,
        Err(e) => return Reply::err(&e, latest),
    };
    let mut input = Vec::new();
    if let Err(source) = stdin.take(MAX_STDIN + 1).read_to_end(&mut input) {
        let e = CniError::Io {
            context: "reading the network configuration from stdin".into(),
            source,
        };
        return Reply::err(&e, latest);
    }
    // Decoded once: the version shapes any error, and the configuration is read from it.
    let root = config::decode(&input);
    let asked = root.as_ref().ok().and_then(config::version_of);
    if env.command == Command::Version {
        return Reply::ok(Some(result::version_info(asked)));
    }
    let version = asked
        .and_then(CniVersion::parse)
        .unwrap_or(CniVersion::LATEST);
    if input.len() as u64 > MAX_STDIN {
        let e = CniError::Decode {
            what: "network configuration on stdin",
            reason: format!("larger than {MAX_STDIN} bytes"),
        };
        return Reply::err(&e, version.as_str());
    }
    match root.and_then(|root| run(&env, &root)) {
        Ok(out) => Reply::ok(out),
        Err(e) => Reply::err(&e, version.as_str()),
    }
}

fn run(env: &CniEnv, root: &Value) -> Result<Option<Value>, CniError> {
    let conf = config::from_value(root)?;
    let need = |min: CniVersion, what: &str| {
        if conf.cni_version < min {
            Err(CniError::IncompatibleVersion {
                version: conf.cni_version.to_string(),
                reason: format!(
                    "config version {} does not allow {what} (needs {min})",
                    conf.cni_version
                ),
            })
        } else {
            Ok(())
        }
    };
    let attachment = || {
        env.attachment
            .as_ref()
            .ok_or_else(|| CniError::env("CNI_CONTAINERID,CNI_IFNAME", "required but missing"))
    };
    match env.command {
        Command::Add => do_add(&conf, attachment()?, env.requested_ip).map(Some),
        Command::Del => do_del(&conf, attachment()?).map(|()| None),
        Command::Check => {
            need(CniVersion::V0_4_0, "CHECK")?;
            do_check(&conf, attachment()?).map(|()| None)
        }
        Command::Gc => {
            need(CniVersion::V1_1_0, "GC")?;
            do_gc(&conf).map(|()| None)
        }
        Command::Status => {
            need(CniVersion::V1_1_0, "STATUS")?;
            do_status(&conf).map(|()| None)
        }
        Command::Version => Ok(Some(result::version_info(Some(conf.cni_version.as_str())))),
    }
}

/// The store's state with any reservations host-local left in the same folder imported: they
/// are saved into the state before their files are removed, so a crash in between only imports
/// them again.
fn load(store: &mut FileStore) -> Result<StoreState, CniError> {
    let mut state = store.load()?;
    let imported = host_local::import(store.dir(), &mut state)?;
    if !imported.is_empty() {
        store.save(&state)?;
        host_local::remove(&imported)?;
    }
    Ok(state)
}

fn owner_of(a: &Attachment) -> OwnerId {
    OwnerId::new(&a.container_id, &a.ifname)
}

fn is_owner(r: &Record, a: &Attachment) -> bool {
    r.container_id == a.container_id && r.ifname == a.ifname
}

/// The range sets with the stored allocations restored and round-robin positions resumed.
/// A stored address that cannot be attributed is blocked, never handed out again.
fn restore(conf: &NetConf, state: &StoreState) -> Vec<RangeSetPool> {
    let mut sets = conf.ipam.pools();
    for r in &state.records {
        let owner = OwnerId::new(&r.container_id, &r.ifname);
        if let Some(set) = sets.iter_mut().find(|s| s.contains(r.ip))
            && set.allocate_addr(owner, r.ip).is_err()
        {
            set.block(r.ip);
        }
    }
    for (&i, &ip) in &state.last_reserved {
        if let Some(set) = sets.get_mut(i) {
            set.resume_after(ip);
        }
    }
    sets
}

fn do_add(conf: &NetConf, att: &Attachment, env_ip: Option<IpAddr>) -> Result<Value, CniError> {
    let dns = match &conf.ipam.resolv_conf {
        Some(path) => Dns::read(path)?,
        None => Dns::default(),
    };
    let mut requested: Vec<IpAddr> = env_ip
        .into_iter()
        .chain(conf.requested_ips.iter().copied())
        .collect();
    let owner = owner_of(att);

    let mut store = FileStore::open(&conf.ipam.data_dir, &conf.name, DEFAULT_LOCK_TIMEOUT)?;
    let mut state = load(&mut store)?;
    let mut sets = restore(conf, &state);
    let mut leases: Vec<Lease> = Vec::with_capacity(sets.len());
    let mut changed = false;
    for (i, set) in sets.iter_mut().enumerate() {
        let wanted = requested
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|p| requested.remove(p));
        if let Some(existing) = set.lookup(owner) {
            // Idempotent ADD: the same attachment gets the same address, after making sure the
            // stored full owner really is this attachment and not a digest collision.
            if let Some(holder) = state
                .records
                .iter()
                .find(|r| r.ip == existing.address && !is_owner(r, att))
            {
                return Err(CniError::OwnerCollision {
                    ip: existing.address,
                    holder: format!("{}/{}", holder.container_id, holder.ifname),
                });
            }
            if let Some(ip) = wanted.filter(|ip| *ip != existing.address) {
                return Err(CniError::RequestedUnavailable {
                    ip,
                    reason: format!("this attachment already holds {}", existing.address),
                });
            }
            leases.push(existing);
            continue;
        }
        let lease = match wanted {
            Some(ip) => {
                set.allocate_addr(owner, ip)
                    .map_err(|e| CniError::RequestedUnavailable {
                        ip,
                        reason: e.to_string(),
                    })?
            }
            None => set.allocate(owner).map_err(|e| match e {
                AllocError::Exhausted { range } => CniError::Exhausted {
                    range_set: i,
                    range,
                },
                other => CniError::Exhausted {
                    range_set: i,
                    range: other.to_string(),
                },
            })?,
        };
        state.records.push(Record {
            ip: lease.address,
            container_id: att.container_id.clone(),
            ifname: att.ifname.clone(),
        });
        if wanted.is_none() {
            state.last_reserved.insert(i, lease.address);
        }
        changed = true;
        leases.push(lease);
    }
    if let Some(ip) = requested.first() {
        return Err(CniError::RequestedUnavailable {
            ip: *ip,
            reason: "not in any configured range".into(),
        });
    }
    if changed {
        store.save(&state)?;
    }
    Ok(result::render(
        conf.cni_version,
        &leases,
        &conf.ipam.routes,
        &dns,
    ))
}

fn do_del(conf: &NetConf, att: &Attachment) -> Result<(), CniError> {
    let Some(mut store) =
        FileStore::open_existing(&conf.ipam.data_dir, &conf.name, DEFAULT_LOCK_TIMEOUT)?
    else {
        return Ok(());
    };
    let mut state = load(&mut store)?;
    let before = state.records.len();
    state.records.retain(|r| !is_owner(r, att));
    if state.records.len() != before {
        store.save(&state)?;
    }
    Ok(())
}

fn do_check(conf: &NetConf, att: &Attachment) -> Result<(), CniError> {
    let unknown = || CniError::UnknownContainer {
        container_id: att.container_id.clone(),
        ifname: att.ifname.clone(),
        network: conf.name.clone(),
    };
    let mut store =
        FileStore::open_existing(&conf.ipam.data_dir, &conf.name, DEFAULT_LOCK_TIMEOUT)?
            .ok_or_else(unknown)?;
    let state = load(&mut store)?;
    for set in conf.ipam.pools() {
        let held = state
            .records
            .iter()
            .find(|r| is_owner(r, att) && set.contains(r.ip))
            .ok_or_else(unknown)?;
        if let Some(prev) = &conf.prev_result_ips
            && !prev.contains(&held.ip)
        {
            return Err(CniError::CheckMismatch {
                reason: format!(
                    "allocated address {} (range set {set}) is missing from prevResult.ips",
                    held.ip
                ),
            });
        }
    }
    Ok(())
}

fn do_gc(conf: &NetConf) -> Result<(), CniError> {
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::config(
            "cni.dev/valid-attachments",
            "required for GC (an empty list releases everything)",
        )
    })?;
    let valid: HashSet<(&str, &str)> = valid
        .iter()
        .map(|(c, i)| (c.as_str(), i.as_str()))
        .collect();
    let Some(mut store) =
        FileStore::open_existing(&conf.ipam.data_dir, &conf.name, DEFAULT_LOCK_TIMEOUT)?
    else {
        return Ok(());
    };
    let mut state = load(&mut store)?;
    let before = state.records.len();
    state
        .records
        .retain(|r| valid.contains(&(r.container_id.as_str(), r.ifname.as_str())));
    if state.records.len() != before {
        store.save(&state)?;
    }
    Ok(())
}

fn do_status(conf: &NetConf) -> Result<(), CniError> {
    let state =
        match FileStore::open_existing(&conf.ipam.data_dir, &conf.name, DEFAULT_LOCK_TIMEOUT)? {
            Some(mut store) => store.load()?,
            None => StoreState::default(),
        };
    for (i, set) in restore(conf, &state).iter().enumerate() {
        if set.is_exhausted() {
            return Err(CniError::Unavailable {
                range_set: i,
                range: set.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
