-- The outbox carries every feed write that must reach Redis eventually, not only fan-outs:
-- `kind` says which ('fanout': post_id/author_id; 'rebuild': the feed of user_id, after a
-- follow or unfollow whose Redis update failed). All kinds share leases, retries, parking and
-- replay.
ALTER TABLE feed_outbox
    ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'fanout' AFTER id,
    ADD COLUMN user_id BIGINT UNSIGNED NULL AFTER author_id,
    MODIFY post_id BIGINT UNSIGNED NULL,
    MODIFY author_id BIGINT UNSIGNED NULL;
