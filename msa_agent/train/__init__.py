"""Training: the MSA router projectors (`router`) and the reader's low-rank adapters (`reader`),
with the offline data they learn from (`router_data`, `reader_data`)."""
