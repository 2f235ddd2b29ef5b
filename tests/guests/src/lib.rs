//! The paths of every guest component, built from source by build.rs: one
//! constant per component, by its name in capitals (`SQUARE` is
//! `square.wasm`), and `ALL`.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
