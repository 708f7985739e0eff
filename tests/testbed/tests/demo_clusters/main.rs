//! `make demo` as a test, so that it cannot rot: the seed's demo across clusters on a ClusterBed
//! (`nauti_testbed::seed_demo`, the code the demo runs): both charts installed with helm as the
//! hub's NOTES say, the nginx page fetched by `nginx-svc.default.svc.hyperos.local` from the other
//! member, and nothing left after `helm uninstall`.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use nauti_testbed::require_root;
use nauti_testbed::seed_demo::{self, NGINX_TITLE, Narrator, SeedDemo};

/// Keeps the narration for the failure message and prints it as it goes (captured by the harness).
struct Recorded(Mutex<Vec<String>>);

impl Narrator for Recorded {
    fn say(&self, line: &str) {
        seed_demo::Stdout.say(line);
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.to_owned());
        }
    }
}

#[test]
fn seed_demo_across_clusters_installs_fetches_by_name_and_leaves_nothing() {
    require_root!();
    let narrator = Recorded(Mutex::new(Vec::new()));
    seed_demo::build_images(&narrator).unwrap();
    let demo = SeedDemo::install(&narrator).unwrap_or_else(|e| panic!("install: {e}"));
    let installed = demo.elapsed();
    let page = demo.fetch_across().unwrap_or_else(|e| panic!("{e}"));
    assert!(page.contains(NGINX_TITLE), "{page}");
    let fetched = demo.elapsed();
    // Not part of the seed's script: an upgrade of the member that serves the page.
    let gap = demo
        .roll_gateways(0)
        .unwrap_or_else(|e| panic!("rolling the gateway: {e}"));
    let summary = demo.summary().unwrap();
    for member in seed_demo::MEMBERS {
        assert!(summary.contains(member), "no Peer {member} in:\n{summary}");
    }
    let left = demo
        .uninstall()
        .unwrap_or_else(|e| panic!("uninstall: {e}"));
    // Nauti's marks must all be gone, and every object of the release namespace.
    assert!(
        left.nauti.is_empty(),
        "left behind after helm uninstall:\n{}",
        left.nauti.join("\n")
    );
    narrator.say(&format!(
        "demo_clusters: installed in {:.0} s, page fetched at {:.0} s, gateway rolled with fetches failing for at most {:.1} s, uninstalled and checked at {:.0} s",
        installed.as_secs_f64(),
        fetched.as_secs_f64(),
        gap.as_secs_f64(),
        demo.elapsed().as_secs_f64()
    ));
}
