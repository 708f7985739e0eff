//! Writes the CRD YAML of every nauti-api type into the directory given as the only argument
//! (`make crds` passes `deploy/crds`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: crdgen <output-dir>");
        return ExitCode::from(2);
    };
    match nauti_api::crd::write_all(&PathBuf::from(dir)) {
        Ok(paths) => {
            for path in paths {
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("crdgen: {err}");
            ExitCode::FAILURE
        }
    }
}
