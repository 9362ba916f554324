//! Realtime sessions against the fake of fal: key and token auth, results, the app's errors,
//! the idle `TIMEOUT`, an abnormal close and the lazy reconnect, throttling, `max_buffering`.

use std::time::Duration;

use fal_client::realtime::{Json, RealtimeFailure, RealtimeSession};
use fal_client::{Error, FalClient};
use fal_mock::{FalMock, MockFailure};
use serde_json::{json, Value};

const APP: &str = "fal-ai/fast-lcm-diffusion";

fn input(id: &str) -> Value {
    json!({"prompt": format!("a lighthouse #{id}"), "request_id": id})
}

async fn result(session: &mut RealtimeSession<Value, Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), session.recv())
        .await
        .expect("a result within 10 s")
        .expect("no error")
        .expect("a result, not the end")
}

fn failure(e: Error) -> RealtimeFailure {
    match e {
        Error::Realtime {
            failure, endpoint, ..
        } => {
            assert_eq!(endpoint, APP);
            failure
        }
        other => panic!("expected a realtime error, got {other:?}"),
    }
}

#[tokio::test]
async fn key_auth_sessions_open_on_the_first_send_and_return_image_results() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    let mut session = fal
        .realtime::<Value, Value>(APP)
        .max_buffering(2)
        .build()
        .unwrap();
    assert!(!session.is_connected());
    assert_eq!(mock.realtime_sessions(APP), 0);
    for n in 0..5 {
        let id = n.to_string();
        session.send(&input(&id)).await.unwrap();
        let out = result(&mut session).await;
        assert_eq!(out["request_id"], json!(id));
        let url = out["images"][0]["url"].as_str().unwrap();
        assert!(url.starts_with("data:image/jpeg;base64,"), "{url:.40}");
    }
    assert_eq!(mock.realtime_sessions(APP), 1);
    session.close().await.unwrap();
    assert!(!session.is_connected());
    assert!(session.recv().await.unwrap().is_none());
}

#[tokio::test]
async fn token_auth_uses_a_short_lived_token_per_connection() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    let mut session = fal
        .realtime::<Value, Value>(APP)
        .token_auth(fal.clone())
        .build()
        .unwrap();
    session.send(&input("t1")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "t1");
    assert_eq!(mock.tokens_created(), 1);
    // The key never went on the handshake: only the token did.
    let handshake = mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/realtime"))
        .expect("the handshake was recorded");
    assert!(
        !handshake.key_sent && !handshake.authorization_present,
        "{handshake:?}"
    );
    assert!(handshake
        .query
        .unwrap_or_default()
        .contains("fal_jwt_token="));
}

#[tokio::test]
async fn a_bad_token_or_key_is_a_typed_unauthorized_error() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    let mut session = fal
        .realtime::<Value, Value>(APP)
        .token_auth(|_endpoint| async { Ok::<_, std::io::Error>("not-a-token".to_owned()) })
        .build()
        .unwrap();
    let err = match session.send(&input("x")).await {
        Err(e) => e,
        Ok(()) => session.recv().await.unwrap_err(),
    };
    assert_eq!(failure(err), RealtimeFailure::Unauthorized);
    assert!(!session.is_connected());

    let wrong_key = mock.client_builder().key("wrong").build().unwrap();
    let mut session = wrong_key.realtime::<Value, Value>(APP).build().unwrap();
    let err = match session.send(&input("x")).await {
        Err(e) => e,
        Ok(()) => session.recv().await.unwrap_err(),
    };
    assert_eq!(failure(err), RealtimeFailure::Unauthorized);
}

#[tokio::test]
async fn an_idle_session_ends_cleanly_and_the_next_send_reconnects() {
    let mock = FalMock::builder()
        .realtime_session_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let mut session = fal.realtime::<Value, Value>(APP).build().unwrap();
    session.send(&input("a")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "a");
    // Nothing sent: the app's TIMEOUT ends the session, a normal end.
    let end = tokio::time::timeout(Duration::from_secs(10), session.recv())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert!(!session.is_connected());
    session.send(&input("b")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "b");
    assert_eq!(mock.realtime_sessions(APP), 2);
}

