//! The containers Redis wrote before 7.0, read so that a dump from Redis 5 or 6 loads:
//! ziplists (lists, hashes and sorted sets up to 6.2) and zipmaps (hashes up to 2.4).
