//! Wire-format and validation tests for the typed models (`fal_client::models`).
//!
//! Fixtures: `tests/fixtures/schemas/*.json` (example inputs/outputs per endpoint). The field
//! lists, ranges, enums and defaults are checked against fal's own OpenAPI documents in
//! `tests/schemas.rs`.

use std::collections::BTreeSet;

use fal_client::models::*;
use fal_client::{Endpoint, EndpointId, Error};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

const PORTRAIT_SCHEMA: &str = include_str!("../fixtures/schemas/flux-lora-portrait-trainer.json");
const PRO_SCHEMA: &str = include_str!("../fixtures/schemas/flux-pro-trainer.json");
const ULTRA_SCHEMA: &str = include_str!("../fixtures/schemas/flux-pro-v1.1-ultra-finetuned.json");

fn schema(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is valid JSON")
}

/// Decode `value` into `T`, encode it again and require the exact same JSON.
fn assert_round_trip<T: Serialize + DeserializeOwned>(value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("decoding {value} into {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(&back, value, "round trip of {}", std::any::type_name::<T>());
    typed
}

fn keys(value: &impl Serialize) -> BTreeSet<String> {
    match serde_json::to_value(value).expect("serializes") {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("expected an object, got {other}"),
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The field named by a validation error; `None` when the input is valid.
fn rejected_field(result: fal_client::Result<()>) -> Option<String> {
    match result {
        Ok(()) => None,
        Err(Error::InvalidInput { field, message }) => {
            assert!(!message.is_empty());
            Some(field)
        }
        Err(other) => panic!("expected InvalidInput, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture round trips

#[test]
fn portrait_trainer_fixture_round_trips() {
    let s = schema(PORTRAIT_SCHEMA);
    assert_eq!(s["endpoint_id"], PortraitTrainer::ID);
    let input: PortraitTrainerInput = assert_round_trip(&s["example_input"]);
    assert_eq!(input.trigger_phrase.as_deref(), Some("TOK_anna"));
    assert_eq!(input.steps, Some(1000));
    assert_eq!(input.learning_rate, Some(0.0002));
    assert_eq!(input.create_masks, Some(false));
    input.validate().expect("the example input is valid");

    let output: LoraTrainingOutput = assert_round_trip(&s["example_output"]);
    assert_eq!(output.diffusers_lora_file.file_size, Some(89_745_224));
    assert_eq!(
        output.diffusers_lora_file.file_name.as_deref(),
        Some("pytorch_lora_weights.safetensors")
    );
    assert!(output.config_file.url.ends_with("config.json"));
    assert_eq!(output.config_file.file_data, None);
}

#[test]
fn pro_trainer_fixture_round_trips() {
    let s = schema(PRO_SCHEMA);
    assert_eq!(s["endpoint_id"], ProTrainer::ID);
    let input: ProTrainerInput = assert_round_trip(&s["example_input"]);
    assert_eq!(input.mode, Some(ProTrainerMode::Style));
    assert_eq!(input.priority, Some(ProTrainerPriority::Quality));
    assert_eq!(input.finetune_type, Some(FinetuneType::Full));
    assert_eq!(input.lora_rank, Some(32));
    assert_eq!(input.finetune_comment, "brand-style-v1");
    input.validate().expect("the example input is valid");

    let output: ProTrainerOutput = assert_round_trip(&s["example_output"]);
    assert_eq!(output.finetune_id, "3f6c2a1e-9b4d-4c7a-8e21-5d0b7f9a4c13");
}

#[test]
fn ultra_finetuned_fixture_round_trips() {
    let s = schema(ULTRA_SCHEMA);
    assert_eq!(s["endpoint_id"], UltraFinetuned::ID);
    let input: UltraFinetunedInput = assert_round_trip(&s["example_input"]);
    assert_eq!(input.aspect_ratio, Some(AspectRatio::Ratio3_4));
    assert_eq!(input.safety_tolerance, Some(SafetyTolerance::Level2));
    assert_eq!(input.output_format, Some(OutputFormat::Jpeg));
    assert_eq!(input.finetune_strength, 1.1);
    input.validate().expect("the example input is valid");

    let output: GenerationOutput = assert_round_trip(&s["example_output"]);
    assert_eq!(output.images.len(), 1);
    assert_eq!(output.images[0].width, Some(1792));
    assert_eq!(output.images[0].height, Some(2368));
    assert_eq!(output.seed, 1_729_384_756);
    assert_eq!(output.has_nsfw_concepts, vec![false]);
    assert!(output.timings.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Exact wire names

fn full_portrait() -> PortraitTrainerInput {
    PortraitTrainerInput {
        images_data_url: "https://x/photos.zip".into(),
        trigger_phrase: Some("TOK".into()),
        learning_rate: Some(1e-4),
        steps: Some(2000),
        multiresolution_training: Some(true),
        subject_crop: Some(false),
        data_archive_format: Some("zip".into()),
        resume_from_checkpoint: Some("https://x/ckpt".into()),
        create_masks: Some(true),
    }
}

fn full_pro() -> ProTrainerInput {
    ProTrainerInput {
        data_url: "https://x/data.zip".into(),
        finetune_comment: "anna-v1".into(),
        mode: Some(ProTrainerMode::Character),
        iterations: Some(300),
        learning_rate: Some(1e-5),
        priority: Some(ProTrainerPriority::HighResOnly),
        captioning: Some(true),
        trigger_word: Some("TOK".into()),
        lora_rank: Some(16),
        finetune_type: Some(FinetuneType::Lora),
    }
}

fn full_ultra() -> UltraFinetunedInput {
    UltraFinetunedInput {
        prompt: "TOK portrait".into(),
        finetune_id: "ft-1".into(),
        finetune_strength: 1.2,
        seed: Some(42),
        sync_mode: Some(false),
        num_images: Some(2),
        output_format: Some(OutputFormat::Png),
        safety_tolerance: Some(SafetyTolerance::Level5),
        enhance_prompt: Some(false),
        image_url: Some("https://x/ref.png".into()),
        image_prompt_strength: Some(0.3),
        aspect_ratio: Some(AspectRatio::Ratio9_16),
        raw: Some(true),
    }
}

fn full_flux_lora() -> FluxLoraInput {
    FluxLoraInput {
        prompt: "TOK portrait".into(),
        loras: vec![LoraWeight::new("https://x/lora.safetensors").with_scale(0.8)],
        image_size: Some(ImageSize::custom(1024, 1536)),
        num_inference_steps: Some(28),
        guidance_scale: Some(3.5),
        num_images: Some(1),
        seed: Some(7),
        sync_mode: Some(false),
        enable_safety_checker: Some(true),
        output_format: Some(OutputFormat::Jpeg),
        acceleration: Some(Acceleration::Regular),
    }
}

#[test]
fn portrait_trainer_wire_names() {
    let k = keys(&full_portrait());
    assert_eq!(
        k,
        set(&[
            "images_data_url",
            "trigger_phrase",
            "learning_rate",
            "steps",
            "multiresolution_training",
            "subject_crop",
            "data_archive_format",
            "resume_from_checkpoint",
            "create_masks",
        ])
    );
    assert!(!k.contains("data_url") && !k.contains("trigger_word"));
}

#[test]
fn pro_trainer_wire_names() {
    let k = keys(&full_pro());
    assert_eq!(
        k,
        set(&[
            "data_url",
            "finetune_comment",
            "mode",
            "iterations",
            "learning_rate",
            "priority",
            "captioning",
            "trigger_word",
            "lora_rank",
            "finetune_type",
        ])
    );
    for wrong in [
        "images_data_url",
        "auto_captioning",
        "create_masks",
        "trigger_phrase",
    ] {
        assert!(!k.contains(wrong), "pro trainer must not send {wrong}");
    }
    let v = serde_json::to_value(full_pro()).unwrap();
    assert_eq!(v["priority"], "high_res_only");
    assert_eq!(v["mode"], "character");
    assert_eq!(v["finetune_type"], "lora");
    assert_eq!(v["lora_rank"], 16);
}

#[test]
fn pro_trainer_enum_values() {
    let all = [
        (json!("character"), ProTrainerMode::Character),
        (json!("product"), ProTrainerMode::Product),
        (json!("style"), ProTrainerMode::Style),
        (json!("general"), ProTrainerMode::General),
    ];
    for (wire, mode) in all {
        assert_eq!(serde_json::to_value(mode).unwrap(), wire);
    }
    for (wire, p) in [
        ("speed", ProTrainerPriority::Speed),
        ("quality", ProTrainerPriority::Quality),
        ("high_res_only", ProTrainerPriority::HighResOnly),
    ] {
        assert_eq!(serde_json::to_value(p).unwrap(), json!(wire));
        assert_eq!(
            serde_json::from_value::<ProTrainerPriority>(json!(wire)).unwrap(),
            p
        );
    }
    assert_eq!(
        serde_json::to_value(FinetuneType::Full).unwrap(),
        json!("full")
    );
}

#[test]
fn ultra_finetuned_wire_names() {
    assert_eq!(
        keys(&full_ultra()),
        set(&[
            "prompt",
            "finetune_id",
            "finetune_strength",
            "seed",
            "sync_mode",
            "num_images",
            "output_format",
            "safety_tolerance",
            "enhance_prompt",
            "image_url",
            "image_prompt_strength",
            "aspect_ratio",
            "raw",
        ])
    );
    let v = serde_json::to_value(full_ultra()).unwrap();
    assert_eq!(v["output_format"], json!("png"));
    assert_eq!(v["aspect_ratio"], json!("9:16"));
}

#[test]
fn flux_lora_wire_names() {
    assert_eq!(
        keys(&full_flux_lora()),
        set(&[
            "prompt",
            "loras",
            "image_size",
            "num_inference_steps",
            "guidance_scale",
            "num_images",
            "seed",
            "sync_mode",
            "enable_safety_checker",
            "output_format",
            "acceleration",
        ])
    );
    let v = serde_json::to_value(full_flux_lora()).unwrap();
    assert_eq!(
        v["loras"],
        json!([{"path": "https://x/lora.safetensors", "scale": 0.8}])
    );
}

#[test]
fn safety_tolerance_is_sent_as_a_json_string() {
    for (level, t) in [
        ("1", SafetyTolerance::Level1),
        ("2", SafetyTolerance::Level2),
        ("3", SafetyTolerance::Level3),
        ("4", SafetyTolerance::Level4),
        ("5", SafetyTolerance::Level5),
        ("6", SafetyTolerance::Level6),
    ] {
        let v = serde_json::to_value(t).unwrap();
        assert_eq!(v, Value::String(level.into()));
        assert_eq!(serde_json::from_value::<SafetyTolerance>(v).unwrap(), t);
    }
    let input = UltraFinetunedInput {
        safety_tolerance: Some(SafetyTolerance::Level6),
        ..UltraFinetunedInput::new("p", "f", 1.0)
    };
    let v = serde_json::to_value(&input).unwrap();
    assert!(v["safety_tolerance"].is_string());
    assert_eq!(v["safety_tolerance"], json!("6"));
    // The type cannot hold other values.
    assert!(SafetyTolerance::try_from(0).is_err());
    assert!(SafetyTolerance::try_from(7).is_err());
    assert!(serde_json::from_value::<SafetyTolerance>(json!("7")).is_err());
    assert_eq!(SafetyTolerance::default(), SafetyTolerance::Level2);
}

#[test]
fn aspect_ratio_presets_and_custom_strings_round_trip() {
    let presets = [
        ("21:9", AspectRatio::Ratio21_9),
        ("16:9", AspectRatio::Ratio16_9),
        ("4:3", AspectRatio::Ratio4_3),
        ("3:2", AspectRatio::Ratio3_2),
        ("1:1", AspectRatio::Ratio1_1),
        ("2:3", AspectRatio::Ratio2_3),
        ("3:4", AspectRatio::Ratio3_4),
        ("9:16", AspectRatio::Ratio9_16),
        ("9:21", AspectRatio::Ratio9_21),
    ];
    for (wire, ratio) in presets {
        assert_eq!(serde_json::to_value(&ratio).unwrap(), json!(wire));
        assert_eq!(
            serde_json::from_value::<AspectRatio>(json!(wire)).unwrap(),
            ratio
        );
    }
    let custom: AspectRatio = serde_json::from_value(json!("5:4")).unwrap();
    assert_eq!(custom, AspectRatio::Custom("5:4".into()));
    assert_eq!(serde_json::to_value(&custom).unwrap(), json!("5:4"));

    let input = json!({"prompt": "p", "finetune_id": "f", "finetune_strength": 1.0,
                       "aspect_ratio": "7:3"});
    let typed: UltraFinetunedInput = assert_round_trip(&input);
    assert_eq!(typed.aspect_ratio, Some(AspectRatio::Custom("7:3".into())));
}

#[test]
fn image_size_wire_forms() {
    assert_eq!(
        serde_json::to_value(ImageSize::custom(1024, 768)).unwrap(),
        json!({"width": 1024, "height": 768})
    );
    for (wire, size) in [
        ("square_hd", ImageSize::SquareHd),
        ("square", ImageSize::Square),
        ("portrait_4_3", ImageSize::Portrait4_3),
        ("portrait_16_9", ImageSize::Portrait16_9),
        ("landscape_4_3", ImageSize::Landscape4_3),
        ("landscape_16_9", ImageSize::Landscape16_9),
    ] {
        assert_eq!(serde_json::to_value(size).unwrap(), json!(wire));
        assert_eq!(
            serde_json::from_value::<ImageSize>(json!(wire)).unwrap(),
            size
        );
    }
    let input = json!({"prompt": "p", "image_size": {"width": 512, "height": 2048}});
    let typed: FluxLoraInput = assert_round_trip(&input);
    assert_eq!(typed.image_size, Some(ImageSize::custom(512, 2048)));
    assert!(serde_json::from_value::<ImageSize>(json!("portrait_3_4")).is_err());
}

#[test]
fn new_only_inputs_serialize_only_required_fields() {
    assert_eq!(
        serde_json::to_value(PortraitTrainerInput::new("https://x/a.zip")).unwrap(),
        json!({"images_data_url": "https://x/a.zip"})
    );
    assert_eq!(
        serde_json::to_value(ProTrainerInput::new("https://x/a.zip", "c")).unwrap(),
        json!({"data_url": "https://x/a.zip", "finetune_comment": "c"})
    );
    assert_eq!(
        serde_json::to_value(UltraFinetunedInput::new("p", "f", 1.2)).unwrap(),
        json!({"prompt": "p", "finetune_id": "f", "finetune_strength": 1.2})
    );
    // An empty `loras` list is not sent.
    assert_eq!(
        serde_json::to_value(FluxLoraInput::new("p")).unwrap(),
        json!({"prompt": "p"})
    );
}

#[test]
fn flux_lora_with_lora_and_default_scale() {
    let input = FluxLoraInput::new("p")
        .with_lora("https://x/a.safetensors", 0.5)
        .with_lora("https://x/b.safetensors", 1.0);
    assert_eq!(
        serde_json::to_value(&input).unwrap()["loras"],
        json!([
            {"path": "https://x/a.safetensors", "scale": 0.5},
            {"path": "https://x/b.safetensors", "scale": 1.0},
        ])
    );
    assert_eq!(LoraWeight::new("x").scale, 1.0);
    let decoded: LoraWeight = serde_json::from_value(json!({"path": "x"})).unwrap();
    assert_eq!(decoded.scale, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Validation

#[test]
fn portrait_trainer_validation_boundaries() {
    let base = PortraitTrainerInput::new("https://x/a.zip");
    let check = |i: PortraitTrainerInput| {
        let direct = rejected_field(i.validate());
        assert_eq!(
            direct,
            rejected_field(<PortraitTrainer as Endpoint>::validate(&i))
        );
        direct
    };
    assert_eq!(check(base.clone()), None);
    assert_eq!(check(full_portrait()), None);
    assert_eq!(
        check(PortraitTrainerInput::new("")).as_deref(),
        Some("images_data_url")
    );
    assert_eq!(
        check(PortraitTrainerInput::new("   ")).as_deref(),
        Some("images_data_url")
    );

    let lr = |v: f64| PortraitTrainerInput {
        learning_rate: Some(v),
        ..base.clone()
    };
    for ok in [1e-6, 9e-5, 1e-3] {
        assert_eq!(check(lr(ok)), None, "learning_rate {ok}");
    }
    for bad in [0.99e-6, 1.01e-3, 0.0, -1e-4, f64::NAN, f64::INFINITY] {
        assert_eq!(
            check(lr(bad)).as_deref(),
            Some("learning_rate"),
            "learning_rate {bad}"
        );
    }

    let steps = |v: u32| PortraitTrainerInput {
        steps: Some(v),
        ..base.clone()
    };
    assert_eq!(check(steps(1)), None);
    assert_eq!(check(steps(10_000)), None);
    assert_eq!(check(steps(0)).as_deref(), Some("steps"));
    assert_eq!(check(steps(10_001)).as_deref(), Some("steps"));
}

#[test]
fn pro_trainer_validation_boundaries() {
    let base = ProTrainerInput::new("https://x/a.zip", "anna-v1");
    let check = |i: ProTrainerInput| {
        let direct = rejected_field(i.validate());
        assert_eq!(
            direct,
            rejected_field(<ProTrainer as Endpoint>::validate(&i))
        );
        direct
    };
    assert_eq!(check(base.clone()), None);
    assert_eq!(check(full_pro()), None);
    assert_eq!(
        check(ProTrainerInput::new("", "c")).as_deref(),
        Some("data_url")
    );
    assert_eq!(
        check(ProTrainerInput::new("https://x/a.zip", " ")).as_deref(),
        Some("finetune_comment")
    );

    let it = |v: u32| ProTrainerInput {
        iterations: Some(v),
        ..base.clone()
    };
    assert_eq!(check(it(100)), None);
    assert_eq!(check(it(1000)), None);
    assert_eq!(check(it(99)).as_deref(), Some("iterations"));
    assert_eq!(check(it(1001)).as_deref(), Some("iterations"));

    let lr = |v: f64| ProTrainerInput {
        learning_rate: Some(v),
        ..base.clone()
    };
    assert_eq!(check(lr(1e-6)), None);
    assert_eq!(check(lr(5e-3)), None);
    for bad in [0.99e-6, 5.01e-3, f64::NAN, f64::NEG_INFINITY] {
        assert_eq!(
            check(lr(bad)).as_deref(),
            Some("learning_rate"),
            "learning_rate {bad}"
        );
    }

    let rank = |v: u32| ProTrainerInput {
        lora_rank: Some(v),
        ..base.clone()
    };
    assert_eq!(check(rank(16)), None);
    assert_eq!(check(rank(32)), None);
    for bad in [0, 15, 17, 31, 33, 64] {
        assert_eq!(
            check(rank(bad)).as_deref(),
            Some("lora_rank"),
            "lora_rank {bad}"
        );
    }
}

#[test]
fn ultra_finetuned_validation_boundaries() {
    let base = UltraFinetunedInput::new("TOK portrait", "ft-1", 1.0);
    let check = |i: UltraFinetunedInput| {
        let direct = rejected_field(i.validate());
        assert_eq!(
            direct,
            rejected_field(<UltraFinetuned as Endpoint>::validate(&i))
        );
        direct
    };
    assert_eq!(check(base.clone()), None);
    assert_eq!(check(full_ultra()), None);
    assert_eq!(
        check(UltraFinetunedInput::new("", "f", 1.0)).as_deref(),
        Some("prompt")
    );
    assert_eq!(
        check(UltraFinetunedInput::new("p", "\t", 1.0)).as_deref(),
        Some("finetune_id")
    );

    let fs = |v: f64| UltraFinetunedInput {
        finetune_strength: v,
        ..base.clone()
    };
    assert_eq!(check(fs(0.0)), None);
    assert_eq!(check(fs(2.0)), None);
    for bad in [-0.01, 2.01, f64::NAN, f64::INFINITY] {
        assert_eq!(
            check(fs(bad)).as_deref(),
            Some("finetune_strength"),
            "finetune_strength {bad}"
        );
    }

    let n = |v: u32| UltraFinetunedInput {
        num_images: Some(v),
        ..base.clone()
    };
    assert_eq!(check(n(1)), None);
    assert_eq!(check(n(4)), None);
    assert_eq!(check(n(0)).as_deref(), Some("num_images"));
    assert_eq!(check(n(5)).as_deref(), Some("num_images"));

    let ips = |v: f64| UltraFinetunedInput {
        image_prompt_strength: Some(v),
        ..base.clone()
    };
    assert_eq!(check(ips(0.0)), None);
    assert_eq!(check(ips(1.0)), None);
    for bad in [-0.01, 1.01, f64::NAN] {
        assert_eq!(
            check(ips(bad)).as_deref(),
            Some("image_prompt_strength"),
            "image_prompt_strength {bad}"
        );
    }
}

#[test]
fn flux_lora_validation_boundaries() {
    let base = FluxLoraInput::new("TOK portrait");
    let check = |i: FluxLoraInput| {
        let direct = rejected_field(i.validate());
        assert_eq!(direct, rejected_field(<FluxLora as Endpoint>::validate(&i)));
        direct
    };
    assert_eq!(check(base.clone()), None);
    assert_eq!(check(full_flux_lora()), None);
    assert_eq!(check(FluxLoraInput::new(" ")).as_deref(), Some("prompt"));

    let scale = |v: f64| {
        base.clone()
            .with_lora("https://x/a.safetensors", 1.0)
            .with_lora("https://x/b.safetensors", v)
    };
    assert_eq!(check(scale(0.0)), None);
    assert_eq!(check(scale(4.0)), None);
    for bad in [-0.01, 4.01, f64::NAN, f64::INFINITY] {
        assert_eq!(
            check(scale(bad)).as_deref(),
            Some("loras[1].scale"),
            "scale {bad}"
        );
    }
    assert_eq!(
        check(base.clone().with_lora("", 1.0)).as_deref(),
        Some("loras[0].path")
    );

    let steps = |v: u32| FluxLoraInput {
        num_inference_steps: Some(v),
        ..base.clone()
    };
    assert_eq!(check(steps(1)), None);
    assert_eq!(check(steps(50)), None);
    assert_eq!(check(steps(0)).as_deref(), Some("num_inference_steps"));
    assert_eq!(check(steps(51)).as_deref(), Some("num_inference_steps"));

    let gs = |v: f64| FluxLoraInput {
        guidance_scale: Some(v),
        ..base.clone()
    };
    assert_eq!(check(gs(0.0)), None);
    assert_eq!(check(gs(35.0)), None);
    for bad in [-0.1, 35.1, f64::NAN] {
        assert_eq!(
            check(gs(bad)).as_deref(),
            Some("guidance_scale"),
            "guidance_scale {bad}"
        );
    }

    let n = |v: u32| FluxLoraInput {
        num_images: Some(v),
        ..base.clone()
    };
    assert_eq!(check(n(1)), None);
    assert_eq!(check(n(4)), None);
    assert_eq!(check(n(0)).as_deref(), Some("num_images"));
    assert_eq!(check(n(5)).as_deref(), Some("num_images"));

    let size = |w: u32, h: u32| FluxLoraInput {
        image_size: Some(ImageSize::custom(w, h)),
        ..base.clone()
    };
    assert_eq!(check(size(1, 1)), None);
    assert_eq!(check(size(14_142, 14_142)), None);
    assert_eq!(check(size(0, 512)).as_deref(), Some("image_size.width"));
    assert_eq!(
        check(size(14_143, 512)).as_deref(),
        Some("image_size.width")
    );
    assert_eq!(check(size(512, 0)).as_deref(), Some("image_size.height"));
    assert_eq!(
        check(size(512, 14_143)).as_deref(),
        Some("image_size.height")
    );
}

#[test]
fn validation_messages_state_range_and_value() {
    let err = PortraitTrainerInput {
        steps: Some(20_000),
        ..PortraitTrainerInput::new("https://x/a.zip")
    }
    .validate()
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("steps"), "{text}");
    assert!(text.contains("10000"), "{text}");
    assert!(text.contains("20000"), "{text}");

    let err = UltraFinetunedInput::new("p", "f", f64::NAN)
        .validate()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("finetune_strength") && text.contains("0..=2"),
        "{text}"
    );
    assert!(text.contains("NaN"), "{text}");

    let err = FluxLoraInput::new("p")
        .with_lora("x", 9.0)
        .validate()
        .unwrap_err();
    match err {
        Error::InvalidInput { field, message } => {
            assert_eq!(field, "loras[0].scale");
            assert!(
                message.contains("0..=4") && message.contains('9'),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    let err = ProTrainerInput {
        lora_rank: Some(8),
        ..ProTrainerInput::new("https://x/a.zip", "c")
    }
    .validate()
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("16") && text.contains("32") && text.contains('8'),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Outputs

#[test]
fn flux_lora_output_decodes_legacy_and_current_image_shapes() {
    let legacy = json!({
        "images": [{"url": "https://v3.fal.media/files/a.jpg", "width": 1024, "height": 768,
                    "content_type": "image/jpeg"}],
        "timings": {"inference": 2.5},
        "seed": 123,
        "has_nsfw_concepts": [false],
        "prompt": "TOK portrait"
    });
    let out: GenerationOutput = assert_round_trip(&legacy);
    assert_eq!(out.images[0].width, Some(1024));
    assert_eq!(out.images[0].height, Some(768));
    assert_eq!(out.images[0].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(out.timings.get("inference"), Some(&2.5));
    assert_eq!(out.seed, 123);

    let current = json!({
        "images": [{"url": "https://v3.fal.media/files/b.png"}],
        "timings": {},
        "seed": 9,
        "has_nsfw_concepts": [true],
        "prompt": "p"
    });
    let out: GenerationOutput = assert_round_trip(&current);
    assert_eq!(out.images[0].url, "https://v3.fal.media/files/b.png");
    assert_eq!((out.images[0].width, out.images[0].height), (None, None));
    assert_eq!(out.has_nsfw_concepts, vec![true]);

    // Current shape with explicit nulls and extra file metadata.
    let nulls = json!({
        "images": [{"url": "u", "width": null, "height": null, "content_type": null,
                    "file_name": "x.png", "file_size": 4096}],
        "seed": 1, "has_nsfw_concepts": [], "prompt": "p"
    });
    let out: GenerationOutput = serde_json::from_value(nulls).unwrap();
    assert_eq!(out.images[0].file_name.as_deref(), Some("x.png"));
    assert_eq!(out.images[0].file_size, Some(4096));
    assert_eq!(out.images[0].width, None);
    assert!(out.timings.is_empty());
}

#[test]
fn ultra_output_without_timings_decodes() {
    let body = json!({
        "images": [{"url": "https://v3.fal.media/files/c.jpg", "width": 2048, "height": 2048}],
        "seed": 5,
        "has_nsfw_concepts": [false],
        "prompt": "TOK portrait"
    });
    let out: GenerationOutput = serde_json::from_value(body).unwrap();
    assert!(out.timings.is_empty());
    assert_eq!(out.seed, 5);
    assert_eq!(out.images[0].width, Some(2048));
    assert_eq!(out.prompt, "TOK portrait");
}

#[test]
fn outputs_reject_missing_required_fields() {
    assert!(serde_json::from_value::<ProTrainerOutput>(json!({})).is_err());
    assert!(serde_json::from_value::<LoraTrainingOutput>(
        json!({"diffusers_lora_file": {"url": "u"}})
    )
    .is_err());
    assert!(serde_json::from_value::<Image>(json!({"width": 1, "height": 1})).is_err());
    assert!(serde_json::from_value::<GenerationOutput>(json!({"seed": 1})).is_err());
}

#[test]
fn generator_outputs_keep_images_when_informational_fields_are_missing() {
    let out: GenerationOutput = serde_json::from_value(json!({"images": [{"url": "u"}]})).unwrap();
    assert_eq!(out.images[0].url, "u");
    assert_eq!((out.seed, out.prompt.as_str()), (0, ""));
    let out: GenerationOutput =
        serde_json::from_value(json!({"images": [{"url": "v", "width": 1, "height": 1}]})).unwrap();
    assert_eq!(out.images[0].url, "v");
    assert!(out.has_nsfw_concepts.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Endpoint ids

#[test]
fn endpoint_ids_parse() {
    let portrait = EndpointId::parse(PortraitTrainer::ID).unwrap();
    assert_eq!(portrait.as_str(), "fal-ai/flux-lora-portrait-trainer");
    assert_eq!(portrait.app_id(), "fal-ai/flux-lora-portrait-trainer");

    let pro = EndpointId::parse(ProTrainer::ID).unwrap();
    assert_eq!(pro.as_str(), "fal-ai/flux-pro-trainer");
    assert_eq!(pro.path(), None);

    let flux = EndpointId::parse(FluxLora::ID).unwrap();
    assert_eq!(flux.app_id(), "fal-ai/flux-lora");

    let ultra = EndpointId::parse(UltraFinetuned::ID).unwrap();
    assert_eq!(UltraFinetuned::ID, "fal-ai/flux-pro/v1.1-ultra-finetuned");
    assert_ne!(UltraFinetuned::ID, "fal-ai/flux-pro/v1.1-ultra/finetuned");
    assert_eq!(ultra.app_id(), "fal-ai/flux-pro");
    assert_eq!(ultra.path(), Some("v1.1-ultra-finetuned"));

    // The fixtures agree with the constants.
    let rejected = schema(ULTRA_SCHEMA)["endpoint_id_rejected"][0].clone();
    assert_ne!(rejected, json!(UltraFinetuned::ID));
}