#[tokio::test]
async fn after_an_abnormal_close_the_next_send_reconnects() {
    let mock = FalMock::start().await.unwrap();
    mock.fail_next(APP, MockFailure::realtime_close(1));
    let fal = mock.client().unwrap();
    let mut session = fal
        .realtime::<Value, Value>(APP)
        .token_auth(fal.clone())
        .build()
        .unwrap();
    session.send(&input("1")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "1");
    session.send(&input("2")).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), session.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(failure(err), RealtimeFailure::Closed { code: 1011, .. }),
        "an abnormal close"
    );
    assert!(!session.is_connected());
    session.send(&input("2")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "2");
    assert_eq!(mock.realtime_sessions(APP), 2);
    // A fresh token for the new connection.
    assert_eq!(mock.tokens_created(), 2);
}

#[tokio::test]
async fn the_app_s_errors_are_typed_and_the_session_goes_on() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    let mut session = fal.realtime::<Value, Value>(APP).build().unwrap();
    session.send(&json!({"no_prompt": true})).await.unwrap();
    let err = session.recv().await.unwrap_err();
    assert!(
        matches!(failure(err), RealtimeFailure::App { ref error, .. } if error == "BAD_REQUEST")
    );
    session.send(&input("ok")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "ok");
    assert_eq!(mock.realtime_sessions(APP), 1);

    // A JSON codec sends text frames, which fal's realtime apps do not read.
    let mut json_session = fal
        .realtime::<Value, Value>(APP)
        .codec(Json)
        .build()
        .unwrap();
    json_session.send(&input("text")).await.unwrap();
    let err = json_session.recv().await.unwrap_err();
    assert!(matches!(failure(err), RealtimeFailure::App { .. }));
}

#[tokio::test]
async fn throttled_inputs_collapse_to_the_last_one() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    // A long interval: every send after the first is inside it, whatever the machine's speed.
    let mut session = fal
        .realtime::<Value, Value>(APP)
        .throttle(Duration::from_secs(3600))
        .build()
        .unwrap();
    for id in ["a", "b", "c"] {
        session.send(&input(id)).await.unwrap();
    }
    // "a" went out at once; "b" was replaced by "c", held until flushed.
    assert_eq!(result(&mut session).await["request_id"], "a");
    session.flush().await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "c");
    session.flush().await.unwrap(); // nothing held: nothing sent
    session.close().await.unwrap();
    assert_eq!(mock.realtime_sessions(APP), 1);
}

#[tokio::test]
async fn an_input_sent_after_the_app_closed_the_session_goes_over_a_new_one() {
    let mock = FalMock::builder()
        .realtime_session_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let mut session = fal.realtime::<Value, Value>(APP).build().unwrap();
    session.send(&input("a")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "a");
    // The app's TIMEOUT and close arrive while nobody reads: the next send must not be lost.
    for _ in 0..400 {
        if mock.realtime_open_sessions(APP) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    session.send(&input("b")).await.unwrap();
    assert_eq!(result(&mut session).await["request_id"], "b");
    assert_eq!(mock.realtime_sessions(APP), 2);
}

#[tokio::test]
async fn max_buffering_is_checked_before_connecting() {
    let fal = FalClient::builder().key("k").build().unwrap();
    for bad in [0, 61] {
        let err = fal
            .realtime::<Value, Value>(APP)
            .max_buffering(bad)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "max_buffering"));
    }
    assert!(fal.realtime::<Value, Value>("not an id").build().is_err());
}

#[tokio::test]
async fn a_session_that_cannot_connect_is_a_typed_error_over_tls_too() {
    // Nothing listens on port 1: the TLS (wss) and plain (ws) handshakes both fail cleanly.
    for base in ["https://127.0.0.1:1", "http://127.0.0.1:1"] {
        let fal = FalClient::builder().key("k").run_url(base).build().unwrap();
        let mut session = fal.realtime::<Value, Value>(APP).build().unwrap();
        let err = session.send(&input("x")).await.unwrap_err();
        assert_eq!(failure(err), RealtimeFailure::Connect, "{base}");
    }
}
