-- Who likes which post: the source of truth for likes. The primary key makes a like
-- idempotent (insert-if-absent); (user_id, post_id) answers "did I like these posts".
-- No foreign key to posts on purpose: its check takes a shared lock on the post row, and a
-- popular post's likes would then queue behind every write to that row (the count flush).
-- The handler checks that the post is live before inserting.
CREATE TABLE post_likes (
    post_id BIGINT UNSIGNED NOT NULL,
    user_id BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (post_id, user_id),
    KEY post_likes_user (user_id, post_id),
    CONSTRAINT post_likes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
