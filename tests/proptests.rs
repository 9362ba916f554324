//! Property tests: the parsers never panic on arbitrary input, and accept what they should.

use fal_client::queue::QueueStatus;
use fal_client::{EndpointId, Error};
use proptest::prelude::*;

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,15}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn endpoint_id_parsing_never_panics(s in "\\PC{0,40}") {
        let _ = EndpointId::parse(&s);
    }

    #[test]
    fn owner_alias_path_ids_round_trip(owner in segment(), alias in segment(), path in proptest::collection::vec(segment(), 0..3)) {
        prop_assume!(owner != "workflows" && owner != "comfy");
        let mut id = format!("{owner}/{alias}");
        for p in &path {
            id.push('/');
            id.push_str(p);
        }
        let parsed = EndpointId::parse(&id).unwrap();
        prop_assert_eq!(parsed.as_str(), id.as_str());
        prop_assert_eq!(parsed.owner(), owner.as_str());
        prop_assert_eq!(parsed.alias(), alias.as_str());
        prop_assert_eq!(parsed.app_id(), format!("{owner}/{alias}"));
        let joined = path.join("/");
        prop_assert_eq!(parsed.path(), (!path.is_empty()).then_some(joined.as_str()));
    }

    #[test]
    fn legacy_ids_are_normalized(num in 1u64..u64::MAX, alias in "[a-zA-Z0-9][a-zA-Z0-9-]{0,12}") {
        let parsed = EndpointId::parse(&format!("{num}-{alias}")).unwrap();
        prop_assert_eq!(parsed.as_str(), format!("{num}/{alias}"));
    }

    #[test]
    fn ids_without_a_slash_or_legacy_form_are_rejected(s in "[a-zA-Z_]{1,20}") {
        let rejected = matches!(EndpointId::parse(&s), Err(Error::InvalidEndpointId { .. }));
        prop_assert!(rejected);
    }

    #[test]
    fn status_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = QueueStatus::from_slice(&bytes);
    }

    #[test]
    fn status_parsing_handles_json_shapes(
        status in prop_oneof![Just("IN_QUEUE".to_string()), Just("IN_PROGRESS".to_string()), Just("COMPLETED".to_string()), "[A-Z_]{1,12}"],
        pos in proptest::option::of(any::<u64>()),
        with_logs in any::<bool>(),
        error in proptest::option::of("\\PC{0,20}"),
    ) {
        let mut body = serde_json::json!({"status": status});
        if let Some(p) = pos { body["queue_position"] = p.into(); }
        if with_logs { body["logs"] = serde_json::json!([{"message": "m"}]); }
        if let Some(e) = &error { body["error"] = e.clone().into(); }
        let parsed = QueueStatus::from_slice(body.to_string().as_bytes());
        match status.as_str() {
            "IN_QUEUE" => prop_assert_eq!(parsed.unwrap(), QueueStatus::InQueue { queue_position: pos.unwrap_or(0) }),
            "IN_PROGRESS" => prop_assert_eq!(parsed.unwrap().logs().len(), usize::from(with_logs)),
            "COMPLETED" => {
                let s = parsed.unwrap();
                prop_assert_eq!(s.failure().map(|f| f.0.to_owned()), error.filter(|e| !e.is_empty()));
            }
            _ => {
                let rejected = matches!(parsed, Err(Error::Decode { .. }));
                prop_assert!(rejected);
            }
        }
    }

    #[test]
    fn wrong_types_in_status_are_decode_errors(v in prop_oneof![Just(serde_json::json!("x")), Just(serde_json::json!(-1)), Just(serde_json::json!([1]))]) {
        let body = serde_json::json!({"status": "IN_QUEUE", "queue_position": v});
        let parsed = QueueStatus::from_slice(body.to_string().as_bytes());
        let named = matches!(parsed, Err(Error::Decode { ref path, .. }) if path == "queue_position");
        prop_assert!(named);
    }
}
