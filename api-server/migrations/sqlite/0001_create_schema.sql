-- The schema of migrations/mysql (0001-0011) for SQLite, the embedded default's database.
-- Same tables, columns and keys; the comments there say why each exists. SQLite differences:
-- ids are INTEGER PRIMARY KEY AUTOINCREMENT (never reused, like AUTO_INCREMENT); timestamps
-- are fixed-width RFC 3339 text (see src/db/sql.rs), so they compare in time order;
-- usernames and emails compare case-insensitively (NOCASE folds ASCII only).

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL COLLATE NOCASE,
    email TEXT NOT NULL COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    display_name TEXT NULL COLLATE NOCASE,
    bio TEXT NULL,
    avatar_url TEXT NULL,
    post_count INTEGER NOT NULL DEFAULT 0,
    follower_count INTEGER NOT NULL DEFAULT 0,
    following_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_active_at TEXT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE INDEX users_display_name ON users (display_name);

CREATE TABLE follows (
    follower_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
) WITHOUT ROWID;
CREATE INDEX follows_followee ON follows (followee_id, follower_id);

CREATE TABLE posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id INTEGER NOT NULL REFERENCES users (id),
    content TEXT NOT NULL,
    like_count INTEGER NOT NULL DEFAULT 0,
    comment_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    edited_at TEXT NULL,
    deleted_at TEXT NULL
);
CREATE INDEX posts_author ON posts (author_id, id);

CREATE TABLE post_media (
    post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    object_key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (post_id, position)
) WITHOUT ROWID;
CREATE INDEX post_media_object_key ON post_media (object_key);

CREATE TABLE comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id INTEGER NOT NULL REFERENCES users (id),
    content TEXT NOT NULL,
    created_at TEXT NOT NULL,
    edited_at TEXT NULL
);
CREATE INDEX comments_post ON comments (post_id, id);

CREATE TABLE post_idempotency_keys (
    user_id INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
) WITHOUT ROWID;

CREATE TABLE feed_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL DEFAULT 'fanout',
    post_id INTEGER NULL,
    author_id INTEGER NULL,
    user_id INTEGER NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at TEXT NOT NULL,
    parked_at TEXT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX feed_outbox_available ON feed_outbox (available_at, id);
CREATE INDEX feed_outbox_parked ON feed_outbox (parked_at, id);

CREATE TABLE post_likes (
    post_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (post_id, user_id)
) WITHOUT ROWID;
CREATE INDEX post_likes_user ON post_likes (user_id, post_id);

CREATE TABLE like_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
