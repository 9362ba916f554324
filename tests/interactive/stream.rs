//! `POST {run}/{endpoint id}/stream` against wiremock: the request, the events, the output, and
//! the ways a stream ends early.

use std::time::Duration;

use fal_client::models::{FluxLora, FluxLoraInput};
use fal_client::stream::{StreamBreak, StreamEvent};
use fal_client::{Error, FalClient};
use futures::StreamExt;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> FalClient {
    FalClient::builder()
        .key("k-1")
        .run_url(server.uri())
        .build()
        .unwrap()
}

fn sse(events: &[Value]) -> ResponseTemplate {
    let mut body = String::from(": keep-alive\n\n");
    for e in events {
        body.push_str(&format!("event: data\ndata: {e}\n\n"));
    }
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream; charset=utf-8")
        .insert_header("x-fal-request-id", "req-s1")
        .set_body_raw(body, "text/event-stream")
}

fn image(n: u32) -> Value {
    json!({"url": format!("https://v3.fal.media/files/x/{n}.jpg"), "width": 8, "height": 8, "content_type": "image/jpeg"})
}

#[tokio::test]
async fn a_typed_stream_yields_every_event_then_the_output() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-lora/stream"))
        .and(header("accept", "text/event-stream"))
        .and(header("authorization", "Key k-1"))
        .and(body_json(json!({"prompt": "a red fox"})))
        .respond_with(sse(&[
            json!({"images": [], "partial": true}),
            json!({"images": [image(1)], "partial": true}),
            json!({"images": [image(2)], "seed": 7, "prompt": "a red fox"}),
        ]))
        .expect(1)
        .mount(&server)
        .await;
    let fal = client(&server);
    let stream = fal
        .stream::<FluxLora>(&FluxLoraInput::new("a red fox"))
        .await
        .unwrap();
    assert_eq!(stream.request_id(), Some("req-s1"));
    let items: Vec<_> = stream.collect().await;
    assert_eq!(items.len(), 4, "{items:?}");
    let images: Vec<usize> = items[..3]
        .iter()
        .map(|i| match i {
            Ok(StreamEvent::Partial(p)) => p.images.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(images, [0, 1, 1]);
    match &items[3] {
        Ok(StreamEvent::Output(o)) => {
            assert_eq!(
                (o.seed, o.images[0].url.as_str()),
                (7, "https://v3.fal.media/files/x/2.jpg")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_id_that_ends_in_stream_is_not_extended_and_output_skips_partials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-lora/stream"))
        .respond_with(sse(&[json!({"step": 1}), json!({"done": true})]))
        .mount(&server)
        .await;
    let out = client(&server)
        .stream_json("fal-ai/flux-lora/stream", &json!({"prompt": "x"}))
        .await
        .unwrap()
        .output()
        .await
        .unwrap();
    assert_eq!(out, json!({"done": true}));
}

#[tokio::test]
async fn the_last_event_is_the_output_and_no_event_is_an_early_end() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/a/stream"))
        .respond_with(sse(&[
            json!({"n": 1, "partial": true}),
            json!({"n": 2, "partial": true}),
        ]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/b/stream"))
        .respond_with(sse(&[]))
        .mount(&server)
        .await;
    let fal = client(&server);
    // As in fal's JS client, whatever the event says of itself: the model's own markers are
    // the caller's to read.
    let out = fal
        .stream_json("fal-ai/a", &json!({}))
        .await
        .unwrap()
        .output()
        .await
        .unwrap();
    assert_eq!(out, json!({"n": 2, "partial": true}));
    let items: Vec<_> = fal
        .stream_json("fal-ai/b", &json!({}))
        .await
        .unwrap()
        .collect()
        .await;
    match &items[..] {
        [Err(
            e @ Error::StreamBroken {
                events: 0,
                kind: StreamBreak::EndedEarly,
                last_event: None,
                ..
            },
        )] => {
            assert_eq!(e.request_id(), Some("req-s1"));
            assert!(e.to_string().contains("req-s1"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_silent_stream_fails_with_its_idle_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/slow/stream"))
        .respond_with(sse(&[json!({})]).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let err = client(&server)
        .stream_json("fal-ai/slow", &json!({}))
        .idle_timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::StreamBroken { kind: StreamBreak::Idle(d), .. } if d == Duration::from_millis(100)),
        "{err:?}"
    );
}

#[tokio::test]
async fn refusals_come_before_the_stream_with_fal_s_details() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-lora/stream"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"detail": [
            {"loc": ["body", "num_images"], "msg": "ensure this value is less than or equal to 4", "type": "value_error.number.not_le"}
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/nope/stream"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"detail": "Not found"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/json/stream"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"images": []})))
        .mount(&server)
        .await;
    let fal = client(&server);
    let err = fal
        .stream_json("fal-ai/flux-lora", &json!({"prompt": "x", "num_images": 9}))
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(fal_client::StatusCode::UNPROCESSABLE_ENTITY)
    );
    assert!(err.to_string().contains("num_images"), "{err}");
    let err = fal
        .stream_json("fal-ai/nope", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EndpointNotFound { .. }), "{err:?}");
    let err = fal
        .stream_json("fal-ai/json", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    // A typed input is validated before anything is sent.
    let bad = FluxLoraInput {
        num_images: Some(9),
        ..FluxLoraInput::new("x")
    };
    let before = server.received_requests().await.unwrap().len();
    assert!(matches!(
        fal.stream::<FluxLora>(&bad).await,
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), before);
}

mod against_the_mock {
    use super::*;
    use fal_mock::{FalMock, MockFailure};

    #[tokio::test]
    async fn the_mock_s_stream_gives_partials_then_the_run_s_output() {
        let mock = FalMock::start().await.unwrap();
        let fal = mock.client().unwrap();
        let mut events = fal
            .stream::<FluxLora>(&FluxLoraInput::new("a red fox"))
            .await
            .unwrap();
        let request_id = events.request_id().unwrap().to_owned();
        let (mut partials, mut output) = (0, None);
        while let Some(item) = events.next().await {
            match item.unwrap() {
                StreamEvent::Partial(_) => partials += 1,
                StreamEvent::Output(o) => output = Some(o),
            }
        }
        let output = output.unwrap();
        assert!(partials >= 2, "{partials}");
        assert!(!output.images.is_empty());
        assert!(!request_id.is_empty());
        assert_eq!(mock.streams("fal-ai/flux-lora").completed, 1);
    }

    #[tokio::test]
    async fn a_stream_cut_mid_way_is_a_typed_error_naming_the_request() {
        let mock = FalMock::start().await.unwrap();
        mock.fail_next("fal-ai/flux-lora", MockFailure::stream_cut(1));
        let fal = mock.client().unwrap();
        let events = fal
            .stream_json("fal-ai/flux-lora", &json!({"prompt": "x"}))
            .await
            .unwrap();
        let request_id = events.request_id().unwrap().to_owned();
        let items: Vec<_> = events.collect().await;
        assert!(matches!(items[0], Ok(StreamEvent::Partial(_))), "{items:?}");
        match &items[1] {
            Err(
                e @ Error::StreamBroken {
                    kind: StreamBreak::Broken,
                    events: 1,
                    ..
                },
            ) => {
                assert_eq!(e.request_id(), Some(request_id.as_str()));
                assert!(e.to_string().contains(&request_id), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(items.len(), 2);
        assert_eq!(mock.streams("fal-ai/flux-lora").cut, 1);
    }

    #[tokio::test]
    async fn silence_between_events_is_the_stream_s_own_idle_timeout() {
        // Events 2.5 s apart; the stream allows 300 ms of silence, the client's read timeout
        // is longer (the stream's own limit applies, not the read timeout).
        let mock = FalMock::builder()
            .processing_time(Duration::from_secs(10))
            .start()
            .await
            .unwrap();
        let fal = mock
            .client_builder()
            .read_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let items: Vec<_> = fal
            .stream_json("fal-ai/flux-lora", &json!({"prompt": "x"}))
            .idle_timeout(Duration::from_millis(300))
            .await
            .unwrap()
            .collect()
            .await;
        match &items[..] {
            [Err(Error::StreamBroken {
                kind: StreamBreak::Idle(d),
                events: 0,
                ..
            })] => {
                assert_eq!(*d, Duration::from_millis(300));
            }
            other => panic!("{other:?}"),
        }
        // A longer idle timeout than the read timeout holds too.
        let short_read = mock
            .client_builder()
            .read_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let mut events = short_read
            .stream_json("fal-ai/flux-lora", &json!({"prompt": "x"}))
            .idle_timeout(Duration::from_secs(30))
            .await
            .unwrap();
        assert!(matches!(
            events.next().await,
            Some(Ok(StreamEvent::Partial(_)))
        ));
    }

    #[tokio::test]
    async fn dropping_the_stream_ends_the_request() {
        let mock = FalMock::builder()
            .processing_time(Duration::from_secs(5))
            .start()
            .await
            .unwrap();
        let fal = mock.client().unwrap();
        let mut events = fal
            .stream_json("fal-ai/flux-lora", &json!({"prompt": "x"}))
            .await
            .unwrap();
        assert!(matches!(
            events.next().await,
            Some(Ok(StreamEvent::Partial(_)))
        ));
        drop(events);
        for _ in 0..400 {
            if mock.streams("fal-ai/flux-lora").disconnected == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the mock never saw the client go: {:?}",
            mock.streams("fal-ai/flux-lora")
        );
    }
}
