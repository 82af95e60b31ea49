-- Fan-out jobs that failed every retry wait here, parked, until Redis answers again: the
-- recovery loop unparks them (a few at a time) and the fan-out workers run them as usual.
-- A parked job is invisible to workers (`available_at` is pushed to the far future), so a
-- long Redis outage costs no work, and nothing is lost if the process dies meanwhile.
ALTER TABLE feed_outbox
    ADD COLUMN parked_at DATETIME(6) NULL AFTER available_at,
    ADD KEY feed_outbox_parked (parked_at, id);
