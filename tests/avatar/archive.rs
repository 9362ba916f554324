//! Training-archive builder and validator, on the bundled real photos and on broken folders.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use fal_client::archive::{
    validate_zip, ArchiveBuilder, ArchiveError, ArchiveRules, ImageFormat, TrainingArchive,
    TRIGGER_PLACEHOLDER,
};
use zip::{CompressionMethod, ZipArchive};

fn data_dir(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data")
        .join(set)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/archive")
        .join(name);
    fs::read(path).unwrap()
}

/// The portrait JPEGs, in name order.
fn portrait_jpegs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(data_dir("portrait"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    files
}

/// A temporary folder with the first `n` portrait JPEGs (no captions).
fn folder_with_photos(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for src in portrait_jpegs().into_iter().take(n) {
        fs::copy(&src, dir.path().join(src.file_name().unwrap())).unwrap();
    }
    dir
}

/// A real PNG of `width` x `height` (RGB gradient), encoded with the `png` crate.
fn png_bytes(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        writer.write_image_data(&pixels).unwrap();
    }
    out
}

/// Every entry of a ZIP: name -> (compression, bytes).
fn unzip(bytes: &[u8]) -> BTreeMap<String, (CompressionMethod, Vec<u8>)> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        out.insert(file.name().to_owned(), (file.compression(), data));
    }
    out
}

/// A ZIP of the given (name, bytes) entries, deflated, in the given order.
fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, data) in entries {
        if name.ends_with('/') {
            writer.add_directory(*name, options).unwrap();
        } else {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn portrait_folder_builds_with_captions_and_verbatim_images() {
    let dir = data_dir("portrait");
    let archive = TrainingArchive::builder().build_from_dir(&dir).unwrap();

    assert_eq!(archive.image_count(), 12);
    assert_eq!(archive.captioned_count(), 8);
    assert_eq!(archive.content_type(), "application/zip");
    assert!(archive.skipped().is_empty());
    assert_eq!(archive.len(), archive.bytes().len());

    // Exactly the expected entries: 12 stored JPEGs and 8 deflated captions.
    let entries = unzip(archive.bytes());
    let mut expected: Vec<String> = (1..=12).map(|i| format!("astronaut_{i:02}.jpg")).collect();
    expected.extend((1..=8).map(|i| format!("astronaut_{i:02}.txt")));
    expected.sort();
    assert_eq!(entries.keys().cloned().collect::<Vec<_>>(), expected);

    for image in archive.entries() {
        let on_disk = fs::read(dir.join(&image.name)).unwrap();
        let (method, in_zip) = &entries[&image.name];
        assert_eq!(*method, CompressionMethod::Stored, "{}", image.name);
        assert_eq!(in_zip, &on_disk, "{} differs in the zip", image.name);
        assert_eq!(image.bytes.as_ref(), on_disk.as_slice());
        assert_eq!(image.format, ImageFormat::Jpeg);
        assert_eq!(image.format.content_type(), "image/jpeg");

        // Dimensions agree with a real decoder.
        let mut decoder = jpeg_decoder::Decoder::new(on_disk.as_slice());
        decoder.read_info().unwrap();
        let info = decoder.info().unwrap();
        assert_eq!(
            (image.width, image.height),
            (u32::from(info.width), u32::from(info.height)),
            "{}",
            image.name
        );

        let stem = image.name.trim_end_matches(".jpg");
        let caption_path = dir.join(format!("{stem}.txt"));
        match &image.caption {
            Some(caption) => {
                assert!(caption.contains(TRIGGER_PLACEHOLDER), "{caption}");
                let on_disk = fs::read_to_string(&caption_path).unwrap();
                assert_eq!(caption, on_disk.trim());
                let (method, in_zip) = &entries[&format!("{stem}.txt")];
                assert_eq!(*method, CompressionMethod::Deflated);
                assert_eq!(in_zip, caption.as_bytes());
            }
            None => assert!(!caption_path.exists(), "{} has a caption", image.name),
        }
    }
    let first = &archive.entries()[0];
    assert_eq!(first.name, "astronaut_01.jpg");
    assert_eq!(
        first.caption.as_deref(),
        Some("a portrait photo of [trigger], smiling, in an orange flight suit, american flag behind")
    );
    assert_eq!(archive.entries()[11].name, "astronaut_12.jpg");
    assert_eq!(archive.entries()[11].caption, None);
}

#[test]
fn style_folder_builds_without_captions() {
    let archive = ArchiveBuilder::new()
        .build_from_dir(data_dir("style"))
        .unwrap();
    assert_eq!(archive.image_count(), 11);
    assert_eq!(archive.captioned_count(), 0);
    let names: Vec<&str> = archive.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"brick.jpg"));
    assert_eq!(names.last(), Some(&"rocket.jpg"));
    let entries = unzip(archive.bytes());
    assert_eq!(entries.len(), 11);
    assert!(entries.keys().all(|n| n.ends_with(".jpg")));
    assert!(archive
        .entries()
        .iter()
        .all(|e| e.width > 0 && e.height > 0));
}

