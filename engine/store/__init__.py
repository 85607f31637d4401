"""The model store: content-addressed blobs, versioned manifests, locks, GGUF headers, verify."""
