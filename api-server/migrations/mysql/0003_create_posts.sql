-- Posts. Ids are Redis sorted-set scores in feeds, so they must stay below 2^53; an
-- AUTO_INCREMENT id does. Deleting sets deleted_at (feeds filter on it; rows referenced by
-- comments stay consistent). (author_id, id) serves an author's timeline and feed rebuilds.
CREATE TABLE posts (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    author_id BIGINT UNSIGNED NOT NULL,
    content TEXT NOT NULL,
    like_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
    comment_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    edited_at DATETIME(6) NULL,
    deleted_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY posts_author (author_id, id),
    CONSTRAINT posts_author_fk FOREIGN KEY (author_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
