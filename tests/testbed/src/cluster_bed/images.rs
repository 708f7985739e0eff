//! The images pods of a bed run, imported into every node's containerd under the names manifests
//! use (`imagePullPolicy: IfNotPresent`; nothing is ever pulled). `make peers` builds the archives
//! (`tests/peers/build-images.sh`, `tests/peers/build-cluster-images.sh`); the pause and busybox
//! images come with every [`Containerd`].

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

/// Imports every cluster image into the node's `k8s.io` namespace (where CRI looks).
pub fn import_cluster_images(ctrd: &Containerd) -> Result<()> {
    for (image, archive) in CLUSTER_IMAGES {
        let archive = peers::image(archive)?;
        ctrd.ctr(&[
            "-n",
            "k8s.io",
            "images",
            "import",
            "--index-name",
            image,
            &archive.display().to_string(),
        ])?;
    }
    Ok(())
}
