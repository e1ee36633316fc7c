//! The search language: any text either parses or is refused with a position inside
//! it; a parsed query prints to a text that parses to the same query.
#![no_main]

use leanspec_peer_core::query::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match parse(text) {
        Ok(q) => {
            let printed = q.to_string();
            let again = parse(&printed)
                .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} does not parse: {e}"));
            assert_eq!(again, q, "{text:?} printed as {printed:?}");
        }
        Err(e) => assert!(e.at <= text.len(), "{text:?}: {e}"),
    }
});
