//! The bindings generator, pinned to the uniffi version of this crate.

fn main() {
    uniffi::uniffi_bindgen_main()
}
