-- Fan-out jobs, written in the transaction that creates the post, so a post whose fan-out
-- has not finished (process killed, Redis down) is never forgotten. A worker claims a job by
-- pushing `available_at` past now (a lease); finishing deletes the row; a job whose worker
-- died becomes available again when its lease ends.
CREATE TABLE feed_outbox (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    post_id BIGINT UNSIGNED NOT NULL,
    author_id BIGINT UNSIGNED NOT NULL,
    attempts INT UNSIGNED NOT NULL DEFAULT 0,
    available_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    -- Workers take the oldest available jobs first.
    KEY feed_outbox_available (available_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
