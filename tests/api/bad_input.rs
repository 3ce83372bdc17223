//! Bad input: property tests over the parsers and the token extractor, oversized headers and slow
//! bodies. Nothing a client sends panics the service or gets a 500.
