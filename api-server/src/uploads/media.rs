//! What may be uploaded: the allowed media types, their size limits, and the object keys
//! uploads get (`{prefix}media/{user_id}/{uuid}.{ext}`).

use crate::config::UploadConfig;

/// Images and videos have separate size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaClass {
    /// Still or animated images.
    Image,
    /// Videos.
    Video,
}

/// One allowed media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType {
    /// MIME type as clients send it, e.g. `image/png`.
    pub content_type: &'static str,
    /// File extension of its object keys.
    pub extension: &'static str,
    /// Which size limit applies.
    pub class: MediaClass,
}

/// Every type a client may upload.
pub const ALLOWED_TYPES: [MediaType; 6] = [
    MediaType {
        content_type: "image/jpeg",
        extension: "jpg",
        class: MediaClass::Image,
    },
    MediaType {
        content_type: "image/png",
        extension: "png",
        class: MediaClass::Image,
    },
    MediaType {
        content_type: "image/gif",
        extension: "gif",
        class: MediaClass::Image,
    },
    MediaType {
        content_type: "image/webp",
        extension: "webp",
        class: MediaClass::Image,
    },
    MediaType {
        content_type: "video/mp4",
        extension: "mp4",
        class: MediaClass::Video,
    },
    MediaType {
        content_type: "video/webm",
        extension: "webm",
        class: MediaClass::Video,
    },
];

/// The allowed type with this MIME type (case-insensitive, parameters not allowed).
pub fn type_by_content_type(content_type: &str) -> Option<MediaType> {
    ALLOWED_TYPES.into_iter().find(|allowed| {
        allowed
            .content_type
            .eq_ignore_ascii_case(content_type.trim())
    })
}

/// The allowed type whose keys end in `.extension`.
pub fn type_by_extension(extension: &str) -> Option<MediaType> {
    ALLOWED_TYPES
        .into_iter()
        .find(|allowed| allowed.extension == extension)
}

/// Largest object of this type, in bytes.
pub fn max_bytes(config: &UploadConfig, media_type: MediaType) -> u64 {
    match media_type.class {
        MediaClass::Image => config.upload_max_image_bytes,
        MediaClass::Video => config.upload_max_video_bytes,
    }
}

/// The key prefix every upload of `user_id` lives under.
pub fn user_prefix(config: &UploadConfig, user_id: u64) -> String {
    format!("{}media/{user_id}/", config.s3_key_prefix)
}

/// The key prefix of every upload (what the sweep lists).
pub fn media_prefix(config: &UploadConfig) -> String {
    format!("{}media/", config.s3_key_prefix)
}

/// A fresh object key for a new upload.
pub fn new_object_key(config: &UploadConfig, user_id: u64, media_type: MediaType) -> String {
    format!(
        "{}{}.{}",
        user_prefix(config, user_id),
        uuid::Uuid::new_v4(),
        media_type.extension
    )
}

/// Why a key a client sent cannot be one of its uploads.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyProblem {
    /// Not under the caller's prefix (someone else's, or made up).
    NotYours,
    /// Under the caller's prefix but not a name uploads get.
    Malformed,
}

/// Checks that `key` names an upload of `user_id` and returns its type (from the extension).
pub fn parse_own_key(
    config: &UploadConfig,
    user_id: u64,
    key: &str,
) -> Result<MediaType, KeyProblem> {
    let name = key
        .strip_prefix(&user_prefix(config, user_id))
        .ok_or(KeyProblem::NotYours)?;
    let (stem, extension) = name.rsplit_once('.').ok_or(KeyProblem::Malformed)?;
    if uuid::Uuid::try_parse(stem).is_err() {
        return Err(KeyProblem::Malformed);
    }
    type_by_extension(extension).ok_or(KeyProblem::Malformed)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;

    fn config() -> UploadConfig {
        let mut config = Config::try_parse_from(["sns-api"])
            .expect("defaults")
            .uploads;
        config.s3_key_prefix = "t1/".into();
        config
    }

    #[test]
    fn new_keys_parse_back_as_their_owners_uploads() {
        let config = config();
        let png = type_by_content_type("IMAGE/PNG").expect("png is allowed");
        let key = new_object_key(&config, 7, png);
        assert!(
            key.starts_with("t1/media/7/") && key.ends_with(".png"),
            "{key}"
        );
        assert_eq!(parse_own_key(&config, 7, &key), Ok(png));
        assert_eq!(parse_own_key(&config, 8, &key), Err(KeyProblem::NotYours));
    }

    #[test]
    fn made_up_keys_under_ones_prefix_are_malformed() {
        let config = config();
        for key in [
            "t1/media/7/x.png",
            "t1/media/7/../8/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
            "t1/media/7/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.exe",
            "t1/media/7/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10",
        ] {
            assert_eq!(
                parse_own_key(&config, 7, key),
                Err(KeyProblem::Malformed),
                "{key}"
            );
        }
    }

    #[test]
    fn only_the_listed_types_are_allowed() {
        assert!(type_by_content_type("image/svg+xml").is_none());
        assert!(type_by_content_type("text/html").is_none());
        assert_eq!(
            type_by_content_type("video/webm").map(|t| t.class),
            Some(MediaClass::Video)
        );
    }
}
