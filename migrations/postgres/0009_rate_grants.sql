-- Keep in step with the other dialect's 0009.
-- Requests granted under a destination's published rate limit, by every process sharing this
-- store (daemon replicas, a `sluice run` beside them): `destinations::flow::Pace` claims one
-- here before each request, so together they stay under the limit. `used_by` is the latest
-- moment the grant may be used; a grant counts against the window until a window after it.
CREATE TABLE rate_grants (
    key     TEXT NOT NULL,
    used_by TIMESTAMPTZ NOT NULL
);
CREATE INDEX rate_grants_key ON rate_grants (key, used_by);
