//! (to be written) `Idempotency-Key` on POST requests.
