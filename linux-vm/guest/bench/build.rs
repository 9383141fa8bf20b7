//! Build script: links the guest benchmark without symbols or debug information (it is
//! copied into the guest's initramfs, where size is boot time).

fn main() {
    println!("cargo:rustc-link-arg-bins=--strip-all");
    println!("cargo:rerun-if-changed=build.rs");
}
