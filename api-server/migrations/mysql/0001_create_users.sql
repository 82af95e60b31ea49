-- Accounts. Usernames and emails are unique because they are login names; the case-insensitive
-- collation makes "Alice@Example.com" and "alice@example.com" the same address.
-- The three counters are kept in the row (updated in the transaction that changes the
-- relation) so a profile view never counts 100,000 follow rows.
CREATE TABLE users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    username VARCHAR(30) NOT NULL,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    display_name VARCHAR(64) NULL,
    bio VARCHAR(500) NULL,
    avatar_url VARCHAR(2048) NULL,
    post_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
    follower_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
    following_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    -- Feeds are only fanned out to users active in the last days.
    last_active_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_username (username),
    UNIQUE KEY users_email (email),
    -- Prefix search by display name (`GET /users?q=`).
    KEY users_display_name (display_name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
