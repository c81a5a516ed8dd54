# PCGR 2.2.5: generated from catalogue/pcgr_releases.yml by
# capillary.release.catalogue.pkrvars_for; edit the catalogue, not this file.
pcgr_version     = "2.2.5"
bundle_version   = "20250314"
vep_version      = 113
root_volume_size = 30
data_volume_size = 80
