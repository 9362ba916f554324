//! The mock's Platform API (`/v1`), billed units, recorded platform headers and
//! `fal_max_queue_length`, checked with plain `reqwest` against fal's OpenAPI document of the
//! Platform API (field names, required fields, error bodies).

use std::collections::HashSet;
use std::time::Duration;

use fal_mock::{FalMock, JobState, MockFailure, PRICES};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};

/// One client for the whole test binary, without idle connections (nothing ties it to one
/// test's runtime).
fn http() -> Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| Client::builder().pool_max_idle_per_host(0).build().unwrap())
        .clone()
}

async fn quick_mock() -> FalMock {
    FalMock::builder()
        .queue_time(Duration::ZERO)
        .processing_time(Duration::from_millis(20))
        .log_lines(1)
        .start()
        .await
        .unwrap()
}

fn key(mock: &FalMock) -> String {
    format!("Key {}", mock.key())
}

/// A request to the Platform API at `path` (e.g. `/models?limit=3`), with the key.
fn api(mock: &FalMock, method: reqwest::Method, path: &str) -> RequestBuilder {
    http()
        .request(method, format!("{}{path}", mock.api_url()))
        .header("authorization", key(mock))
}

async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

async fn get(mock: &FalMock, path: &str) -> (StatusCode, Value) {
    send(api(mock, reqwest::Method::GET, path)).await
}

