//! paddock-init integration tests: the real binary on this host, attacked by paddock-redteam.
#[cfg(test)]
mod suite;
