//! Arbitrary bytes as a tar stream: the reader never panics, never holds
//! more than its limits, and every member's data reads back at exactly the
//! size it announced (sparse holes included) or fails cleanly.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use wyrcan_core::tar::{Limits, Reader};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        extension: 64 << 10,
        path: 4096,
        sparse_chunks: 1024,
    };
    let mut r = Reader::with_limits(data, limits);
    // Bounded: each member consumes at least one block of `data`.
    while let Ok(Some(e)) = r.next_entry() {
        assert!(e.path.len() <= 4096 && !e.path.contains(&0));
        // Sparse files may expand; read a bounded prefix only.
        let mut buf = Vec::new();
        let want = e.size.min(1 << 20);
        if let Ok(n) = r.data().take(want).read_to_end(&mut buf) {
            assert!(n as u64 <= e.size);
        }
    }
});
