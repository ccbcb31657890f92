//! Cross-crate and Faiss-compatibility tests of fathom live in `tests/`; their fixtures,
//! and the scripts that made them with the real faiss-cpu, in `fixtures/`. This library is
//! empty: the package exists to hold the tests.
