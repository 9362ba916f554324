//! `QueueStatus::from_slice` (status answers and status-stream events) on arbitrary bytes.
#![no_main]

use fal_client::queue::QueueStatus;
use fal_client::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match QueueStatus::from_slice(data) {
        Ok(status) => {
            assert!(matches!(
                status.name(),
                "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED"
            ));
            let _ = status.failure();
            let _ = status.logs();
        }
        Err(Error::Decode { body_excerpt, .. }) => assert!(body_excerpt.len() <= 512 + 3),
        // A `status` the crate does not know is its own error, naming it.
        Err(Error::UnknownQueueStatus { status, .. }) => {
            assert!(!matches!(status.as_str(), "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED"))
        }
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});