#[test]
fn empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::EmptyDirectory { path, .. } if path == dir.path()),
        "{err:?}"
    );

    // Only hidden files and a subdirectory: still nothing to train on.
    fs::write(dir.path().join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    fs::create_dir(dir.path().join("originals")).unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(err, ArchiveError::EmptyDirectory { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn missing_folder_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = ArchiveBuilder::new().build_from_dir(&missing).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Io { path, source, .. } if *path == missing && source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
}

#[test]
fn a_pdf_is_not_an_image() {
    let dir = folder_with_photos(12);
    fs::write(
        dir.path().join("notes.pdf"),
        "remember to pick the best photos\n",
    )
    .unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::NotAnImage { file, .. } if file == "notes.pdf"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`notes.pdf`"), "{err}");
}

#[test]
fn a_jpg_holding_text_is_not_an_image() {
    let dir = folder_with_photos(12);
    fs::write(
        dir.path().join("fake.jpg"),
        "I am not a JPEG, whatever my name says",
    )
    .unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::NotAnImage { file, .. } if file == "fake.jpg"),
        "{err:?}"
    );
    // An empty file is not an image either.
    let dir = folder_with_photos(12);
    fs::write(dir.path().join("empty.png"), b"").unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::NotAnImage { file, .. } if file == "empty.png"),
        "{err:?}"
    );
}

#[test]
fn a_truncated_png_is_corrupt() {
    let png = png_bytes(32, 24);
    let cut = &png[..png.len() / 2];
    // Honest about the dependencies: `imagesize` only reads the header, so it still reports the
    // dimensions of the cut file, while a real decoder fails. The builder must catch it itself.
    let size = imagesize::blob_size(cut).unwrap();
    assert_eq!((size.width, size.height), (32, 24));
    assert!(png::Decoder::new(cut)
        .read_info()
        .and_then(|mut r| {
            let mut buf = vec![0; r.output_buffer_size()];
            r.next_frame(&mut buf).map(|_| ())
        })
        .is_err());

    let dir = folder_with_photos(12);
    fs::write(dir.path().join("cut.png"), cut).unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    match &err {
        ArchiveError::CorruptImage { file, reason, .. } => {
            assert_eq!(file, "cut.png");
            assert!(reason.contains("truncated"), "{reason}");
        }
        other => panic!("expected CorruptImage, got {other:?}"),
    }
    assert!(err.to_string().contains("`cut.png`"), "{err}");

    // Just the PNG signature and a cut IHDR: imagesize itself fails here.
    assert!(imagesize::blob_size(&png[..20]).is_err());
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("stub.png"), &png[..20]).unwrap();
    let err = ArchiveBuilder::new()
        .min_images(1)
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::CorruptImage { file, .. } if file == "stub.png"),
        "{err:?}"
    );
}

