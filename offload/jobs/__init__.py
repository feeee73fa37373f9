"""The client layer: what starts, inspects and controls jobs, for the CLI and the API alike."""
