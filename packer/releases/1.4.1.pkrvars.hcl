# PCGR 1.4.1: generated from catalogue/pcgr_releases.yml by
# capillary.release.catalogue.pkrvars_for; edit the catalogue, not this file.
pcgr_version     = "1.4.1"
bundle_version   = "20220203"
vep_version      = 105
root_volume_size = 30
data_volume_size = 60