#[test]
fn a_truncated_or_garbage_jpeg_is_corrupt() {
    // A real photo cut in half: the header (and so its size) is intact, the scan is not.
    let photo = fs::read(&portrait_jpegs()[0]).unwrap();
    let half = &photo[..photo.len() / 2];
    assert!(imagesize::blob_size(half).is_ok());
    assert!(jpeg_decoder::Decoder::new(half).decode().is_err());

    let dir = folder_with_photos(12);
    fs::write(dir.path().join("half.jpg"), half).unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    match &err {
        ArchiveError::CorruptImage { file, reason, .. } => {
            assert_eq!(file, "half.jpg");
            assert!(reason.contains("truncated"), "{reason}");
        }
        other => panic!("expected CorruptImage, got {other:?}"),
    }

    // JPEG magic followed by text: imagesize rejects it too (no segment marker after SOI).
    let garbage = b"\xFF\xD8\xFF\xE0 this is not really a jpeg at all";
    assert!(imagesize::blob_size(garbage).is_err());
    assert!(jpeg_decoder::Decoder::new(&garbage[..]).decode().is_err());
    let dir = folder_with_photos(12);
    fs::write(dir.path().join("garbage.jpg"), garbage).unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::CorruptImage { file, .. } if file == "garbage.jpg"),
        "{err:?}"
    );
}

#[test]
fn an_unpaired_caption_is_an_error_unless_allowed() {
    let dir = folder_with_photos(10);
    fs::write(dir.path().join("ghost.txt"), "a photo of [trigger]").unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::UnpairedCaption { file, .. } if file == "ghost.txt"),
        "{err:?}"
    );

    let archive = ArchiveBuilder::new()
        .allow_unpaired_captions(true)
        .build_from_dir(dir.path())
        .unwrap();
    assert_eq!(archive.image_count(), 10);
    assert_eq!(archive.captioned_count(), 0);
    assert_eq!(archive.skipped(), ["ghost.txt"]);
    assert!(!unzip(archive.bytes()).contains_key("ghost.txt"));
}

#[test]
fn caption_limits_and_encoding() {
    let dir = folder_with_photos(10);
    let long = format!("a photo of [trigger], {}", "x".repeat(1024 - 22 + 1));
    assert_eq!(long.len(), 1025);
    fs::write(dir.path().join("astronaut_01.txt"), &long).unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::CaptionTooLong { file, bytes: 1025, max: 1024, .. } if file == "astronaut_01.txt"),
        "{err:?}"
    );
    let archive = ArchiveBuilder::new()
        .max_caption_bytes(2048)
        .build_from_dir(dir.path())
        .unwrap();
    assert_eq!(archive.entries()[0].caption.as_deref(), Some(long.as_str()));

    // Latin-1 "café": not UTF-8.
    fs::write(
        dir.path().join("astronaut_01.txt"),
        b"a photo of [trigger] in a caf\xe9",
    )
    .unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::CaptionNotUtf8 { file, .. } if file == "astronaut_01.txt"),
        "{err:?}"
    );

    fs::write(dir.path().join("astronaut_01.txt"), " \n\t\n").unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::EmptyCaption { file, .. } if file == "astronaut_01.txt"),
        "{err:?}"
    );

    // A Windows-style caption: BOM, CRLF and an upper-case extension are normalised.
    fs::remove_file(dir.path().join("astronaut_01.txt")).unwrap();
    fs::write(
        dir.path().join("astronaut_02.TXT"),
        "\u{feff}a photo of [trigger], café\r\n",
    )
    .unwrap();
    let archive = ArchiveBuilder::new().build_from_dir(dir.path()).unwrap();
    assert_eq!(
        archive.entries()[1].caption.as_deref(),
        Some("a photo of [trigger], café")
    );
    let entries = unzip(archive.bytes());
    assert_eq!(
        entries["astronaut_02.txt"].1,
        "a photo of [trigger], café".as_bytes()
    );
}

