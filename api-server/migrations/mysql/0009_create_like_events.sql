-- Likes and unlikes not yet folded into `posts.like_count`: one row per change, appended in
-- the change's transaction. Appending never contends (every row is new), unlike a per-post
-- flag that every liker of a popular post would lock. The flusher reads a batch, recounts
-- those posts from `post_likes`, and deletes exactly the rows it read. Being in MySQL, the
-- trail survives the loss of Redis (which holds only the deltas shown between flushes).
CREATE TABLE like_events (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    post_id BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