/// fal's Platform error body: `{"error": {"type", "message"}}` with a documented type.
fn assert_error(body: &Value, kind: &str) {
    let e = &body["error"];
    assert_eq!(e["type"], kind, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let allowed = ["type", "message", "docs_url", "request_id"];
    assert!(e
        .as_object()
        .unwrap()
        .keys()
        .all(|k| allowed.contains(&k.as_str())));
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

/// `next_cursor` (string or null) and `has_more` agree.
fn assert_page(body: &Value) -> Option<String> {
    let more = body["has_more"].as_bool().expect("has_more");
    match &body["next_cursor"] {
        Value::Null => {
            assert!(!more, "{body}");
            None
        }
        Value::String(c) => {
            assert!(more, "{body}");
            Some(c.clone())
        }
        other => panic!("next_cursor {other}"),
    }
}

/// Submit to the queue with extra headers and query; the answer.
async fn submit_with(
    mock: &FalMock,
    endpoint: &str,
    query: &str,
    headers: &[(&str, &str)],
    input: Value,
) -> reqwest::Response {
    let mut req = http()
        .post(format!("{}{endpoint}{query}", mock.queue_url()))
        .header("authorization", key(mock))
        .json(&input);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn submit(mock: &FalMock, endpoint: &str, input: Value) -> Value {
    let r = submit_with(mock, endpoint, "", &[], input).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Wait until the job is `COMPLETED` (bounded).
async fn wait_done(mock: &FalMock, id: &str) {
    for _ in 0..1000 {
        if matches!(
            mock.job(id).map(|j| j.state),
            Some(JobState::Completed { .. })
        ) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} did not complete");
}

/// Submit and wait for completion; the request id.
async fn run_job(mock: &FalMock, endpoint: &str, input: Value) -> String {
    let sub = submit(mock, endpoint, input).await;
    let id = sub["request_id"].as_str().unwrap().to_owned();
    wait_done(mock, &id).await;
    id
}

/// The queue result answer of a job: status, `x-fal-billable-units`, body.
async fn result(mock: &FalMock, endpoint_app: &str, id: &str) -> (u16, Option<String>, Value) {
    let r = http()
        .get(format!("{}{endpoint_app}/requests/{id}", mock.queue_url()))
        .header("authorization", key(mock))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let units = r
        .headers()
        .get("x-fal-billable-units")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, units, r.json().await.unwrap())
}

/// A sync run: status, request id, `x-fal-billable-units`, body.
async fn sync_run(
    mock: &FalMock,
    endpoint: &str,
    headers: &[(&str, &str)],
    input: Value,
) -> (u16, String, Option<String>, Value) {
    let mut req = http()
        .post(format!("{}{endpoint}", mock.run_url()))
        .header("authorization", key(mock))
        .json(&input);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (id, units) = (h("x-fal-request-id").unwrap(), h("x-fal-billable-units"));
    (r.status().as_u16(), id, units, r.json().await.unwrap())
}

const TRAINER: &str = "fal-ai/flux-lora-fast-training";
const GENERATOR: &str = "fal-ai/flux-lora";
const ULTRA: &str = "fal-ai/flux-pro/v1.1-ultra-finetuned";
/// An archive URL the mock takes as-is (not on its CDN).
const ZIP: &str = "https://example.com/photos.zip";

// ---------------------------------------------------------------------------------------------
// auth, errors, env

#[tokio::test]
async fn auth_errors_and_environment() {
    let mock = quick_mock().await;
    assert!(mock.api_url().ends_with("/v1"));
    assert!(mock
        .env_vars()
        .contains(&("FAL_API_URL".to_owned(), mock.api_url())));
    mock.client().unwrap();

    // GET /models works without a key (is_favorited null), not with a wrong one.
    let r = http()
        .get(format!("{}/models?limit=1", mock.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["models"][0]["metadata"]["is_favorited"], Value::Null);
    let (_, body) = get(&mock, "/models?limit=1").await;
    assert_eq!(body["models"][0]["metadata"]["is_favorited"], false);
    let (code, body) = send(
        http()
            .get(format!("{}/models", mock.api_url()))
            .header("authorization", "Key wrong"),
    )
    .await;
    assert_eq!(code, 401);
    assert_error(&body, "authorization_error");

    // Every other route needs the key.
    for (method, path) in [
        ("GET", "/models/pricing?endpoint_id=fal-ai/flux-lora"),
        ("POST", "/models/pricing/estimate"),
        ("GET", "/models/usage"),
        (
            "GET",
            "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora",
        ),
        (
            "DELETE",
            "/models/requests/8f0c6a52-9a4b-4c1e-9d2e-1b2c3d4e5f60/payloads",
        ),
    ] {
        let (code, body) =
            send(http().request(method.parse().unwrap(), format!("{}{path}", mock.api_url())))
                .await;
        assert_eq!(code, 401, "{method} {path}");
        assert_error(&body, "authorization_error");
    }

    let (code, body) = get(&mock, "/nothing/here").await;
    assert_eq!(code, 404);
    assert_error(&body, "not_found");
    let (code, body) = get(&mock, "/models/analytics?endpoint_id=fal-ai/flux-lora").await;
    assert_eq!(code, 404);
    assert_error(&body, "not_implemented");
    let (code, body) = get(&mock, "/meta").await;
    assert_eq!(code, 200);
    assert!(!body["webhook_ip_ranges"].as_array().unwrap().is_empty());
    // A base URL with a trailing `/` joined with `/models` still reaches the route.
    let r = http()
        .get(format!("{}//models?limit=1", mock.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// models

const REQUIRED_METADATA: [&str; 12] = [
    "display_name",
    "category",
    "description",
    "status",
    "tags",
    "updated_at",
    "is_favorited",
    "thumbnail_url",
    "model_url",
    "date",
    "highlighted",
    "pinned",
];

#[tokio::test]
async fn models_list_find_search_and_expand() {
    let mock = quick_mock().await;
    let (code, all) = get(&mock, "/models?limit=100").await;
    assert_eq!(code, 200);
    assert_eq!(assert_page(&all), None);
    let models = all["models"].as_array().unwrap();
    let ids: Vec<&str> = models
        .iter()
        .map(|m| m["endpoint_id"].as_str().unwrap())
        .collect();
    for id in [
        TRAINER,
        GENERATOR,
        ULTRA,
        "fal-ai/flux-pro-trainer",
        "fal-ai/fast-lcm-diffusion",
        "fal-ai/z-image-trainer",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    for m in models {
        let meta = m["metadata"].as_object().unwrap();
        for f in REQUIRED_METADATA {
            assert!(meta.contains_key(f), "{f} of {}", m["endpoint_id"]);
        }
        assert_eq!(meta["highlighted"], false);
        assert_eq!(meta["pinned"], false);
        assert!(m.get("openapi").is_none());
        let training = meta["category"] == "training";
        assert_eq!(
            meta["kind"],
            if training { "training" } else { "inference" }
        );
        if !training {
            assert_eq!(meta["category"], "text-to-image");
        }
        assert!(meta["model_url"]
            .as_str()
            .unwrap()
            .starts_with(&mock.run_url()));
    }
    let pro = models
        .iter()
        .find(|m| m["endpoint_id"] == "fal-ai/flux-pro-trainer")
        .unwrap();
    assert_eq!(pro["metadata"]["status"], "deprecated");
    assert_eq!(pro["metadata"]["category"], "training");

    // Paging by 4 gives the same list back, whole.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/models?limit=4&cursor={}", urlencode(c)),
            None => "/models?limit=4".to_owned(),
        };
        let (code, page) = get(&mock, &path).await;
        assert_eq!(code, 200);
        let n = page["models"].as_array().unwrap().len();
        paged.extend(
            page["models"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["endpoint_id"].as_str().unwrap().to_owned()),
        );
        cursor = assert_page(&page);
        if cursor.is_none() {
            break;
        }
        assert_eq!(n, 4);
    }
    assert_eq!(paged, ids);

    // Find: comma-separated and repeated.
    let (_, found) = get(
        &mock,
        "/models?endpoint_id=fal-ai/flux-lora,fal-ai/z-image-trainer&endpoint_id=nobody/nothing&endpoint_id=fal-ai/flux-lora-fast-training",
    )
    .await;
    let found: HashSet<&str> = found["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["endpoint_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        HashSet::from(["fal-ai/flux-lora", "fal-ai/z-image-trainer", TRAINER])
    );
    let many: Vec<String> = (0..51).map(|i| format!("endpoint_id=a/b{i}")).collect();
    let (code, body) = get(&mock, &format!("/models?{}", many.join("&"))).await;
    assert_eq!(code, 400);
    assert_error(&body, "validation_error");

    // Search.
    let (_, trainers) = get(&mock, "/models?category=training&limit=100").await;
    let trainers = trainers["models"].as_array().unwrap();
    assert!(trainers.len() >= 7);
    assert!(trainers.iter().all(|m| m["metadata"]["kind"] == "training"));
    let (_, deprecated) = get(&mock, "/models?status=deprecated").await;
    let deprecated: Vec<&Value> = deprecated["models"].as_array().unwrap().iter().collect();
    assert_eq!(deprecated.len(), 1);
    assert_eq!(deprecated[0]["endpoint_id"], "fal-ai/flux-pro-trainer");
    let (_, z) = get(
        &mock,
        "/models?q=Z-IMAGE&status=active&category=text-to-image",
    )
    .await;
    let z: Vec<&str> = z["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["endpoint_id"].as_str().unwrap())
        .collect();
    assert_eq!(z, ["fal-ai/z-image/turbo/lora"]);
    let (_, by_name) = get(&mock, "/models?q=Train%20Flux%20LoRA").await;
    assert!(by_name["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["endpoint_id"] == TRAINER));

    // expand=openapi-3.0: fal's document, or fal's expansion error.
    let (_, expanded) = get(
        &mock,
        "/models?endpoint_id=fal-ai/flux-lora,fal-ai/fast-lcm-diffusion&expand=openapi-3.0",
    )
    .await;
    for m in expanded["models"].as_array().unwrap() {
        if m["endpoint_id"] == GENERATOR {
            assert!(m["openapi"]["openapi"].as_str().unwrap().starts_with("3.0"));
            assert!(m["openapi"]["paths"]["/fal-ai/flux-lora"].is_object());
        } else {
            assert_eq!(m["openapi"]["error"]["code"], "expansion_failed");
            assert!(m["openapi"]["error"]["message"].is_string());
        }
    }

    for bad in [
        "/models?status=retired",
        "/models?limit=0",
        "/models?limit=many",
        "/models?cursor=%21%21",
        "/models?expand=everything",
    ] {
        let (code, body) = get(&mock, bad).await;
        assert_eq!(code, 400, "{bad}");
        assert_error(&body, "validation_error");
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// pricing and estimates

#[tokio::test]
async fn pricing_and_estimates() {
    let mock = quick_mock().await;
    let (code, body) = get(
        &mock,
        "/models/pricing?endpoint_id=fal-ai/flux-lora,nobody/unknown&endpoint_id=fal-ai/flux-lora-fast-training&endpoint_id=fal-ai/flux-pro/v1.1-ultra-finetuned",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(assert_page(&body), None);
    assert_eq!(
        body["prices"],
        json!([
            {"endpoint_id": "fal-ai/flux-lora", "unit_price": 0.035, "unit": "megapixels", "currency": "USD"},
            {"endpoint_id": TRAINER, "unit_price": 2.0, "unit": "training", "currency": "USD"},
            {"endpoint_id": ULTRA, "unit_price": 0.06, "unit": "images", "currency": "USD"},
        ])
    );
    // The whole table is answered as PRICES says.
    let all: Vec<String> = PRICES
        .iter()
        .map(|p| format!("endpoint_id={}", p.endpoint_id))
        .collect();
    let (_, body) = get(&mock, &format!("/models/pricing?{}", all.join("&"))).await;
    let prices = body["prices"].as_array().unwrap();
    assert_eq!(prices.len(), PRICES.len());
    for (p, row) in PRICES.iter().zip(prices) {
        assert_eq!(row["endpoint_id"], p.endpoint_id);
        assert_eq!(row["unit"], p.unit);
        assert_eq!(row["unit_price"].as_f64(), Some(p.unit_price));
    }
    let (code, body) = get(&mock, "/models/pricing").await;
    assert_eq!(code, 400);
    assert_error(&body, "validation_error");

    let estimate = |body: Value| {
        send(api(&mock, reqwest::Method::POST, "/models/pricing/estimate").json(&body))
    };
    let (code, body) = estimate(json!({"estimate_type": "unit_price", "endpoints": {
        "fal-ai/flux-lora": {"unit_quantity": 10},
        "fal-ai/flux-pro/v1.1-ultra-finetuned": {"unit_quantity": 2},
    }}))
    .await;
    assert_eq!(code, 200);
    // 10 MP × 0.035 + 2 images × 0.06
    assert_eq!(
        body,
        json!({"estimate_type": "unit_price", "total_cost": 0.47, "currency": "USD"})
    );
    let (code, body) = estimate(
        json!({"estimate_type": "historical_api_price", "endpoints": {
            "fal-ai/flux-lora-fast-training": {"call_quantity": 3},
            "fal-ai/flux-lora": {"call_quantity": 100},
        }}),
    )
    .await;
    assert_eq!(code, 200);
    // 3 trainings × 2.0 + 100 default calls × 0.197 MP × 0.035
    assert_eq!(body["estimate_type"], "historical_api_price");
    assert_eq!(body["total_cost"].as_f64(), Some(6.6895));
    assert_eq!(body["currency"], "USD");
    for bad in [
        json!({"estimate_type": "unit_price", "endpoints": {"nobody/unknown": {"unit_quantity": 1}}}),
        json!({"estimate_type": "unit_price", "endpoints": {"fal-ai/flux-lora": {"unit_quantity": 0}}}),
        json!({"estimate_type": "historical_api_price", "endpoints": {"fal-ai/flux-lora": {"unit_quantity": 1}}}),
        json!({"estimate_type": "gut_feeling", "endpoints": {}}),
        json!({"endpoints": {}}),
    ] {
        let (code, body) = estimate(bad.clone()).await;
        assert_eq!(code, 400, "{bad}");
        assert_error(&body, "validation_error");
    }
    let (code, body) = send(
        api(&mock, reqwest::Method::POST, "/models/pricing/estimate")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(code, 400);
    assert_error(&body, "validation_error");
}

// ---------------------------------------------------------------------------------------------
// billed units and usage

#[tokio::test]
async fn billed_units_and_usage_count_exactly_what_ran() {
    let mock = quick_mock().await;
    // Two trainings, two square images (2 × 512 × 512 = 0.524 MP), two ultra images, and one
    // default sync run (512 × 384 = 0.197 MP); one failed job bills nothing.
    let t1 = run_job(&mock, TRAINER, json!({"images_data_url": ZIP})).await;
    let t2 = run_job(&mock, TRAINER, json!({"images_data_url": ZIP})).await;
    let g = run_job(
        &mock,
        GENERATOR,
        json!({"prompt": "a fox", "num_images": 2, "image_size": "square"}),
    )
    .await;
    let u = run_job(
        &mock,
        ULTRA,
        json!({"prompt": "a fox", "finetune_id": "ft-1", "finetune_strength": 1.0, "num_images": 2}),
    )
    .await;
    mock.fail_next(
        GENERATOR,
        MockFailure::validation("prompt", "bad", "value_error"),
    );
    let failed = run_job(&mock, GENERATOR, json!({"prompt": "x"})).await;

    assert_eq!(result(&mock, TRAINER, &t1).await.1.as_deref(), Some("1"));
    assert_eq!(result(&mock, TRAINER, &t2).await.1.as_deref(), Some("1"));
    let (code, units, out) = result(&mock, GENERATOR, &g).await;
    assert_eq!((code, units.as_deref()), (200, Some("0.524")), "{out}");
    let (code, units, out) = result(&mock, "fal-ai/flux-pro", &u).await;
    assert_eq!((code, units.as_deref()), (200, Some("2")), "{out}");
    let (code, units, _) = result(&mock, GENERATOR, &failed).await;
    assert_eq!((code, units), (422, None));
    let (code, run_id, units, _) =
        sync_run(&mock, GENERATOR, &[], json!({"prompt": "a cat"})).await;
    assert_eq!((code, units.as_deref()), (200, Some("0.197")));
    assert_eq!(mock.billable_units(&run_id), Some(0.197));
    assert_eq!(mock.billable_units(&g), Some(0.524));
    assert_eq!(mock.billable_units(&failed), None);

    let (code, body) = get(&mock, "/models/usage?expand=time_series,summary").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(assert_page(&body), None);
    let item = |e: &str, unit: &str, q: f64, price: f64, cost: f64| {
        json!({"endpoint_id": e, "unit": unit, "quantity": q, "unit_price": price,
               "percent_discount": null, "cost_subtotal": cost, "cost_discount": 0,
               "cost_total": cost, "cost": cost, "currency": "USD"})
    };
    // One line item per endpoint, by endpoint id.
    let expected = json!([
        item(GENERATOR, "megapixels", 0.721, 0.035, 0.025235),
        item(TRAINER, "training", 2.0, 2.0, 4.0),
        item(ULTRA, "images", 2.0, 0.06, 0.12),
    ]);
    assert_eq!(body["summary"], expected);
    // The buckets (one, or two across an hour boundary) hold the same quantities.
    let mut total = std::collections::BTreeMap::<String, f64>::new();
    for b in body["time_series"].as_array().unwrap() {
        assert!(
            b["bucket"].as_str().unwrap().ends_with(":00:00+00:00"),
            "{b}"
        );
        for r in b["results"].as_array().unwrap() {
            *total
                .entry(r["endpoint_id"].as_str().unwrap().to_owned())
                .or_default() += r["quantity"].as_f64().unwrap();
        }
    }
    assert_eq!(total.len(), 3);
    assert!((total[GENERATOR] - 0.721).abs() < 1e-9);
    assert_eq!(total[TRAINER], 2.0);

    // Filters.
    let (_, body) = get(
        &mock,
        "/models/usage?expand=summary&endpoint_id=fal-ai/flux-lora",
    )
    .await;
    assert_eq!(body["summary"], json!([expected[0]]));
    assert!(body.get("time_series").is_none());
    let (_, body) = get(
        &mock,
        "/models/usage?expand=summary&start=2001-01-01&end=2001-02-01",
    )
    .await;
    assert_eq!(body["summary"], json!([]));
    let (_, body) = get(&mock, "/models/usage?timeframe=day").await;
    assert!(body.get("summary").is_none());
    // One day bucket, or two right at midnight.
    assert!(matches!(
        body["time_series"].as_array().unwrap().len(),
        1 | 2
    ));
    for bad in [
        "/models/usage?expand=auth_method",
        "/models/usage?expand=pie_chart",
        "/models/usage?timeframe=fortnight",
        "/models/usage?start=yesterday",
        "/models/usage?start=2025-02-01&end=2025-01-01",
        "/models/usage?bound_to_timeframe=maybe",
    ] {
        let (code, body) = get(&mock, bad).await;
        assert_eq!(code, 400, "{bad}");
        assert_error(&body, "validation_error");
    }
}

// ---------------------------------------------------------------------------------------------
// request listing

#[tokio::test]
async fn requests_by_endpoint_pages_filters_and_payloads() {
    let mock = quick_mock().await;
    let mut ids = HashSet::new();
    for i in 0..5 {
        ids.insert(run_job(&mock, GENERATOR, json!({"prompt": format!("fox {i}")})).await);
    }
    for i in 0..2 {
        let (code, id, _, _) =
            sync_run(&mock, GENERATOR, &[], json!({"prompt": format!("cat {i}")})).await;
        assert_eq!(code, 200);
        ids.insert(id);
    }
    assert_eq!(ids.len(), 7);
    // Another endpoint's request, not listed.
    run_job(&mock, TRAINER, json!({"images_data_url": ZIP})).await;

    // 7 requests by 3: 3 + 3 + 1, newest first, whole.
    let mut seen = Vec::new();
    let mut ended = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&limit=3&cursor={}",
                urlencode(c)
            ),
            None => "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&limit=3".into(),
        };
        let (code, body) = get(&mock, &path).await;
        assert_eq!(code, 200, "{body}");
        pages += 1;
        for item in body["items"].as_array().unwrap() {
            let o = item.as_object().unwrap();
            for k in ["request_id", "endpoint_id", "started_at", "sent_at"] {
                assert!(o[k].is_string(), "{k}: {item}");
            }
            assert_eq!(item["endpoint_id"], GENERATOR);
            assert_eq!(item["status_code"], 200);
            assert!(item["duration"].as_f64().unwrap() >= 0.0);
            assert!(!o.contains_key("json_input") && !o.contains_key("json_output"));
            seen.push(item["request_id"].as_str().unwrap().to_owned());
            ended.push(item["ended_at"].as_str().unwrap().to_owned());
        }
        cursor = assert_page(&body);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ids);
    assert_eq!(seen.len(), 7);
    let mut sorted = ended.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ended, sorted, "newest first by ended_at");

    // sort_by=duration, longest first.
    let (_, body) = get(
        &mock,
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&sort_by=duration",
    )
    .await;
    let d: Vec<f64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["duration"].as_f64().unwrap())
        .collect();
    assert_eq!(d.len(), 7);
    assert!(d.windows(2).all(|w| w[0] >= w[1]), "{d:?}");

    // Payloads, and one request by id.
    let one = seen[0].clone();
    let (_, body) = get(
        &mock,
        &format!("/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&request_id={one}&expand=payloads"),
    )
    .await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["request_id"], one.as_str());
    assert!(items[0]["json_input"]["prompt"].is_string());
    assert!(items[0]["json_output"]["images"][0]["url"].is_string());

    // Status filters: one user error (a 422), one success.
    mock.fail_next(
        GENERATOR,
        MockFailure::validation("prompt", "bad", "value_error"),
    );
    let failed = run_job(&mock, GENERATOR, json!({"prompt": "x"})).await;
    let (_, body) = get(
        &mock,
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&status=user_error&expand=payloads",
    )
    .await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["request_id"], failed.as_str());
    assert_eq!(items[0]["status_code"], 422);
    assert!(items[0]["json_output"]["detail"].is_array());
    let (_, body) = get(
        &mock,
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&status=success",
    )
    .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 7);
    let (_, body) = get(
        &mock,
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&status=error",
    )
    .await;
    assert_eq!(body["items"], json!([]));
    let (_, body) = get(
        &mock,
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&start=2001-01-01&end=2001-01-02",
    )
    .await;
    assert_eq!(body["items"], json!([]));

    // X-Fal-Store-IO: 0 keeps no payloads.
    let r = submit_with(
        &mock,
        GENERATOR,
        "",
        &[("x-fal-store-io", "0")],
        json!({"prompt": "secret"}),
    )
    .await;
    let private: Value = r.json().await.unwrap();
    let private = private["request_id"].as_str().unwrap().to_owned();
    wait_done(&mock, &private).await;
    let (_, body) = get(
        &mock,
        &format!("/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&request_id={private}&expand=payloads"),
    )
    .await;
    assert_eq!(body["items"][0]["json_input"], Value::Null);
    assert_eq!(body["items"][0]["json_output"], Value::Null);
    assert_eq!(body["items"][0]["status_code"], 200);

    for bad in [
        "/models/requests/by-endpoint",
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&limit=101",
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&limit=0",
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&status=fine",
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&sort_by=prompt",
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&request_id=nope",
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&expand=everything",
    ] {
        let (code, body) = get(&mock, bad).await;
        assert_eq!(code, 400, "{bad}");
        assert_error(&body, "validation_error");
    }
    let (code, _) = get(
        &mock,
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&limit=100",
    )
    .await;
    assert_eq!(code, 200);
}

// ---------------------------------------------------------------------------------------------
// payload deletion

async fn cdn_status(url: &str) -> u16 {
    http().get(url).send().await.unwrap().status().as_u16()
}

/// Upload through the initiate flow; the file URL.
async fn upload(mock: &FalMock, data: &'static [u8]) -> String {
    let init: Value = http()
        .post(format!("{}storage/upload/initiate", mock.rest_url()))
        .header("authorization", key(mock))
        .json(&json!({"content_type": "image/png", "file_name": "in.png"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http()
        .put(init["upload_url"].as_str().unwrap())
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    init["file_url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn payload_deletion_is_idempotent_and_removes_output_files() {
    let mock = quick_mock().await;
    let id = run_job(
        &mock,
        GENERATOR,
        json!({"prompt": "a fox", "num_images": 2}),
    )
    .await;
    let (_, _, out) = result(&mock, GENERATOR, &id).await;
    let urls: Vec<String> = out["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 2);
    for u in &urls {
        assert_eq!(cdn_status(u).await, 200);
    }
    let delete = |id: &str, key: Option<&str>| {
        let mut r = api(
            &mock,
            reqwest::Method::DELETE,
            &format!("/models/requests/{id}/payloads"),
        );
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        send(r)
    };

    let (code, first) = delete(&id, Some("key-1")).await;
    assert_eq!(code, 200, "{first}");
    let results = first["cdn_delete_results"].as_array().unwrap();
    let links: HashSet<&str> = results
        .iter()
        .map(|r| r["link"].as_str().unwrap())
        .collect();
    assert_eq!(links, urls.iter().map(String::as_str).collect());
    assert!(results
        .iter()
        .all(|r| r["exception"].is_null() && r.as_object().unwrap().len() == 2));
    assert_eq!(mock.payload_deletions(&id), 1);
    for u in &urls {
        assert_eq!(cdn_status(u).await, 404);
    }

    // The same key: the cached answer, no second deletion.
    let (code, again) = delete(&id, Some("key-1")).await;
    assert_eq!((code, &again), (StatusCode::OK, &first));
    assert_eq!(mock.payload_deletions(&id), 1);

    // The listing shows no payloads any more; the queue result still answers.
    let (_, body) = get(
        &mock,
        &format!("/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&request_id={id}&expand=payloads"),
    )
    .await;
    assert_eq!(body["items"][0]["json_input"], Value::Null);
    assert_eq!(body["items"][0]["json_output"], Value::Null);
    assert_eq!(result(&mock, GENERATOR, &id).await.0, 200);

    // Without a key it deletes again: the files are gone already.
    let (code, body) = delete(&id, None).await;
    assert_eq!(code, 200);
    assert_eq!(mock.payload_deletions(&id), 2);
    assert!(body["cdn_delete_results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["exception"].is_string()));

    // Input files stay: an app echoing its input deletes nothing.
    let input_url = upload(&mock, b"\x89PNG input").await;
    let echo = run_job(&mock, "someone/echo-app", json!({"image_url": input_url})).await;
    let (code, body) = delete(&echo, None).await;
    assert_eq!(
        (code, body),
        (StatusCode::OK, json!({"cdn_delete_results": []}))
    );
    assert_eq!(cdn_status(&input_url).await, 200);
    assert_eq!(mock.payload_deletions(&echo), 1);

    // A sync run's payloads too.
    let (_, run_id, _, out) = sync_run(&mock, GENERATOR, &[], json!({"prompt": "a cat"})).await;
    let (code, body) = delete(&run_id, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        body["cdn_delete_results"][0]["link"],
        out["images"][0]["url"]
    );
    assert_eq!(
        cdn_status(out["images"][0]["url"].as_str().unwrap()).await,
        404
    );

    let (code, body) = delete("8f0c6a52-9a4b-4c1e-9d2e-1b2c3d4e5f60", None).await;
    assert_eq!(code, 404);
    assert_error(&body, "not_found");
    let (code, body) = delete("not-a-uuid", None).await;
    assert_eq!(code, 400);
    assert_error(&body, "validation_error");
}

// ---------------------------------------------------------------------------------------------
// platform headers and queue length

#[tokio::test]
async fn platform_headers_are_recorded_with_invalid_tags_dropped() {
    let mock = quick_mock().await;
    let headers = [
        (
            "x-fal-tags",
            " Customer = acme ,fal.internal=1,bad key=2,avatar=a-1,noequals,customer=umbrella",
        ),
        ("x-fal-store-io", "0"),
        ("x-fal-no-retry", "true"),
        ("x-fal-retry-config", r#"{"server_error": {"retries": 3}}"#),
        ("x-app-fal-disable-fallback", "true"),
    ];
    let r = submit_with(&mock, GENERATOR, "", &headers, json!({"prompt": "a fox"})).await;
    assert_eq!(r.status(), 200);
    let sub: Value = r.json().await.unwrap();
    let id = sub["request_id"].as_str().unwrap();
    let p = mock.platform_headers(id).unwrap();
    let tags = vec![
        ("customer".to_owned(), "umbrella".to_owned()),
        ("avatar".to_owned(), "a-1".to_owned()),
    ];
    assert_eq!(p.tags, tags);
    assert!(!p.store_io && p.no_retry && p.fallbacks_disabled);
    assert_eq!(
        p.retry_config,
        Some(json!({"server_error": {"retries": 3}}))
    );
    assert_eq!(mock.job(id).unwrap().platform_headers, p);

    // A sync run is recorded by its x-fal-request-id, the older fallback header too.
    let (code, run_id, _, _) = sync_run(
        &mock,
        GENERATOR,
        &[("x-fal-tags", "team=ml"), ("x-fal-disable-fallbacks", "1")],
        json!({"prompt": "a cat"}),
    )
    .await;
    assert_eq!(code, 200);
    let p = mock.platform_headers(&run_id).unwrap();
    assert_eq!(p.tags, vec![("team".to_owned(), "ml".to_owned())]);
    assert!(p.store_io && !p.no_retry && p.fallbacks_disabled && p.retry_config.is_none());

    // A streaming run too; it is listed and billed once its final event is sent.
    let r = http()
        .post(format!("{}{GENERATOR}/stream", mock.run_url()))
        .header("authorization", key(&mock))
        .header("x-fal-tags", "feature=preview")
        .json(&json!({"prompt": "a stream"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stream_id = r.headers()["x-fal-request-id"].to_str().unwrap().to_owned();
    let events = r.text().await.unwrap();
    assert!(events.contains("\"images\""));
    let p = mock.platform_headers(&stream_id).unwrap();
    assert_eq!(p.tags, vec![("feature".to_owned(), "preview".to_owned())]);
    assert_eq!(mock.billable_units(&stream_id), Some(0.197));
    let (_, body) = get(
        &mock,
        &format!(
            "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora&request_id={stream_id}"
        ),
    )
    .await;
    assert_eq!(body["items"][0]["status_code"], 200);

    // A plain submit: the defaults.
    let plain = run_job(&mock, GENERATOR, json!({"prompt": "plain"})).await;
    assert_eq!(mock.platform_headers(&plain), Some(Default::default()));
    assert_eq!(mock.platform_headers("unknown"), None);
}

#[tokio::test]
async fn max_queue_length_refuses_with_429_and_creates_no_job() {
    let mock = FalMock::builder()
        .queue_time(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    submit(&mock, GENERATOR, json!({"prompt": "1"})).await;
    submit(&mock, GENERATOR, json!({"prompt": "2"})).await;
    assert_eq!(mock.submissions(GENERATOR), 2);

    let r = submit_with(
        &mock,
        GENERATOR,
        "?fal_max_queue_length=1",
        &[],
        json!({"prompt": "3"}),
    )
    .await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
    assert_eq!(mock.submissions(GENERATOR), 2);
    let (_, listed) = get(
        &mock,
        "/models/requests/by-endpoint?endpoint_id=fal-ai/flux-lora",
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    for item in listed["items"].as_array().unwrap() {
        assert_eq!(item["ended_at"], Value::Null);
        assert_eq!(item["status_code"], Value::Null);
    }

    // Not more than 2 waiting: accepted. Another endpoint's queue is its own.
    let r = submit_with(
        &mock,
        GENERATOR,
        "?fal_max_queue_length=2",
        &[],
        json!({"prompt": "3"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(mock.submissions(GENERATOR), 3);
    let r = submit_with(
        &mock,
        TRAINER,
        "?fal_max_queue_length=0",
        &[],
        json!({"images_data_url": ZIP}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = submit_with(
        &mock,
        GENERATOR,
        "?fal_max_queue_length=lots",
        &[],
        json!({"prompt": "4"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(mock.submissions(GENERATOR), 3);
}
