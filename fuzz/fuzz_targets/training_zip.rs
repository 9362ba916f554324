//! `archive::validate_zip` (zip reading, image sniffing, caption checks) on arbitrary bytes.
#![no_main]

use fal_client::archive::validate_zip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = validate_zip(data, 1) {
        assert!(report.image_count() >= 1);
    }
});
