//! What a manifest may declare before anything big is requested: how many
//! layers, how big each one. Checked right after the manifest is resolved,
//! before the config or any layer blob is fetched, for every command.

use anyhow::{bail, Result};
use wyrcan_core::manifest::ImageManifest;
use wyrcan_core::reference::Reference;

use crate::progress::human;

/// The most layers an image may have. The initrd writer gives each layer
/// its own range of 2^22 inode numbers in the 32-bit cpio field
/// (`convert::frames`), so 1023 would be the hard ceiling; 999 keeps a
/// margin and is a round figure to tell users. Real images have tens.
pub const MAX_LAYERS: usize = 999;

/// The largest size a layer descriptor may declare (compressed bytes).
/// Far above any real layer; a bigger figure is a broken or hostile
/// manifest, and would only make us wait for, and store, that many bytes.
pub const MAX_LAYER_SIZE: u64 = 64 << 30;

/// Refuse a manifest with more than [`MAX_LAYERS`] layers or a layer
/// declaring more than [`MAX_LAYER_SIZE`] bytes. Pure: no request is made.
pub fn check_manifest(image: &Reference, manifest: &ImageManifest) -> Result<()> {
    let n = manifest.layers.len();
    if n > MAX_LAYERS {
        bail!(
            "{image} has {n} layers; at most {MAX_LAYERS} are supported: rebuild the image with \
             fewer layers (squash it, e.g. `podman build --squash`, or copy the root into one \
             layer in a multi-stage build)"
        );
    }
    for (i, l) in manifest.layers.iter().enumerate() {
        if l.size > MAX_LAYER_SIZE {
            bail!(
                "layer {}/{n} {} of {image} declares {} bytes, more than the {} a layer may have: \
                 the manifest is broken or hostile; check the image (nothing was downloaded)",
                i + 1,
                l.digest,
                l.size,
                human(MAX_LAYER_SIZE)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use wyrcan_core::digest::Digest;
    use wyrcan_core::manifest::Descriptor;

    fn desc(i: usize, size: u64) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: Digest::of(format!("layer {i}").as_bytes()),
            size,
            platform: None,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn manifest(sizes: impl IntoIterator<Item = u64>) -> ImageManifest {
        ImageManifest {
            media_type: None,
            config: desc(usize::MAX, 100),
            layers: sizes
                .into_iter()
                .enumerate()
                .map(|(i, s)| desc(i, s))
                .collect(),
        }
    }

    fn image() -> Reference {
        "reg.example/os:1".parse().unwrap()
    }

    #[test]
    fn up_to_the_layer_limit_passes() {
        check_manifest(&image(), &manifest([])).unwrap();
        check_manifest(&image(), &manifest(vec![10; MAX_LAYERS])).unwrap();
        check_manifest(&image(), &manifest([MAX_LAYER_SIZE, 0])).unwrap();
    }

    #[test]
    fn one_layer_too_many_names_the_image_the_count_and_the_limit() {
        let e = check_manifest(&image(), &manifest(vec![10; MAX_LAYERS + 1])).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("reg.example/os:1 has 1000 layers"), "{e}");
        assert!(e.contains("at most 999"), "{e}");
        assert!(e.contains("fewer layers"), "{e}");
    }

    #[test]
    fn an_absurd_layer_size_names_the_layer() {
        for size in [MAX_LAYER_SIZE + 1, u64::MAX, i64::MAX as u64 + 1] {
            let m = manifest([1, size, 2]);
            let e = format!("{:#}", check_manifest(&image(), &m).unwrap_err());
            assert!(
                e.contains(&format!(
                    "layer 2/3 {} of reg.example/os:1",
                    m.layers[1].digest
                )),
                "{e}"
            );
            assert!(e.contains(&format!("declares {size} bytes")), "{e}");
            assert!(e.contains("64.0 GiB"), "{e}");
        }
    }
}
