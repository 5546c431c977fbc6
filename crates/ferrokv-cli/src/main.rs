//! ferrokv-cli: a redis-cli-like client and Redis Cluster admin tool.

fn main() {}
