//! Any bytes given to the binary-index reader give an index or an error: never a panic,
//! an abort or a huge allocation. An index that reads must also search and write back.
#![no_main]

use fathom_index::binary::IndexBinary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = fathom_io::faiss::read_index_binary_bytes(data) {
        let q: Vec<u8> = (0..index.code_size()).map(|i| i as u8).collect();
        let _ = index.search(&q, 3);
        let _ = index.range_search(&q, 10.0);
        let _ = index.reconstruct(0);
        let _ = index.description();
        let _ = fathom_io::faiss::index_binary_to_bytes(&*index);
    }
});
