//! Every guard cleans up when its test panics: no namespaces, links, processes or sockets are left.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nauti_testbed::names::unique;
use nauti_testbed::wireguard::UserspaceWg;
use nauti_testbed::{KubeApi, Netns, TestDir, require_root};

/// What a panicking test left for the checker to look for.
#[derive(Default)]
struct Traces {
    netns: Vec<String>,
    pids: Vec<u32>,
    children: Vec<std::process::Child>,
    files: Vec<PathBuf>,
    dir: PathBuf,
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its entry is left until the parent reaps it.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn netns_listed(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Runs `body` on a thread that records traces into the shared slot and then panics with its guards
/// alive; returns the traces once the guards have unwound.
fn panic_after(body: impl FnOnce(&Mutex<Traces>) + Send + 'static) -> Traces {
    let slot = Arc::new(Mutex::new(Traces::default()));
    let shared = Arc::clone(&slot);
    let result = std::thread::spawn(move || body(&shared)).join();
    assert!(result.is_err(), "the test thread did not panic");
    std::mem::take(&mut *slot.lock().unwrap_or_else(|e| e.into_inner()))
}

#[test]
fn namespaces_wireguard_and_daemons_are_gone_after_a_panic() {
    require_root!();
    let traces = panic_after(|traces: &Mutex<Traces>| {
        let dir = TestDir::new("cleanup-wg").unwrap();
        let a = Netns::new("ncl").unwrap();
        let b = Netns::new("ncl").unwrap();
        a.veth_to("c0", &b, "c1").unwrap();
        let ifname = unique("wgc");
        let wg = UserspaceWg::start(&a, &ifname, &dir).unwrap();
        let sleeper = a.command("sleep").arg("600").spawn().unwrap();
        *traces.lock().unwrap() = Traces {
            netns: vec![a.name().to_owned(), b.name().to_owned()],
            pids: vec![sleeper.id()],
            children: vec![sleeper],
            files: vec![wg.socket()],
            dir: dir.path().to_owned(),
        };
        panic!("deliberate failure to test the guards");
    });
    for ns in &traces.netns {
        assert!(!netns_listed(ns), "namespace {ns} left behind");
    }
    for pid in &traces.pids {
        assert!(!alive(*pid), "process {pid} left behind");
    }
    for mut child in traces.children {
        assert!(child.try_wait().unwrap().is_some(), "child left running");
    }
    for file in &traces.files {
        assert!(!file.exists(), "{} left behind", file.display());
    }
    // A failed test keeps its logs for reading.
    assert!(traces.dir.exists(), "logs of a failed test were removed");
    let _ = std::fs::remove_dir_all(&traces.dir);
}

#[test]
fn kube_apiserver_and_etcd_stop_after_a_panic() {
    require_root!();
    let traces = panic_after(|traces: &Mutex<Traces>| {
        let dir = TestDir::new("cleanup-kube").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let kube = runtime.block_on(KubeApi::start(&dir)).unwrap();
        *traces.lock().unwrap() = Traces {
            pids: kube.pids(),
            dir: dir.path().to_owned(),
            ..Traces::default()
        };
        drop(runtime);
        panic!("deliberate failure to test the guards");
    });
    assert_eq!(traces.pids.len(), 2);
    for pid in &traces.pids {
        assert!(!alive(*pid), "process {pid} left behind");
    }
    let _ = std::fs::remove_dir_all(&traces.dir);
}

#[test]
fn containerd_its_shims_and_mounts_are_gone_after_a_panic() {
    require_root!();
    let traces = panic_after(|traces: &Mutex<Traces>| {
        let dir = TestDir::new("cleanup-ctrd").unwrap();
        let node = Netns::new("ncc").unwrap();
        let ctrd = nauti_testbed::Containerd::start(&node, &dir).unwrap();
        let pod = ctrd
            .run_pod(&nauti_testbed::PodSpec::new("default", "doomed"))
            .unwrap();
        ctrd.run_container(&pod, "sh", &["/bin/sh", "-c", "sleep 3600"])
            .unwrap();
        *traces.lock().unwrap() = Traces {
            netns: vec![node.name().to_owned()],
            pids: processes_under(dir.path()),
            dir: dir.path().to_owned(),
            ..Traces::default()
        };
        panic!("deliberate failure to test the guards");
    });
    assert!(!traces.pids.is_empty(), "no containerd processes were seen");
    for pid in &traces.pids {
        assert!(!alive(*pid), "process {pid} left behind");
    }
    for ns in &traces.netns {
        assert!(!netns_listed(ns), "namespace {ns} left behind");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = traces.dir.display().to_string();
    assert!(!mounts.contains(&dir), "mounts left under {dir}");
    let _ = std::fs::remove_dir_all(&traces.dir);
}

/// Processes whose cwd or root is inside `dir` (shims, containers) plus containerd itself.
fn processes_under(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default();
            let inside = ["cwd", "root"]
                .iter()
                .any(|l| std::fs::read_link(e.path().join(l)).is_ok_and(|t| t.starts_with(dir)));
            let daemon = cmdline.contains(&*dir.to_string_lossy());
            (inside || daemon).then_some(pid)
        })
        .collect()
}
