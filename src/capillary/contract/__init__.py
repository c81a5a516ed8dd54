"""The contracts every part of Capillary reads, each in one file; this package imports nothing else.

`samples` (the bucket's key names), `naming` (a deployment's resource names), `assemblies` (the
genome builds and what tells them apart), `problems`, `pcgr_options` (what a sample's TOML may
set), `tarball` (the sample tarball and its VCF checks), `message` (the work message), `layout`
(the worker's filesystem and exit codes) and `queue` (how many workers a queue needs).
"""
