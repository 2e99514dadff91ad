//! The derive's error messages point at the offending token; a missing handler does not compile.

#[test]
fn derive_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
