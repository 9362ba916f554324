//! Bytes the mock serves: generated images, a small safetensors file, ids and timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Longest side, in pixels, of a generated image. Shapes keep the requested aspect ratio.
pub(crate) const MAX_SIDE: u32 = 512;

/// Image encoding of a generated image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    /// The format named by an `output_format` value (`jpeg`, `png`, `webp`).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "jpeg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    pub(crate) fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }
}

/// Everything that determines a generated image's pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageSpec {
    pub(crate) prompt: String,
    pub(crate) seed: u64,
    pub(crate) index: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) format: ImageFormat,
}

/// Scale `(w, h)` so that the long side is at most [`MAX_SIDE`], keeping the ratio; both sides
/// stay at least 8 px.
pub(crate) fn fit(w: u64, h: u64) -> (u32, u32) {
    let (w, h) = (w.max(1), h.max(1));
    let long = w.max(h);
    let scale = if long > u64::from(MAX_SIDE) {
        f64::from(MAX_SIDE) / long as f64
    } else {
        1.0
    };
    let side = |v: u64| ((v as f64 * scale).round() as u32).clamp(8, MAX_SIDE);
    (side(w), side(h))
}

/// 64-bit FNV-1a.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finalizer
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// RGB8 pixels of the image described by `spec`: a diagonal two-colour gradient with soft rings,
/// fully determined by (prompt, seed, index).
pub(crate) fn render_rgb(spec: &ImageSpec) -> Vec<u8> {
    let h = mix(fnv1a(spec.prompt.as_bytes()) ^ mix(spec.seed) ^ mix(u64::from(spec.index) + 1));
    let byte = |i: u32| ((h >> (i * 8)) & 0xff) as f32;
    let c1 = [byte(0), byte(1), byte(2)];
    let c2 = [255.0 - byte(3), 255.0 - byte(4), byte(5)];
    let (w, hgt) = (spec.width.max(1) as f32, spec.height.max(1) as f32);
    let cx = w * (0.2 + 0.6 * (byte(6) / 255.0));
    let cy = hgt * (0.2 + 0.6 * (byte(7) / 255.0));
    let ring = 6.0 + (h >> 56) as f32 / 16.0;
    let mut out = Vec::with_capacity(spec.width as usize * spec.height as usize * 3);
    for y in 0..spec.height {
        for x in 0..spec.width {
            let (fx, fy) = (x as f32, y as f32);
            let t = (fx / w + fy / hgt) / 2.0;
            let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
            let r = 0.5 + 0.5 * (d / ring).sin();
            for c in 0..3 {
                let base = c1[c] * (1.0 - t) + c2[c] * t;
                out.push((base * (0.75 + 0.25 * r)).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// Encode the image described by `spec` in its format.
pub(crate) fn render(spec: &ImageSpec) -> Result<Bytes, String> {
    let rgb = render_rgb(spec);
    let mut out = Vec::new();
    match spec.format {
        ImageFormat::Png => {
            let mut enc = png::Encoder::new(&mut out, spec.width, spec.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| e.to_string())?;
            w.write_image_data(&rgb).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
        }
        ImageFormat::Webp => {
            image_webp::WebPEncoder::new(&mut out)
                .encode(&rgb, spec.width, spec.height, image_webp::ColorType::Rgb8)
                .map_err(|e| e.to_string())?;
        }
        ImageFormat::Jpeg => {
            let width = u16::try_from(spec.width).map_err(|e| e.to_string())?;
            let height = u16::try_from(spec.height).map_err(|e| e.to_string())?;
            jpeg_encoder::Encoder::new(&mut out, 85)
                .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(Bytes::from(out))
}

/// A small but valid safetensors file: 8-byte little-endian header length, a JSON header
/// (padded with spaces to a multiple of 8) and the tensor data.
pub(crate) fn safetensors(metadata: &serde_json::Map<String, serde_json::Value>) -> Bytes {
    // Two tiny F32 LoRA tensors (rank 2) with deterministic values.
    let a: [f32; 8] = [0.01, -0.02, 0.03, -0.04, 0.05, -0.06, 0.07, -0.08];
    let b: [f32; 8] = [0.0; 8];
    let meta: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), serde_json::Value::String(s))
        })
        .collect();
    let header = serde_json::json!({
        "__metadata__": meta,
        "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight":
            {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]},
        "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight":
            {"dtype": "F32", "shape": [4, 2], "data_offsets": [32, 64]},
    });
    let mut header = header.to_string().into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + 64);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for v in a.iter().chain(b.iter()) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Bytes::from(out)
}

/// A random UUID-v4-shaped id (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
pub(crate) fn uuid() -> String {
    let hi = fastrand::u64(..);
    let lo = fastrand::u64(..);
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-01-28T12:34:56.789Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Howard Hinnant's `civil_from_days`.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_752_019_770_123);
        assert_eq!(rfc3339(t), "2025-07-09T00:09:30.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn uuids_have_the_v4_shape() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn fit_keeps_the_ratio() {
        assert_eq!(fit(1024, 768), (512, 384));
        assert_eq!(fit(16, 9), (16, 9));
        assert_eq!(fit(1920, 1080), (512, 288));
    }

    #[test]
    fn safetensors_header_is_consistent() {
        let st = safetensors(&serde_json::Map::new());
        let mut n = [0u8; 8];
        n.copy_from_slice(&st[..8]);
        let n = u64::from_le_bytes(n) as usize;
        let header: serde_json::Value = serde_json::from_slice(&st[8..8 + n]).unwrap();
        assert!(header.get("__metadata__").is_some());
        assert_eq!(st.len(), 8 + n + 64);
    }
}
