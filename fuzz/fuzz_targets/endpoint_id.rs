//! `EndpointId::parse` on arbitrary strings: never panics, and what it accepts is stable.
#![no_main]

use fal_client::EndpointId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(id) = EndpointId::parse(s) {
        let again = EndpointId::parse(id.as_str()).expect("a normalized id parses again");
        assert_eq!(again.as_str(), id.as_str());
        assert!(id.as_str().contains('/'));
        assert!(id.as_str().ends_with(id.alias()) || id.path().is_some());
        assert!(id.as_str().contains(&id.app_id()));
        assert!(!id.owner().is_empty() && !id.alias().is_empty());
    }
});
