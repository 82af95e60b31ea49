-- Posts whose `like_count` must be recounted: marked (insert-if-absent) in the transaction
-- of every like and unlike, cleared by the flusher just before it recounts. Being in MySQL,
-- the mark survives the loss of Redis (which only holds the not-yet-flushed deltas shown
-- between flushes), so counts always converge to COUNT(post_likes).
CREATE TABLE like_count_pending (
    post_id BIGINT UNSIGNED NOT NULL,
    marked_at DATETIME(6) NOT NULL,
    PRIMARY KEY (post_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