#[test]
fn too_few_images_then_a_lower_minimum() {
    let dir = folder_with_photos(9);
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::TooFewImages {
                found: 9,
                min: 10,
                trainer: None,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("found 9"), "{message}");
    assert!(message.contains("need at least 10"), "{message}");

    let archive = ArchiveBuilder::new()
        .min_images(5)
        .build_from_dir(dir.path())
        .unwrap();
    assert_eq!(archive.image_count(), 9);

    let err = ArchiveBuilder::new()
        .min_images(5)
        .max_images(Some(8))
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::TooManyImages {
                found: 9,
                max: 8,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn duplicate_base_names_are_refused() {
    let dir = folder_with_photos(10);
    fs::write(dir.path().join("astronaut_01.png"), png_bytes(8, 8)).unwrap();
    let err = ArchiveBuilder::new()
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::DuplicateName { first, second, .. }
            if first == "astronaut_01.jpg" && second == "astronaut_01.png"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`astronaut_01.jpg`"), "{err}");
}

#[test]
fn oversized_images_are_refused_without_reading_them_whole() {
    let dir = folder_with_photos(10);
    let size = fs::metadata(&portrait_jpegs()[0]).unwrap().len();
    let err = ArchiveBuilder::new()
        .max_image_bytes(1000)
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::ImageTooLarge { file, bytes, max: 1000, .. }
            if file == "astronaut_01.jpg" && *bytes == size),
        "{err:?}"
    );
}

#[test]
fn same_photos_give_byte_identical_zips() {
    let first = ArchiveBuilder::new()
        .build_from_dir(data_dir("portrait"))
        .unwrap();
    let second = ArchiveBuilder::new()
        .build_from_dir(data_dir("portrait"))
        .unwrap();
    assert_eq!(first.bytes(), second.bytes());

    // A fresh copy (new modification times, new directory order) gives the same bytes too, and
    // so does the same set held in memory, added in reverse order.
    let copy = tempfile::tempdir().unwrap();
    let mut builder = ArchiveBuilder::new();
    let mut files: Vec<PathBuf> = fs::read_dir(data_dir("portrait"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.reverse();
    for src in &files {
        let name = src.file_name().unwrap().to_str().unwrap().to_owned();
        fs::copy(src, copy.path().join(&name)).unwrap();
        if name.ends_with(".txt") {
            builder = builder.caption(name, fs::read_to_string(src).unwrap());
        } else {
            builder = builder.image(name, fs::read(src).unwrap());
        }
    }
    let from_copy = ArchiveBuilder::new().build_from_dir(copy.path()).unwrap();
    assert_eq!(first.bytes(), from_copy.bytes());
    let in_memory = builder.build().unwrap();
    assert_eq!(first.bytes(), in_memory.bytes());

    // Fixed metadata: DOS epoch timestamps and 0644 permissions on every entry.
    let mut zip = ZipArchive::new(Cursor::new(first.bytes().as_ref())).unwrap();
    for i in 0..zip.len() {
        let file = zip.by_index(i).unwrap();
        let time = file.last_modified().unwrap();
        assert_eq!(
            (
                time.year(),
                time.month(),
                time.day(),
                time.hour(),
                time.minute()
            ),
            (1980, 1, 1, 0, 0),
            "{}",
            file.name()
        );
        assert_eq!(
            file.unix_mode().map(|m| m & 0o777),
            Some(0o644),
            "{}",
            file.name()
        );
    }
}

#[test]
fn validate_zip_accepts_a_built_archive_and_rejects_a_non_image() {
    let archive = ArchiveBuilder::new()
        .build_from_dir(data_dir("portrait"))
        .unwrap();
    let report = validate_zip(archive.bytes(), 10).unwrap();
    assert_eq!(report, archive.report());
    assert_eq!(report.image_count(), 12);
    assert_eq!(report.captioned_count(), 8);
    assert_eq!(
        report.images[0].size,
        archive.entries()[0].bytes.len() as u64
    );

    let err = validate_zip(archive.bytes(), 13).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::TooFewImages {
                found: 12,
                min: 13,
                trainer: None,
                ..
            }
        ),
        "{err:?}"
    );

    // A user's zip: deflated photos inside a folder, Finder's __MACOSX junk, and a stray PDF.
    let photos: Vec<(String, Vec<u8>)> = portrait_jpegs()
        .iter()
        .map(|p| {
            (
                format!("my photos/{}", p.file_name().unwrap().to_str().unwrap()),
                fs::read(p).unwrap(),
            )
        })
        .collect();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("my photos/", b""),
        ("__MACOSX/my photos/._astronaut_01.jpg", b"\0\x05\x16\x07"),
        ("my photos/astronaut_01.txt", b"a photo of [trigger]"),
    ];
    entries.extend(photos.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    let good = make_zip(&entries);
    let report = validate_zip(&good, 10).unwrap();
    assert_eq!(report.image_count(), 12);
    assert_eq!(report.captioned_count(), 1);
    assert_eq!(report.images[0].name, "my photos/astronaut_01.jpg");
    assert_eq!(
        report.images[0].caption.as_deref(),
        Some("a photo of [trigger]")
    );
    assert_eq!(report.skipped, ["__MACOSX/my photos/._astronaut_01.jpg"]);

    entries.push(("my photos/notes.pdf", b"%PDF-1.4 not a photo"));
    let bad = make_zip(&entries);
    let err = validate_zip(&bad, 10).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::NotAnImage { file, .. } if file == "my photos/notes.pdf"),
        "{err:?}"
    );

    let err = validate_zip(b"PK\x03\x04 definitely not a zip", 10).unwrap_err();
    assert!(matches!(err, ArchiveError::InvalidZip { .. }), "{err:?}");
}

