//! Arbitrary bytes as two layers: flattening never panics, and whatever it
//! emits is a cpio that reads back, with no path outside the root.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::{cpio, tree};

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let mut t = tree::Tree::new();
    for (i, layer) in [a, b].iter().enumerate() {
        let Ok(entries) = tree::index_layer(*layer) else { return };
        if t.apply_layer(i as u32, &entries).is_err() {
            return;
        }
    }
    let mut w = cpio::Writer::new(Vec::new());
    if t.emit_skeleton(&mut w).is_err() {
        return;
    }
    let plan = t.plan(None, None);
    for (i, layer) in [a, b].iter().enumerate() {
        let _ = tree::for_each_file(*layer, plan.layer(i as u32), |job, r| {
            tree::Sink::file(&mut w, &job.paths, &job.meta, job.size, r)
        });
    }
    let Ok(out) = w.finish() else { return };
    for e in cpio::read(&out).expect("our own cpio must read back") {
        assert!(!e.name.starts_with(b"/"));
        assert!(!e.name.split(|&c| c == b'/').any(|c| c == b".."));
    }
});
