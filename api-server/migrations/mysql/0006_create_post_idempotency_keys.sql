-- Idempotency-Key of POST /posts: a retried request returns the post the first one created.
-- Keyed per user so one user's keys never collide with another's; the fingerprint tells a
-- retry from a different request that reuses the key.
CREATE TABLE post_idempotency_keys (
    user_id BIGINT UNSIGNED NOT NULL,
    idempotency_key VARCHAR(255) NOT NULL,
    request_fingerprint CHAR(64) NOT NULL,
    post_id BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id, idempotency_key),
    CONSTRAINT post_idempotency_keys_post_fk FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
