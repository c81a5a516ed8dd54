"""What runs on a worker: the consumer daemon (`capillary consume`), its engines and configuration."""