#[test]
fn hidden_files_and_subdirectories_are_skipped() {
    let dir = folder_with_photos(10);
    fs::write(dir.path().join(".DS_Store"), b"\0\0\0\x01Bud1\0\0").unwrap();
    fs::write(
        dir.path().join("._astronaut_01.jpg"),
        b"\0\x05\x16\x07\0\x02",
    )
    .unwrap();
    fs::write(dir.path().join("Thumbs.db"), b"\xd0\xcf\x11\xe0").unwrap();
    fs::create_dir(dir.path().join("rejects")).unwrap();
    fs::write(dir.path().join("rejects/blurry.txt"), "not a photo").unwrap();

    let archive = ArchiveBuilder::new().build_from_dir(dir.path()).unwrap();
    assert_eq!(archive.image_count(), 10);
    assert_eq!(
        archive.skipped(),
        [".DS_Store", "._astronaut_01.jpg", "Thumbs.db", "rejects/"]
    );
    let entries = unzip(archive.bytes());
    assert_eq!(entries.len(), 10);
    assert!(entries.keys().all(|n| n.starts_with("astronaut_")));

    let err = ArchiveBuilder::new()
        .skip_hidden(false)
        .build_from_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::NotAnImage { file, .. } if file == ".DS_Store"),
        "{err:?}"
    );
}

