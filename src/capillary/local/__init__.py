"""The whole flow on one machine (`make demo`): a local AWS endpoint, local artifact servers, the
local bake and podman workers. Needs the `local` extra (`pip install capillary[local]`)."""
