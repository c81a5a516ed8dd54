# PCGR 2.3.2: generated from catalogue/pcgr_releases.yml by
# capillary.release.catalogue.pkrvars_for; edit the catalogue, not this file.
pcgr_version     = "2.3.2"
bundle_version   = "20260620"
vep_version      = 115
root_volume_size = 30
data_volume_size = 80