#[test]
fn formats_are_recognised_by_content_and_extensions_fixed() {
    let webp = fixture("python.webp");
    let png = png_bytes(5, 3);
    let jpeg = fs::read(&portrait_jpegs()[0]).unwrap();

    let builder = ArchiveBuilder::new()
        .min_images(4)
        .image("snake.webp", webp.clone())
        .image("mislabelled.jpg", png.clone())
        .image("no_extension", jpeg.clone())
        .image("SHOUTY.JPEG", jpeg.clone())
        .caption("no_extension", "a photo of [trigger]")
        .caption("mislabelled.txt", "a [trigger] pattern");
    let archive = builder.build().unwrap();

    let summary: Vec<(&str, ImageFormat, u32, u32, bool)> = archive
        .entries()
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.format,
                e.width,
                e.height,
                e.caption.is_some(),
            )
        })
        .collect();
    let (w, h) = (archive.entries()[0].width, archive.entries()[0].height);
    assert_eq!(
        summary,
        [
            ("SHOUTY.jpeg", ImageFormat::Jpeg, w, h, false),
            ("mislabelled.png", ImageFormat::Png, 5, 3, true),
            ("no_extension.jpg", ImageFormat::Jpeg, w, h, true),
            ("snake.webp", ImageFormat::WebP, 16, 16, false),
        ]
    );
    assert_eq!(ImageFormat::WebP.content_type(), "image/webp");
    assert_eq!(archive.entries()[3].bytes.as_ref(), webp.as_slice());
    let names: Vec<String> = unzip(archive.bytes()).into_keys().collect();
    assert_eq!(
        names,
        [
            "SHOUTY.jpeg",
            "mislabelled.png",
            "mislabelled.txt",
            "no_extension.jpg",
            "no_extension.txt",
            "snake.webp"
        ]
    );

    // A truncated WebP and a GIF.
    let mut builder = ArchiveBuilder::new().min_images(1);
    builder = builder.image("cut.webp", webp[..200].to_vec());
    let err = builder.build().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::CorruptImage { file, .. } if file == "cut.webp"),
        "{err:?}"
    );
    let mut builder = ArchiveBuilder::new().min_images(1);
    builder = builder.image("anim.gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec());
    let err = builder.build().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::UnsupportedImageFormat { file, format, .. } if file == "anim.gif" && format == "GIF"),
        "{err:?}"
    );
}

#[test]
fn in_memory_names_must_be_plain_file_names() {
    let mut builder = ArchiveBuilder::new().min_images(1);
    builder = builder.image("../escape.png", png_bytes(2, 2));
    let err = builder.build().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::InvalidName { name, .. } if name == "../escape.png"),
        "{err:?}"
    );

    let err = ArchiveBuilder::new().build().unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::TooFewImages {
                found: 0,
                min: 10,
                trainer: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn async_build_and_write_to() {
    // The futures can be spawned on a multi-threaded runtime.
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&ArchiveBuilder::new().build_from_dir_async(data_dir("style")));

    let archive = ArchiveBuilder::new()
        .build_from_dir_async(data_dir("style"))
        .await
        .unwrap();
    assert_eq!(archive.image_count(), 11);

    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("style.zip");
    archive.write_to(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), archive.bytes().as_ref());

    let path = out.path().join("style-async.zip");
    archive.write_to_async(&path).await.unwrap();
    let written = fs::read(&path).unwrap();
    assert_eq!(validate_zip(&written, 10).unwrap(), archive.report());
    assert_eq!(archive.into_bytes().as_ref(), written.as_slice());
}

