//! Load generator: under construction.
fn main() {}
