//! The images pods of a bed run, imported into every node's containerd under the names manifests
//! use (`imagePullPolicy: IfNotPresent`; nothing is ever pulled). `make peers` builds the archives
//! (`tests/peers/build-images.sh`, `tests/peers/build-cluster-images.sh`); the pause and busybox
//! images come with every [`Containerd`]. Images of Nauti's own daemons are built from the
//! checkout by `tests/peers/build-nauti-images.sh` and imported when their archives exist.

use crate::containerd::Containerd;
use crate::error::Result;
use crate::peers;

pub const NGINX_IMAGE: &str = "localhost/nauti/nginx:bookworm";
pub const TOOLS_IMAGE: &str = "localhost/nauti/tools:bookworm";
pub const COREDNS_IMAGE: &str = "localhost/nauti/coredns:1.15.0";

/// (image name, archive name under `$NAUTI_PEERS_DIR/images`).
pub const CLUSTER_IMAGES: &[(&str, &str)] = &[
    (NGINX_IMAGE, "nginx"),
    (TOOLS_IMAGE, "tools"),
    (COREDNS_IMAGE, "coredns"),
];

/// The tag of the images of Nauti's own daemons built from the checkout.
pub const NAUTI_TAG: &str = "dev";

/// `localhost/nauti/<binary>:dev`, the name a manifest gives a Nauti daemon's image.
pub fn nauti_image(binary: &str) -> String {
    format!("localhost/nauti/{binary}:{NAUTI_TAG}")
}

/// Where `build-nauti-images.sh` writes its archives (`<binary>.oci.tar`).
pub fn nauti_archives_dir() -> std::path::PathBuf {
    peers::dir().join("images/nauti")
}

/// Imports the image of every Nauti daemon whose archive exists; returns the names imported.
pub fn import_nauti_images(ctrd: &Containerd) -> Result<Vec<String>> {
    let mut imported = Vec::new();
    let Ok(entries) = std::fs::read_dir(nauti_archives_dir()) else {
        return Ok(imported);
    };
    let mut archives: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
    archives.sort();
    for archive in archives {
        let Some(binary) = archive
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".oci.tar"))
        else {
            continue;
        };
        let image = nauti_image(binary);
        ctrd.import_image(&image, &archive)?;
        imported.push(image);
    }
    Ok(imported)
}

/// Imports every cluster image into the node's `k8s.io` namespace (where CRI looks).
pub fn import_cluster_images(ctrd: &Containerd) -> Result<()> {
    for (image, archive) in CLUSTER_IMAGES {
        let archive = peers::image(archive)?;
        ctrd.import_image(image, &archive)?;
    }
    Ok(())
}
