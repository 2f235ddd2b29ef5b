//! `#[prism::remote]` accepts plain functions and explains what it refuses.

#[test]
fn remote_attribute() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
