//! Any bytes given to the Faiss reader give an index or an error: never a panic, an
//! abort, a huge allocation or undefined behaviour. An index that reads must also search.
#![no_main]

use fathom_index::Index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = fathom_io::faiss::read_index_bytes(data) {
        let d = index.dim();
        let q: Vec<f32> = (0..d).map(|i| i as f32 * 0.25 - 1.0).collect();
        let _ = index.search(&q, 3);
        let _ = index.range_search(&q, 1.0);
        let _ = index.reconstruct(0);
        let _ = index.description();
        let _ = format!("{index:?}");
        let _ = fathom_index::reverse_index_factory(&*index);
    }
});
