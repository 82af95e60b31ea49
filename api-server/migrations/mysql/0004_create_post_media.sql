-- Media attached to a post, in display order. Object keys live under the uploader's prefix
-- and are checked against the bucket before they are attached.
CREATE TABLE post_media (
    post_id BIGINT UNSIGNED NOT NULL,
    position TINYINT UNSIGNED NOT NULL,
    object_key VARCHAR(512) NOT NULL,
    content_type VARCHAR(100) NOT NULL,
    size BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (post_id, position),
    -- The upload sweep asks whether a key is attached anywhere.
    KEY post_media_object_key (object_key),
    CONSTRAINT post_media_post_fk FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
