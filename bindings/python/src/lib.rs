//! # incus-python
//!
//! The Python module `incus` (pyo3, maturin) will live here: a blocking and an asyncio API
//! over both the REST client and the embedded engine. Not written yet (see the Python issue);
//! this crate has no Python code and builds nothing for Python so far.
