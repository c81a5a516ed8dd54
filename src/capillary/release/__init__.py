"""What a release is made of and how it gets onto a worker: the catalogue, the upstream watcher,
reference data, the PCGR installation layout and the data volume."""