/// The 1x1 PNG used in the module's doctest is a real, decodable PNG.
#[test]
fn the_doctest_png_is_real() {
    const PNG: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00,
        0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];
    let mut reader = png::Decoder::new(PNG).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    assert_eq!((frame.width, frame.height), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Per-trainer rules

#[test]
fn trainers_without_a_trigger_field_need_a_caption_for_every_image() {
    // The portrait set: eight captioned photos, four without (astronaut_09.jpg onwards).
    let rules = ArchiveRules::for_trainer("fal-ai/flux-2-trainer").unwrap();
    let err = ArchiveBuilder::new()
        .rules(rules)
        .trigger("TOK_anna")
        .build_from_dir(data_dir("portrait"))
        .unwrap_err();
    match &err {
        ArchiveError::MissingCaption {
            file,
            caption,
            trainer,
            ..
        } => {
            assert_eq!(file, "astronaut_09.jpg");
            assert_eq!(caption, "astronaut_09.txt");
            assert_eq!(trainer, "fal-ai/flux-2-trainer");
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("astronaut_09.jpg") && message.contains("default caption"),
        "{message}"
    );

    // A default caption is written for the images without one; the trigger goes in everywhere.
    let archive = ArchiveBuilder::new()
        .rules(rules)
        .trigger("TOK_anna")
        .default_caption("a photo of TOK_anna")
        .build_from_dir(data_dir("portrait"))
        .unwrap();
    assert_eq!(archive.captioned_count(), 12);
    let entries = unzip(archive.bytes());
    let caption = |name: &str| String::from_utf8(entries[name].1.clone()).unwrap();
    assert_eq!(caption("astronaut_09.txt"), "a photo of TOK_anna");
    let first = caption("astronaut_01.txt");
    assert!(
        first.contains("TOK_anna") && !first.contains(TRIGGER_PLACEHOLDER),
        "{first}"
    );
    // The same archive passes the check a trainer-bound validation makes before an upload.
    let report = ArchiveBuilder::new()
        .rules(rules)
        .validate_zip(archive.bytes())
        .unwrap();
    assert_eq!(report.captioned_count(), 12);
}

#[test]
fn the_trigger_phrase_is_written_into_captions_where_the_trainer_needs_it() {
    let mut builder = ArchiveBuilder::new()
        .rules(ArchiveRules::FLUX_LORA_FAST_TRAINING)
        .trigger("TOK_mug");
    for i in 0..4 {
        builder = builder.image(format!("mug_{i}.png"), png_bytes(8, 8));
    }
    builder = builder.caption("mug_0", "a photo of [trigger] on a table");
    builder = builder.caption("mug_1", "TOK_mug, close-up");
    builder = builder.caption("mug_2", "a red mug");
    let archive = builder.build().unwrap();
    let captions: Vec<Option<&str>> = archive
        .entries()
        .iter()
        .map(|e| e.caption.as_deref())
        .collect();
    assert_eq!(
        captions,
        [
            Some("a photo of TOK_mug on a table"),
            Some("TOK_mug, close-up"),
            Some("TOK_mug, a red mug"),
            None // fast training captions it itself (and uses trigger_word when none has one)
        ]
    );

    // The portrait trainer replaces [trigger] itself: captions stay verbatim.
    let mut builder = ArchiveBuilder::new()
        .rules(ArchiveRules::PORTRAIT_TRAINER)
        .trigger("TOK_mug")
        .min_images(1);
    builder = builder.image("mug.png", png_bytes(8, 8));
    builder = builder.caption("mug", "a photo of [trigger]");
    let archive = builder.build().unwrap();
    assert_eq!(
        archive.entries()[0].caption.as_deref(),
        Some("a photo of [trigger]")
    );
}

#[test]
fn a_trigger_placeholder_without_a_phrase_is_refused_where_the_trainer_ignores_it() {
    let mut builder = ArchiveBuilder::new().rules(ArchiveRules::FLUX_LORA_FAST_TRAINING);
    for i in 0..4 {
        builder = builder.image(format!("mug_{i}.png"), png_bytes(8, 8));
    }
    builder = builder.caption("mug_2", "a photo of [trigger]");
    let err = builder.clone().build().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::UnresolvedTrigger { file, trainer, .. }
            if file == "mug_2.txt" && trainer == "fal-ai/flux-lora-fast-training"),
        "{err:?}"
    );
    // An existing ZIP with the placeholder cannot be fixed by a check: it is refused too.
    let zip = builder
        .rules(ArchiveRules::PORTRAIT_TRAINER)
        .min_images(1)
        .build()
        .unwrap();
    let err = ArchiveBuilder::new()
        .rules(ArchiveRules::FLUX_LORA_FAST_TRAINING)
        .validate_zip(zip.bytes())
        .unwrap_err();
    assert!(
        matches!(err, ArchiveError::UnresolvedTrigger { .. }),
        "{err:?}"
    );
}

#[test]
fn each_trainer_has_its_minimum_image_count() {
    let dir = folder_with_photos(5);
    for (trainer, ok) in [
        ("fal-ai/flux-lora-fast-training", true),
        ("fal-ai/flux-lora-portrait-trainer", false),
        ("fal-ai/flux-2-trainer-v2", false),
        ("fal-ai/z-image-trainer", false),
    ] {
        let rules = ArchiveRules::for_trainer(trainer).unwrap();
        let built = ArchiveBuilder::new()
            .rules(rules)
            .trigger("TOK")
            .default_caption("a photo of TOK")
            .build_from_dir(dir.path());
        match built {
            Ok(a) => assert!(ok && a.image_count() == 5, "{trainer}"),
            Err(ArchiveError::TooFewImages {
                found: 5,
                min: 10,
                trainer: Some(t),
                ..
            }) => {
                assert!(!ok, "{trainer}");
                assert_eq!(t, trainer);
            }
            Err(e) => panic!("{trainer}: {e}"),
        }
    }
    assert!(ArchiveRules::for_trainer("fal-ai/unknown-trainer").is_none());
}

#[test]
fn the_trigger_phrase_is_matched_as_a_whole_word() {
    let mut builder = ArchiveBuilder::new()
        .rules(ArchiveRules::FLUX_LORA_FAST_TRAINING)
        .trigger("TOK");
    for (i, caption) in [
        "TOKYO street at night",
        "a photo of TOK, smiling",
        "TOK_anna at the beach",
        "(TOK) in the rain",
    ]
    .iter()
    .enumerate()
    {
        builder = builder.image(format!("p{i}.png"), png_bytes(8, 8));
        builder = builder.caption(format!("p{i}.png"), *caption);
    }
    let archive = builder.build().unwrap();
    let captions: Vec<&str> = archive
        .entries()
        .iter()
        .filter_map(|e| e.caption.as_deref())
        .collect();
    assert_eq!(
        captions,
        [
            "TOK, TOKYO street at night",
            "a photo of TOK, smiling",
            "TOK, TOK_anna at the beach",
            "(TOK) in the rain"
        ]
    );
}

#[test]
fn a_checked_zip_must_carry_the_trigger_phrase_in_every_caption() {
    // Captions without the phrase, as a user might upload them.
    let mut plain = ArchiveBuilder::new().min_images(1);
    for i in 0..4 {
        plain = plain.image(format!("p{i}.png"), png_bytes(8, 8));
        plain = plain.caption(format!("p{i}.png"), "a man at the beach");
    }
    let zip = plain.build().unwrap();
    let check = ArchiveBuilder::new()
        .rules(ArchiveRules::FLUX_LORA_FAST_TRAINING)
        .trigger("TOK_anna");
    let err = check.validate_zip(zip.bytes()).unwrap_err();
    match &err {
        ArchiveError::MissingTrigger {
            file,
            trigger,
            trainer,
            ..
        } => {
            assert_eq!(file, "p0.txt");
            assert_eq!(trigger, "TOK_anna");
            assert_eq!(trainer, "fal-ai/flux-lora-fast-training");
        }
        other => panic!("{other:?}"),
    }
    // The portrait trainer puts the phrase in itself: nothing to check there.
    ArchiveBuilder::new()
        .rules(ArchiveRules::PORTRAIT_TRAINER)
        .min_images(1)
        .trigger("TOK_anna")
        .validate_zip(zip.bytes())
        .unwrap();
}

#[test]
fn blank_default_captions_and_triggers_are_refused() {
    let mut builder = ArchiveBuilder::new()
        .rules(ArchiveRules::FLUX_2_TRAINER)
        .min_images(1);
    builder = builder.image("p.png", png_bytes(8, 8));
    let blank_caption = builder.clone().trigger("TOK").default_caption("   ");
    assert!(
        matches!(blank_caption.build(), Err(ArchiveError::EmptyCaption { ref file, .. }) if file == "default caption")
    );
    let blank_trigger = builder.clone().trigger("  ").default_caption("a photo");
    assert!(matches!(
        blank_trigger.build(),
        Err(ArchiveError::InvalidTrigger { .. })
    ));
    // A caption the trigger makes too long is refused like any long caption.
    let long = builder
        .trigger("TOK")
        .default_caption("x".repeat(1023))
        .build()
        .unwrap_err();
    assert!(
        matches!(long, ArchiveError::CaptionTooLong { ref file, .. } if file == "p.txt"),
        "{long:?}"
    );
}
